"""Crash recovery at start-up: half-done ingests finish exactly once; a step whose outcome is unknown
goes back to the human instead of being retried; a run stopped between steps resumes."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ai_employee.config import Config
from ai_employee.orchestrator import Engine
from ai_employee.pipeline.context import EngineContext
from ai_employee.pipeline.decisions import record
from ai_employee.pipeline.runner import Pipeline
from ai_employee.vault.layout import Vault
from ai_employee.vault.plans import parse_steps, steps_hash
from tests.conftest import SAMPLES, files

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def opened(vault: Path) -> Iterator[tuple[Engine, EngineContext]]:
    engine = Engine(Vault(vault), Config())
    ctx = engine._open()
    try:
        yield engine, ctx
    finally:
        engine._close()


def frontmatter(path: Path) -> dict[str, object]:
    return yaml.safe_load(path.read_text("utf-8").split("---\n", 2)[1])


def intent_for(vault: Path, ctx: EngineContext, text: str) -> tuple[Path, dict[str, str]]:
    """An input in Inbox/ and its ingest intent, durable in the ledger: where a crash can strike next."""
    original = vault / "Inbox" / "note.md"
    original.write_text(text)
    intent = Pipeline(ctx, lambda: False).ingest._prepare(original, set(), {})
    assert not isinstance(intent, int)
    ctx.ledger.add_intents([intent])
    return original, intent


def test_ingest_interrupted_after_moving_the_original_finishes_once(
    vault: Path, opened: tuple[Engine, EngineContext]
) -> None:
    _, ctx = opened
    original, intent = intent_for(vault, ctx, "# A note\n\nhello\n")
    os.link(original, vault / "Attachments" / intent["attachment"])
    os.unlink(original)  # crash here: original moved, no action file yet
    assert files(vault / "Needs_Action") == []
    fresh = Pipeline(ctx, lambda: False)
    assert fresh.ingest.recover() == 1
    assert fresh.ingest.recover() == 0
    actions = files(vault / "Needs_Action", ".action.yaml")
    assert len(actions) == 1 and yaml.safe_load(actions[0].read_text())["id"] == intent["action_id"]
    assert ctx.ledger.intents() == []
    assert fresh.ingest.run_once().handled == 0  # nothing left in Inbox/


def test_ingest_interrupted_between_link_and_unlink_keeps_one_copy(
    vault: Path, opened: tuple[Engine, EngineContext]
) -> None:
    _, ctx = opened
    original, intent = intent_for(vault, ctx, "hello\n")
    os.link(original, vault / "Attachments" / intent["attachment"])  # crash here: both names
    fresh = Pipeline(ctx, lambda: False)
    assert fresh.ingest.recover() == 1
    assert not original.exists() and (vault / "Attachments" / intent["attachment"]).exists()
    assert len(files(vault / "Needs_Action", ".action.yaml")) == 1


def test_ingest_interrupted_before_moving_forgets_the_intent(vault: Path, opened: tuple[Engine, EngineContext]) -> None:
    _, ctx = opened
    original, _ = intent_for(vault, ctx, "hello\n")  # crash here: the original was not moved
    fresh = Pipeline(ctx, lambda: False)
    assert fresh.ingest.recover() == 0
    assert original.exists() and files(vault / "Needs_Action") == [] and ctx.ledger.intents() == []
    ctx.config.watcher.__dict__["settle_s"] = 0.0
    assert fresh.ingest.run_once().handled == 1
    assert len(files(vault / "Needs_Action", ".action.yaml")) == 1


async def plan_waiting(vault: Path, ctx: EngineContext) -> Path:
    shutil.copy(SAMPLES / "client-quote-request.eml", vault / "Inbox" / "quote.eml")
    pipeline = Pipeline(ctx, lambda: False)
    ctx.config.watcher.__dict__["settle_s"] = 0.0
    await pipeline.run(until_idle=True)
    await pipeline.pool.aclose()
    [plan] = files(vault / "Plans", ".md")
    return plan


async def test_step_in_doubt_goes_back_to_the_human_and_is_not_retried(
    vault: Path, opened: tuple[Engine, EngineContext]
) -> None:
    _, ctx = opened
    plan = await plan_waiting(vault, ctx)
    fm = frontmatter(plan)
    approved = vault / "Approved" / plan.name
    os.rename(plan, approved)
    steps = parse_steps(approved.read_text().split("---\n", 2)[2])
    plan_id = str(fm["id"])
    # A live run that crashed after the outbox row and before the result.
    attempt = ctx.ledger.start_run(plan_id, steps_hash(steps), dry_run=False)
    ctx.ledger.step_started(plan_id, attempt, 1, f"{plan_id}:1:x", "email.send_email", "x", dry_run=False)
    pipeline = Pipeline(ctx, lambda: False)
    await pipeline.recover()
    back = vault / "Plans" / plan.name
    assert back.exists() and files(vault / "Approved") == []
    text = back.read_text()
    assert "interrupted: may or may not have happened" in text
    assert frontmatter(back)["status"] == "failed" and frontmatter(back)["interrupted"] is True
    assert [r.state for r in ctx.ledger.runs(plan_id)] == ["interrupted"]
    assert [s.state for s in ctx.ledger.steps(plan_id, attempt)] == ["interrupted"]
    # Recovering again changes nothing; the human decides what happens next.
    await pipeline.recover()
    assert back.exists()


async def test_dry_run_stopped_between_steps_resumes(vault: Path, opened: tuple[Engine, EngineContext]) -> None:
    _, ctx = opened
    plan = await plan_waiting(vault, ctx)
    plan_id = str(frontmatter(plan)["id"])
    approved = vault / "Approved" / plan.name
    os.rename(plan, approved)
    # The engine took the move as the human's approval, then stopped between steps.
    steps = parse_steps(approved.read_text().split("---\n", 2)[2])
    record(ctx.ledger, ctx.bus.publish, plan_id, "approve", "file", "ann", steps)
    ctx.ledger.start_run(plan_id, steps_hash(steps), dry_run=True)
    pipeline = Pipeline(ctx, lambda: False)
    await pipeline.recover()
    assert approved.exists()
    await pipeline.run(until_idle=True)
    await pipeline.pool.aclose()
    [done] = files(vault / "Done", ".md")
    assert "WOULD CALL email.send_email" in done.read_text()
    assert [r.state for r in ctx.ledger.runs(plan_id)] == ["stopped", "done"]


async def test_crash_after_filing_the_result_before_moving_completes(
    vault: Path, opened: tuple[Engine, EngineContext]
) -> None:
    _, ctx = opened
    plan = await plan_waiting(vault, ctx)
    fm = frontmatter(plan)
    plan_id = str(fm["id"])
    approved = vault / "Approved" / plan.name
    text = plan.read_text().replace("status: pending_approval", "status: done")
    approved.write_text(text)
    plan.unlink()
    ctx.ledger.start_run(plan_id, "h", dry_run=False)
    pipeline = Pipeline(ctx, lambda: False)
    await pipeline.recover()
    assert (vault / "Done" / plan.name).exists() and files(vault / "Approved") == []
    [action] = files(vault / "Done", ".action.yaml")
    assert yaml.safe_load(action.read_text())["status"] == "done"
    assert [r.state for r in ctx.ledger.runs(plan_id)] == ["done"]
    # The note is not run again by the next pass, and nothing is quarantined.
    await pipeline.run(until_idle=True)
    await pipeline.pool.aclose()
    assert files(vault / "Quarantine") == []
    assert json.loads(json.dumps([s.state for s in ctx.ledger.steps(plan_id, 1)])) == []


async def plan_low(vault: Path, ctx: EngineContext) -> tuple[Pipeline, Path, Path]:
    """Ingest and plan a plain note (a LOW plan, written into Approved/) without executing it."""
    (vault / "Inbox" / "note.md").write_text("# A note\n\nhello\n")
    ctx.config.watcher.__dict__["settle_s"] = 0.0
    pipeline = Pipeline(ctx, lambda: False)
    assert pipeline.ingest.run_once().handled == 1
    assert await pipeline.planning.run_once() == 1
    [plan] = files(vault / "Approved", ".md")
    [action] = files(vault / "Needs_Action", ".action.yaml")
    return pipeline, plan, action


async def test_auto_approved_plan_pending_at_a_stop_is_run_once_and_not_planned_again(
    vault: Path, opened: tuple[Engine, EngineContext]
) -> None:
    _, ctx = opened
    first, plan, action = await plan_low(vault, ctx)
    # An auto-approved plan's action is left for execution to close: no extra rewrite in between.
    assert yaml.safe_load(action.read_text())["status"] == "new"
    assert await first.planning.run_once() == 0  # settled: not planned twice by the same engine
    plan_id = str(frontmatter(plan)["id"])
    fresh = Pipeline(ctx, lambda: False)  # a restart
    await fresh.recover()
    await fresh.run(until_idle=True)
    await fresh.pool.aclose()
    [done] = files(vault / "Done", ".md")
    assert frontmatter(done)["id"] == plan_id and files(vault / "Plans") == []
    [closed] = files(vault / "Done", ".action.yaml")
    fields = yaml.safe_load(closed.read_text())
    assert fields["status"] == "done" and fields["plan_id"] == plan_id
    assert ctx.ledger.plan_for_action(fields["id"]) == plan_id


async def test_failed_auto_approved_plan_leaves_its_action_planned(
    vault: Path, opened: tuple[Engine, EngineContext]
) -> None:
    _, ctx = opened
    pipeline, plan, action = await plan_low(vault, ctx)
    plan_id = str(frontmatter(plan)["id"])
    # Still LOW (a vault tool), but the arguments do not fit the tool's schema: the run fails.
    plan.write_text(plan.read_text().replace("content:", "contents:", 1))
    await pipeline.run(until_idle=True)
    await pipeline.pool.aclose()
    [back] = files(vault / "Plans", ".md")
    assert frontmatter(back)["status"] == "failed"
    fields = yaml.safe_load(action.read_text())
    assert fields["status"] == "planned" and fields["plan_id"] == plan_id


async def test_a_step_in_doubt_of_a_plan_once_rejected_takes_its_action_back_to_needs_action(
    vault: Path, opened: tuple[Engine, EngineContext]
) -> None:
    """The action follows its plan after a crash too: a plan denied, then approved by a move, whose live
    step was in flight when the engine died, goes back to Plans/ and its action to Needs_Action/."""
    _, ctx = opened
    plan = await plan_waiting(vault, ctx)
    [action] = files(vault / "Needs_Action", ".action.yaml")
    os.rename(action, vault / "Rejected" / action.name)  # as the rejection stage left it
    plan_id = str(frontmatter(plan)["id"])
    approved = vault / "Approved" / plan.name
    os.rename(plan, approved)
    steps = parse_steps(approved.read_text().split("---\n", 2)[2])
    record(ctx.ledger, ctx.bus.publish, plan_id, "approve", "file", "ann", steps)
    attempt = ctx.ledger.start_run(plan_id, steps_hash(steps), dry_run=False)
    ctx.ledger.step_started(plan_id, attempt, 1, f"{plan_id}:1:x", "email.send_email", "x", dry_run=False)
    await Pipeline(ctx, lambda: False).recover()
    assert frontmatter(vault / "Plans" / plan.name)["interrupted"] is True
    assert files(vault / "Rejected") == []
    assert yaml.safe_load((vault / "Needs_Action" / action.name).read_text())["status"] == "planned"


async def test_after_a_restart_new_work_is_planned_before_old_work_is_rechecked(
    vault: Path, opened: tuple[Engine, EngineContext]
) -> None:
    """Hundreds of actions already planned are read again after a restart, a batch at a time; a new
    action the watcher reports goes first, and the pipeline goes on at once while any are left."""
    _, ctx = opened
    for n in range(300):
        (vault / "Needs_Action" / f"2026-01-01 old {n:03d}.action.yaml").write_text(
            f"id: OLD{n:023d}\ntype: manual\nstatus: planned\ncreated: '2026-01-01T00:00:00+00:00'\ntitle: old {n}\n"
        )
    new = vault / "Needs_Action" / "2026-12-02 zzz new.action.yaml"  # sorts last by name
    new.write_text("title: Call the bank\n")
    pipeline = Pipeline(ctx, lambda: False)
    pipeline.hint("Needs_Action", new.name, True)
    assert await pipeline.planning.run_once() == 1, "the new action is planned in the first batch"
    assert yaml.safe_load(new.read_text())["status"] in ("planned", "new")
    assert pipeline.planning.more, "old actions are left to re-check: the pipeline goes on at once"
