"""Closing an item: its action file follows its plan into `Done/` or `Rejected/` with a final status."""

from __future__ import annotations

from pathlib import Path

import structlog

from ai_employee.pipeline.context import EngineContext
from ai_employee.vault.fsops import move_file
from ai_employee.vault.layout import ACTION_SUFFIX, NEEDS_ACTION
from ai_employee.vault.notes import edit_file, find_by_id, has_id, update_yaml_text

log = structlog.get_logger(__name__)


def find_action(ctx: EngineContext, action_id: str, hint_name: str | None = None) -> Path | None:
    folder = ctx.vault.folder(NEEDS_ACTION)
    if hint_name:
        candidate = folder / hint_name
        if has_id(candidate, action_id):
            return candidate
    return find_by_id([folder], ACTION_SUFFIX, action_id)


def close_action(
    ctx: EngineContext, action_id: str, plan_id: str, status: str, to_folder: str, hint_name: str | None
) -> Path | None:
    """Set the action's status (and its plan) and move it beside its plan; None if it is not open."""
    if not action_id:
        return None
    path = find_action(ctx, action_id, hint_name)
    if path is None:
        return None
    mark_action(path, plan_id, status, ctx.tmp_dir)
    dest = move_file(path, ctx.vault.folder(to_folder))
    log.debug("action closed", action_id=action_id, status=status, path=ctx.vault.relative(dest))
    return dest


def mark_action(path: Path, plan_id: str, status: str, tmp_dir: Path) -> None:
    """Record an action's status and its plan's id in the action file (a surgical update)."""
    updates = {"status": status, "plan_id": plan_id} if plan_id else {"status": status}
    edit_file(path, lambda text: update_yaml_text(text, updates), tmp_dir)
