"""The Claude planner: the model proposes a plan through a forced `submit_plan` tool; the engine checks
every step against its tool's schema, and falls back to the template planner whenever the model cannot
give a valid plan in time (the note says why, in one line).

The model only proposes. It sees the tools the configured MCP servers really offer, but cannot call
them: the policy rates the steps and the human (or, for LOW steps, the policy) approves. What arrived
(an email, a file) is given as delimited, untrusted data, never as instructions.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import anthropic
import structlog
from pydantic import BaseModel, Field, ValidationError

from ai_employee.budget import Budget, BudgetSpent, estimate_tokens
from ai_employee.config import Config
from ai_employee.executor.mcp_pool import McpPool, StepError
from ai_employee.ledger import Usage
from ai_employee.planner import prompt
from ai_employee.planner.base import PlanDraft, PlanningContext, Revision
from ai_employee.planner.prompt import TOOL_NAME
from ai_employee.planner.template import TemplatePlanner
from ai_employee.policy import Criticality
from ai_employee.vault.actions import Action, clean_text
from ai_employee.vault.plans import Step

log = structlog.get_logger(__name__)
RETRIABLE = (anthropic.RateLimitError, anthropic.InternalServerError, anthropic.APIConnectionError)


class _AnswerStep(BaseModel):
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    why: str = ""


class _Answer(BaseModel):
    title: str = Field(min_length=1)
    summary: str
    reasoning: str = ""
    steps: list[_AnswerStep]
    criticality: str = "low"
    confidence: float = Field(ge=0, le=1)
    questions: list[str] = Field(default_factory=list)


def submit_plan_tool(tool_names: list[str]) -> dict[str, Any]:
    """The tool the model must call to answer: its input schema is the shape of a plan."""
    step = {
        "type": "object",
        "properties": {
            "tool": {"type": "string", "enum": tool_names, "description": "`server.tool`, one of the tools"},
            "args": {"type": "object", "description": "arguments fitting the tool's input schema"},
            "why": {"type": "string", "description": "one line for the owner: why this step"},
        },
        "required": ["tool", "args", "why"],
    }
    return {
        "name": TOOL_NAME,
        "description": "Submit the plan for this item.",
        "input_schema": {
            "type": "object",
            "properties": {
                "title": {"type": "string", "description": "what the plan does, in a few words"},
                "summary": {"type": "string", "description": "for the owner: what arrived and what you propose"},
                "reasoning": {"type": "string", "description": "why this plan"},
                "steps": {"type": "array", "items": step},
                "criticality": {"type": "string", "enum": ["low", "medium", "high"]},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "questions": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["title", "summary", "reasoning", "steps", "criticality", "confidence", "questions"],
        },
    }


WRITE_TOOL: dict[str, Any] = {
    "name": "submit_text",
    "description": "Submit the text you were asked to write.",
    "input_schema": {
        "type": "object",
        "properties": {"text": {"type": "string", "description": "Plain paragraphs, separated by blank lines."}},
        "required": ["text"],
    },
}


class PlanningFailed(Exception):
    """The model gave no valid plan in time; the message says why in a few words, for the note."""


@dataclass
class _Call:
    """One draft's conversation with the model."""

    action: Action
    messages: list[dict[str, Any]]
    deadline: float
    block_tokens: int = 0  # the worst case of the attached documents and images


def scope_of(action: Action) -> str:
    """The budget a plan's tokens count against: `proactive` for what the engine started on its own (a
    schedule's slot, a monitor's alert), `reactive` for what arrived; one never uses up the other."""
    return "proactive" if action.type in ("schedule", "monitor") else "reactive"


class ClaudePlanner:
    name = "claude"
    revises = True

    def __init__(
        self,
        config: Config,
        tools: McpPool,
        budget: Budget,
        memory: Callable[[Action], list[Any]] = lambda action: [],
        client: anthropic.AsyncAnthropic | None = None,
    ) -> None:
        claude = config.claude
        self.config = config
        self.tools = tools
        self.budget = budget
        self.memory = memory  # earlier plans for the same sender or thread, with the owner's decisions
        self.concurrency: int | None = claude.max_concurrency
        self.fallback = TemplatePlanner()
        key = claude.api_key.get_secret_value() if claude.api_key else None
        # Retries are ours (retry-after capped, inside the draft's deadline): the SDK would wait as long
        # as a `retry-after` says, an hour if it says so.
        self.client = client or anthropic.AsyncAnthropic(
            api_key=key, base_url=claude.base_url, max_retries=0, timeout=claude.timeout_s
        )

    async def draft(self, action: Action, context: PlanningContext, revision: Revision | None = None) -> PlanDraft:
        try:
            # The servers' tool list first: starting them has its own bound (`mcp.start_timeout_s`);
            # `claude.timeout_s` is for the model's answer (retries and the correction included).
            catalog = await self.tools.catalog()
            async with asyncio.timeout(self.config.claude.timeout_s):
                return await self._draft(action, context, catalog, revision)
        except TimeoutError:
            reason = f"no answer within {self.config.claude.timeout_s:g} s"
        except (PlanningFailed, BudgetSpent) as exc:
            reason = str(exc)
        except anthropic.APIError as exc:
            reason = _api_reason(exc)
        except Exception as exc:  # anything else: the item is still planned, and the note says why
            log.exception("claude planner failed", action_id=action.id)
            reason = f"the planner failed: {type(exc).__name__}"
        log.warning("claude could not plan; the template planner did", action_id=action.id, reason=reason)
        fallback = self.fallback.plan(action, context)
        # One line, whatever the reason quotes (an invalid answer's text comes from the model).
        note = clean_text(f"Claude could not plan this ({reason}).", 400)
        return replace(fallback, planner_note=f"{note} {fallback.planner_note}", fell_back=clean_text(reason, 300))

    async def _draft(
        self, action: Action, context: PlanningContext, catalog: list[tuple[str, Any]], revision: Revision | None
    ) -> PlanDraft:
        names = [name for name, _ in catalog]
        system = [
            {
                "type": "text",
                "text": prompt.system_text(context, catalog),
                "cache_control": {"type": "ephemeral"},  # the stable prefix: rules, handbook, tools
            }
        ]
        blocks, block_tokens = prompt.attachments(action, context.vault_root)
        text = prompt.input_text(action, prompt.past_work(self.memory(action))) + prompt.revision_text(revision)
        content: str | list[dict[str, Any]] = [*blocks, {"type": "text", "text": text}] if blocks else text
        call = _Call(action, [{"role": "user", "content": content}], time.monotonic(), block_tokens)
        for attempt in (1, 2):
            message = await self._ask(call, system, submit_plan_tool(names))
            answer, problems = await self._check(message, set(names))
            if answer is not None and not problems:
                return _to_draft(answer, self.config.planner.min_confidence)
            if attempt == 2:
                raise PlanningFailed("its plan was still invalid after one correction: " + "; ".join(problems)[:300])
            # Once: the model sees what was wrong and answers again.
            content = [block.model_dump(exclude_none=True) for block in message.content]
            call.messages.append({"role": "assistant", "content": content})
            call.messages.append(_correction(message, problems))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _ask(self, call: _Call, system: list[dict[str, Any]], tool: dict[str, Any]) -> Any:
        """One answer from the model, retrying what may pass (rate limits, overload, 5xx, the network)
        with backoff and jitter. Each call first reserves its worst case in the day's budget, and is
        then recorded in the ledger with what it really used, answered or not."""
        claude = self.config.claude
        texts = (json.dumps(system), json.dumps(prompt.without_data(call.messages)), json.dumps(tool))
        worst = estimate_tokens(*texts) + call.block_tokens + claude.max_tokens
        for retry in range(6):
            reservation = self.budget.reserve(scope_of(call.action), worst, call.action.id)
            started = time.monotonic()
            try:
                messages: Any = self.client.messages  # the SDK's typed dicts, built here as plain dicts
                message = await messages.create(
                    model=claude.model,
                    max_tokens=claude.max_tokens,
                    system=system,
                    messages=call.messages,
                    tools=[tool],
                    tool_choice={"type": "tool", "name": tool["name"]},
                )
            except anthropic.APITimeoutError:
                self.budget.settle_unknown(reservation, self._usage(call.action, None, started, "timeout"))
                raise
            except RETRIABLE as exc:
                self.budget.settle(reservation, self._usage(call.action, None, started, "error"))
                wait = _retry_wait(exc, retry, claude.max_retry_after_s)
                if wait is None or retry == 5:
                    raise
                log.info("claude busy; trying again", wait_s=round(wait, 2), error=type(exc).__name__)
                await asyncio.sleep(wait)
                continue
            except anthropic.APIError:
                self.budget.settle(reservation, self._usage(call.action, None, started, "error"))
                raise
            except BaseException:  # cut off in flight (the draft's deadline, the engine stopping)
                self.budget.settle_unknown(reservation, self._usage(call.action, None, started, "timeout"))
                raise
            self.budget.settle(reservation, self._usage(call.action, message.usage, started, "ok"))
            return message
        raise AssertionError("unreachable")  # pragma: no cover

    async def write(self, action: Action, task: str, data: str) -> str:
        """Prose from data the engine gathered (the briefing's tables), for what `action` stands for (its
        budget scope and its id in the ledger): the model's text, or an exception saying why not (the
        budget, the API, no text). The data is delimited as untrusted: it holds titles from emails."""
        system = [{"type": "text", "text": f"{task}\n\n{prompt.DATA_RULE}"}]
        text = f"<untrusted_input>\n{prompt.defuse(data)}\n</untrusted_input>"
        call = _Call(action, [{"role": "user", "content": text}], time.monotonic(), 0)
        async with asyncio.timeout(self.config.claude.timeout_s):
            message = await self._ask(call, system, WRITE_TOOL)
        use = next((b for b in message.content if getattr(b, "type", "") == "tool_use"), None)
        written = (use.input or {}).get("text") if use is not None and isinstance(use.input, dict) else None
        if not isinstance(written, str) or not written.strip():
            raise PlanningFailed(f"the answer did not call {WRITE_TOOL['name']} with a text")
        return written

    async def _check(self, message: Any, known: set[str]) -> tuple[_Answer | None, list[str]]:
        """The answer and every problem with it: its shape, each step's tool (one of `known`) and its
        arguments. Problems quote the model's text with repr(): one line, whatever it holds."""
        use = next((b for b in message.content if getattr(b, "type", "") == "tool_use"), None)
        if use is None or use.name != TOOL_NAME:
            return None, [f"the answer did not call {TOOL_NAME}"]
        try:
            answer = _Answer.model_validate(use.input)
        except ValidationError as exc:
            return None, [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()][:10]
        problems = []
        for number, step in enumerate(answer.steps, 1):
            if step.tool not in known:
                problems.append(f"step {number}: {step.tool[:80]!r} is not one of the tools")
                continue
            server, _, name = step.tool.partition(".")
            try:
                await self.tools.validate(server, name, step.args)
            except StepError as exc:
                problems.append(f"step {number} ({step.tool}): {exc}")
            except Exception as exc:  # the server went away meanwhile: the step cannot be checked
                problems.append(f"step {number} ({step.tool}): cannot be checked: {type(exc).__name__}")
        try:
            Criticality.parse(answer.criticality)
        except ValueError as exc:
            problems.append(str(exc))
        return answer, problems

    def _usage(self, action: Action, usage: Any, started: float, outcome: str) -> Usage:
        model = self.config.claude.model
        tokens = [int(getattr(usage, name, 0) or 0) for name in _USAGE_FIELDS] if usage else [0, 0, 0, 0]
        fresh_in, out, cache_read, cache_write = tokens
        return Usage(
            model=model,
            scope=scope_of(action),
            action_id=action.id,
            input_tokens=fresh_in,
            output_tokens=out,
            cache_read_tokens=cache_read,
            cache_creation_tokens=cache_write,
            cost_usd=_cost(self.config.claude.prices, model, fresh_in, out, cache_read, cache_write),
            duration_ms=_ms_since(started),
            outcome=outcome,
        )


_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _cost(
    prices: dict[str, tuple[float, float]],
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read: int,
    cache_write: int,
) -> float:
    """Dollars, estimated from `claude.prices` (the longest matching prefix; none: $0): cache reads cost a
    tenth of the input price, cache writes 1.25 times it."""
    matching = sorted((prefix for prefix in prices if model.startswith(prefix)), key=len)
    if not matching:
        return 0.0
    price_in, price_out = prices[matching[-1]]
    return (input_tokens * price_in + cache_read * price_in * 0.1 + cache_write * price_in * 1.25) / 1e6 + (
        output_tokens * price_out / 1e6
    )


def _retry_wait(exc: Exception, retry: int, cap_s: float) -> float | None:
    """How long to wait before trying again, or None: the answer's `retry-after` is longer than the cap."""
    backoff = float(min(cap_s, 0.5 * 2**retry) * (0.5 + random.random() / 2))
    response = getattr(exc, "response", None)
    header = response.headers.get("retry-after") if response is not None else None
    if header is None:
        return backoff
    try:
        asked = float(header)
    except ValueError:
        return backoff
    return asked if asked <= cap_s else None


def _api_reason(exc: anthropic.APIError) -> str:
    if isinstance(exc, anthropic.APIStatusError):
        return f"the API answered {exc.status_code}"
    if isinstance(exc, anthropic.APITimeoutError):
        return "the API did not answer in time"
    if isinstance(exc, anthropic.APIConnectionError):
        return "the API could not be reached"
    return f"the API failed: {type(exc).__name__}"


def _correction(message: Any, problems: list[str]) -> dict[str, Any]:
    use = next((b for b in message.content if getattr(b, "type", "") == "tool_use"), None)
    text = "The plan is not valid:\n- " + "\n- ".join(problems) + f"\nCall {TOOL_NAME} again with a valid plan."
    if use is None:
        return {"role": "user", "content": text}
    return {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": use.id, "is_error": True, "content": text}],
    }


def _to_draft(answer: _Answer, min_confidence: float) -> PlanDraft:
    holds = []
    if answer.questions:
        holds.append("The planner has questions for you (above): it waits for you.")
    if answer.confidence < min_confidence:
        holds.append(
            f"The planner is not sure this is what you want (confidence {answer.confidence:.2f}, below"
            f" {min_confidence:.2f}): it waits for you."
        )
    summary = prompt.plain(answer.summary, 4000)
    if answer.reasoning.strip():
        summary += "\n\n**Why this plan:** " + prompt.plain(answer.reasoning, 2000)
    return PlanDraft(
        title=clean_text(answer.title) or "Plan",
        summary=summary,
        steps=[Step(s.tool, s.args, clean_text(s.why, 300)) for s in answer.steps],
        planner="claude",
        planner_note="Written by Claude: check it before you approve.",
        criticality_hint=Criticality.parse(answer.criticality),
        holds=tuple(holds),
        questions=tuple(clean_text(q, 500) for q in answer.questions if q.strip()),
    )
