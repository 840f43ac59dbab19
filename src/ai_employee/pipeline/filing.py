"""Filing a run's outcome into its plan note: the callout, the execution log, the ticked checklist and
the status, then the move to where the note belongs (`Done/`, or back to `Plans/`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from ai_employee.clock import now_stamp
from ai_employee.errors import FormatError
from ai_employee.executor.run import RunResult
from ai_employee.faults import crash_point
from ai_employee.pipeline.context import EngineContext
from ai_employee.vault import callouts
from ai_employee.vault.fsops import move_file
from ai_employee.vault.layout import DONE, PLANS
from ai_employee.vault.notes import edit_file, split_note, update_frontmatter
from ai_employee.vault.plans import ParsedPlan, append_section, set_callout, tick_checklist

log = structlog.get_logger(__name__)


def file_result(ctx: EngineContext, path: Path, plan: ParsedPlan, result: RunResult) -> Path:
    """Write the outcome into the note (callout, log, checklist, status) and move it where it belongs."""
    lines = [step.log_line() for step in result.steps]
    heading = "Execution log" if result.attempt == 1 else f"Execution log (attempt {result.attempt})"
    last = result.steps[-1] if result.steps else None
    kind, title, message = callouts.outcome(
        result.status,
        result.dry_run,
        result.detail,
        plan.id,
        last.number if last else 0,
        last.failure if last else "",
    )
    ticked = {s.number for s in result.steps if s.outcome in ("ok", "dry_run", "skipped")}
    status = "done" if result.status == "done" else "failed"
    updates: dict[str, Any] = {"status": status, "executed": now_stamp(), "dry_run": result.dry_run}
    if result.status != "done":
        updates["error"] = result.detail[:300]
    if result.status == "interrupted":
        updates["interrupted"] = True

    def change(text: str) -> str:
        parts = split_note(text)
        body = set_callout(parts.body, kind, title, message)
        body = tick_checklist(append_section(body, heading, lines), ticked)
        head = text[: len(text) - len(parts.body)]
        gone = ["waiting_for", *(() if "error" in updates else ("error",))]
        if result.status != "interrupted":
            gone.append("interrupted")
        return update_frontmatter(head + body, updates, remove=tuple(gone))

    edit_file(path, change, ctx.tmp_dir)
    crash_point("execute.after_result")
    return move_file(path, ctx.vault.folder(DONE if status == "done" else PLANS))


def send_back(
    ctx: EngineContext, path: Path, status: str, box: callouts.Callout, extra: dict[str, Any] | None = None
) -> Path:
    """Move a note back to `Plans/` with a status and a callout explaining what the human should do."""
    updates = {"status": status, **(extra or {})}
    if status == "failed":
        updates["error"] = box[2][0][:300]

    def change(text: str) -> str:
        parts = split_note(text)
        head = text[: len(text) - len(parts.body)]
        new = head + set_callout(parts.body, *box)
        try:
            return update_frontmatter(new, updates, remove=() if status == "failed" else ("error",))
        except FormatError:
            return new  # the properties themselves are broken: the callout says so; leave them be

    edit_file(path, change, ctx.tmp_dir)
    log.warning("plan sent back", path=path.name, status=status, reason=box[1])
    return move_file(path, ctx.vault.folder(PLANS))
