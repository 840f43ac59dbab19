"""Execution: every plan note in `Approved/` runs once, and is filed in `Done/` (or back in `Plans/`).

What runs is exactly the steps the note held when it was picked up. A plan id whose live run is done
never runs again: copies (sync conflicts, a copy instead of a move) are set aside in `Quarantine/`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from ai_employee.clock import local_time, now_stamp
from ai_employee.errors import FormatError
from ai_employee.events import DecisionPayload, EventName, ExecutionPayload, PlanPayload
from ai_employee.executor.run import PlanRunner, RunResult
from ai_employee.faults import crash_point
from ai_employee.pipeline.closing import action_facts, close_action, find_plan
from ai_employee.pipeline.context import EngineContext
from ai_employee.pipeline.decisions import APPROVALS, binding_approval, current_user, record, steps_diff
from ai_employee.pipeline.filing import file_result, send_back
from ai_employee.pipeline.quarantine import quarantine
from ai_employee.pipeline.recovery import recover_run
from ai_employee.pipeline.state import PipelineState
from ai_employee.policy import Criticality
from ai_employee.vault import callouts
from ai_employee.vault.actions import new_id
from ai_employee.vault.fsops import group_commit, in_parallel
from ai_employee.vault.layout import APPROVED, DONE, NEEDS_ACTION, PLANS, REJECTED, entries, is_conflict_copy
from ai_employee.vault.notes import edit_file, has_id, read_frontmatter, read_id, split_note, update_frontmatter
from ai_employee.vault.plans import (
    ParsedPlan,
    Step,
    parse_steps,
    plan_title,
    restate,
)

log = structlog.get_logger(__name__)
# Plans handled per call: the pipeline interleaves intake (ingest, planning) with execution in a burst.
BATCH_SIZE = 64
# What a note in `Approved/` says when the engine or `vault approve` put it there; any other status means
# a person moved it there, and the move is their decision.
CLAIMS_APPROVAL = ("approved", "executing", "waiting")
ANOTHER_RUN = (
    "to run it again on purpose, delete the `id` property so it becomes a new plan, then move it to `Approved/`."
)


@dataclass(frozen=True)
class _Filing:
    """A plan that ran, whose result is still to be written into its note."""

    path: Path
    plan: ParsedPlan
    result: RunResult
    channel: str


class ExecutionStage:
    def __init__(self, ctx: EngineContext, runner: PlanRunner, state: PipelineState) -> None:
        self.ctx = ctx
        self.runner = runner
        self.folder = ctx.vault.folder(APPROVED)
        self.state = state
        self._plans_index: dict[str, list[Path]] | None = None  # plan id -> notes in Plans/, per batch
        self._filings: list[_Filing] = []  # results to write into their notes (see _file_results)
        self._finishes: list[tuple[_Filing, Path | None]] = []  # runs to close once the batch is durable
        self._waits: dict[str, float] = {}  # note name in Approved/ -> when (monotonic) it may go on
        self._ran: set[str] = set()  # plan ids run in this batch (their runs are closed when it ends)

    @property
    def recheck_s(self) -> float | None:
        """Seconds until the first waiting plan may go on (None: none waits)."""
        if not self._waits:
            return None
        return max(0.0, min(self._waits.values()) - time.monotonic())

    async def run_once(self, should_stop: Callable[[], bool] = lambda: False, human_only: bool = False) -> int:
        """Run up to a batch of approved plans; with `human_only` (during a burst) only the ones a person
        approved: the policy's LOW plans wait until intake is idle, a person's approval does not."""
        handled = 0
        present: set[str] = set()
        self._plans_index = None
        self._ran = set()
        self._finishes = []
        self._filings = []
        # One group commit for the batch: the directory fsyncs of every note and action filed are done
        # once per folder; each run is closed in the ledger (and announced) only after they are durable.
        with group_commit():
            for entry in entries(self.folder, ".md"):
                present.add(entry.name)
                if should_stop() or handled >= BATCH_SIZE:
                    break
                if human_only and self.state.is_policy_approved(entry.name):
                    continue
                if self._waits.get(entry.name, 0.0) > time.monotonic():
                    continue  # waiting for a paused server or a rate limit; it goes on when due
                self.state.taken_up(entry.name)
                path = Path(entry.path)
                await asyncio.sleep(0)  # let signals, the heartbeat and watcher hints in between plans
                try:
                    handled += await self._handle(path, should_stop)
                except FileNotFoundError:
                    continue
                except Exception as exc:  # one bad item must not stop the stage: report it and go on
                    self.ctx.item_failed("execute", path, exc, "execution failed")
            else:
                self.state.still_in_approved(present)
                self._waits = {name: due for name, due in self._waits.items() if name in present}
            self._file_results()
        with self.ctx.ledger.batch(self.ctx.config.dry_run):  # in dry-run, one transaction for them all
            for filing, dest in self._finishes:
                try:
                    self._finish(filing, dest)
                except Exception as exc:  # the run stays open; recovery closes it at the next start
                    self.ctx.item_failed("execute", dest or filing.path, exc, "closing the run failed")
        return handled

    def _file_results(self) -> None:
        """File the results waiting to be filed: on the writer threads, so that the file writes of
        different plans overlap (a plan's note, then its action, in that order; the plans of one action
        in the order they ran)."""
        by_action: dict[str, list[_Filing]] = {}
        for filing in self._filings:
            by_action.setdefault(filing.plan.action_id or filing.plan.id, []).append(filing)
        self._filings = []
        for filed in in_parallel(self._file_group, list(by_action.values())):
            assert not isinstance(filed, Exception)  # _file_group returns each filing's own failure
            for filing, dest in filed:
                if isinstance(dest, Exception):
                    self.ctx.item_failed("execute", filing.path, dest, "filing the result failed")
                else:
                    self._finishes.append((filing, dest))

    def _file_group(self, group: list[_Filing]) -> list[tuple[_Filing, Path | Exception | None]]:
        filed: list[tuple[_Filing, Path | Exception | None]] = []
        for filing in group:
            try:
                filed.append((filing, self._file(filing)))
            except Exception as exc:
                filed.append((filing, exc))
        return filed

    async def _handle(self, path: Path, should_stop: Callable[[], bool]) -> int:
        if path.is_symlink():
            # It could point anywhere (outside the vault, at a note that is not a plan): never followed.
            quarantine(
                self.ctx,
                path,
                f"`{path.name}` is a symbolic link; the engine never runs a plan from a link.",
                "move the plan note itself (not a link to it) into `Approved/`.",
            )
            return 1
        if is_conflict_copy(path.name):
            # Made by a sync tool, not by a person's decision: never run, whatever it says.
            quarantine(
                self.ctx,
                path,
                f"`{path.name}` is a sync conflict copy; copies made by a sync tool are never run.",
                "if you meant to approve this version, rename it without the conflict marker (and, if its plan"
                " has already run, delete its `id` property so it becomes a new plan), then move it to"
                " `Approved/`.",
            )
            return 1
        text = path.read_text("utf-8")
        parts = split_note(text)
        try:
            fm = read_frontmatter(parts, path.name)
        except FormatError as exc:
            self._cannot_run(path, "", callouts.cannot_run("cannot run this note", str(exc)), str(exc))
            return 1
        plan_id = str(fm.get("id") or "")
        if not plan_id:
            plan_id = self._adopt(path)
            fm = read_frontmatter(split_note(path.read_text("utf-8")), path.name)
        if self._already_ran(plan_id) or (fm.get("status") == "done" and fm.get("dry_run") is not True):
            why = f"plan {plan_id} has already run; this copy (`{path.name}`) was not run again."
            return self._set_aside(path, plan_id, why, ANOTHER_RUN)
        spent = self._approval_spent(plan_id, str(fm.get("status") or ""))
        if spent is not None:
            why = f"plan {plan_id} {spent}; this copy (`{path.name}`) still said `approved` and was not run."
            return self._set_aside(
                path,
                plan_id,
                why,
                "the plan waits for you in `Plans/`: look at what happened there, then resume it (move that"
                " note back into `Approved/`, or `vault resume`).",
            )
        try:
            steps = parse_steps(parts.body)
        except FormatError as exc:
            box = callouts.cannot_run("cannot run this plan", f"The steps block is invalid: {exc}")
            self._cannot_run(path, plan_id, box, f"the steps block is invalid: {exc}")
            return 1
        plan = ParsedPlan(frontmatter=fm, steps=steps, title=plan_title(parts.body, fm) or path.stem)
        channel = self._authorize(path, plan)
        if channel is None:
            return 1
        return await self._execute(path, plan, channel, should_stop)

    def _cannot_run(self, path: Path, plan_id: str, box: callouts.Callout, why: str) -> None:
        """A note in `Approved/` that cannot run goes back to `Plans/` saying why, and that is news
        (`action.failed`: the person is told)."""
        dest = send_back(self.ctx, path, "failed", box)
        where = self.ctx.vault.relative(dest)
        payload = ExecutionPayload(plan_id, "failed", 0, self.ctx.config.dry_run, where, why[:300], path.stem)
        self.ctx.bus.publish(EventName.ACTION_FAILED, payload)

    def _set_aside(self, path: Path, plan_id: str, why: str, fix: str) -> int:
        """A copy of a plan's note that may not run: quarantined, with why and what to do."""
        quarantine(self.ctx, path, why, fix)
        self.ctx.bus.publish(EventName.PLAN_DUPLICATE, DecisionPayload(plan_id, "duplicate", "file", "engine"))
        return 1

    def _already_ran(self, plan_id: str) -> bool:
        return any(run.state == "done" and not run.dry_run for run in self.ctx.ledger.runs(plan_id))

    def _approval_spent(self, plan_id: str, status: str) -> str | None:
        """Why a note that claims its plan's approval may not run on it (another copy of the note, a
        restored backup): a run on that approval already ended failed or interrupted, or ran in this
        batch; None if the approval still holds. One approval, one run, except a run that waits (a
        rate limit, a paused server), which goes on from the same approval."""
        if status not in CLAIMS_APPROVAL:
            return None  # a person moved the note here: a new decision
        if plan_id in self._ran:
            return "ran a moment ago from another copy of its note"
        runs = self.ctx.ledger.runs(plan_id)
        approval = self.ctx.ledger.last_decision(plan_id, APPROVALS)
        if not runs or approval is None:
            return None
        last = runs[-1]
        if last.state in ("failed", "interrupted") and (last.finished or "") >= str(approval["ts"]):
            return f"already ran on this approval and ended {last.state} ({local_time(last.finished or '')})"
        return None

    def _adopt(self, path: Path) -> str:
        """A note without an id in `Approved/` is a hand-written plan: give it an id and properties, and
        record its author's decision (writing a plan into `Approved/` is one), before the note says so."""
        plan_id = new_id()
        try:
            steps: list[Step] | None = parse_steps(split_note(path.read_text("utf-8")).body)
        except FormatError:
            steps = None  # nothing can run; the run fails and says why
        level = self.ctx.policy.assess(steps).criticality.label if steps is not None else "high"
        self.ctx.ledger.register_plan(plan_id, "", level, "human", path.stem)
        if steps is not None:
            ctx = self.ctx
            record(ctx.ledger, ctx.bus.publish, plan_id, "approve", "file", current_user(), steps, title=path.stem)
        updates = {
            "id": plan_id,
            "status": "approved",
            "criticality": level,
            "planner": "human",
            "created": now_stamp(),
        }
        edit_file(path, lambda text: update_frontmatter(text, updates), self.ctx.tmp_dir)
        return plan_id

    def _authorize(self, path: Path, plan: ParsedPlan) -> str | None:
        """The channel of the decision that lets exactly these steps run, or None: the note went back to
        `Plans/` for a decision. One rule for every channel: a decision binds to the hash of the steps it
        saw, and a note that claims an approval the ledger does not hold for its steps is rated again."""
        ctx = self.ctx
        if plan.status not in CLAIMS_APPROVAL:
            # A person moved this note here: the move is their decision on the steps as they are now. The
            # note then says so, so the same move is not taken as a second decision after a restart.
            who = current_user()
            record(ctx.ledger, ctx.bus.publish, plan.id, "approve", "file", who, plan.steps, title=plan.title)
            restate(path, {"status": "approved"}, callouts.approved(who, "file", now_stamp()), ctx.tmp_dir)
            return "file"
        binding = binding_approval(ctx.ledger, plan.id, plan.steps)
        if binding is not None:
            return str(binding["channel"])
        # Edited since its approval, or no approval was ever recorded (a crash, a hand-set status): the
        # policy rates the steps as they are; only a LOW result may run by itself.
        try:
            hint: Criticality | None = Criticality.parse(plan.criticality)
        except ValueError:
            hint = None
        facts = action_facts(ctx, plan.action_id, self.state.action_file(plan.action_id))
        assessment = ctx.policy.assess(plan.steps, hint, facts)
        level = assessment.criticality.label
        if assessment.criticality == Criticality.LOW and ctx.config.policy.auto_approve == "low":
            record(
                ctx.ledger, ctx.bus.publish, plan.id, "auto_approve", "policy", "policy", plan.steps, title=plan.title
            )
            return "policy"
        earlier = ctx.ledger.last_decision(plan.id, APPROVALS)
        if earlier is not None:
            when = f"by {earlier['actor']} via {earlier['channel']}, {local_time(earlier['ts'])}"
            box = callouts.steps_changed(level, assessment.reasons, steps_diff(earlier["steps"], plan.steps), when)
        else:
            box = callouts.no_decision(level, assessment.reasons)
        dest = send_back(self.ctx, path, "pending_approval", box, extra={"criticality": level})
        close_action(ctx, plan.action_id, plan.id, "planned", NEEDS_ACTION, self.state.action_file(plan.action_id))
        payload = PlanPayload(plan.id, plan.action_id, level, ctx.vault.relative(dest), plan.title)
        ctx.bus.publish(EventName.APPROVAL_REQUIRED, payload)
        return None

    async def _execute(self, path: Path, plan: ParsedPlan, channel: str, should_stop: Callable[[], bool]) -> int:
        ctx = self.ctx
        dry_run = ctx.config.dry_run
        if not dry_run:
            # Visible while a slow tool runs; in dry-run nothing is in flight, and the ledger knows anyway.
            restate(path, {"status": "executing"}, callouts.running(channel, now_stamp()), ctx.tmp_dir)
        result = await self.runner.run(plan.id, plan.steps, dry_run, should_stop)
        if result.status not in ("stopped", "waiting"):
            self._ran.add(plan.id)  # closed in the ledger only when the batch ends
        if result.status == "stopped":
            return 1
        if result.status == "waiting":
            self._wait(path, plan, result)
            return 1
        self._filings.append(_Filing(path, plan, result, channel))
        if not dry_run:
            self._file_results()  # a live plan's result is filed at once, not at the end of the batch
        return 1

    def _wait(self, path: Path, plan: ParsedPlan, result: RunResult) -> None:
        """The plan cannot go on yet: it stays in `Approved/`, saying what it waits for, and is tried
        again when due. In dry-run the note is rewritten only when that changes; live, it said
        `executing` meanwhile."""
        ctx = self.ctx
        ctx.ledger.finish_run(plan.id, result.attempt, "waiting", result.blocker, durable=not result.dry_run)
        self._waits[path.name] = time.monotonic() + (result.wait_s or 0.0)
        unchanged = plan.frontmatter.get("waiting_for") == result.blocker[:300] and plan.status == "waiting"
        if not ctx.config.dry_run or not unchanged:
            updates = {"status": "waiting", "waiting_for": result.blocker[:300]}
            restate(path, updates, callouts.blocked(result.blocker), ctx.tmp_dir)
            log.info("plan waiting", plan_id=plan.id, blocker=result.blocker, retry_in_s=round(result.wait_s or 0))

    def _file(self, filing: _Filing) -> Path | None:
        """On a writer thread: the result into the note, the note where it belongs, its action after it.
        None if the note is gone (the result is in the ledger)."""
        ctx, plan, result, path = self.ctx, filing.plan, filing.result, filing.path
        if not path.exists():
            # Moved (back to `Plans/`, to `Rejected/`) while it ran: the run happened, so its result is
            # filed in the note wherever it is now.
            moved = find_plan(ctx, plan.id, (PLANS, REJECTED, APPROVED))
            if moved is None:
                log.warning("plan note gone while it ran; the result is in the ledger", plan_id=plan.id)
                return None
            log.warning("plan note moved while it ran", plan_id=plan.id, now=ctx.vault.relative(moved))
            path = moved
        dest = file_result(ctx, path, plan, result)
        crash_point("execute.after_done")
        hint = self.state.action_file(plan.action_id)
        if result.status == "done":
            close_action(ctx, plan.action_id, plan.id, "done", DONE, hint)
        else:
            # The item stays open with its plan back in `Plans/` (an auto-approved plan's action was not
            # marked when it was planned; a rejected one approved after all comes back).
            close_action(ctx, plan.action_id, plan.id, "planned", NEEDS_ACTION, hint)
        return dest

    def _finish(self, filing: _Filing, dest: Path | None) -> None:
        """The note and its action are filed durably (or the note is gone): close the run in the ledger
        and announce it."""
        ctx, plan, result, channel = self.ctx, filing.plan, filing.result, filing.channel
        dry_run = result.dry_run
        if dest is None:
            ctx.ledger.finish_run(plan.id, result.attempt, result.status, result.detail, durable=not dry_run)
            return
        ctx.ledger.finish_run(plan.id, result.attempt, result.status, result.detail, durable=not dry_run)
        if channel != "policy":  # a person's decision: they may have copied the note, not moved it
            self._set_aside_copies(dest, plan.id)
        event = EventName.PLAN_EXECUTION_COMPLETED if result.status == "done" else EventName.PLAN_INTERRUPTED
        if result.status == "failed":
            event = EventName.ACTION_FAILED
        ctx.bus.publish(
            event,
            ExecutionPayload(
                plan.id, result.status, len(plan.steps), dry_run, ctx.vault.relative(dest), result.detail, plan.title
            ),
        )
        log.debug("plan executed", plan_id=plan.id, status=result.status, dry_run=dry_run)

    def _set_aside_copies(self, ran: Path, plan_id: str) -> None:
        """A note copied (not moved) into `Approved/` leaves its original in `Plans/`, under whatever name,
        which would look like it still waits for approval: once the copy has run, it is set aside. The
        ids in `Plans/` are indexed once per batch, when first needed."""
        if self._plans_index is None:
            self._plans_index = {}
            for entry in entries(self.ctx.vault.folder(PLANS), ".md"):
                found = read_id(Path(entry.path))
                if found:
                    self._plans_index.setdefault(found, []).append(Path(entry.path))
        for copy in self._plans_index.get(plan_id, []):
            if copy == ran or not has_id(copy, plan_id):
                continue
            why = (
                f"plan {plan_id} ran from a copy of this note (now `{self.ctx.vault.relative(ran)}`); this original"
                " was set aside so it cannot run twice."
            )
            self._set_aside(copy, plan_id, why, ANOTHER_RUN)

    async def recover(self) -> None:
        """Settle runs a crash or a stop left open: finish what is known, hand the unknown to the human."""
        for run in self.ctx.ledger.unfinished_runs():
            recover_run(self.ctx, run, self.runner.rules.idempotent)
