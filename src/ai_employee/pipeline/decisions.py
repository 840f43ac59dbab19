"""Decisions on plans: one API for every channel (the CLI, a note moved in the file manager, the policy,
and the channels to come), and the rule that binds them to what runs.

A decision records the hash of the steps it saw. Execution runs a plan only when the plan's latest
verdict is an approval of exactly its current steps (`binding_approval`); anything else goes back to the
human. The CLI verbs do the same move a human would do in Obsidian, plus the record of who and why.
"""

from __future__ import annotations

import difflib
import getpass
import json
import os
import re
import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from ai_employee.clock import local_now, local_time, now_stamp
from ai_employee.errors import FormatError, UserError
from ai_employee.events import DecisionPayload, Event, EventName, Payload
from ai_employee.ledger import Ledger
from ai_employee.pipeline.lookup import PlanRef, resolve_folder, resolve_plan
from ai_employee.vault import callouts
from ai_employee.vault.fsops import FileOpError, move_file
from ai_employee.vault.layout import APPROVED, PLANS, REJECTED, Vault
from ai_employee.vault.notes import edit_file, split_note, update_frontmatter
from ai_employee.vault.plans import Step, dump_steps, parse_steps, plan_title, restate, steps_hash

# Decisions that let steps run, and those that settle a plan one way or the other (a defer does not).
APPROVALS = ("approve", "auto_approve", "resume")
VERDICTS = (*APPROVALS, "deny", "expire")
EVENT_OF = {
    "approve": EventName.ACTION_APPROVED,
    "auto_approve": EventName.ACTION_APPROVED,
    "resume": EventName.ACTION_APPROVED,
    "deny": EventName.ACTION_DENIED,
    "defer": EventName.ACTION_DEFERRED,
    "expire": EventName.ACTION_EXPIRED,
    "revise": EventName.REVISION_REQUESTED,
}
MAX_DIFF_LINES = 30
DECISION_WORDS = {
    "approve": "approved",
    "auto_approve": "auto-approved",
    "resume": "resumed",
    "deny": "denied",
    "defer": "deferred",
    "expire": "expired",
    "revise": "sent back for a new version",
}
CHANNEL_WORDS = {"cli": "from the command line", "file": "by moving the note", "policy": "by the policy (LOW risk)"}
Publish = Callable[[EventName, Payload], object]
MAX_DEFER_MINUTES = 366 * 24 * 60


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def record(
    ledger: Ledger,
    publish: Publish | None,
    plan_id: str,
    decision: str,
    channel: str,
    actor: str,
    steps: list[Step] | None = None,
    feedback: str = "",
    until: str | None = None,
    title: str = "",
) -> int:
    """Record one decision with the hash (and text) of the steps it saw, and announce it (unless
    `publish` is None: the caller announces it once it has taken effect); returns its row id."""
    digest = steps_hash(steps) if steps is not None else None
    # In the steps' own key order, so a diff against them later reads like the note.
    text = json.dumps([s.to_mapping() for s in steps], ensure_ascii=False, default=str) if steps is not None else None
    # The policy's decisions can be lost to a power cut safely: the note is then rated again.
    durable = channel != "policy" or decision == "expire"  # an expiry is a verdict: it must not be lost
    row = ledger.record_decision(plan_id, decision, channel, actor, digest, feedback, until, text, durable)
    if publish is not None:
        announce(publish, plan_id, decision, channel, actor, until or feedback, title)
    return row


def announce(
    publish: Publish, plan_id: str, decision: str, channel: str, actor: str, detail: str = "", title: str = ""
) -> None:
    publish(EVENT_OF[decision], DecisionPayload(plan_id, decision, channel, actor, detail, title))


def describe(row: sqlite3.Row) -> str:
    """One decision in words: what, on which plan, by whom, how, and when (for `vault history`)."""
    what = DECISION_WORDS.get(row["decision"], row["decision"])
    if row["decision"] == "defer" and row["until"]:
        what += f" until {local_time(row['until'])}"
    title = row["title"] or ""
    plan = f'"{title}" ({row["plan_id"][:10]}…)' if title else row["plan_id"]
    who = "the policy" if row["channel"] == "policy" else row["actor"]
    how = "" if row["channel"] == "policy" else " " + CHANNEL_WORDS.get(row["channel"], f"via {row['channel']}")
    feedback = f' — "{row["feedback"]}"' if row["feedback"] and row["decision"] != "defer" else ""
    return f"{local_time(row['ts'])}  {plan} {what} by {who}{how}{feedback}"


def ledger_publisher(ledger: Ledger) -> Publish:
    """Publishing for the CLI, which has no event bus: events go straight into the ledger."""
    return lambda name, payload: ledger.record_event(Event(name, payload))


def binding_approval(ledger: Ledger, plan_id: str, steps: list[Step]) -> sqlite3.Row | None:
    """The decision that lets exactly these steps run: the plan's latest verdict, if it approved them."""
    last = ledger.last_decision(plan_id, VERDICTS)
    if last is not None and last["decision"] in APPROVALS and last["plan_hash"] == steps_hash(steps):
        return last
    return None


def steps_diff(approved_steps: str | None, steps: list[Step]) -> list[str]:
    """A short diff (a fenced block, as lines) from the steps an approval saw to the current ones."""
    if not approved_steps:
        return []
    try:
        before = dump_steps([Step(**item) for item in json.loads(approved_steps)]).splitlines()
    except (ValueError, TypeError):
        return []
    lines = list(difflib.unified_diff(before, dump_steps(steps).splitlines(), "approved", "now", n=1, lineterm=""))
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... ({len(lines) - MAX_DIFF_LINES} more lines)"]
    # A fence longer than any run of backticks inside, so text from an email cannot close it.
    longest = max((len(run) for run in re.findall(r"`+", "\n".join(lines))), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}diff", *lines, fence] if lines else []


def not_revisable(ledger: Ledger, folder: str, status: str, plan_id: str) -> str | None:
    """Why a plan cannot get a new version (None if it can): only a plan waiting in `Plans/` that has
    never run is replanned; an approved, running or finished one never is."""
    if folder != PLANS:
        return f"it is in {folder}/: only a plan waiting in Plans/ gets a new version"
    if status != "pending_approval":
        return f"it is {status or 'without a status'}: only a plan waiting for approval gets a new version"
    if ledger.runs(plan_id):
        return "it has run before: edit its steps yourself, or deny it"
    return None


def request_revision(vault: Vault, ledger: Ledger, ref: str, feedback: str, actor: str | None = None) -> Path:
    """Ask for a new version of a waiting plan: the feedback goes under the note's `## Feedback` (where
    the engine finds it, as if written there) and into the ledger, so the engine plans it at once."""
    from ai_employee.vault.revisions import add_feedback, feedback_text, in_body

    if not feedback.strip():
        raise UserError("--feedback must say what should change")
    plan = resolve_plan(vault, ref)
    problem = not_revisable(ledger, plan.folder, str(plan.frontmatter.get("status") or ""), plan.plan_id)
    if problem:
        raise UserError(f"plan {plan.plan_id} cannot be replanned: {problem}")
    text = edit_file(plan.path, lambda t: in_body(t, lambda body: add_feedback(body, feedback)), vault.tmp_dir)
    body = split_note(text).body
    try:
        steps: list[Step] | None = parse_steps(body)
    except FormatError:
        steps = None  # the new version replaces them anyway
    who = actor or current_user()
    title = _title(body, plan)
    record(
        ledger, ledger_publisher(ledger), plan.plan_id, "revise", "cli", who, steps, feedback_text(body), title=title
    )
    return plan.path


class AlreadyDecided(UserError):
    """A decision came after another one had taken effect: the first valid decision wins."""


def already_decided(ledger: Ledger, plan: PlanRef, verb: str) -> AlreadyDecided:
    """Why a later decision did nothing, in words: who decided first, how and when."""
    last = ledger.last_decision(plan.plan_id, VERDICTS)
    where = resolve_folder(plan) or "another folder"
    if last is None:
        return AlreadyDecided(
            f"plan {plan.plan_id} is already in {where}/ (its note was moved there), not Plans/: only plans"
            f" waiting for a decision can be {verb}; nothing changed"
        )
    who = "the policy" if last["channel"] == "policy" and last["actor"] == "policy" else last["actor"]
    how = "" if last["channel"] == "policy" else " " + CHANNEL_WORDS.get(last["channel"], f"via {last['channel']}")
    what = DECISION_WORDS.get(last["decision"], last["decision"])
    now = resolve_folder(plan)
    return AlreadyDecided(
        f"plan {plan.plan_id} was already {what} by {who}{how} at {local_time(last['ts'])}"
        + (f" (its note is in {now}/)" if now else "")
        + f": it can no longer be {verb}; nothing changed"
    )


def _require_pending(plan: PlanRef, verb: str, ledger: Ledger | None = None) -> None:
    if plan.folder != PLANS:
        if ledger is not None:
            raise already_decided(ledger, plan, verb)
        raise UserError(
            f"plan {plan.plan_id} is in {plan.folder}/, not Plans/: only plans waiting for a decision can be {verb}"
        )
    status = str(plan.frontmatter.get("status") or "")
    if status == "failed":  # a run failed or was interrupted: look at what happened, then resume it
        what = "was interrupted" if plan.frontmatter.get("interrupted") is True else "failed"
        raise UserError(
            f"plan {plan.plan_id} {what}: it cannot be {verb} as it is; see what happened in its note, then"
            f" `vault resume {plan.plan_id[:10]}` (or move the note back into Approved/)"
        )


class StepsChanged(UserError):
    """The steps changed since the person deciding saw them: their decision is not taken."""


def approve(
    vault: Vault,
    ledger: Ledger,
    ref: str,
    feedback: str = "",
    actor: str | None = None,
    channel: str = "cli",
    seen: str | None = None,
) -> Path:
    """Approve a pending plan's steps as they are now: the same as moving its note into `Approved/`.
    The one API of every channel (`channel`: cli, telegram, web, ...); `seen` is the hash of the steps
    the person was shown (a phone, a web page): if they changed since, nothing is approved."""
    plan = resolve_plan(vault, ref)
    _require_pending(plan, "approved", ledger)
    steps = _runnable_steps(ledger, plan, "approved")
    if seen is not None and seen != steps_hash(steps):
        raise StepsChanged(
            f"plan {plan.plan_id} changed after it was shown to you: nothing was approved; look at it again"
        )
    who = actor or current_user()
    updates: dict[str, Any] = {"status": "approved", **({"feedback": feedback} if feedback else {})}
    box = callouts.approved(who, channel, now_stamp())
    return _decide_by_move(vault, ledger, plan, "approve", who, feedback, steps, updates, box, APPROVED, channel)


def approve_edited(
    vault: Vault,
    ledger: Ledger,
    ref: str,
    steps: list[Step],
    feedback: str = "",
    actor: str | None = None,
    channel: str = "cli",
    seen: str | None = None,
) -> Path:
    """Write edited steps into a pending plan's note (as an edit in Obsidian would) and approve exactly
    them, as one decision: nothing is written unless the plan may be approved now (waiting in `Plans/`,
    not failed), the edit has steps, and the steps the person edited (`seen`) are still the note's."""
    from ai_employee.vault.plans import replace_steps

    plan = resolve_plan(vault, ref)
    _require_pending(plan, "approved", ledger)
    if not steps:
        raise UserError(f"the edit of plan {plan.plan_id} has no steps: nothing was saved (deny it instead)")

    def change(note: str) -> str:
        parts = split_note(note)
        now = steps_hash(parse_steps(parts.body))
        # The note holds what was edited from, or already this edit (a try again after a failed approval).
        if seen is not None and now not in (seen, steps_hash(steps)):
            raise StepsChanged(f"plan {plan.plan_id} changed while you edited it: nothing was saved; look at it again")
        return note[: len(note) - len(parts.body)] + replace_steps(parts.body, steps)

    try:
        edit_file(plan.path, change, vault.tmp_dir)
    except FileNotFoundError as exc:
        raise already_decided(ledger, plan, "approved") from exc
    return approve(vault, ledger, plan.plan_id, feedback, actor, channel, seen=steps_hash(steps))


def resume(
    vault: Vault,
    ledger: Ledger,
    ref: str,
    note: str = "",
    actor: str | None = None,
    channel: str = "cli",
) -> Path:
    """Resume a plan that failed or was interrupted, with its steps as they are now (the person may have
    fixed them): the same as moving its note back into `Approved/`, plus a resolution note kept with the
    decision. The run goes on from the first step not done; a step that ran never runs again."""
    plan = resolve_plan(vault, ref)
    status = str(plan.frontmatter.get("status") or "")
    if plan.folder != PLANS or status != "failed":
        where = f"in {plan.folder}/ as {status or 'no status'}"
        raise UserError(f"plan {plan.plan_id} is {where}: only a failed or interrupted plan in Plans/ is resumed")
    steps = _runnable_steps(ledger, plan, "resumed")
    who = actor or current_user()
    updates: dict[str, Any] = {"status": "approved", **({"resolution": note} if note else {})}
    box = callouts.approved(who, channel, now_stamp())
    return _decide_by_move(vault, ledger, plan, "resume", who, note, steps, updates, box, APPROVED, channel)


def deny(
    vault: Vault, ledger: Ledger, ref: str, feedback: str = "", actor: str | None = None, channel: str = "cli"
) -> Path:
    """Decline a pending plan: the same as moving its note into `Rejected/` (any channel)."""
    plan = resolve_plan(vault, ref)
    _require_pending(plan, "denied", ledger)
    who, at = actor or current_user(), now_stamp()
    updates: dict[str, Any] = {"status": "rejected", "decided": at, **({"feedback": feedback} if feedback else {})}
    box = callouts.rejected(who, at, feedback)
    return _decide_by_move(vault, ledger, plan, "deny", who, feedback, None, updates, box, REJECTED, channel)


def expire(vault: Vault, ledger: Ledger, ref: str, waited: str, publish: Publish | None = None) -> Path:
    """Decline a plan nobody decided on in time: into `Rejected/` as `expired` (channel `policy`, actor
    `timeout`). A timeout never approves."""
    plan = resolve_plan(vault, ref)
    _require_pending(plan, "expired", ledger)
    at = now_stamp()
    updates: dict[str, Any] = {"status": "expired", "decided": at}
    box = callouts.expired(at, waited)
    return _decide_by_move(
        vault, ledger, plan, "expire", "timeout", waited, None, updates, box, REJECTED, "policy", publish
    )


def _decide_by_move(
    vault: Vault,
    ledger: Ledger,
    plan: PlanRef,
    decision: str,
    who: str,
    feedback: str,
    steps: list[Step] | None,
    updates: dict[str, Any],
    box: callouts.Callout,
    folder: str,
    channel: str = "cli",
    publish: Publish | None = None,
) -> Path:
    """Record the decision first (the engine, finding the note moved, sees it already made), then mark the
    note and move it; if that fails, take the decision back and let the note say again that it waits."""
    title = _title(split_note(_read(ledger, plan, DECISION_WORDS.get(decision, decision))).body, plan)
    row = record(ledger, None, plan.plan_id, decision, channel, who, steps, feedback)
    try:
        expect = steps_hash(steps) if steps is not None else None
        restate(plan.path, updates, box, vault.tmp_dir, remove=("deferred_until",), expect=expect)
        dest = move_file(plan.path, vault.folder(folder))
    except BaseException as exc:
        _take_back(ledger, row, plan)
        _restore(vault, plan)
        if not plan.path.exists():  # another channel decided first and took the note: say who and how
            raise already_decided(ledger, plan, DECISION_WORDS.get(decision, decision)) from exc
        raise
    announce(publish or ledger_publisher(ledger), plan.plan_id, decision, channel, who, feedback, title)
    return dest


def defer(vault: Vault, ledger: Ledger, ref: str, minutes: int, actor: str | None = None, channel: str = "cli") -> str:
    """Snooze a pending plan: it stays in `Plans/` but `vault list` hides it until the time given."""
    if minutes <= 0 or minutes > MAX_DEFER_MINUTES:
        raise UserError(f"--minutes must be a number of minutes from 1 to {MAX_DEFER_MINUTES:,} (a year)")
    plan = resolve_plan(vault, ref)
    _require_pending(plan, "deferred", ledger)
    until = (local_now() + timedelta(minutes=minutes)).isoformat(timespec="seconds")
    try:
        edit_file(plan.path, lambda t: update_frontmatter(t, {"deferred_until": until}), vault.tmp_dir)
    except (FileOpError, FileNotFoundError) as exc:
        if not plan.path.exists():
            raise already_decided(ledger, plan, "deferred") from exc
        raise
    who = actor or current_user()
    title = _title(split_note(_read(ledger, plan, "deferred")).body, plan)
    record(ledger, ledger_publisher(ledger), plan.plan_id, "defer", channel, who, until=until, title=title)
    return until


def _read(ledger: Ledger, plan: PlanRef, verb: str) -> str:
    """The note's text; if another channel took the note away meanwhile, who decided first."""
    try:
        return plan.path.read_text("utf-8")
    except FileNotFoundError as exc:
        raise already_decided(ledger, plan, verb) from exc


def _runnable_steps(ledger: Ledger, plan: PlanRef, verb: str) -> list[Step]:
    """The note's steps as they are now, to approve; a UserError if they cannot run."""
    try:
        return parse_steps(split_note(_read(ledger, plan, verb)).body)
    except FormatError as exc:
        raise UserError(f"plan {plan.plan_id} cannot run: {exc}; fix the note's steps first") from exc


def _title(body: str, plan: PlanRef) -> str:
    return plan_title(body, plan.frontmatter) or plan.path.stem


def _take_back(ledger: Ledger, row: int, plan: PlanRef) -> None:
    """A decision whose note could not be moved did not take effect: take it back, unless the engine has
    run the plan on it meanwhile (the person moved the note themselves at that moment)."""
    decided = ledger.last_decision(plan.plan_id)
    if (
        decided is not None
        and int(decided["id"]) == row
        and not any(run.started >= decided["ts"] for run in ledger.runs(plan.plan_id))
    ):
        ledger.retract_decision(row)


def _restore(vault: Vault, plan: PlanRef) -> None:
    """After a failed move: the note, still in `Plans/`, says again that it waits."""
    if plan.path.exists():
        level = str(plan.frontmatter.get("criticality") or "high")
        status = str(plan.frontmatter.get("status") or "pending_approval")
        offers = "\n## Feedback" in plan.path.read_text("utf-8", errors="replace")  # the hint stays if it was there
        box = callouts.waiting(level, plan.plan_id, offers)
        restate(plan.path, {"status": status}, box, vault.tmp_dir)
