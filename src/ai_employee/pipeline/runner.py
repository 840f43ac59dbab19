"""The pipeline service: runs every stage's reconciler until nothing is left to do, then waits for a
watcher hint or the periodic sweep, and does it again."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog

from ai_employee.errors import machine_fault
from ai_employee.events import EventName, PausePayload
from ai_employee.executor.limits import ToolRules
from ai_employee.executor.run import PlanRunner
from ai_employee.pipeline.context import EngineContext
from ai_employee.pipeline.deadlines import DeadlineStage
from ai_employee.pipeline.execution import ExecutionStage
from ai_employee.pipeline.ingest import IngestStage
from ai_employee.pipeline.planning import PlanningStage
from ai_employee.pipeline.rejection import RejectionStage
from ai_employee.pipeline.revision import RevisionStage
from ai_employee.pipeline.state import PipelineState
from ai_employee.vault.fsops import clean_partials
from ai_employee.vault.layout import INBOX, NEEDS_ACTION, PLANS, REJECTED

log = structlog.get_logger(__name__)
# During a burst, rounds of intake (one batch each of ingest and planning) per round of decisions.
DECIDE_EVERY = 8
# The longest wait between two tries while the pipeline is paused on a fault of the machine.
MAX_PAUSE_S = 30.0


class Pipeline:
    name = "pipeline"

    def __init__(self, ctx: EngineContext, should_stop: Callable[[], bool]) -> None:
        self.ctx = ctx
        self.should_stop = should_stop
        self.state = PipelineState()
        self.planning = PlanningStage(ctx, self.state)
        self.planning.drafts.wake = self.wake
        self.ingest = IngestStage(ctx, announce=self.planning.hint)
        self.revision = RevisionStage(ctx, self.state, self.planning)
        self.revision.drafts.wake = self.wake
        self.rejection = RejectionStage(ctx, self.state)
        self.deadlines = DeadlineStage(ctx)
        self.pool = ctx.pool
        rules = ToolRules(ctx.config.engine_servers(), ctx.config.execution)
        self.runner = PlanRunner(ctx.ledger, ctx.bus, self.pool, rules)
        self.execution = ExecutionStage(ctx, self.runner, self.state)
        self._wake = asyncio.Event()
        self._recheck_s: float | None = None
        self.passes = 0
        self.last_pass_ok = True
        self.fault: str | None = None  # a fault of the machine the pipeline is paused on
        self._fault_since = 0.0
        self._retry_s = 1.0

    def hint(self, folder: str, name: str, complete: bool | None) -> None:
        """A watcher event: note an Inbox file that is complete or still being written; wake the loop."""
        if folder == INBOX and complete is not None:
            self.ingest.hint(name, complete)
        elif folder == NEEDS_ACTION:
            self.planning.hint(name)
        elif folder == REJECTED:
            self.rejection.hint(name)
        elif folder == PLANS:
            self.revision.hint(name)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def healthy(self) -> bool:
        return self.last_pass_ok

    async def recover(self) -> None:
        """Finish what a crash or stop left half-done, before any new work."""
        clean_partials(self.ctx.vault.tmp_dir)
        finished = self.ingest.recover()
        if finished:
            log.info("finished interrupted ingests", count=finished)
        await self.execution.recover()

    async def reconcile(self) -> int:
        """Rounds of every stage, repeated until a round handles nothing; returns items handled.

        Intake comes first: while a burst is being ingested and planned, the decision stages (rejection,
        execution) run only every `DECIDE_EVERY` rounds, and execution then runs only what a person
        approved; the policy's LOW plans run once intake is idle. So every input gets its action and plan
        as soon as possible, and a person's decision still takes effect within a few rounds.
        """
        total = 0
        rounds_without_decisions = 0
        while not self.should_stop():
            ingested = self.ingest.run_once(self.should_stop)
            self._recheck_s = ingested.recheck_s
            handled = ingested.handled
            await asyncio.sleep(0)
            handled += await self.planning.run_once(self.should_stop)
            await asyncio.sleep(0)
            if handled == 0 or rounds_without_decisions + 1 >= DECIDE_EVERY:
                rounds_without_decisions = 0
                busy = handled > 0
                handled += await self.revision.run_once(self.should_stop)
                handled += self.deadlines.run_once()
                handled += self.rejection.run_once(self.should_stop)
                handled += await self.execution.run_once(self.should_stop, human_only=busy)
            else:
                rounds_without_decisions += 1
            self.passes += 1
            total += handled
            if handled == 0 and not self.planning.more and not self.revision.more:
                break
            await asyncio.sleep(0)
        return total

    async def run(self, until_idle: bool = False) -> int:
        """Reconcile, then sleep until a hint, the sweep, a settling file or a finished draft, and again;
        until cancelled or stopped, or with `until_idle` (`vault start --once`) until nothing is left:
        no draft in flight, no file waiting to settle. Returns the items handled.

        A fault of the machine (a full disk, a read-only or failing file system) pauses the served
        pipeline: the problem is reported once, inputs stay where they are, and the pipeline retries
        with a growing pause; once a pass succeeds it resumes by itself, after finishing what the fault
        interrupted (the same recovery as after a crash). With `until_idle` it is raised instead.
        """
        total = 0
        try:
            sweep_s = self.ctx.config.watcher.poll_interval
            warm = until_idle  # a burst starts the servers it needs on demand
            must_recover = True
            while not self.should_stop():
                self._wake.clear()
                try:
                    if must_recover:
                        await self.recover()
                        must_recover = False
                    total += await self.reconcile()
                except Exception as exc:
                    self.last_pass_ok = False
                    fault = machine_fault(exc)
                    if fault is None or until_idle:
                        raise
                    must_recover = True
                    await self._pause(fault)
                    continue
                self._resume()
                if not warm:
                    warm = True
                    self.pool.warm_up()  # in the background: new work does not wait for it
                drafting = len(self.planning.drafts) or len(self.revision.drafts)
                # A burst does not wait for feedback to be quiet, nor for a revision's retry.
                if until_idle and not drafting and self._recheck_s is None:
                    break
                rechecks = (
                    self._recheck_s,
                    self.revision.recheck_s,
                    self.deadlines.recheck_s,
                    self.execution.recheck_s,
                )
                recheck = min((s for s in rechecks if s is not None), default=None)
                await self.pool.stop_if_idle(self.ctx.config.mcp.idle_stop_s)
                timeout = sweep_s if recheck is None else min(sweep_s, recheck + 0.01)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            return total
        finally:
            await self.planning.drafts.aclose()
            await self.revision.drafts.aclose()
            await self.pool.aclose()

    async def _pause(self, fault: str) -> None:
        """Report the fault (once while it lasts), then wait before the next try: 1 s, doubling to 30 s."""
        if self.fault is None:
            self.fault, self._fault_since, self._retry_s = fault, time.monotonic(), 1.0
            log.warning("pipeline paused", problem=fault, retry="by itself, every few seconds")
            self.ctx.bus.publish(EventName.PIPELINE_PAUSED, PausePayload(fault))
        else:
            self._retry_s = min(MAX_PAUSE_S, self._retry_s * 2)
        self.ctx.report_problem("pipeline", self.ctx.vault.root, f"paused: {fault}; it resumes by itself once fixed")
        deadline = time.monotonic() + self._retry_s
        while not self.should_stop() and time.monotonic() < deadline:
            await asyncio.sleep(min(0.25, deadline - time.monotonic()))

    def _resume(self) -> None:
        self.last_pass_ok = True
        if self.fault is None:
            return
        paused_s = round(time.monotonic() - self._fault_since, 1)
        log.info("pipeline resumed", problem=self.fault, paused_s=paused_s)
        self.ctx.clear_problem("pipeline", self.ctx.vault.root)
        self.ctx.bus.publish(EventName.PIPELINE_RESUMED, PausePayload(self.fault, paused_s))
        self.fault = None
