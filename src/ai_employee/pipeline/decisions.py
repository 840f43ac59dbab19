"""Human decisions: approve, deny and defer a plan (what `vault approve` etc. do), and the reconciler
that closes items whose plan note was moved into `Rejected/`.

The CLI verbs do the same move a human would do in Obsidian, plus a ledger record of who and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from ai_employee.errors import FormatError, NotFoundError, UserError
from ai_employee.events import DecisionPayload, Event, EventName
from ai_employee.ledger import Ledger
from ai_employee.pipeline.closing import close_action
from ai_employee.pipeline.context import EngineContext, current_user, entries, local_now, now_stamp
from ai_employee.pipeline.planning import PLAN_FOLDERS, FileKey, file_key
from ai_employee.vault.fsops import move_file
from ai_employee.vault.layout import APPROVED, PLANS, REJECTED, Vault
from ai_employee.vault.notes import edit_file, read_frontmatter, read_id, split_note, update_frontmatter
from ai_employee.vault.plans import parse_steps, steps_hash

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PlanRef:
    path: Path
    plan_id: str
    frontmatter: dict[str, Any]

    @property
    def folder(self) -> str:
        return self.path.parent.name


def all_plans(vault: Vault, folders: tuple[str, ...] = PLAN_FOLDERS) -> list[tuple[Path, str]]:
    """(path, plan id) of every plan note in the given folders."""
    found = []
    for folder in folders:
        for entry in entries(vault.folder(folder), ".md"):
            plan_id = read_id(Path(entry.path))
            if plan_id:
                found.append((Path(entry.path), plan_id))
    return found


def resolve_plan(vault: Vault, ref: str) -> PlanRef:
    """A plan by id, unique id prefix, or note file name (with or without `.md`)."""
    ref = ref.strip()
    if not ref:
        raise UserError("give a plan id, a unique prefix of it, or the note's file name")
    plans = all_plans(vault)
    by_name = [(p, i) for p, i in plans if p.name in (ref, f"{ref}.md")]
    exact = [(p, i) for p, i in plans if i == ref or i.lower() == ref.lower()]
    prefix = [(p, i) for p, i in plans if i.lower().startswith(ref.lower())]
    for matches in (by_name, exact, prefix):
        if len(matches) == 1:
            path, plan_id = matches[0]
            return PlanRef(path, plan_id, read_frontmatter(split_note(path.read_text("utf-8")), path.name))
        if len(matches) > 1:
            names = ", ".join(f"{p.parent.name}/{p.name}" for p, _ in matches[:5])
            raise UserError(f"`{ref}` matches {len(matches)} plans ({names}): give more of the id")
    raise NotFoundError(f"no plan matches `{ref}`: see `vault list` for pending plans")


def _require_pending(plan: PlanRef, verb: str) -> None:
    if plan.folder != PLANS:
        raise UserError(
            f"plan {plan.plan_id} is in {plan.folder}/, not Plans/: only plans waiting for a decision can be {verb}"
        )


def approve(vault: Vault, ledger: Ledger, ref: str, feedback: str = "", actor: str | None = None) -> Path:
    """Approve a pending plan: record the decision, mark it approved and move it to `Approved/`."""
    plan = resolve_plan(vault, ref)
    _require_pending(plan, "approved")
    text = plan.path.read_text("utf-8")
    try:
        digest = steps_hash(parse_steps(split_note(text).body))
    except FormatError as exc:
        raise UserError(f"plan {plan.plan_id} cannot run: {exc}; fix the note's steps first") from exc
    updates: dict[str, Any] = {"status": "approved"}
    if feedback:
        updates["feedback"] = feedback
    edit_file(plan.path, lambda t: update_frontmatter(t, updates, remove=("deferred_until",)), vault.tmp_dir)
    who = actor or current_user()
    ledger.record_decision(plan.plan_id, "approve", "cli", who, digest, feedback)
    ledger.record_event(
        Event(EventName.ACTION_APPROVED, DecisionPayload(plan.plan_id, "approve", "cli", who, feedback))
    )
    return move_file(plan.path, vault.folder(APPROVED))


def deny(vault: Vault, ledger: Ledger, ref: str, feedback: str = "", actor: str | None = None) -> Path:
    """Decline a pending plan: record the decision, mark it rejected and move it to `Rejected/`."""
    plan = resolve_plan(vault, ref)
    _require_pending(plan, "denied")
    updates: dict[str, Any] = {"status": "rejected", "decided": now_stamp()}
    if feedback:
        updates["feedback"] = feedback
    edit_file(plan.path, lambda t: update_frontmatter(t, updates), vault.tmp_dir)
    who = actor or current_user()
    ledger.record_decision(plan.plan_id, "deny", "cli", who, None, feedback)
    ledger.record_event(Event(EventName.ACTION_DENIED, DecisionPayload(plan.plan_id, "deny", "cli", who, feedback)))
    return move_file(plan.path, vault.folder(REJECTED))


def defer(vault: Vault, ledger: Ledger, ref: str, minutes: int, actor: str | None = None) -> str:
    """Snooze a pending plan: it stays in `Plans/` but `vault list` hides it until the time given."""
    if minutes <= 0:
        raise UserError("--minutes must be a positive number of minutes")
    plan = resolve_plan(vault, ref)
    _require_pending(plan, "deferred")
    until = (local_now() + timedelta(minutes=minutes)).isoformat(timespec="seconds")
    edit_file(plan.path, lambda t: update_frontmatter(t, {"deferred_until": until}), vault.tmp_dir)
    who = actor or current_user()
    ledger.record_decision(plan.plan_id, "defer", "cli", who, None, "", until)
    ledger.record_event(Event(EventName.ACTION_DEFERRED, DecisionPayload(plan.plan_id, "defer", "cli", who, until)))
    return until


class RejectionStage:
    """Closes the items whose plan notes are in `Rejected/`: status `rejected`, action moved beside it."""

    def __init__(self, ctx: EngineContext, action_names: dict[str, str]) -> None:
        self.ctx = ctx
        self.folder = ctx.vault.folder(REJECTED)
        self.settled: dict[str, FileKey] = {}
        self.action_names = action_names

    def run_once(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        handled = 0
        for entry in entries(self.folder, ".md"):
            if should_stop():
                break
            try:
                key = file_key(entry)
            except FileNotFoundError:
                continue
            if self.settled.get(entry.name) == key:
                continue
            try:
                handled += self._close(Path(entry.path))
            except Exception as exc:  # one bad item must not stop the stage: report it and go on
                self.ctx.item_failed("reject", Path(entry.path), exc, "closing rejected plan failed")
                continue
            try:
                self.settled[entry.name] = file_key(entry)
            except FileNotFoundError:
                continue
        return handled

    def _close(self, path: Path) -> int:
        ctx = self.ctx
        try:
            fm = read_frontmatter(split_note(path.read_text("utf-8")), path.name)
        except (OSError, UnicodeDecodeError, FormatError):
            return 0
        plan_id = str(fm.get("id") or "")
        if not plan_id:
            return 0
        if fm.get("status") != "rejected":
            edit_file(
                path,
                lambda t: update_frontmatter(t, {"status": "rejected", "decided": now_stamp()}),
                ctx.tmp_dir,
            )
        last = ctx.ledger.last_decision(plan_id)
        moved_by_hand = last is None or last["decision"] != "deny"
        if moved_by_hand:
            # `vault deny` records its own decision and event; a move in the file manager does not.
            ctx.ledger.record_decision(plan_id, "deny", "file", current_user())
            ctx.bus.publish(EventName.ACTION_DENIED, DecisionPayload(plan_id, "deny", "file", current_user()))
        action_id = str(fm.get("action_id") or "")
        closed = close_action(ctx, action_id, plan_id, "rejected", REJECTED, self.action_names.get(action_id))
        if closed is None and not moved_by_hand:
            return 0
        log.info("plan rejected", plan_id=plan_id)
        return 1
