"""Running one approved plan's steps: validate all, then call each through the outbox.

The caller files the note and then closes the run in the ledger (`finish_run`), so a crash between
the two is recovered from the note's own status.

Before a tool call the outbox row is written (durably); after it, the result. Each failure is
classified (`failures.py`): a transient one is tried again with backoff, while it keeps changing; a
server that refuses its credentials or does not start is paused and the plan waits for it; a tool's
refusal stops the plan; a call whose outcome is unknown (timeout, server crash, engine crash) is never
repeated by itself unless the tool is idempotent: the plan goes back to the human. Steps that already
succeeded live in an earlier attempt are skipped, so a resumed plan goes on from the first step not done.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from ai_employee.config_sections import ExecutionConfig
from ai_employee.events import EventBus, EventName, StepPayload
from ai_employee.executor.failures import Failure, backoff_s, classify_error_text, failure_of_exception
from ai_employee.executor.limits import RateLimiter, ToolRules
from ai_employee.executor.mcp_pool import CallOutcome, McpPool, StepError
from ai_employee.faults import crash_point
from ai_employee.ledger import Ledger
from ai_employee.vault.plans import Step, canonical_json, steps_hash

log = structlog.get_logger(__name__)
MAX_ARGS_IN_LOG = 400


OUTCOME_WORDS = {
    "ok": "OK",
    "error": "FAILED",
    "skipped": "SKIPPED",
    "unknown": "OUTCOME UNKNOWN",
    "invalid": "NOT RUN",
}


@dataclass(frozen=True)
class StepResult:
    number: int
    tool: str
    outcome: str  # dry_run | ok | error | skipped | unknown | invalid | stopped
    detail: str
    at: str
    tries: int = 1
    failure: str = ""  # the kind of failure (failures.Kind), if it failed

    def log_line(self) -> str:
        """The step's line in the note's `## Execution log`."""
        if self.outcome == "dry_run":
            return f"- {self.at} · {self.number}. {self.detail}"
        word = OUTCOME_WORDS.get(self.outcome, self.outcome.upper())
        detail = " ".join(self.detail.split())[:500]
        tries = f" after {self.tries} tries" if self.tries > 1 else ""
        return f"- {self.at} · {self.number}. `{self.tool}` · {word}{tries}" + (f" — {detail}" if detail else "")


@dataclass
class RunResult:
    status: str  # done | failed | interrupted | stopped | waiting
    attempt: int
    steps: list[StepResult] = field(default_factory=list)
    detail: str = ""
    dry_run: bool = True  # every step ran dry (False: at least one ran live)
    wait_s: float | None = None  # waiting: how long until it may go on
    blocker: str = ""  # waiting: what it waits for, in words


def _at() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def args_preview(args: dict[str, object]) -> str:
    text = json.dumps(args, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_ARGS_IN_LOG else text[:MAX_ARGS_IN_LOG] + "…"


def idempotency_key(plan_id: str, number: int, step: Step) -> str:
    return f"{plan_id}:{number}:{step.args_hash()}"


class _Wait(Exception):
    """The step cannot start yet (a rate limit, a paused server): the plan waits; nothing was called."""

    def __init__(self, wait_s: float, blocker: str) -> None:
        super().__init__(blocker)
        self.wait_s = wait_s
        self.blocker = blocker


class PlanRunner:
    def __init__(
        self,
        ledger: Ledger,
        bus: EventBus,
        pool: McpPool,
        rules: ToolRules,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.ledger = ledger
        self.bus = bus
        self.pool = pool
        self.rules = rules
        self.limiter = limiter or RateLimiter(ledger, rules)
        self.sleep = sleep

    @property
    def execution(self) -> ExecutionConfig:
        return self.rules.execution

    async def validate(self, steps: list[Step]) -> tuple[list[str], _Wait | None]:
        """Every problem with the steps (unknown server/tool, bad arguments), before anything runs; or
        what the plan must wait for first (a server that is paused or does not start)."""
        problems: list[str] = []
        for number, step in enumerate(steps, 1):
            if not self.pool.due(step.server):  # paused, and not yet time to try it again
                return problems, self._paused_wait(step.server)
            try:
                await self.pool.validate(step.server, step.tool_name, step.args)
                await self.pool.check(step.server, step.tool_name, step.args, self.rules.timeout_s(step.tool))
            except StepError as exc:
                problems.append(f"step {number} ({step.tool}): {exc}")
            except Exception as exc:  # the server would not start or answer: nothing has run yet
                return problems, await self._server_down(step, failure_of_exception(exc, started=False))
        return problems, None

    async def _server_down(self, step: Step, failure: Failure) -> _Wait:
        """A server refused its credentials or did not start: pause it; the plan waits for its next try."""
        log.warning("mcp server unavailable", server=step.server, kind=failure.kind, error=failure.detail)
        await self.pool.forget(step.server)  # the next try starts it afresh (new credentials, say)
        if self.pool.due(step.server):  # not already paused by the pool itself (a start timeout, a probe)
            self.pool.pause(step.server, failure.kind, self.pool.redact(failure.detail))
        return self._paused_wait(step.server)

    def _paused_wait(self, server: str) -> _Wait:
        pause = self.pool.paused[server]
        return _Wait(max(0.0, pause.retry_at - time.monotonic()), _blocker(server, pause.kind, pause.reason))

    async def run(self, plan_id: str, steps: list[Step], dry_run: bool, should_stop: Callable[[], bool]) -> RunResult:
        modes = [self.rules.dry_run(step.tool, dry_run) for step in steps]
        all_dry = all(modes)
        problems, wait = await self.validate(steps)
        # When every step is dry nothing below awaits anything outside: the run's rows and events are one
        # transaction.
        with self.ledger.batch(all_dry):
            attempt = self.ledger.start_run(plan_id, steps_hash(steps), all_dry)
            result = RunResult(status="done", attempt=attempt, dry_run=all_dry)
            if problems:
                result.status = "failed"
                result.detail = "; ".join(problems)
                result.steps = [StepResult(n, s.tool, "invalid", "", _at()) for n, s in enumerate(steps, 1)]
                return result
            if wait is not None:
                return _waiting(result, wait)
            for number, (step, step_dry) in enumerate(zip(steps, modes, strict=True), 1):
                if should_stop():
                    # Between steps: nothing is in doubt. The run stays open and resumes at next start.
                    result.status = "stopped"
                    return result
                try:
                    seen = sum(1 for s in steps[:number] if s.tool == step.tool and s.args_hash() == step.args_hash())
                    outcome = await self._step(plan_id, attempt, number, step, step_dry, should_stop, seen)
                except _Wait as waiting:
                    return _waiting(result, waiting)
                result.steps.append(outcome)
                self.bus.publish(
                    EventName.ACTION_EXECUTED
                    if outcome.outcome in ("ok", "dry_run", "skipped")
                    else EventName.ACTION_FAILED,
                    StepPayload(plan_id, number, step.tool, outcome.outcome, step_dry, outcome.detail[:500]),
                )
                if outcome.outcome == "error":
                    result.status = "failed"
                    tried = f" ({outcome.tries} tries)" if outcome.tries > 1 else ""
                    result.detail = f"step {number} ({step.tool}) failed{tried}: {outcome.detail}"
                    break
                if outcome.outcome == "unknown":
                    result.status = "interrupted"
                    result.detail = f"step {number} ({step.tool}) may or may not have happened: {outcome.detail}"
                    break
                if outcome.outcome == "stopped":
                    result.status = "stopped"
                    return result
            return result

    async def _step(
        self,
        plan_id: str,
        attempt: int,
        number: int,
        step: Step,
        dry_run: bool,
        should_stop: Callable[[], bool],
        occurrence: int = 1,
    ) -> StepResult:
        """One step; `occurrence` counts the steps identical to it up to it (the second of two identical
        steps runs unless two succeeded before)."""
        key = idempotency_key(plan_id, number, step)
        if not dry_run and self.ledger.successes(plan_id, step.tool, step.args_hash()) >= occurrence:
            self.ledger.step_started(plan_id, attempt, number, key, step.tool, step.args_hash(), dry_run)
            self.ledger.step_finished(plan_id, attempt, number, "skipped", "already done in an earlier attempt")
            return StepResult(number, step.tool, "skipped", "already done in an earlier attempt", _at())
        if dry_run:
            self.ledger.step_started(plan_id, attempt, number, key, step.tool, step.args_hash(), dry_run)
            detail = f"DRY RUN — WOULD CALL {step.tool} {args_preview(step.args)}"
            self.ledger.step_finished(
                plan_id, attempt, number, "dry_run", canonical_json(step.args)[:2000], durable=False
            )
            return StepResult(number, step.tool, "dry_run", detail, _at())
        await self._may_start(step, should_stop)
        self.ledger.step_started(plan_id, attempt, number, key, step.tool, step.args_hash(), dry_run)
        tries, previous = 0, ""
        while True:
            tries += 1
            if tries > 1:
                self.ledger.step_retried(plan_id, attempt, number)
            call, failure = await self._try(plan_id, number, step, key)
            if failure is None:
                self.pool.resume(step.server)  # an auth pause ends when a call succeeds
                text = call.text if call is not None else ""
                self.ledger.step_finished(plan_id, attempt, number, "ok", text)
                return StepResult(number, step.tool, "ok", text or "done", _at(), tries)
            detail = self.pool.redact(failure.detail)[:2000]
            if failure.kind == "unknown":
                self.ledger.step_finished(plan_id, attempt, number, "unknown", detail, failure=failure.kind)
                return StepResult(number, step.tool, "unknown", detail, _at(), tries, failure.kind)
            self.ledger.step_finished(plan_id, attempt, number, "error", detail, failure=failure.kind)
            if failure.pauses_server:
                raise await self._server_down(step, failure)
            # The same failure twice means retrying does not help; a rate limit says the same each time.
            again = failure.signature == previous and not failure.rate_limited
            if not failure.retryable or again or tries >= self.execution.retry.attempts:
                why = " (the same failure twice)" if again else ""
                return StepResult(number, step.tool, "error", detail + why, _at(), tries, failure.kind)
            previous = failure.signature
            retry = self.execution.retry
            delay = backoff_s(tries, failure, retry.base_delay_s, retry.max_delay_s, retry.rate_limit_delay_s)
            if delay > retry.max_wait_in_step_s:
                what = "the server asked to wait" if failure.rate_limited else "a temporary failure"
                raise _Wait(delay, f"{step.tool}: {what} ({detail[:200]}); trying again in {delay:.0f} s")
            log.info("step failed, trying again", plan_id=plan_id, step=number, tool=step.tool, in_s=round(delay, 1))
            if not await self._pause_for(delay, should_stop):
                return StepResult(number, step.tool, "stopped", detail, _at(), tries, failure.kind)

    async def _may_start(self, step: Step, should_stop: Callable[[], bool]) -> None:
        """Wait for the tool's rate limit (briefly, in the step; longer: the plan waits) and for its
        server's pause to end."""
        if not self.pool.due(step.server):
            raise self._paused_wait(step.server)
        wait_s = self.limiter.wait_s(step.tool)
        if wait_s <= 0:
            return
        limit = self.rules.settings(step.tool).rate_limit
        blocker = f"{step.tool} is at its rate limit ({limit[0] if limit else '?'} calls per {_window(limit)})"
        if wait_s > self.execution.retry.max_wait_in_step_s or not await self._pause_for(wait_s, should_stop):
            raise _Wait(wait_s, blocker)
        if self.limiter.wait_s(step.tool) > 0:  # another engine's call took the slot (it is one per vault)
            raise _Wait(self.limiter.wait_s(step.tool), blocker)

    async def _pause_for(self, seconds: float, should_stop: Callable[[], bool]) -> bool:
        """Sleep, waking early to stop; False if a stop was asked for."""
        deadline = time.monotonic() + seconds
        while not should_stop():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            await self.sleep(min(0.25, left))
        return False

    async def _try(self, plan_id: str, number: int, step: Step, key: str) -> tuple[CallOutcome | None, Failure | None]:
        """One call of the step: its outcome, or its failure."""
        idempotent = self.rules.idempotent(step.tool)
        timeout_s = self.rules.timeout_s(step.tool)
        try:
            await self.pool.session_for(step.server)
        except StepError as exc:
            return None, Failure("logic", str(exc))
        except Exception as exc:  # it did not start or answer: nothing was called
            return None, failure_of_exception(exc, started=False)
        crash_point("execute.after_outbox")
        try:
            call = await asyncio.wait_for(
                self.pool.call(step.server, step.tool_name, step.args, timeout_s, key), timeout=timeout_s + 5
            )
        except StepError as exc:
            return None, Failure("logic", str(exc))
        except Exception as exc:  # timeout, server crash, protocol error: the outcome is unknown
            log.warning("tool call outcome unknown", plan_id=plan_id, step=number, tool=step.tool, error=repr(exc))
            await self.pool.forget(step.server)
            failure = failure_of_exception(exc, started=True)
            if failure.kind == "unknown" and idempotent:
                return None, Failure("transient", failure.detail + " (safe to retry: idempotent tool)")
            return None, failure
        crash_point("execute.after_call")
        if call.ok:
            return call, None
        return call, classify_error_text(call.text or f"{step.tool} failed", idempotent)


def _waiting(result: RunResult, wait: _Wait) -> RunResult:
    result.status = "waiting"
    result.wait_s = wait.wait_s
    result.blocker = wait.blocker
    result.detail = wait.blocker
    return result


def _blocker(server: str, kind: str, reason: str) -> str:
    if kind == "auth":
        return (
            f"the `{server}` server does not accept its credentials ({reason[:200]}); fix them and it goes on"
            " (`vault restart` after changing the config or the engine's environment)"
        )
    return f"the `{server}` server is not available ({reason[:200]}); it is tried again by itself"


def _window(limit: tuple[int, float] | None) -> str:
    if limit is None:
        return "?"
    seconds = limit[1]
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = int(seconds // size)
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds:g} s"
