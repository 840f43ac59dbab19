"""Planning: every open action with status `new` gets a plan note, rated by the policy.

LOW plans (when `policy.auto_approve: low`) are written straight into `Approved/` with the policy's
decision recorded, and their action stays as it is until execution closes it (`done`, or `planned` if
the run fails); the rest wait in `Plans/` and their action is marked `planned`. The ledger's `plans`
table says which action already has a plan, so a crash between writing the plan and marking the action
never plans twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from ai_employee.clock import now_stamp
from ai_employee.errors import FormatError
from ai_employee.events import EventName, PlanPayload
from ai_employee.faults import crash_point
from ai_employee.pipeline.closing import find_plan, mark_action
from ai_employee.pipeline.context import EngineContext
from ai_employee.pipeline.decisions import record
from ai_employee.pipeline.drafts import Draft, Drafts
from ai_employee.pipeline.quarantine import quarantine
from ai_employee.pipeline.state import PipelineState
from ai_employee.planner import PlanningContext
from ai_employee.policy import Criticality, Facts
from ai_employee.vault.actions import Action, adopt_action_file, new_id, read_action, reidentify_action_file
from ai_employee.vault.fsops import create_file, group_commit, in_parallel
from ai_employee.vault.layout import (
    ACTION_SUFFIX,
    APPROVED,
    DONE,
    GOALS,
    HANDBOOK,
    NEEDS_ACTION,
    PLAN_FOLDERS,
    PLANS,
    REJECTED,
    FileKey,
    entries,
    file_key,
)
from ai_employee.vault.notes import (
    find_by_id,
    has_id,
    read_id,
    read_id_and_status,
)
from ai_employee.vault.plans import PlanNote, plan_file_name, render_plan

log = structlog.get_logger(__name__)
# Actions planned per group commit (see IngestStage): amortises directory fsyncs over a burst.
BATCH_SIZE = 64
# Settled action files are stat'ed again on every this many sweeps (a minute, by default): an edit in place
# is otherwise found through the watcher's hint at once.
FULL_SWEEP_EVERY = 12
# Action statuses that need nothing from planning (everything but `new`).
SETTLED_STATUSES = ("planned", "done", "rejected", "failed")
# Drafts in flight (and finished, not yet committed) at most; more new actions wait in the backlog.
MAX_DRAFTS = BATCH_SIZE


@dataclass(frozen=True)
class NewPlan:
    """A plan registered in the ledger whose note is not written yet."""

    action_path: Path
    note: PlanNote
    auto: bool
    file_name: str
    text: bytes


class PlanningStage:
    def __init__(self, ctx: EngineContext, state: PipelineState) -> None:
        self.ctx = ctx
        self.state = state

        self.folder = ctx.vault.folder(NEEDS_ACTION)
        # Files already seen in a settled state (planned, or not ours to plan): skipped until they change.
        self.settled: dict[str, FileKey] = {}
        self.hinted: set[str] = set()
        self.more = False  # files left to look at after this batch: the pipeline calls again at once
        self._unsettled: dict[str, FileKey] = {}  # tried and not settled (an error): skipped until a sweep
        self._backlog: list[Path] = []  # found by the last scan, not yet taken by a batch
        self._swept_at = float("-inf")
        self._full_swept_at = float("-inf")
        self._plan_index: dict[str, Path] | None = None
        self._ids: dict[str, set[str]] | None = None  # see _open_ids
        self.planning_context = PlanningContext(
            vault_root=ctx.vault.root,
            handbook="",
            signature=ctx.config.app.owner_name or ctx.config.app.name,
            owner_name=ctx.config.app.owner_name,
            own_addresses=frozenset(a.strip().lower() for a in ctx.config.app.owner_addresses),
            own_domains=frozenset(d.strip().lower().lstrip("@") for d in ctx.config.app.own_domains),
        )
        self.drafts = Drafts(ctx.planner, self.planning_context)

    def hint(self, name: str) -> None:
        """The watcher saw this action file created, written or moved in: look at it on the next pass."""
        self.hinted.add(name)

    async def run_once(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Plan one batch. A settled action file is looked at again (a stat) only when the watcher hinted
        at it or on a full sweep every `watcher.poll_interval`: during a burst, the hundreds of actions
        waiting for approval cost no stat per batch. What the watcher just saw (new work) goes before
        re-checking what was there already (after a restart, thousands of planned actions are read again
        to know their status), and `more` tells the pipeline to call again at once while files are left,
        even when a batch had nothing to plan."""
        now = time.monotonic()
        interval = self.ctx.config.watcher.poll_interval
        sweep = now - self._swept_at >= interval
        if sweep:
            self._swept_at = now
        # Every call finds files planning does not know. Settled ones, whose edits in place inotify reports
        # (a hint), are stat'ed again only every FULL_SWEEP_EVERY sweeps, in case such an event was lost;
        # on every sweep where no watcher reports closes (polling, macOS).
        every = FULL_SWEEP_EVERY if sys.platform.startswith("linux") and not self.ctx.config.watcher.polling else 1
        full = now - self._full_swept_at >= interval * every
        if full:
            self._full_swept_at = now
        dirty = self._candidates(full, retry=sweep)
        self._backlog = dirty[BATCH_SIZE:]
        self.more = bool(self._backlog)
        if should_stop() or not (dirty or len(self.drafts)):
            return 0
        self.planning_context.handbook = self._vault_text(HANDBOOK)
        self.planning_context.goals = self._vault_text(GOALS)
        batch = dirty[:BATCH_SIZE]
        handled = await self._plan_batch(batch)
        for path in batch:
            # Failed (and reported), or its draft still in flight: looked at again when it changes, or at
            # the next sweep.
            if path.name not in self.settled:
                self._unsettle(path)
        return handled

    def _unsettle(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            st = path.stat()
            self._unsettled[path.name] = (st.st_ino, st.st_mtime_ns, st.st_size)

    def _candidates(self, full: bool, retry: bool) -> list[Path]:
        """What to look at, hinted files first. While files found by the last scan are left (the backlog),
        no new scan (that would cost a stat of every remaining file for each batch of a big backlog):
        only what was reported since goes before them."""
        if full or (retry and not self._backlog):
            return self._scan(full, retry)
        # Between sweeps, only what the watcher (or ingest) reported is looked at: no listing of a folder
        # of thousands per round. A file nobody announced is found by the next sweep.
        hinted = self._hinted_files()
        taken = set(hinted)
        return hinted + [path for path in self._backlog if path not in taken]

    def _hinted_files(self) -> list[Path]:
        """The files the watcher reported since the last call that are not settled as they are."""
        found = []
        for name in sorted(self.hinted):
            path = self.folder / name
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if self.settled.get(name) != (st.st_ino, st.st_mtime_ns, st.st_size):
                found.append(path)
        self.hinted.clear()
        return found

    def _scan(self, full: bool, retry: bool) -> list[Path]:
        """The action files to look at, hinted ones first: every file not settled, and with `full` every
        settled one that changed; with `retry`, also those that failed before."""
        present = set()
        hinted: list[Path] = []
        dirty: list[Path] = []
        for entry in entries(self.folder, ACTION_SUFFIX):
            present.add(entry.name)
            if not full and entry.name in self.settled and entry.name not in self.hinted:
                continue
            try:
                key = file_key(entry)
            except FileNotFoundError:
                continue
            if self.settled.get(entry.name) == key:
                continue
            if entry.name in self.hinted:
                hinted.append(Path(entry.path))
            elif retry or self._unsettled.get(entry.name) != key:
                dirty.append(Path(entry.path))
        if retry:
            self._unsettled.clear()
        self.hinted.clear()
        for gone in set(self.settled) - present:
            del self.settled[gone]
        return hinted + dirty

    async def _plan_batch(self, paths: list[Path]) -> int:
        """Start a draft for every action in the batch that needs a plan (at most MAX_DRAFTS in flight:
        the rest go back to the backlog), then commit the drafts that are finished."""
        planned_before: list[tuple[Path, str, bool]] = []
        handled = 0
        for index, path in enumerate(paths):
            if len(self.drafts) >= MAX_DRAFTS:
                self._backlog[:0] = paths[index:]
                break
            try:
                count, planned = self._handle(path)
            except Exception as exc:  # one bad item must not stop the stage: report it and go on
                self.ctx.item_failed("plan", path, exc, "planning failed")
                continue
            handled += count
            if planned is not None:
                planned_before.append((path, *planned))
        if len(self.drafts):
            await asyncio.sleep(0)  # drafts that wait for nothing (the template planner's) finish now
        return handled + self._commit(planned_before)

    def _commit(self, planned_before: list[tuple[Path, str, bool]]) -> int:
        """Commit the finished drafts in two group-committed phases: every plan note durable, then every
        action whose plan waits for a human marked `planned` (so an action never says planned while its
        plan could still be lost). An auto-approved plan's action is closed by execution, moments later.

        In the first phase each plan is registered in the ledger, then the notes are written together
        (on the writer threads: their fsyncs overlap), then announced. `planned_before` are actions found
        planned before a restart: they are only marked."""
        finished = self.drafts.take_finished()
        handled = 0
        to_mark: list[tuple[Path, str]] = []
        self._plan_index = None
        with group_commit():
            for path, plan_id, auto in planned_before:
                self._planned(path, plan_id, auto, to_mark)
            new: list[NewPlan] = []
            for draft in finished:
                try:
                    plan = self._new_plan(draft)
                except Exception as exc:  # the planner failed, or the action changed meanwhile
                    self.ctx.item_failed("plan", draft.path, exc, "planning failed")
                    self._unsettle(draft.path)
                    continue
                if plan is not None:
                    new.append(plan)
                    handled += 1
            for plan, written in zip(new, in_parallel(self._write, new), strict=True):
                if isinstance(written, Exception):
                    self.ctx.item_failed("plan", plan.action_path, written, "writing the plan note failed")
                    continue
                self._announce(plan, written)
                self._planned(plan.action_path, plan.note.id, plan.auto, to_mark)
        with group_commit():
            marked = in_parallel(self._mark, to_mark)
        for (path, _), result in zip(to_mark, marked, strict=True):
            if isinstance(result, Exception):
                self.ctx.item_failed("plan", path, result, "marking action planned failed")
                continue
            self._settle(path)
        return handled

    def _mark(self, item: tuple[Path, str]) -> None:
        """Mark an action `planned` with its plan's id (on a writer thread)."""
        path, plan_id = item
        mark_action(path, plan_id, "planned", self.ctx.tmp_dir)

    def _planned(self, path: Path, plan_id: str, auto: bool, to_mark: list[tuple[Path, str]]) -> None:
        if auto:
            self._settle(path)
        else:
            to_mark.append((path, plan_id))

    def _vault_text(self, name: str) -> str:
        """A note of the vault root the planner is given (the handbook, the goals), capped; "" if none."""
        try:
            return (self.ctx.vault.root / name).read_text("utf-8", errors="replace")[:20000]
        except OSError:
            return ""

    def _handle(self, path: Path) -> tuple[int, tuple[str, bool] | None]:
        """Look at one action file: settle it, quarantine it, or start its draft; returns (items handled,
        its plan's id and whether it is auto-approved, if it was planned before a restart)."""
        action_id, status = read_id_and_status(path)
        if action_id and status in SETTLED_STATUSES:
            # Planned or closed (most files after a restart): known from the file's first lines, not parsed.
            self._known(action_id, path)
            self._settle(path)
            return 0, None
        try:
            action, raw = read_action(path)
        except FileNotFoundError:
            return 0, None
        except OSError as exc:
            self.ctx.report_problem("plan", path, f"cannot read {path.name}: {exc.strerror or exc}")
            return 0, None
        except FormatError as exc:
            quarantine(
                self.ctx,
                path,
                f"the action file cannot be read: {exc}",
                "fix the YAML, then move the file back into `Needs_Action/`.",
            )
            return 1, None
        self.ctx.clear_problem("plan", path)
        if not action.id or "status" not in raw or "created" not in raw:
            action = adopt_action_file(path, action, raw, self.ctx.tmp_dir)
        self._known(action.id, path)
        if action.status != "new":
            self._settle(path)
            return 0, None
        if action.id in self.drafts:
            return 0, None  # its draft is in flight
        return (1, planned) if (planned := self._plan(path, action)) is not None else (0, None)

    def _known(self, action_id: str, path: Path) -> None:
        self.state.action_seen(action_id, path.name)
        if self._ids is not None:
            self._ids.setdefault(action_id, set()).add(path.name)

    def _settle(self, path: Path) -> None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return
        self.settled[path.name] = (st.st_ino, st.st_mtime_ns, st.st_size)

    def _plan(self, path: Path, action: Action) -> tuple[str, bool] | None:
        """Plan an action: start its draft (None); or, if it was planned before a restart, return the
        existing plan's id and whether it was auto-approved."""
        ctx = self.ctx
        existing = ctx.ledger.plan_for_action(action.id)
        if existing:
            found = self._find_plan(existing)
            if found is not None and self._is_copy(path, action, found):
                # A copy of an action file (a hand-made one reusing an id): its own item, not the plan's.
                action = reidentify_action_file(path, action, self.ctx.tmp_dir)
                self.state.action_seen(action.id, path.name)
                existing = None
            elif found is not None:
                # Planned before a restart: mark it now unless execution is about to close it.
                return existing, found.parent.name == APPROVED
        self.drafts.start(path, action, existing)
        return None

    def _new_plan(self, draft: Draft) -> NewPlan | None:
        """A finished draft, rated by the policy and registered in the ledger; its note still to write.
        None if its action file is gone or is another item now (it changed while the draft was made)."""
        ctx, action, path = self.ctx, draft.action, draft.path
        result = draft.task.result()  # the planner's exception, if it failed
        if not has_id(path, action.id):
            log.info("action gone while its plan was drafted", path=path.name, action_id=action.id)
            return None
        assessment = ctx.policy.assess(result.steps, result.criticality_hint, Facts.of(action))
        plan_id = draft.existing or new_id()
        # Only the policy lets a plan run by itself, and only a LOW one the planner did not hold back.
        low = assessment.criticality == Criticality.LOW
        auto = low and ctx.config.policy.auto_approve == "low" and not result.holds
        created = now_stamp()
        status = "approved" if auto else "pending_approval"
        links = action.source_links(path.name)
        note = result.to_note(plan_id, action.id, assessment, created, status, links, ctx.planner.revises)
        steps = json.dumps([step.to_mapping() for step in note.steps], ensure_ascii=False, default=str)
        rules = assessment.rules_json()
        ctx.ledger.register_plan(
            plan_id, action.id, note.criticality, note.planner, note.title, action.sender, action.thread, steps, rules
        )
        crash_point("plan.after_register")
        name = plan_file_name(created[:10], result.title)
        return NewPlan(path, note, auto, name, render_plan(note).encode())

    def _write(self, plan: NewPlan) -> Path:
        """Write a registered plan's note (on a writer thread)."""
        folder = self.ctx.vault.folder(APPROVED if plan.auto else PLANS)
        dest = create_file(folder, plan.file_name, plan.text, self.ctx.tmp_dir)
        crash_point("plan.after_write")
        return dest

    def _announce(self, plan: NewPlan, dest: Path) -> None:
        """The note is durable: record the policy's decision and tell the bus."""
        ctx, note = self.ctx, plan.note
        payload = PlanPayload(
            plan_id=note.id,
            action_id=note.action_id,
            criticality=note.criticality,
            path=ctx.vault.relative(dest),
            title=note.title,
        )
        ctx.bus.publish(EventName.PLAN_CREATED, payload)
        if plan.auto:
            self.state.approved_by_policy(dest.name)
            record(
                ctx.ledger, ctx.bus.publish, note.id, "auto_approve", "policy", "policy", note.steps, title=note.title
            )
        else:
            ctx.bus.publish(EventName.APPROVAL_REQUIRED, payload)

    def _is_copy(self, path: Path, action: Action, plan: Path) -> bool:
        """Whether this action file (status `new`, its id already planned) copies another's id, by hand or
        by a file manager, rather than being that plan's own action."""
        if plan.parent.name in (DONE, REJECTED):
            # The item is closed: its own action went with the plan, so if it is there, this is a copy.
            closed = [self.ctx.vault.folder(name) for name in (REJECTED, DONE)]
            return find_by_id(closed, ACTION_SUFFIX, action.id) is not None
        others = [
            self.folder / name
            for name in self._open_ids().get(action.id, set())
            if name != path.name and has_id(self.folder / name, action.id)
        ]
        for other in others:
            try:
                if read_action(other)[0].plan_id:
                    return True  # the other one is marked with the plan: it is the plan's own action
            except (OSError, FormatError):
                continue
        return bool(others) and min(p.name for p in others) < path.name  # both unmarked: the first is

    def _open_ids(self) -> dict[str, set[str]]:
        """Action id -> file names in `Needs_Action/`: built by one scan when first needed, then kept up
        to date by every action file planning reads."""
        if self._ids is None:
            self._ids = {}
            for entry in entries(self.folder, ACTION_SUFFIX):
                found = read_id(Path(entry.path))
                if found:
                    self._ids.setdefault(found, set()).add(entry.name)
        return self._ids

    def _find_plan(self, plan_id: str) -> Path | None:
        """The plan note with this id, from an index of the plan folders built once per batch (after a
        restart, many open actions may have plans already; one scan serves them all)."""
        if self._plan_index is None:
            self._plan_index = {}
            for name in PLAN_FOLDERS:
                for entry in entries(self.ctx.vault.folder(name), ".md"):
                    found = read_id(Path(entry.path))
                    if found:
                        self._plan_index.setdefault(found, Path(entry.path))
        path = self._plan_index.get(plan_id)
        if path is None or has_id(path, plan_id):
            return path
        return find_plan(self.ctx, plan_id)  # moved since the index was built
