"""Running one approved plan's steps: validate all, then call each through the outbox.

The caller files the note and then closes the run in the ledger (`finish_run`), so a crash between
the two is recovered from the note's own status.

Before a tool call the outbox row is written (durably); after it, the result. A step whose call
started but whose outcome is unknown (timeout, server crash, engine crash) is never retried here: the
plan goes back to the human. Steps that already succeeded live in an earlier attempt are skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from ai_employee.events import EventBus, EventName, StepPayload
from ai_employee.executor.mcp_pool import McpPool, StepError
from ai_employee.faults import crash_point
from ai_employee.ledger import Ledger
from ai_employee.vault.plans import Step, canonical_json, steps_hash

log = structlog.get_logger(__name__)
MAX_ARGS_IN_LOG = 400


@dataclass(frozen=True)
class StepResult:
    number: int
    tool: str
    outcome: str  # dry_run | ok | error | skipped | unknown | invalid | not_run
    detail: str
    at: str


@dataclass
class RunResult:
    status: str  # done | failed | interrupted | stopped
    attempt: int
    steps: list[StepResult] = field(default_factory=list)
    detail: str = ""


def _at() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def args_preview(args: dict[str, object]) -> str:
    text = json.dumps(args, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_ARGS_IN_LOG else text[:MAX_ARGS_IN_LOG] + "…"


def idempotency_key(plan_id: str, number: int, step: Step) -> str:
    return f"{plan_id}:{number}:{step.args_hash()}"


class PlanRunner:
    def __init__(
        self, ledger: Ledger, bus: EventBus, pool: McpPool, step_timeout_s: float, idempotent: set[str]
    ) -> None:
        self.ledger = ledger
        self.bus = bus
        self.pool = pool
        self.step_timeout_s = step_timeout_s
        self.idempotent = idempotent

    async def validate(self, steps: list[Step]) -> list[str]:
        """Every problem with the steps (unknown server/tool, bad arguments), before anything runs."""
        problems = []
        for number, step in enumerate(steps, 1):
            try:
                await self.pool.validate(step.server, step.tool_name, step.args)
                await self.pool.check(step.server, step.tool_name, step.args, self.step_timeout_s)
            except StepError as exc:
                problems.append(f"step {number} ({step.tool}): {exc}")
            except Exception as exc:  # the server would not start or answer: nothing has run yet
                log.warning("mcp server unavailable", server=step.server, error=repr(exc))
                await self.pool.forget(step.server)
                problems.append(
                    self.pool.redact(f"step {number} ({step.tool}): MCP server `{step.server}` is not available: {exc}")
                )
        return problems

    async def run(self, plan_id: str, steps: list[Step], dry_run: bool, should_stop: Callable[[], bool]) -> RunResult:
        problems = await self.validate(steps)
        # In dry-run nothing below awaits anything outside: the run's rows and events are one transaction.
        with self.ledger.batch(dry_run):
            attempt = self.ledger.start_run(plan_id, steps_hash(steps), dry_run)
            result = RunResult(status="done", attempt=attempt)
            if problems:
                result.status = "failed"
                result.detail = "; ".join(problems)
                result.steps = [StepResult(n, s.tool, "invalid", "", _at()) for n, s in enumerate(steps, 1)]
                return result
            for number, step in enumerate(steps, 1):
                if should_stop():
                    # Between steps: nothing is in doubt. The run stays open and resumes at next start.
                    result.status = "stopped"
                    return result
                outcome = await self._step(plan_id, attempt, number, step, dry_run)
                result.steps.append(outcome)
                self.bus.publish(
                    EventName.ACTION_EXECUTED
                    if outcome.outcome in ("ok", "dry_run", "skipped")
                    else EventName.ACTION_FAILED,
                    StepPayload(plan_id, number, step.tool, outcome.outcome, dry_run, outcome.detail[:500]),
                )
                if outcome.outcome == "error":
                    result.status = "failed"
                    result.detail = f"step {number} ({step.tool}) failed: {outcome.detail}"
                    break
                if outcome.outcome == "unknown":
                    result.status = "interrupted"
                    result.detail = f"step {number} ({step.tool}) may or may not have happened: {outcome.detail}"
                    break
            return result

    async def _step(self, plan_id: str, attempt: int, number: int, step: Step, dry_run: bool) -> StepResult:
        key = idempotency_key(plan_id, number, step)
        if not dry_run and self.ledger.step_done_before(key):
            self.ledger.step_started(plan_id, attempt, number, key, step.tool, step.args_hash(), dry_run)
            self.ledger.step_finished(plan_id, attempt, number, "skipped", "already done in an earlier attempt")
            return StepResult(number, step.tool, "skipped", "already done in an earlier attempt", _at())
        self.ledger.step_started(plan_id, attempt, number, key, step.tool, step.args_hash(), dry_run)
        if dry_run:
            detail = f"DRY RUN — WOULD CALL {step.tool} {args_preview(step.args)}"
            self.ledger.step_finished(
                plan_id, attempt, number, "dry_run", canonical_json(step.args)[:2000], durable=False
            )
            return StepResult(number, step.tool, "dry_run", detail, _at())
        crash_point("execute.after_outbox")
        try:
            call = await asyncio.wait_for(
                self.pool.call(step.server, step.tool_name, step.args, self.step_timeout_s, key),
                timeout=self.step_timeout_s + 5,
            )
        except Exception as exc:  # timeout, server crash, protocol error: the outcome is unknown
            log.warning("tool call outcome unknown", plan_id=plan_id, step=number, tool=step.tool, error=repr(exc))
            await self.pool.forget(step.server)
            # An error's text can quote what the server was given or said (a password in a URL, say).
            error = self.pool.redact(repr(exc))
            if step.tool in self.idempotent:
                self.ledger.step_finished(plan_id, attempt, number, "error", f"failed (safe to retry): {error}")
                return StepResult(number, step.tool, "error", f"{error} (safe to retry: idempotent tool)", _at())
            self.ledger.step_finished(plan_id, attempt, number, "unknown", error)
            detail = self.pool.redact(f"{type(exc).__name__}: {exc}")
            return StepResult(number, step.tool, "unknown", detail, _at())
        crash_point("execute.after_call")
        state = "ok" if call.ok else "error"
        self.ledger.step_finished(plan_id, attempt, number, state, call.text)
        return StepResult(number, step.tool, state, call.text or ("done" if call.ok else "failed"), _at())
