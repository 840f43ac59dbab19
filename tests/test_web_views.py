"""The web page's views over a real ledger (no server): history's search is done in SQL, takes the
query as plain text, and merges decisions and runs newest first."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ai_employee.events import Event, EventName, ExecutionPayload
from ai_employee.ledger import Ledger
from ai_employee.web.views import history


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger(tmp_path / "ledger.sqlite3")
    try:
        yield opened
    finally:
        opened.close()


def ran(ledger: Ledger, title: str, minutes_ago: int, name: EventName = EventName.PLAN_EXECUTION_COMPLETED) -> None:
    payload = ExecutionPayload("P1", "done", 1, True, "Done/x.md", "", title)
    ledger.record_event(Event(name, payload, datetime.now(UTC) - timedelta(minutes=minutes_ago)))


def test_history_merges_decisions_and_runs_newest_first(ledger: Ledger) -> None:
    ran(ledger, "Reply to Acme", 60)
    ledger.record_decision("P2", "approve", "web", "me")
    time.sleep(0.01)  # a later millisecond
    ran(ledger, "Pay the invoice", 0, EventName.ACTION_FAILED)
    rows = history(ledger)
    assert [(r.what, r.title, r.channel) for r in rows] == [
        ("failed", "Pay the invoice", "executor"),
        ("approve", "P2", "web"),
        ("ran (dry run)", "Reply to Acme", "executor"),
    ]


def test_history_search_is_plain_text_in_sql(ledger: Ledger) -> None:
    ran(ledger, "Discount 50% for Acme", 2)
    ran(ledger, "Discount 500 for Beta", 1)
    ran(ledger, "snake_case title", 0)
    ledger.record_decision("P9", "deny", "telegram", "me", feedback="no")
    assert [r.title for r in history(ledger, "50%")] == ["Discount 50% for Acme"]  # % is not a wildcard
    assert [r.title for r in history(ledger, "e_c")] == ["snake_case title"]  # nor is _
    assert [r.channel for r in history(ledger, "TELEGRAM")] == ["telegram"]
    assert len(history(ledger, "executor")) == 3 and history(ledger, "nothing like it") == []


def test_history_survives_a_payload_that_is_not_json(ledger: Ledger) -> None:
    ledger.db.execute(
        "INSERT INTO events (ts, name, payload) VALUES (?, 'plan.execution_completed', 'not json')",
        (datetime.now(UTC).isoformat(),),
    )
    ran(ledger, "Fine", 5)
    assert [r.title for r in history(ledger)] == ["", "Fine"]
    assert [r.title for r in history(ledger, "fine")] == ["Fine"]
