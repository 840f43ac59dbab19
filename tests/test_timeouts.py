"""Timeouts of waiting plans (`policy.timeouts`): one reminder, then expiry into `Rejected/`; never an
approval; `vault defer` postpones both; deadlines hold across restarts."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ai_employee.config import Config
from ai_employee.events import Event, EventName
from ai_employee.orchestrator import Engine
from ai_employee.pipeline import decisions
from ai_employee.pipeline.context import EngineContext
from ai_employee.pipeline.deadlines import DeadlineStage
from ai_employee.pipeline.rejection import RejectionStage
from ai_employee.pipeline.runner import Pipeline
from ai_employee.pipeline.state import PipelineState
from ai_employee.vault.layout import Vault
from tests.conftest import SAMPLES, engine_env, files

TIMEOUTS = {"medium": {"remind_after": "1h", "expire_after": "1d"}, "high": {"expire_after": "30m"}}


@pytest.fixture
def ctx(vault: Path) -> Iterator[EngineContext]:
    config = Config.model_validate({"policy": {"timeouts": TIMEOUTS}, "watcher": {"settle_s": 0}})
    engine = Engine(Vault(vault), config)
    opened = engine._open()
    try:
        yield opened
    finally:
        engine._close()


def waiting_plan(ctx: EngineContext, vault: Path) -> tuple[Path, dict[str, Any]]:
    import asyncio

    (vault / "Inbox" / "quote.eml").write_bytes((SAMPLES / "client-quote-request.eml").read_bytes())
    asyncio.run(Pipeline(ctx, lambda: False).run(until_idle=True))
    (plan,) = files(vault / "Plans", ".md")
    fm = yaml.safe_load(plan.read_text().split("---\n")[1])
    assert fm["criticality"] == "medium" and fm["status"] == "pending_approval"
    return plan, fm


def test_remind_once_then_expire_never_approve(ctx: EngineContext, vault: Path) -> None:
    plan, fm = waiting_plan(ctx, vault)
    created = datetime.fromisoformat(fm["created"])
    events: list[Event] = []
    ctx.bus.subscribe(events.append)
    clock = {"now": created + timedelta(minutes=30)}
    stage = DeadlineStage(ctx, lambda: clock["now"])
    assert stage.run_once(force=True) == 0 and events == []
    assert stage.recheck_s is not None and 1700 < stage.recheck_s <= 1800  # the reminder is due in 30 min

    clock["now"] = created + timedelta(hours=1, minutes=1)
    stage.run_once(force=True)
    stage.run_once(force=True)
    reminders = [e for e in events if e.name == EventName.APPROVAL_REMINDER]
    assert len(reminders) == 1 and reminders[0].data()["plan_id"] == fm["id"]
    assert reminders[0].data()["expires"].startswith((created + timedelta(days=1)).date().isoformat())
    assert plan.exists()  # a reminder changes nothing
    # A restart (a new stage, the same ledger) does not remind again.
    assert DeadlineStage(ctx, lambda: clock["now"]).run_once(force=True) == 0
    assert len([e for e in events if e.name == EventName.APPROVAL_REMINDER]) == 1

    clock["now"] = created + timedelta(days=1, seconds=1)
    assert stage.run_once(force=True) == 1
    assert not plan.exists()
    (expired,) = files(vault / "Rejected", ".md")
    text = expired.read_text()
    assert "status: expired" in text and "Expired at" in text and "a timeout never approves" in text
    last = ctx.ledger.last_decision(fm["id"])
    assert last is not None and (last["decision"], last["channel"], last["actor"]) == ("expire", "policy", "timeout")
    assert any(e.name == EventName.ACTION_EXPIRED for e in events)
    assert not ctx.ledger.runs(fm["id"])  # nothing ran
    # The rejection stage closes its action, and keeps it `expired`.
    RejectionStage(ctx, PipelineState()).run_once()
    assert "status: expired" in expired.read_text()
    (action,) = files(vault / "Rejected", ".action.yaml")
    assert "status: rejected" in action.read_text()


def test_defer_postpones_both_deadlines(ctx: EngineContext, vault: Path) -> None:
    plan, fm = waiting_plan(ctx, vault)
    until = decisions.defer(ctx.vault, ctx.ledger, fm["id"], minutes=24 * 60 + 60)
    later = datetime.fromisoformat(until)
    stage = DeadlineStage(ctx, lambda: later - timedelta(minutes=1))  # a day after it was written: deferred
    assert stage.run_once(force=True) == 0 and plan.exists()
    stage.clock = lambda: later + timedelta(minutes=59)  # an hour after the deferral ended: no expiry yet
    assert stage.run_once(force=True) == 0 and plan.exists()
    stage.clock = lambda: later + timedelta(days=1, minutes=1)
    assert stage.run_once(force=True) == 1 and not plan.exists()


def test_a_plan_decided_meanwhile_is_left_alone(ctx: EngineContext, vault: Path) -> None:
    _, fm = waiting_plan(ctx, vault)
    stage = DeadlineStage(ctx, lambda: datetime.fromisoformat(fm["created"]) + timedelta(days=2))
    stage.view.plans(ctx.vault, ctx.ledger)  # the stage has seen it waiting
    decisions.approve(ctx.vault, ctx.ledger, fm["id"])
    assert stage.run_once(force=True) == 0
    assert files(vault / "Rejected", ".md") == [] and len(files(vault / "Approved", ".md")) == 1


@pytest.mark.integration
def test_a_deadline_that_passed_while_the_engine_was_down_expires_at_start_up(vault: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"policy": {"timeouts": {"medium": {"expire_after": "3s"}}}}))
    (vault / "Inbox" / "quote.eml").write_bytes((SAMPLES / "client-quote-request.eml").read_bytes())
    once = [sys.executable, "-m", "ai_employee", "--vault", str(vault), "--config", str(config), "start", "--once"]
    assert subprocess.run(once, env=engine_env(), capture_output=True, timeout=120, check=False).returncode == 0
    assert len(files(vault / "Plans", ".md")) == 1
    time.sleep(3.5)  # the engine is down; the deadline passes
    assert subprocess.run(once, env=engine_env(), capture_output=True, timeout=120, check=False).returncode == 0
    assert files(vault / "Plans", ".md") == []
    (expired,) = files(vault / "Rejected", ".md")
    assert "status: expired" in expired.read_text()
    assert len(files(vault / "Rejected", ".action.yaml")) == 1


def test_a_new_version_or_a_send_back_starts_the_wait_again(ctx: EngineContext, vault: Path) -> None:
    plan, fm = waiting_plan(ctx, vault)
    created = datetime.fromisoformat(fm["created"])
    revised = (created + timedelta(hours=23)).astimezone()
    ctx.ledger.db.execute(
        "INSERT INTO decisions (ts, plan_id, decision, channel, actor) VALUES (?, ?, 'revise', 'file', 'ann')",
        (revised.isoformat(), fm["id"]),
    )
    stage = DeadlineStage(ctx, lambda: created + timedelta(days=1, minutes=1))
    assert stage.run_once(force=True) == 0 and plan.exists()  # a new version 23 h in: it waits anew
    stage.clock = lambda: revised + timedelta(days=1, minutes=1)
    assert stage.run_once(force=True) == 1 and not plan.exists()
