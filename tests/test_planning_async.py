"""Planners are asynchronous: drafts are made side by side, bounded, while every other stage goes on, and
only finished drafts are committed (durably, in batches). A stop while drafts are in flight loses
nothing: after the restart each action is planned exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ai_employee.config import Config
from ai_employee.orchestrator import Engine
from ai_employee.pipeline.context import EngineContext
from ai_employee.pipeline.runner import Pipeline
from ai_employee.planner import PlanDraft, PlanningContext, TemplatePlanner
from ai_employee.vault.actions import Action
from ai_employee.vault.layout import Vault
from tests.conftest import files

pytestmark = pytest.mark.timeout(60)


class GatedPlanner:
    """A planner standing in for a slow model: every draft waits until the test opens the gate, and the
    most drafts ever in flight at once is counted."""

    name = "template"
    revises = False

    def __init__(self, concurrency: int | None = None, fail: bool = False, only: str = "") -> None:
        self.concurrency = concurrency
        self.only = only  # if set, only actions whose title holds it wait (the others are drafted at once)
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self.calls = 0
        self.fail = fail
        self._template = TemplatePlanner()

    async def draft(self, action: Action, context: PlanningContext) -> PlanDraft:
        self.calls += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.only in action.title:
                await self.gate.wait()
            if self.fail:
                raise ConnectionError("the model's endpoint is down")
            return self._template.plan(action, context)
        finally:
            self.in_flight -= 1


@pytest.fixture
def ctx(vault: Path) -> Iterator[EngineContext]:
    engine = Engine(Vault(vault), Config())
    opened = engine._open()
    opened.config.watcher.__dict__["settle_s"] = 0.0
    try:
        yield opened
    finally:
        engine._close()


def drop(vault: Path, count: int, prefix: str = "note") -> None:
    for n in range(count):
        (vault / "Inbox" / f"{prefix}-{n}.md").write_text(f"# {prefix} {n}\n\nSomething to file, number {n}.\n")


def statuses(vault: Path) -> list[str]:
    return sorted(yaml.safe_load(p.read_text())["status"] for p in files(vault / "Needs_Action", ".action.yaml"))


async def test_no_other_stage_waits_for_a_draft_in_flight(vault: Path, ctx: EngineContext) -> None:
    planner = GatedPlanner(only="slow")
    ctx.planner = planner
    pipeline = Pipeline(ctx, lambda: False)
    drop(vault, 1, "slow")
    drop(vault, 1, "quick")
    await asyncio.wait_for(pipeline.reconcile(), 10)  # returns while the slow draft waits
    assert planner.in_flight == 1
    assert statuses(vault) == ["new"], "nothing is written for a draft in flight"
    done = [p.name for p in files(vault / "Done", ".md")]
    assert len(done) == 1 and "quick" in done[0], "the quick item was planned and its LOW plan ran meanwhile"
    drop(vault, 1, "later")
    await asyncio.wait_for(pipeline.reconcile(), 10)
    assert len(files(vault / "Done", ".md")) == 2, "and so was an input that arrived after it"
    planner.gate.set()
    await pipeline.planning.drafts.wait()
    await pipeline.reconcile()
    assert planner.calls == 3
    assert len(files(vault / "Done", ".md")) == 3
    assert statuses(vault) == []
    await pipeline.pool.aclose()


async def test_drafts_are_made_side_by_side_within_the_planners_bound(vault: Path, ctx: EngineContext) -> None:
    planner = GatedPlanner(concurrency=3)
    ctx.planner = planner
    pipeline = Pipeline(ctx, lambda: False)
    drop(vault, 10)
    drained = asyncio.create_task(pipeline.run(until_idle=True))
    for _ in range(1000):  # up to 10 s: the MCP servers start meanwhile, on a busy machine slowly
        await asyncio.sleep(0.01)
        if planner.in_flight == 3:
            break
    assert planner.in_flight == 3, "three drafts in flight at once"
    planner.gate.set()
    await asyncio.wait_for(drained, 30)
    assert planner.most_in_flight == 3
    assert planner.calls == 10
    assert len(files(vault / "Done", ".md")) == 10
    await pipeline.pool.aclose()


async def test_a_stop_with_drafts_in_flight_loses_nothing_and_plans_each_action_once(
    vault: Path, ctx: EngineContext
) -> None:
    planner = GatedPlanner()
    ctx.planner = planner
    first = Pipeline(ctx, lambda: False)
    drop(vault, 5)
    await first.reconcile()
    assert planner.in_flight == 5
    first.planning.drafts.cancel()  # the engine stops (or dies) here: nothing of the drafts was written
    await asyncio.sleep(0)
    assert statuses(vault) == ["new"] * 5
    ctx.planner = TemplatePlanner()
    restarted = Pipeline(ctx, lambda: False)
    await restarted.recover()
    await restarted.run(until_idle=True)
    plans = ctx.ledger.db.execute("SELECT action_id, COUNT(*) FROM plans GROUP BY action_id").fetchall()
    assert len(plans) == 5 and all(count == 1 for _, count in plans), "each action planned exactly once"
    assert len(files(vault / "Done", ".md")) == 5
    await first.pool.aclose()
    await restarted.pool.aclose()


async def test_a_failed_draft_is_reported_and_tried_again(vault: Path, ctx: EngineContext) -> None:
    planner = GatedPlanner(fail=True)
    planner.gate.set()
    ctx.planner = planner
    pipeline = Pipeline(ctx, lambda: False)
    drop(vault, 1)
    await pipeline.reconcile()
    assert statuses(vault) == ["new"], "the action waits: nothing was planned"
    assert any("endpoint is down" in problem for problem in ctx.reported.values())
    planner.fail = False
    pipeline.planning._swept_at = float("-inf")  # the next sweep, without waiting for it
    await pipeline.reconcile()
    assert planner.calls == 2
    assert len(files(vault / "Done", ".md")) == 1
    await pipeline.pool.aclose()


class SlowPlanner:
    """Each draft takes a while, as a model's answer does."""

    name = "template"
    concurrency: int | None = 2
    revises = False

    def __init__(self) -> None:
        self.calls = 0

    async def draft(self, action: Action, context: PlanningContext) -> PlanDraft:
        self.calls += 1
        await asyncio.sleep(0.2)
        return TemplatePlanner().plan(action, context)


def test_once_waits_for_every_draft_in_flight(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`vault start --once` is the served pipeline loop in burst mode: it ends when nothing is left,
    drafts in flight included."""
    planner = SlowPlanner()
    monkeypatch.setattr("ai_employee.composition.make_planner", lambda *_: planner)
    config = Config()
    config.watcher.__dict__["settle_s"] = 0.0
    drop(vault, 4)
    handled = Engine(Vault(vault), config).run_once()
    assert planner.calls == 4
    assert len(files(vault / "Done", ".md")) == 4
    assert handled >= 8, "each input ingested, planned and executed"
    assert not (vault / ".ai_employee" / "heartbeat.json").exists()
