"""Planning: every open action with status `new` gets a plan note, rated by the policy.

LOW plans (when `policy.auto_approve: low`) are written straight into `Approved/` with the policy's
decision recorded, and their action stays as it is until execution closes it (`done`, or `planned` if
the run fails); the rest wait in `Plans/` and their action is marked `planned`. The ledger's `plans`
table says which action already has a plan, so a crash between writing the plan and marking the action
never plans twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import structlog
import yaml

from ai_employee.errors import FormatError
from ai_employee.events import DecisionPayload, EventName, PlanPayload
from ai_employee.faults import crash_point
from ai_employee.pipeline.closing import mark_action
from ai_employee.pipeline.context import EngineContext, entries, now_stamp
from ai_employee.pipeline.quarantine import quarantine
from ai_employee.planner import PlanningContext
from ai_employee.policy import Criticality
from ai_employee.vault.actions import Action, new_id, read_action
from ai_employee.vault.fsops import create_file, group_commit
from ai_employee.vault.layout import (
    ACTION_SUFFIX,
    APPROVED,
    DONE,
    HANDBOOK,
    NEEDS_ACTION,
    PLANS,
    REJECTED,
)
from ai_employee.vault.notes import FAST_DUMPER, edit_file, find_by_id, has_id, read_id
from ai_employee.vault.plans import plan_file_name, render_plan, steps_hash

log = structlog.get_logger(__name__)
PLAN_FOLDERS = (PLANS, APPROVED, DONE, REJECTED)
# Actions planned per group commit (see IngestStage): amortises directory fsyncs over a burst.
BATCH_SIZE = 64
FileKey = tuple[int, int, int]


def file_key(entry: os.DirEntry[str]) -> FileKey:
    st = entry.stat(follow_symlinks=False)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class PlanningStage:
    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self.folder = ctx.vault.folder(NEEDS_ACTION)
        # Files already seen in a settled state (planned, or not ours to plan): skipped until they change.
        self.settled: dict[str, FileKey] = {}
        # action id -> file name in Needs_Action/, for closing actions when their plan finishes.
        self.by_action_id: dict[str, str] = {}
        self._plan_index: dict[str, Path] | None = None
        self.planning_context = PlanningContext(
            vault_root=ctx.vault.root,
            handbook="",
            signature=ctx.config.app.owner_name or ctx.config.app.name,
        )

    def run_once(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        handled = 0
        present = set()
        dirty: list[Path] = []
        for entry in entries(self.folder, ACTION_SUFFIX):
            present.add(entry.name)
            try:
                key = file_key(entry)
            except FileNotFoundError:
                continue
            if self.settled.get(entry.name) != key:
                dirty.append(Path(entry.path))
        for gone in set(self.settled) - present:
            del self.settled[gone]
        if dirty:
            self.planning_context.handbook = self._handbook()
        # One batch per call: the pipeline yields to the event loop (signals, heartbeat) between calls.
        if dirty and not should_stop():
            handled += self._plan_batch(dirty[:BATCH_SIZE])
        return handled

    def _plan_batch(self, paths: list[Path]) -> int:
        """Plan a batch in two group-committed phases: every plan note durable, then every action whose
        plan waits for a human marked `planned` (so an action never says planned while its plan could
        still be lost). An auto-approved plan's action is closed by execution, moments later."""
        handled = 0
        to_mark: list[tuple[Path, str]] = []
        self._plan_index = None
        with group_commit():
            for path in paths:
                try:
                    count, planned = self._handle(path)
                except Exception as exc:  # one bad item must not stop the stage: report it and go on
                    self.ctx.item_failed("plan", path, exc, "planning failed")
                    continue
                handled += count
                if planned is None:
                    continue
                plan_id, auto = planned
                if auto:
                    self._settle(path)
                else:
                    to_mark.append((path, plan_id))
        with group_commit():
            for path, plan_id in to_mark:
                try:
                    mark_action(path, plan_id, "planned", self.ctx.tmp_dir)
                except Exception as exc:
                    self.ctx.item_failed("plan", path, exc, "marking action planned failed")
                    continue
                self._settle(path)
        return handled

    def _handbook(self) -> str:
        try:
            return (self.ctx.vault.root / HANDBOOK).read_text("utf-8", errors="replace")[:20000]
        except OSError:
            return ""

    def _handle(self, path: Path) -> tuple[int, tuple[str, bool] | None]:
        """Plan one action file; returns (items handled, (plan id, auto-approved) if it has a plan now)."""
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
            action = self._adopt(path, action, raw)
        self.by_action_id[action.id] = path.name
        if action.status != "new":
            self._settle(path)
            return 0, None
        return 1, self._plan(path, action)

    def _settle(self, path: Path) -> None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return
        self.settled[path.name] = (st.st_ino, st.st_mtime_ns, st.st_size)

    def _adopt(self, path: Path, action: Action, raw: dict[str, object]) -> Action:
        """Give a hand-written action file the keys it lacks (id, status, created, type)."""
        updates: dict[str, object] = {}
        if not action.id:
            updates["id"] = action.id = new_id()
        if "status" not in raw:
            updates["status"] = action.status = "new"
        if "created" not in raw:
            updates["created"] = action.created = now_stamp()
        if "type" not in raw:
            updates["type"] = action.type
        # The new keys go first, so `id:` is where scans for it look (the head of the file).
        header = yaml.dump(updates, Dumper=FAST_DUMPER, sort_keys=False, allow_unicode=True, width=1 << 20)

        def adopt(text: str) -> str:
            bom = "\ufeff" if text.startswith("\ufeff") else ""
            newline = "\r\n" if "\r\n" in text else "\n"
            return bom + header.replace("\n", newline) + text[len(bom) :]

        edit_file(path, adopt, self.ctx.tmp_dir)
        log.info("adopted hand-written action", path=path.name, action_id=action.id)
        return action

    def _plan(self, path: Path, action: Action) -> tuple[str, bool]:
        """Write the plan note for an action; return its id and whether it was auto-approved."""
        ctx = self.ctx
        existing = ctx.ledger.plan_for_action(action.id)
        if existing:
            found = self._find_plan(existing)
            if found is not None:
                # Planned before a restart: mark it now unless execution is about to close it.
                return existing, found.parent.name == APPROVED
        draft = ctx.planner.plan(action, self.planning_context)
        assessment = ctx.policy.assess(draft.steps, draft.criticality_hint)
        plan_id = existing or new_id()
        auto = assessment.criticality == Criticality.LOW and ctx.config.policy.auto_approve == "low"
        created = now_stamp()
        status = "approved" if auto else "pending_approval"
        note = draft.to_note(plan_id, action.id, assessment, created, status, _source_links(action, path.name))
        ctx.ledger.register_plan(plan_id, action.id, note.criticality, note.planner, note.title)
        crash_point("plan.after_register")
        folder = ctx.vault.folder(APPROVED if auto else PLANS)
        dest = create_file(folder, plan_file_name(created[:10], draft.title), render_plan(note).encode(), ctx.tmp_dir)
        crash_point("plan.after_write")
        payload = PlanPayload(
            plan_id=plan_id,
            action_id=action.id,
            criticality=note.criticality,
            path=ctx.vault.relative(dest),
            title=note.title,
        )
        ctx.bus.publish(EventName.PLAN_CREATED, payload)
        if auto:
            ctx.ledger.record_decision(plan_id, "auto_approve", "policy", "policy", steps_hash(draft.steps))
            ctx.bus.publish(
                EventName.ACTION_APPROVED,
                DecisionPayload(plan_id=plan_id, decision="auto_approve", channel="policy", actor="policy"),
            )
        else:
            ctx.bus.publish(EventName.APPROVAL_REQUIRED, payload)
        return plan_id, auto

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


def _source_links(action: Action, action_file: str) -> list[str]:
    links = []
    if action.source.get("path"):
        links.append(f"Original: [[{action.source['path']}]]")
    links.append(f"Action: `{NEEDS_ACTION}/{action_file}` (id `{action.id}`)")
    return links


def find_plan(ctx: EngineContext, plan_id: str, folders: tuple[str, ...] = PLAN_FOLDERS) -> Path | None:
    """The plan note with this id in the given folders (a scan: used on recovery and by the CLI)."""
    return find_by_id([ctx.vault.folder(name) for name in folders], ".md", plan_id)
