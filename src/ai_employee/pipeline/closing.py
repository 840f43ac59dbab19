"""Finding an item's files by id, and closing it: its action file follows its plan, always: into `Done/`
or `Rejected/` with a final status, or back into `Needs_Action/` as `planned` when its plan comes back to
the human (a rejected plan approved after all, then failed)."""

from __future__ import annotations

from pathlib import Path

import structlog

from ai_employee.errors import FormatError
from ai_employee.pipeline.context import EngineContext
from ai_employee.policy import Facts
from ai_employee.vault.actions import read_action
from ai_employee.vault.fsops import move_file
from ai_employee.vault.layout import ACTION_FOLDERS, ACTION_SUFFIX, NEEDS_ACTION, PLAN_FOLDERS
from ai_employee.vault.notes import edit_file, find_by_id, has_id, update_yaml_text

log = structlog.get_logger(__name__)


def find_action(
    ctx: EngineContext, action_id: str, hint_name: str | None = None, folders: tuple[str, ...] = ACTION_FOLDERS
) -> Path | None:
    """The action file with this id: in `Needs_Action/` (by its known name first), else wherever its plan
    took it (`Rejected/`, `Done/`)."""
    folder = ctx.vault.folder(NEEDS_ACTION)
    if hint_name:
        candidate = folder / hint_name
        if has_id(candidate, action_id):
            return candidate
    return find_by_id([ctx.vault.folder(name) for name in folders], ACTION_SUFFIX, action_id)


def action_facts(ctx: EngineContext, action_id: str, hint_name: str | None = None) -> Facts:
    """What the policy sees of a plan's item (sender, text), read from its action file; nothing if
    there is none (a hand-written plan) or it cannot be read."""
    path = find_action(ctx, action_id, hint_name) if action_id else None
    if path is None:
        return Facts()
    try:
        return Facts.of(read_action(path)[0])
    except (OSError, FormatError, ValueError):
        return Facts()


def close_action(
    ctx: EngineContext,
    action_id: str,
    plan_id: str,
    status: str,
    to_folder: str,
    hint_name: str | None,
    folders: tuple[str, ...] = ACTION_FOLDERS,
) -> Path | None:
    """Set the action's status (and its plan) and move it where its plan's state says; None if there is
    no such action file."""
    if not action_id:
        return None
    path = find_action(ctx, action_id, hint_name, folders)
    if path is None or (path.parent.name != NEEDS_ACTION and _closed_by_another(path, plan_id)):
        return None
    mark_action(path, plan_id, status, ctx.tmp_dir)
    dest = move_file(path, ctx.vault.folder(to_folder))  # no move if it is there already
    log.debug("action closed", action_id=action_id, status=status, path=ctx.vault.relative(dest))
    return dest


def mark_action(path: Path, plan_id: str, status: str, tmp_dir: Path) -> None:
    """Record an action's status and its plan's id in the action file (a surgical update)."""
    updates = {"status": status, "plan_id": plan_id} if plan_id else {"status": status}
    edit_file(path, lambda text: update_yaml_text(text, updates), tmp_dir)


def _closed_by_another(path: Path, plan_id: str) -> bool:
    """Whether a closed action (in `Done/` or `Rejected/`) belongs to another plan than this one (a plan
    re-run on purpose under a new id): it stays closed where its own plan left it."""
    try:
        action, _ = read_action(path)
    except (OSError, FormatError):
        return True
    return action.plan_id not in (None, "", plan_id)


def find_plan(ctx: EngineContext, plan_id: str, folders: tuple[str, ...] = PLAN_FOLDERS) -> Path | None:
    """The plan note with this id in the given folders (a scan: used on recovery and by the CLI)."""
    return find_by_id([ctx.vault.folder(name) for name in folders], ".md", plan_id)
