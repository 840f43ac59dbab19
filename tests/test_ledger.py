"""The ledger: named migrations, runs and the outbox, decisions, counts (ledger/store.py, migrations.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ai_employee.events import Event, EventName, PlanPayload
from ai_employee.ledger import Ledger, migrations
from ai_employee.ledger.migrations import MIGRATIONS, migrate


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / ".ai_employee" / "ledger.sqlite3"


@pytest.fixture
def ledger(db_path: Path) -> Iterator[Ledger]:
    opened = Ledger(db_path)
    yield opened
    opened.close()


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A second, plain connection to the ledger file, closed afterwards."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        yield db
    finally:
        db.close()


# migrations -----------------------------------------------------------------------------------------


def test_open_creates_the_folder_and_applies_every_migration(ledger: Ledger, db_path: Path) -> None:
    assert db_path.is_file()
    names = [row[0] for row in ledger.db.execute("SELECT name FROM migrations ORDER BY rowid")]
    assert names == [name for name, _ in MIGRATIONS]
    tables = {row[0] for row in ledger.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"events", "decisions", "plans", "runs", "executions", "sources", "token_usage", "migrations"} <= tables
    assert all(row[0] for row in ledger.db.execute("SELECT applied_at FROM migrations"))


def test_wal_mode(ledger: Ledger, db_path: Path) -> None:
    assert ledger.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with raw(db_path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file


def test_reopen_is_a_no_op(ledger: Ledger, db_path: Path) -> None:
    ledger.record_decision("P1", "approve", "cli", "ann")
    before = list(ledger.db.execute("SELECT name, applied_at FROM migrations"))
    ledger.close()
    again = Ledger(db_path)
    try:
        assert migrate(again.db) == []
        assert list(again.db.execute("SELECT name, applied_at FROM migrations")) == before
        assert again.last_decision("P1") is not None  # data kept
    finally:
        again.close()


def test_migrate_on_a_fresh_connection_returns_applied_names(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    try:
        assert migrate(db) == [name for name, _ in MIGRATIONS]
        assert migrate(db) == []
    finally:
        db.close()


def test_a_failing_migration_rolls_back_completely(
    ledger: Ledger, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.close()

    def m002_half(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half_done (x INTEGER)")
        db.execute("INSERT INTO half_done VALUES (1)")
        db.execute("ALTER TABLE events ADD COLUMN extra TEXT")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*MIGRATIONS, ("002_half", m002_half)])
    with pytest.raises(RuntimeError, match="disk on fire"):
        Ledger(db_path)
    with raw(db_path) as check:
        tables = {row[0] for row in check.execute("SELECT name FROM sqlite_master")}
        assert "half_done" not in tables
        assert "extra" not in {row[1] for row in check.execute("PRAGMA table_info(events)")}
        assert [row[0] for row in check.execute("SELECT name FROM migrations")] == [n for n, _ in MIGRATIONS]

    applied: list[str] = []

    def m002_fixed(db: sqlite3.Connection) -> None:
        applied.append("002")
        db.execute("CREATE TABLE half_done (x INTEGER)")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*MIGRATIONS, ("002_half", m002_fixed)])
    fixed = Ledger(db_path)
    try:
        assert applied == ["002"]
        names = [row[0] for row in fixed.db.execute("SELECT name FROM migrations ORDER BY rowid")]
        assert names == [*(n for n, _ in MIGRATIONS), "002_half"]
        assert not fixed.db.in_transaction
    finally:
        fixed.close()
    again = Ledger(db_path)  # applied once: not again
    again.close()
    assert applied == ["002"]


def test_failed_migration_leaves_no_open_transaction(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(db: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("bad sql")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*MIGRATIONS, ("002_boom", boom)])
    db_path.parent.mkdir(parents=True)
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="bad sql"):
            migrate(db)
        assert not db.in_transaction
        assert [row[0] for row in db.execute("SELECT name FROM migrations")] == [n for n, _ in MIGRATIONS]
    finally:
        db.close()


# runs and the outbox ----------------------------------------------------------------------------------


def test_start_run_attempts_increase_per_plan(ledger: Ledger) -> None:
    assert ledger.start_run("P1", "hash-a", dry_run=True) == 1
    assert ledger.start_run("P1", "hash-b", dry_run=False) == 2
    assert ledger.start_run("P2", "hash-c", dry_run=False) == 1
    runs = ledger.runs("P1")
    assert [(r.attempt, r.plan_hash, r.dry_run, r.state, r.finished) for r in runs] == [
        (1, "hash-a", True, "started", None),
        (2, "hash-b", False, "started", None),
    ]
    assert all(r.started for r in runs)
    assert ledger.runs("unknown") == []


def test_two_connections_never_share_an_attempt(ledger: Ledger, db_path: Path) -> None:
    other = Ledger(db_path)
    try:
        attempts = [ledger.start_run("P", "h", True), other.start_run("P", "h", True), ledger.start_run("P", "h", True)]
    finally:
        other.close()
    assert attempts == [1, 2, 3]


def test_steps_recorded_before_and_after(ledger: Ledger) -> None:
    attempt = ledger.start_run("P1", "h", dry_run=False)
    ledger.step_started("P1", attempt, 1, "P1:1:abc", "email.send_email", "abc", dry_run=False)
    (started,) = ledger.steps("P1", attempt)
    assert (started.state, started.result, started.tool, started.idem_key) == (
        "started",
        "",
        "email.send_email",
        "P1:1:abc",
    )
    ledger.step_finished("P1", attempt, 1, "ok", "sent: <id@x>")
    (done,) = ledger.steps("P1", attempt)
    assert (done.state, done.result, done.dry_run, done.args_hash) == ("ok", "sent: <id@x>", False, "abc")
    finished = ledger.db.execute("SELECT finished FROM executions").fetchone()[0]
    assert finished


def test_a_step_starts_once_per_attempt(ledger: Ledger) -> None:
    attempt = ledger.start_run("P1", "h", dry_run=False)
    ledger.step_started("P1", attempt, 1, "k", "a.b", "x", dry_run=False)
    with pytest.raises(sqlite3.IntegrityError):
        ledger.step_started("P1", attempt, 1, "k", "a.b", "x", dry_run=False)
    assert not ledger.db.in_transaction
    ledger.step_started("P1", attempt, 2, "k2", "a.b", "x", dry_run=False)  # the ledger still works
    assert [s.step_index for s in ledger.steps("P1", attempt)] == [1, 2]


def test_steps_are_per_attempt_and_ordered(ledger: Ledger) -> None:
    first = ledger.start_run("P1", "h", dry_run=True)
    second = ledger.start_run("P1", "h", dry_run=True)
    for index in (3, 1, 2):
        ledger.step_started("P1", second, index, f"k{index}", "a.b", "x", dry_run=True)
    assert ledger.steps("P1", first) == []
    assert [s.step_index for s in ledger.steps("P1", second)] == [1, 2, 3]


@pytest.mark.parametrize(
    ("dry_run", "state", "expected"),
    [
        (False, "ok", True),
        (True, "ok", False),
        (True, "dry_run", False),
        (False, "error", False),
        (False, "started", False),
        (False, "interrupted", False),
        (False, "skipped", False),
    ],
)
def test_successes_count_only_live_ok(ledger: Ledger, dry_run: bool, state: str, expected: bool) -> None:
    attempt = ledger.start_run("P1", "h", dry_run=dry_run)
    ledger.step_started("P1", attempt, 1, "P1:1:key", "email.send_email", "x", dry_run=dry_run)
    if state != "started":
        ledger.step_finished("P1", attempt, 1, state, "")
    assert (ledger.successes("P1", "email.send_email", "x") == 1) is expected
    assert ledger.successes("P1", "email.send_email", "other") == 0
    assert ledger.successes("P2", "email.send_email", "x") == 0


def test_successes_look_across_attempts_and_step_numbers(ledger: Ledger) -> None:
    first = ledger.start_run("P1", "h", dry_run=False)
    ledger.step_started("P1", first, 2, "P1:2:x", "email.send_email", "x", dry_run=False)
    ledger.step_finished("P1", first, 2, "ok", "sent")
    ledger.finish_run("P1", first, "failed", "step 3 failed")
    ledger.start_run("P1", "h", dry_run=False)
    # The person deleted step 1 before resuming: the step that ran is now step 1, and still done.
    assert ledger.successes("P1", "email.send_email", "x") == 1


def test_finish_run_interrupted_marks_only_started_steps(ledger: Ledger) -> None:
    attempt = ledger.start_run("P1", "h", dry_run=False)
    ledger.step_started("P1", attempt, 1, "k1", "vault.create_note", "x", dry_run=False)
    ledger.step_finished("P1", attempt, 1, "ok", "created")
    ledger.step_started("P1", attempt, 2, "k2", "email.send_email", "y", dry_run=False)
    other = ledger.start_run("P2", "h", dry_run=False)
    ledger.step_started("P2", other, 1, "k3", "email.send_email", "z", dry_run=False)

    ledger.finish_run("P1", attempt, "interrupted", "step 2 in doubt")

    assert [(s.step_index, s.state) for s in ledger.steps("P1", attempt)] == [(1, "ok"), (2, "interrupted")]
    assert [s.state for s in ledger.steps("P2", other)] == ["started"]  # another plan untouched
    (run,) = ledger.runs("P1")
    assert (run.state, run.detail) == ("interrupted", "step 2 in doubt")
    assert run.finished is not None
    assert ledger.db.execute("SELECT finished FROM executions WHERE idem_key = 'k2'").fetchone()[0]


@pytest.mark.parametrize("state", ["done", "failed"])
def test_finish_run_other_states_leave_steps(ledger: Ledger, state: str) -> None:
    attempt = ledger.start_run("P1", "h", dry_run=False)
    ledger.step_started("P1", attempt, 1, "k1", "a.b", "x", dry_run=False)
    ledger.finish_run("P1", attempt, state)
    assert [s.state for s in ledger.steps("P1", attempt)] == ["started"]
    assert ledger.runs("P1")[0].state == state


def test_unfinished_runs(ledger: Ledger) -> None:
    a1 = ledger.start_run("A", "h", dry_run=False)
    ledger.start_run("B", "h", dry_run=True)
    c1 = ledger.start_run("C", "h", dry_run=False)
    ledger.finish_run("A", a1, "done")
    ledger.finish_run("C", c1, "interrupted")
    ledger.start_run("C", "h", dry_run=False)
    unfinished = ledger.unfinished_runs()
    assert [(r.plan_id, r.attempt, r.dry_run) for r in unfinished] == [("B", 1, True), ("C", 2, False)]


def test_records_survive_reopen(ledger: Ledger, db_path: Path) -> None:
    attempt = ledger.start_run("P1", "h", dry_run=False)
    ledger.step_started("P1", attempt, 1, "k1", "a.b", "x", dry_run=False)
    ledger.close()
    again = Ledger(db_path)
    try:
        assert [r.plan_id for r in again.unfinished_runs()] == ["P1"]
        assert [s.state for s in again.steps("P1", attempt)] == ["started"]
    finally:
        again.close()


# decisions, plans, events, counts ---------------------------------------------------------------------


def test_decisions_and_last_decision(ledger: Ledger) -> None:
    assert ledger.last_decision("P1") is None
    ledger.record_decision("P1", "defer", "cli", "ann", until="2024-01-05T12:00:00+00:00")
    ledger.record_decision("P2", "deny", "file", "bob", feedback="no thanks")
    ledger.record_decision("P1", "approve", "cli", "ann", plan_hash="abc", feedback="go")
    last = ledger.last_decision("P1")
    assert last is not None
    assert (last["decision"], last["channel"], last["actor"], last["plan_hash"], last["feedback"]) == (
        "approve",
        "cli",
        "ann",
        "abc",
        "go",
    )
    assert last["until"] is None
    history = ledger.decisions()
    assert [(row["plan_id"], row["decision"]) for row in history] == [
        ("P1", "approve"),
        ("P2", "deny"),
        ("P1", "defer"),
    ]
    assert history[2]["until"] == "2024-01-05T12:00:00+00:00"
    assert [row["decision"] for row in ledger.decisions(limit=1)] == ["approve"]


def test_register_plan_is_idempotent(ledger: Ledger) -> None:
    ledger.register_plan("P1", "A1", "low", "template", "first title")
    ledger.register_plan("P1", "A1", "high", "claude", "second title")
    rows = list(ledger.db.execute("SELECT criticality, title FROM plans"))
    assert [tuple(row) for row in rows] == [("low", "first title")]
    assert ledger.plan_for_action("A1") == "P1"
    assert ledger.plan_for_action("A2") is None


def test_record_source_is_idempotent(ledger: Ledger) -> None:
    ledger.record_source("gmail:123", "A1")
    ledger.record_source("gmail:123", "A2")
    assert [tuple(r) for r in ledger.db.execute("SELECT key, action_id FROM sources")] == [("gmail:123", "A1")]


def test_events_are_recorded_with_payload(ledger: Ledger) -> None:
    payload = PlanPayload(plan_id="P1", action_id="A1", criticality="low", path="Plans/x.md", title="Café ✓")
    ledger.record_event(Event(EventName.PLAN_CREATED, payload))
    ledger.record_event(Event(EventName.APPROVAL_REQUIRED, payload))
    recent = ledger.recent_events()
    assert [row["name"] for row in recent] == ["approval.required", "plan.created"]
    assert '"title": "Caf\\u00e9 \\u2713"' in recent[1]["payload"]
    assert len(ledger.recent_events(limit=1)) == 1


def test_counts(ledger: Ledger) -> None:
    empty = ledger.counts()
    assert empty == {"events": {}, "decisions": {}, "runs": {}, "steps": {}, "plans": {}}
    payload = PlanPayload(plan_id="P1", action_id="A1", criticality="low", path="p")
    ledger.record_event(Event(EventName.PLAN_CREATED, payload))
    ledger.record_event(Event(EventName.PLAN_CREATED, payload))
    ledger.record_event(Event(EventName.ACTION_APPROVED, payload))
    ledger.record_decision("P1", "approve", "cli", "ann")
    ledger.record_decision("P2", "auto_approve", "policy", "policy")
    ledger.record_decision("P3", "approve", "file", "ann")
    ledger.register_plan("P1", "A1", "low", "template", "")
    ledger.register_plan("P2", "A2", "medium", "template", "")
    a = ledger.start_run("P1", "h", dry_run=True)
    ledger.step_started("P1", a, 1, "k1", "a.b", "x", dry_run=True)
    ledger.step_finished("P1", a, 1, "dry_run", "WOULD CALL")
    ledger.finish_run("P1", a, "done")
    ledger.start_run("P2", "h", dry_run=False)
    assert ledger.counts() == {
        "events": {"action.approved": 1, "plan.created": 2},
        "decisions": {"approve": 2, "auto_approve": 1},
        "runs": {"done": 1, "started": 1},
        "steps": {"dry_run": 1},
        "plans": {"low": 1, "medium": 1},
    }


def test_tokens_since_empty(ledger: Ledger) -> None:
    assert ledger.tokens_since("1970-01-01T00:00:00+00:00") == {"input_tokens": 0, "output_tokens": 0}


def test_transaction_rolls_back_on_error(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError), ledger.transaction() as db:
        db.execute("INSERT INTO sources (key, action_id, first_seen) VALUES ('k', 'a', 'now')")
        raise RuntimeError("stop")
    assert ledger.db.execute("SELECT COUNT(*) FROM sources").fetchone()[0] == 0
    assert not ledger.db.in_transaction
    assert ledger.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_durable_restores_normal_sync_even_after_an_error(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError), ledger.durable():
        assert ledger.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL inside
        raise RuntimeError("stop")
    assert ledger.db.execute("PRAGMA synchronous").fetchone()[0] == 1


def _committed_runs(db_path: Path) -> int:
    with raw(db_path) as other:
        return int(other.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def test_a_batch_commits_its_writes_and_events_together(ledger: Ledger, db_path: Path) -> None:
    with ledger.batch():
        ledger.start_run("P1", "h", dry_run=True)
        ledger.step_started("P1", 1, 1, "P1:1:x", "vault.create_note", "x", dry_run=True)
        ledger.record_event(Event(EventName.PLAN_CREATED, PlanPayload("P1", "A1", "low", "Plans/p.md")))
        assert _committed_runs(db_path) == 0, "nothing is visible before the batch ends"
    assert _committed_runs(db_path) == 1
    assert [s.state for s in ledger.steps("P1", 1)] == ["started"]
    assert not ledger.db.in_transaction


def test_a_failed_batch_leaves_nothing(ledger: Ledger, db_path: Path) -> None:
    with pytest.raises(RuntimeError), ledger.batch():
        ledger.start_run("P1", "h", dry_run=True)
        raise RuntimeError("stop")
    assert _committed_runs(db_path) == 0
    assert not ledger.db.in_transaction


def test_a_durable_write_inside_a_batch_is_durable_when_it_returns(ledger: Ledger, db_path: Path) -> None:
    with ledger.batch():
        ledger.start_run("P1", "h", dry_run=True)
        ledger.start_run("P2", "h", dry_run=False)  # durable: commits the batch so far, then itself
        assert _committed_runs(db_path) == 2
        assert ledger.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # back to NORMAL
        ledger.start_run("P3", "h", dry_run=True)
        assert _committed_runs(db_path) == 2
    assert _committed_runs(db_path) == 3


def test_a_failed_write_inside_a_batch_undoes_only_itself(ledger: Ledger, db_path: Path) -> None:
    with ledger.batch():
        ledger.start_run("P1", "h", dry_run=True)
        with pytest.raises(RuntimeError), ledger.transaction() as db:
            db.execute("INSERT INTO sources (key, action_id, first_seen) VALUES ('k', 'a', 'now')")
            raise RuntimeError("stop")
    assert _committed_runs(db_path) == 1
    assert ledger.db.execute("SELECT COUNT(*) FROM sources").fetchone()[0] == 0


def test_batch_off_is_one_transaction_per_write(ledger: Ledger, db_path: Path) -> None:
    with ledger.batch(really=False):
        ledger.start_run("P1", "h", dry_run=True)
        assert _committed_runs(db_path) == 1


# ingest intents -------------------------------------------------------------------------------------


def test_ingest_intents_round_trip_and_survive_a_reopen(db_path: Path) -> None:
    first = Ledger(db_path)
    intents = [{"action_id": f"A{i}", "inbox": f"f{i}.txt", "action": "id: x\n"} for i in range(3)]
    first.add_intents(intents)
    first.close()
    reopened = Ledger(db_path)
    try:
        assert reopened.intents() == intents
        reopened.drop_intents(["A0", "A2"])
        assert [i["action_id"] for i in reopened.intents()] == ["A1"]
    finally:
        reopened.close()
