"""Recovery at start-up: runs a crash or a stop left open are settled from what their notes and the
outbox say. What is known is finished; a step that started and has no result, of a tool not declared
idempotent, is never run again by itself: the plan goes back to the human as interrupted."""

from __future__ import annotations

from collections.abc import Callable

from ai_employee.events import EventName, ExecutionPayload
from ai_employee.ledger import RunRecord
from ai_employee.pipeline.closing import close_action, find_plan
from ai_employee.pipeline.context import EngineContext
from ai_employee.pipeline.filing import send_back
from ai_employee.vault import callouts
from ai_employee.vault.fsops import move_file
from ai_employee.vault.layout import APPROVED, DONE, NEEDS_ACTION, PLANS, REJECTED
from ai_employee.vault.notes import edit_file, read_frontmatter, split_note, update_frontmatter


def recover_run(ctx: EngineContext, run: RunRecord, idempotent: Callable[[str], bool]) -> None:
    """One run a crash or a stop left open: done or failed as its note says; stopped between steps: it
    goes on; a step in doubt (started, no result, a tool not idempotent): back to the human."""
    path = find_plan(ctx, run.plan_id, (APPROVED, DONE, PLANS, REJECTED))
    if path is None:
        ctx.ledger.finish_run(run.plan_id, run.attempt, "interrupted", "plan note not found after a restart")
        return
    fm = read_frontmatter(split_note(path.read_text("utf-8")), path.name)
    status = str(fm.get("status") or "")
    action_id = str(fm.get("action_id") or "")
    if status == "done":
        if path.parent.name != DONE:
            move_file(path, ctx.vault.folder(DONE))
        close_action(ctx, action_id, run.plan_id, "done", DONE, None)
        ctx.ledger.finish_run(run.plan_id, run.attempt, "done", "completed after a restart")
        return
    if status == "failed":
        if path.parent.name == APPROVED:
            move_file(path, ctx.vault.folder(PLANS))
        close_action(ctx, action_id, run.plan_id, "planned", NEEDS_ACTION, None)  # it follows its plan
        ctx.ledger.finish_run(run.plan_id, run.attempt, "failed", "filed after a restart")
        return
    in_doubt = [
        s
        for s in ctx.ledger.steps(run.plan_id, run.attempt)
        if s.state in ("started", "unknown") and not s.dry_run and not idempotent(s.tool)
    ]
    if not in_doubt:
        # Stopped between steps (or in dry-run): nothing is in doubt, so the plan simply runs on.
        ctx.ledger.finish_run(run.plan_id, run.attempt, "stopped", "resumed after a restart")
        if path.parent.name == APPROVED:
            edit_file(path, lambda text: update_frontmatter(text, {"status": "approved"}), ctx.tmp_dir)
        return
    step = in_doubt[0]
    ctx.ledger.finish_run(run.plan_id, run.attempt, "interrupted", f"step {step.step_index} in doubt")
    box = callouts.interrupted_at_restart(step.step_index, step.tool, run.plan_id)
    dest = send_back(ctx, path, "failed", box, extra={"interrupted": True})
    close_action(ctx, action_id, run.plan_id, "planned", NEEDS_ACTION, None)
    ctx.bus.publish(
        EventName.PLAN_INTERRUPTED,
        ExecutionPayload(run.plan_id, "interrupted", 0, run.dry_run, ctx.vault.relative(dest), "step in doubt"),
    )
