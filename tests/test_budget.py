"""Token budgets: the worst case of a call is reserved first, so a budget is never exceeded, even by calls
side by side; warnings at 80% and 95% once per scope and day; a crash's reservations count as spent; days
follow the configured time zone (an injected clock plays the day)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from ai_employee.budget import Budget, BudgetSpent
from ai_employee.config import BudgetConfig, ClaudeConfig, Config
from ai_employee.events import EventName, Payload
from ai_employee.ledger import Ledger, Usage
from ai_employee.orchestrator import Engine
from ai_employee.vault.layout import Vault
from tests.conftest import files, run_cli
from tests.fake_claude import FakeClaude, fake_claude, plan_reply
from tests.test_claude_planner import DRAFT, QUOTE_EMAIL


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger(tmp_path / "ledger.sqlite3")
    yield opened
    opened.close()


def usage(tokens: int, scope: str = "reactive") -> Usage:
    return Usage("claude-sonnet-5-5", scope, "A1", tokens, 0, 0, 0, 0.01, 100, "ok")


def make(ledger: Ledger, clock: Clock, **limits: Any) -> tuple[Budget, list[Payload]]:
    events: list[Payload] = []

    def publish(name: EventName, payload: Payload) -> None:
        assert name == EventName.BUDGET_WARNING
        events.append(payload)

    return Budget(ledger, BudgetConfig(**limits), publish, clock), events


def test_reservations_side_by_side_never_exceed_the_budget(ledger: Ledger) -> None:
    budget, _ = make(ledger, Clock(datetime(2026, 12, 2, 12, tzinfo=UTC)), reactive_daily_tokens=1000, timezone="UTC")
    first = budget.reserve("reactive", 400)
    budget.reserve("reactive", 400)
    with pytest.raises(BudgetSpent, match="800 of 1,000 used or held"):
        budget.reserve("reactive", 400)
    budget.settle(first, usage(150))  # it used less than its worst case: room again
    assert budget.used("reactive") == 150 and budget.held("reactive") == 400
    budget.reserve("reactive", 400)
    with pytest.raises(BudgetSpent):
        budget.reserve("reactive", 51)
    budget.reserve("reactive", 50)  # exactly to the limit is allowed


def test_warnings_at_80_and_95_percent_once_per_scope_and_day(ledger: Ledger) -> None:
    clock = Clock(datetime(2026, 12, 2, 12, tzinfo=UTC))
    budget, events = make(ledger, clock, proactive_daily_tokens=1000, timezone="UTC")
    budget.settle(budget.reserve("proactive", 800), usage(790, "proactive"))
    assert events == []
    budget.settle(budget.reserve("proactive", 20), usage(10, "proactive"))
    budget.settle(budget.reserve("proactive", 20), usage(10, "proactive"))
    assert [(e.percent, e.used) for e in events] == [(80, 800)]  # type: ignore[attr-defined]
    budget.settle(budget.reserve("proactive", 150), usage(150, "proactive"))
    budget.settle(budget.reserve("proactive", 5), usage(5, "proactive"))
    assert [e.percent for e in events] == [80, 95]  # type: ignore[attr-defined]
    clock.now += timedelta(days=1)  # a new day: a new budget, and new warnings
    assert budget.used("proactive") == 0
    budget.settle(budget.reserve("proactive", 900), usage(900, "proactive"))
    assert [e.percent for e in events] == [80, 95, 80]  # type: ignore[attr-defined]
    assert [e.day for e in events][-1] == "2026-12-03"  # type: ignore[attr-defined]


def test_a_day_ends_at_midnight_in_the_configured_time_zone(ledger: Ledger) -> None:
    # 23:30 in Lisbon on 2 December (winter: UTC+0) and 00:30 in Tokyo on 3 December are the same instant.
    clock = Clock(datetime(2026, 12, 2, 23, 30, tzinfo=UTC))
    lisbon, _ = make(ledger, clock, timezone="Europe/Lisbon")
    lisbon.settle(lisbon.reserve("reactive", 100), usage(100))
    tokyo, _ = make(ledger, clock, timezone="Asia/Tokyo")
    assert lisbon.summary()["day"] == "2026-12-02" and tokyo.summary()["day"] == "2026-12-03"
    clock.now += timedelta(hours=1)  # 00:30 in Lisbon: a new day there
    assert lisbon.used("reactive") == 0 and tokyo.used("reactive") == 100


def test_reservations_left_by_a_crash_count_as_spent(ledger: Ledger) -> None:
    budget, _ = make(ledger, Clock(datetime(2026, 12, 2, 12, tzinfo=UTC)), reactive_daily_tokens=1000, timezone="UTC")
    budget.reserve("reactive", 600)  # the engine dies with this call in flight
    assert budget.clear_stale() == 1
    assert budget.held("reactive") == 0 and budget.used("reactive") == 600
    assert [row["outcome"] for row in ledger.usage()] == ["lost"]


def config_with_budget(fake: FakeClaude, tokens: int) -> Config:
    config = Config(
        claude=ClaudeConfig(api_key=SecretStr("sk-test-not-a-real-key"), base_url=fake.url, max_tokens=1000),
        budget=BudgetConfig(reactive_daily_tokens=tokens),
    )
    config.watcher.__dict__["settle_s"] = 0.0
    return config


def test_a_spent_budget_stops_calls_and_the_template_planner_plans(vault: Path) -> None:
    with fake_claude() as fake:
        fake.default = plan_reply([DRAFT])
        config = config_with_budget(fake, 900)  # less than one call's worst case (max_tokens alone is 1,000)
        shutil.copy(QUOTE_EMAIL, vault / "Inbox" / QUOTE_EMAIL.name)
        Engine(Vault(vault), config).run_once()
        assert fake.requests == [], "no call is made that the budget cannot cover"
    [note] = files(vault / "Plans", ".md")
    text = note.read_text()
    assert "planner: template" in text
    assert "Claude could not plan this (today's reactive token budget is spent" in text


def test_a_call_that_fits_is_made_and_settled_to_its_real_use(vault: Path) -> None:
    with fake_claude() as fake:
        fake.default = plan_reply([DRAFT], usage={"input_tokens": 700, "output_tokens": 100})
        config = config_with_budget(fake, 1_000_000)
        shutil.copy(QUOTE_EMAIL, vault / "Inbox" / QUOTE_EMAIL.name)
        Engine(Vault(vault), config).run_once()
        assert len(fake.requests) == 1
    ledger = Ledger(vault / ".ai_employee" / "ledger.sqlite3")
    try:
        budget = Budget(ledger, config.budget)
        assert budget.used("reactive") == 800 and budget.held("reactive") == 0
    finally:
        ledger.close()


@pytest.mark.integration
def test_vault_budget_and_status_show_todays_use(vault: Path) -> None:
    ledger = Ledger(vault / ".ai_employee" / "ledger.sqlite3")
    try:
        ledger.record_usage(Usage("claude-sonnet-5-5", "reactive", "A1", 1000, 200, 300, 0, 0.0069, 900, "ok"))
    finally:
        ledger.close()
    shown = run_cli("--vault", str(vault), "budget", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["scopes"]["reactive"]["used"] == 1500 and data["scopes"]["proactive"]["limit"] == 7_000_000
    assert data["history"][-1]["reactive"] == 1500 and len(data["history"]) == 7
    status = json.loads(run_cli("--vault", str(vault), "status", "--json").stdout)
    assert status["budget"]["reactive"]["used"] == 1500
    assert "planning 1,500" in run_cli("--vault", str(vault), "status").stdout


def test_costs_follow_the_price_table_in_the_config(vault: Path) -> None:
    with fake_claude() as fake:
        fake.default = plan_reply([DRAFT], usage={"input_tokens": 1_000_000, "output_tokens": 100_000})
        config = config_with_budget(fake, 10_000_000)
        prices = {"claude-sonnet": (3.0, 15.0), "claude-sonnet-5": (2.0, 10.0)}
        config = config.model_copy(update={"claude": config.claude.model_copy(update={"prices": prices})})
        shutil.copy(QUOTE_EMAIL, vault / "Inbox" / QUOTE_EMAIL.name)
        Engine(Vault(vault), config).run_once()
    ledger = Ledger(vault / ".ai_employee" / "ledger.sqlite3")
    try:
        [row] = ledger.usage()
    finally:
        ledger.close()
    assert row["cost_usd"] == pytest.approx(2.0 + 1.0), "the longest matching prefix: $2 in, $10 out per million"
