"""Revision: the owner's feedback on a waiting plan becomes a new version of its note, in place.

Level-triggered: a note in `Plans/` whose `## Feedback` section holds words is work until a new version
has taken them up (it keeps the version they saw under `## Earlier versions` and empties the section).
Feedback typed in an editor is planned once the note has been quiet for `planner.feedback_quiet_s` (an
editor saves while you type; `vault start --once` does not wait for it); feedback given with `vault
replan` (recorded in the ledger) at once. Only a
plan waiting for approval that has never run gets a new version, and the new version waits for the
owner again, whatever its risk: they asked to see it. When it cannot be done (the template planner, a
plan that ran, the model failing), a notice in the feedback section says why, and the words stay.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from ai_employee.clock import local_now, now_stamp
from ai_employee.errors import FormatError
from ai_employee.events import EventName, PlanPayload
from ai_employee.pipeline.closing import find_action
from ai_employee.pipeline.context import EngineContext
from ai_employee.pipeline.decisions import VERDICTS, current_user, not_revisable, record
from ai_employee.pipeline.drafts import Draft, Drafts
from ai_employee.pipeline.planning import FULL_SWEEP_EVERY, PlanningStage
from ai_employee.pipeline.state import PipelineState
from ai_employee.planner import Revision
from ai_employee.policy import Facts
from ai_employee.vault.actions import read_action
from ai_employee.vault.layout import NEEDS_ACTION, PLANS, FileKey, entries, is_conflict_copy
from ai_employee.vault.notes import edit_file, find_by_id, has_id, read_frontmatter, split_note, update_frontmatter
from ai_employee.vault.plans import Step, parse_steps, plan_title, render_plan, steps_hash
from ai_employee.vault.revisions import MAX_VERSIONS, feedback_text, in_body, new_version, set_notice, version_count

log = structlog.get_logger(__name__)
BATCH_SIZE = 64  # notes read per call: after a restart, every waiting note is read once
RETRY_FIRST_S = 60.0  # after the planner failed on a revision; doubling up to RETRY_MAX_S
RETRY_MAX_S = 3600.0
NOTICE_TITLE = "your feedback is not planned yet"
TEMPLATE_CANNOT = (
    "The template planner cannot write a new version from feedback: edit the steps above yourself, or set"
    " up Claude (`claude.api_key`; see docs/planner.md) and the engine plans it then."
)


@dataclass(frozen=True)
class _Asked:
    """What a revision's draft was started from."""

    name: str  # the note's file name
    feedback: str
    version: int
    created: str
    steps_hash: str  # of the steps the owner saw ("" if they could not be read)
    verdict: int | None  # the plan's latest verdict then (a decision after it makes the draft stale)


class _Stale(Exception):
    """The note changed while its new version was drafted (decided, or other feedback): not written."""


class RevisionStage:
    def __init__(self, ctx: EngineContext, state: PipelineState, planning: PlanningStage) -> None:
        self.ctx = ctx
        self.state = state
        self.folder = ctx.vault.folder(PLANS)
        self.drafts = Drafts(ctx.planner, planning.planning_context, share=planning.drafts)
        self.known: dict[str, FileKey] = {}  # notes looked at, with nothing to do as they were then
        self.hinted: set[str] = set()
        self.more = False
        self.recheck_s: float | None = None  # when a note waiting to be quiet (or to retry) is due
        self._due: dict[str, float] = {}  # note name -> monotonic time to look at it again
        self._backoff: dict[str, float] = {}  # plan id -> the last wait after the planner failed on it
        self._asked: dict[str, _Asked] = {}  # plan id -> the revision in flight
        self._backlog: list[str] = []
        self._swept_at = float("-inf")
        self._full_swept_at = float("-inf")

    def hint(self, name: str) -> None:
        self.hinted.add(name)

    async def run_once(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Write the versions whose drafts are finished, then look at a batch of notes: hinted and due
        ones, and on the sweep every note not looked at yet (on a full sweep, every changed one)."""
        handled = self._commit()
        now = time.monotonic()
        names = self._candidates(now)
        self._backlog = names[BATCH_SIZE:]
        self.more = bool(self._backlog)
        for name in names[:BATCH_SIZE]:
            if should_stop():
                break
            path = self.folder / name
            try:
                self._look(path, now)
            except FileNotFoundError:  # moved on (decided, renamed, deleted): nothing to wait for
                self._due.pop(name, None)
                self.known.pop(name, None)
                continue
            except Exception as exc:  # one bad note must not stop the stage
                self.ctx.item_failed("revise", path, exc, "reading the feedback failed")
        self.recheck_s = max(0.0, min(self._due.values()) - time.monotonic()) if self._due else None
        return handled

    def _candidates(self, now: float) -> list[str]:
        interval = self.ctx.config.watcher.poll_interval
        names = sorted(self.hinted) + [name for name, at in self._due.items() if at <= now]
        self.hinted.clear()
        if now - self._swept_at >= interval:
            self._swept_at = now
            full = now - self._full_swept_at >= interval * FULL_SWEEP_EVERY or self.ctx.config.watcher.polling
            if full:
                self._full_swept_at = now
            present = set()
            for entry in entries(self.folder, ".md"):
                present.add(entry.name)
                if entry.name not in self.known or full:
                    names.append(entry.name)
            for gone in set(self.known) - present:
                del self.known[gone]
            for gone in set(self._due) - present:
                del self._due[gone]
        else:
            names += self._backlog
        return list(dict.fromkeys(names))

    def _look(self, path: Path, now: float) -> None:
        """Start a new version of this note if its feedback asks for one and it may have one."""
        st = path.stat()
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        due = self._due.get(path.name)
        if due is not None and due > now:
            return  # quiet or retry time not reached: looked at then
        if due is None and self.known.get(path.name) == key:
            return
        self._due.pop(path.name, None)
        if is_conflict_copy(path.name):
            self.known[path.name] = key  # a sync tool's copy: the original is the plan
            return
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            log.warning("plan note is not UTF-8 text; its feedback is not read", path=path.name)
            self.known[path.name] = key
            return
        parts = split_note(text)
        feedback = feedback_text(parts.body)
        try:
            fm = read_frontmatter(parts, path.name) if feedback else {}
        except FormatError:
            fm = {}
        plan_id = str(fm.get("id") or "")
        if not feedback or not plan_id:
            self.known[path.name] = key
            return
        if plan_id in self.drafts:
            return  # looked at again when its draft is finished
        problem = self._why_not(fm, parts.body, plan_id)
        if problem is not None:
            self._notice(path, [f"Not planned: {problem}" if problem != TEMPLATE_CANNOT else problem])
            return
        requested = self.ctx.ledger.last_decision(plan_id, ("revise",))
        asked_for = (
            requested is not None
            and requested["feedback"] == feedback
            and _after(str(requested["ts"]), fm.get("revised"))  # asked for on this version, not an earlier
        )
        if not asked_for:
            quiet_for = time.time() - st.st_mtime
            wait = self.ctx.config.planner.feedback_quiet_s - quiet_for
            if wait > 0:
                self._due[path.name] = now + wait
                return
        self._start(path, parts.body, fm, plan_id, feedback, asked_for)

    def _why_not(self, fm: dict[str, Any], body: str, plan_id: str) -> str | None:
        """Why this plan gets no new version (None: it may have one)."""
        problem = not_revisable(self.ctx.ledger, PLANS, str(fm.get("status") or ""), plan_id)
        if problem is None and not self.ctx.planner.revises:
            problem = TEMPLATE_CANNOT
        if problem is None and version_count(body) + 1 >= MAX_VERSIONS:
            problem = f"this plan has had {MAX_VERSIONS} versions: deny it, or edit its steps yourself."
        return problem

    def _start(self, path: Path, body: str, fm: dict[str, object], plan_id: str, feedback: str, asked: bool) -> None:
        ctx = self.ctx
        action_id = str(fm.get("action_id") or "")
        action_path = find_action(ctx, action_id, self.state.action_file(action_id), (NEEDS_ACTION,))
        if action_path is None:
            self._notice(
                path, ["Not planned: its item is no longer in `Needs_Action/`: there is nothing to plan from."]
            )
            return
        action, _ = read_action(action_path)
        try:
            seen: list[Step] | None = parse_steps(body)
        except FormatError:
            seen = None  # broken steps: the new version replaces them
        title = plan_title(body, fm)
        if not asked:
            who = current_user()
            record(ctx.ledger, ctx.bus.publish, plan_id, "revise", "file", who, seen, feedback, title=title)
        number = str(fm.get("version") or 1)
        version = max(int(number) if number.isdigit() else 1, ctx.ledger.plan_version(plan_id))
        earlier = tuple(ctx.ledger.revision_feedback(plan_id))
        revision = Revision(version, title, seen or [], feedback, earlier)
        created = fm.get("created")
        stamp = created.isoformat() if hasattr(created, "isoformat") else str(created or now_stamp())
        verdict = ctx.ledger.last_decision(plan_id, VERDICTS)
        seen_hash = steps_hash(seen) if seen is not None else ""
        self._asked[plan_id] = _Asked(
            path.name, feedback, version, stamp, seen_hash, verdict["id"] if verdict else None
        )
        self.drafts.start(action_path, action, plan_id, revision, key=plan_id)
        log.info("writing a new version after feedback", plan_id=plan_id, version=version + 1)

    def _commit(self) -> int:
        handled = 0
        for draft in self.drafts.take_finished():
            asked = self._asked.pop(draft.key)
            try:
                handled += self._write(draft, asked)
            except _Stale as exc:
                log.info("plan changed while its new version was drafted; not written", plan_id=draft.key, why=str(exc))
                if (self.folder / asked.name).exists():
                    self._due[asked.name] = time.monotonic()  # look at it again as it is now
            except Exception as exc:
                self.ctx.item_failed("revise", self.folder / asked.name, exc, "writing the new version failed")
                self._retry_later(draft.key, asked.name)
        return handled

    def _write(self, draft: Draft, asked: _Asked) -> int:
        ctx, plan_id = self.ctx, draft.key
        path = self.folder / asked.name
        if not has_id(path, plan_id):
            found = find_by_id([self.folder], ".md", plan_id)
            if found is None:
                raise _Stale("it is no longer in Plans/")
            path = found
        result = draft.task.result()
        if result.fell_back:
            at = self._retry_later(plan_id, path.name)
            self._notice(path, [f"The planner could not write it ({result.fell_back}). It tries again at {at}."])
            return 0
        assessment = ctx.policy.assess(result.steps, result.criticality_hint, Facts.of(draft.action))
        links = draft.action.source_links(draft.path.name)
        version = asked.version + 1
        note = result.to_note(plan_id, draft.action.id, assessment, asked.created, "pending_approval", links, True)
        fresh = split_note(render_plan(note)).body
        if feedback_text(fresh):
            raise FormatError("the new version would hold feedback of its own")  # never: the render escapes
        revised = now_stamp()
        props: dict[str, Any] = {"status": "pending_approval", "criticality": note.criticality, "planner": note.planner}
        props |= {"version": version, "revised": revised}
        steps = json.dumps([step.to_mapping() for step in note.steps], ensure_ascii=False, default=str)

        def change(text: str) -> str:
            parts = split_note(text)
            fm = read_frontmatter(parts, path.name)
            if fm.get("status") != "pending_approval":
                raise _Stale(f"it is {fm.get('status')} now")
            verdict = ctx.ledger.last_decision(plan_id, VERDICTS)
            if (verdict["id"] if verdict else None) != asked.verdict:
                raise _Stale("it was decided meanwhile")
            if feedback_text(parts.body) != asked.feedback:
                raise _Stale("the feedback changed")
            try:
                now_seen = steps_hash(parse_steps(parts.body))
            except FormatError:
                now_seen = ""
            if now_seen != asked.steps_hash:
                raise _Stale("the steps were edited")
            at = local_now().strftime("%Y-%m-%d %H:%M")
            body = new_version(parts.body, fresh, asked.version, at)
            # Only now is the version real: recorded once its checks pass (again, harmlessly, on a retry).
            ctx.ledger.revise_plan(
                plan_id,
                version,
                note.title,
                note.criticality,
                note.planner,
                steps,
                asked.feedback,
                assessment.rules_json(),
            )
            # The owner's own properties (tags, aliases, ...) stay; the engine's say what this version is.
            return update_frontmatter(text[: len(text) - len(parts.body)] + body, props, remove=("deferred_until",))

        edit_file(path, change, ctx.tmp_dir)
        self._settled(path)
        self._backoff.pop(plan_id, None)
        payload = PlanPayload(plan_id, draft.action.id, note.criticality, ctx.vault.relative(path), note.title)
        ctx.bus.publish(EventName.PLAN_REVISED, payload)
        ctx.bus.publish(EventName.APPROVAL_REQUIRED, payload)
        return 1

    def _retry_later(self, plan_id: str, name: str) -> str:
        wait = min(RETRY_MAX_S, self._backoff.get(plan_id, RETRY_FIRST_S / 2) * 2)
        self._backoff[plan_id] = wait
        self._due[name] = time.monotonic() + wait
        return time.strftime("%H:%M", time.localtime(time.time() + wait))

    def _notice(self, path: Path, lines: list[str]) -> None:
        """Say in the feedback section why it is not planned (once: the same words are not rewritten)."""
        edit_file(
            path, lambda text: in_body(text, lambda body: set_notice(body, NOTICE_TITLE, lines)), self.ctx.tmp_dir
        )
        self._settled(path)

    def _settled(self, path: Path) -> None:
        st = path.stat()
        self.known[path.name] = (st.st_ino, st.st_mtime_ns, st.st_size)


def _after(ts: str, revised: object) -> bool:
    """Whether a ledger time is after a note's `revised` property (True when it has none)."""
    if not revised:
        return True
    try:
        then = revised if isinstance(revised, datetime) else datetime.fromisoformat(str(revised))
        return datetime.fromisoformat(ts) > then
    except (TypeError, ValueError):
        return False
