"""The Ledger: one SQLite file in the vault's state folder (WAL), opened by the engine and the CLI."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ai_employee.ledger.mail import MailRecords
from ai_employee.ledger.migrations import migrate
from ai_employee.ledger.notifications import NotificationRecords
from ai_employee.ledger.runs import RunRecords
from ai_employee.ledger.schedules import ScheduleRecords
from ai_employee.ledger.stats import StatsRecords
from ai_employee.ledger.usage import UsageRecords, now_iso

if TYPE_CHECKING:
    from ai_employee.events import Event


class Ledger(UsageRecords, MailRecords, StatsRecords, RunRecords, NotificationRecords, ScheduleRecords):
    """History and idempotency records. Never the only copy of where work stands: that is the vault."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, timeout=10.0, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL survives a process crash; the outbox rows use `durable()` to survive power loss too.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        migrate(self.db)
        self._batching = False  # inside `batch()`

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        if self._batching:  # inside `batch()`: joins it, as a savepoint (an error undoes only its own part)
            self.db.execute("SAVEPOINT joined")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK TO joined")
                self.db.execute("RELEASE joined")
                raise
            self.db.execute("RELEASE joined")
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @contextmanager
    def durable(self, really: bool = True) -> Iterator[sqlite3.Connection]:
        """A transaction fsynced at commit: for records that must survive a power cut (the live outbox).
        With `really=False` (dry-run: no side effect to account for) it is an ordinary transaction.
        Inside `batch()` it commits what the batch holds so far, is committed durably on its own, and
        the batch goes on after it (SQLite cannot change the sync level inside a transaction)."""
        if not really:
            with self.transaction() as db:
                yield db
            return
        in_batch = self._batching
        if in_batch:
            self.db.execute("COMMIT")
            self._batching = False
        self.db.execute("PRAGMA synchronous=FULL")
        try:
            with self.transaction() as db:
                yield db
        finally:
            self.db.execute("PRAGMA synchronous=NORMAL")
            if in_batch:
                self.db.execute("BEGIN IMMEDIATE")
                self._batching = True

    @contextmanager
    def batch(self, really: bool = True) -> Iterator[None]:
        """One transaction for many writes (and events) that nothing outside the engine depends on until
        the block ends, such as a dry-run plan's run, steps and events: they are committed together, or
        not at all. Only for code that does not await in between (the loop would run other writers'
        work inside it). With `really=False`, or nested, each write is its own transaction as usual."""
        if not really or self._batching:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._batching = True
        try:
            yield
        except BaseException:
            self._batching = False
            self.db.execute("ROLLBACK")
            raise
        self._batching = False
        self.db.execute("COMMIT")

    # events -------------------------------------------------------------------------------------
    def record_event(self, event: Event) -> None:
        self.db.execute(
            "INSERT INTO events (ts, name, payload) VALUES (?, ?, ?)",
            (event.ts.isoformat(timespec="milliseconds"), str(event.name), json.dumps(event.data())),
        )

    def recent_events(
        self, limit: int = 20, since: str | None = None, names: tuple[str, ...] = ()
    ) -> list[sqlite3.Row]:
        """The latest events, newest first; since a time (ISO 8601, UTC) and of some names only, if given."""
        where, params = [], []
        if since is not None:  # by id, found through the ts index: no scan of a table of years
            where.append("id >= (SELECT COALESCE(MIN(id), 1 << 62) FROM events WHERE ts >= ?)")
            params.append(since)
        if names:
            where.append(f"name IN ({', '.join('?' * len(names))})")
            params.extend(names)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return list(self.db.execute(f"SELECT * FROM events{clause} ORDER BY id DESC LIMIT ?", (*params, limit)))

    def unclean_stop(self) -> str | None:
        """If the engine's last run did not stop cleanly (it started and never said it stopped): the time
        it was last heard of (its latest event); None after a clean stop or on a new ledger."""
        last = self.db.execute(
            "SELECT name FROM events WHERE name IN ('engine.started', 'engine.stopped') ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if last is None or last[0] != "engine.started":
            return None
        return str(self.db.execute("SELECT MAX(ts) FROM events").fetchone()[0])

    # decisions ----------------------------------------------------------------------------------
    def record_decision(
        self,
        plan_id: str,
        decision: str,
        channel: str,
        actor: str,
        plan_hash: str | None = None,
        feedback: str = "",
        until: str | None = None,
        steps: str | None = None,
        durable: bool = False,
    ) -> int:
        """Record a decision (`steps`: the JSON of the steps it saw); returns its row id. A person's
        decision is `durable` (fsynced): it must not be lost while the move it goes with survives."""
        with self.durable(durable) as db:
            cursor = db.execute(
                "INSERT INTO decisions (ts, plan_id, decision, channel, actor, plan_hash, feedback, until, steps)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (now_iso(), plan_id, decision, channel, actor, plan_hash, feedback, until, steps),
            )
        return int(cursor.lastrowid or 0)

    def retract_decision(self, row_id: int) -> None:
        """Take back a decision that could not take effect (its note could not be moved)."""
        self.db.execute("DELETE FROM decisions WHERE id = ?", (row_id,))

    def last_decision(self, plan_id: str, kinds: tuple[str, ...] | None = None) -> sqlite3.Row | None:
        """The plan's latest decision, or its latest of the given kinds."""
        where, params = "plan_id = ?", [plan_id]
        if kinds:
            where += f" AND decision IN ({', '.join('?' for _ in kinds)})"
            params += kinds
        row: sqlite3.Row | None = self.db.execute(
            f"SELECT * FROM decisions WHERE {where} ORDER BY id DESC LIMIT 1", params
        ).fetchone()
        return row

    def decisions(self, limit: int = 50, plan_id: str | None = None) -> list[sqlite3.Row]:
        """Decisions newest first, with the plan's title where the ledger knows it."""
        where, params = ("WHERE d.plan_id = ?", [plan_id, limit]) if plan_id else ("", [limit])
        return list(
            self.db.execute(
                "SELECT d.*, p.title AS title FROM decisions d LEFT JOIN plans p ON p.plan_id = d.plan_id"
                f" {where} ORDER BY d.id DESC LIMIT ?",
                params,
            )
        )

    # plans --------------------------------------------------------------------------------------
    def register_plan(
        self,
        plan_id: str,
        action_id: str,
        criticality: str,
        planner: str,
        title: str,
        sender: str = "",
        thread: tuple[str, ...] = (),
        steps: str | None = None,
        rules: str | None = None,
    ) -> None:
        """A new plan; `sender` (lower case), `thread` (Message-IDs) and `steps` (JSON, as planned) are
        what the planner remembers of it for later items; `rules` (JSON) the policy rules that matched."""
        self.db.execute(
            "INSERT OR IGNORE INTO plans (plan_id, action_id, created, criticality, planner, title, sender, thread,"
            " steps, rules) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                plan_id,
                action_id,
                now_iso(),
                criticality,
                planner,
                title,
                sender or None,
                json.dumps(thread),
                steps,
                rules,
            ),
        )

    def revise_plan(
        self,
        plan_id: str,
        version: int,
        title: str,
        criticality: str,
        planner: str,
        steps: str,
        feedback: str,
        rules: str | None = None,
    ) -> None:
        """A new version of a plan, written after the owner's feedback: the plan's row says what it is now,
        and `plan_versions` keeps the feedback and the steps it replaced. Recording the same version again
        (a crash before its note was written, then the feedback planned again) keeps what it replaced."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO plan_versions (plan_id, version, ts, feedback, replaced_steps)"
                " VALUES (?, ?, ?, ?, (SELECT steps FROM plans WHERE plan_id = ? AND version < ?))"
                " ON CONFLICT (plan_id, version) DO UPDATE SET ts = excluded.ts, feedback = excluded.feedback",
                (plan_id, version, now_iso(), feedback, plan_id, version),
            )
            db.execute(
                "UPDATE plans SET version = ?, title = ?, criticality = ?, planner = ?, steps = ?, rules = ?"
                " WHERE plan_id = ?",
                (version, title, criticality, planner, steps, rules, plan_id),
            )

    def plan_version(self, plan_id: str) -> int:
        """The plan's version as the ledger knows it (1 if it knows no other)."""
        row = self.db.execute("SELECT version FROM plans WHERE plan_id = ?", (plan_id,)).fetchone()
        return int(row[0]) if row else 1

    def revision_feedback(self, plan_id: str) -> list[str]:
        """The owner's feedback on each earlier version of a plan, oldest first."""
        rows = self.db.execute("SELECT feedback FROM plan_versions WHERE plan_id = ? ORDER BY version", (plan_id,))
        return [str(row[0]) for row in rows]

    def related_plans(self, sender: str, thread: tuple[str, ...], action_id: str, limit: int = 5) -> list[sqlite3.Row]:
        """Earlier plans for items from the same sender or in the same thread (newest first), each with its
        latest decision (kind, who, how, feedback, the steps it saw)."""
        if not sender and not thread:
            return []
        marks = ",".join("?" * len(thread)) or "NULL"
        return list(
            self.db.execute(
                "SELECT p.plan_id, p.title, p.created, p.steps, d.decision, d.actor, d.channel, d.feedback,"
                " d.steps AS decided_steps, (SELECT group_concat(v.feedback, ' / ') FROM plan_versions v"
                " WHERE v.plan_id = p.plan_id) AS revised_after FROM plans p LEFT JOIN decisions d ON d.id ="
                " (SELECT MAX(id) FROM decisions WHERE plan_id = p.plan_id AND decision NOT IN"
                " ('auto_approve', 'revise'))"
                f" WHERE p.action_id != ? AND (p.sender = ? OR EXISTS (SELECT 1 FROM json_each(p.thread)"
                f" WHERE value IN ({marks}))) ORDER BY p.created DESC LIMIT ?",
                (action_id, sender or None, *thread, limit),
            )
        )

    def plan_for_action(self, action_id: str) -> str | None:
        row = self.db.execute(
            "SELECT plan_id FROM plans WHERE action_id = ? ORDER BY created DESC LIMIT 1", (action_id,)
        ).fetchone()
        return str(row[0]) if row else None

    # reminders ----------------------------------------------------------------------------------
    def reminded(self, plan_id: str, since: str) -> bool:
        row = self.db.execute("SELECT 1 FROM reminders WHERE plan_id = ? AND since = ?", (plan_id, since))
        return row.fetchone() is not None

    def record_reminder(self, plan_id: str, since: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO reminders (plan_id, since, ts) VALUES (?, ?, ?)", (plan_id, since, now_iso())
        )

    # ingest intents -----------------------------------------------------------------------------
    def add_intents(self, intents: list[dict[str, str]]) -> None:
        """Record a batch of ingest intents durably (one fsync), before any original is moved."""
        with self.durable() as db:
            db.executemany(
                "INSERT OR REPLACE INTO ingest_intents (action_id, created, intent) VALUES (?, ?, ?)",
                [(intent["action_id"], now_iso(), json.dumps(intent)) for intent in intents],
            )

    def drop_intents(self, action_ids: list[str]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM ingest_intents WHERE action_id = ?", [(i,) for i in action_ids])

    def intents(self) -> list[dict[str, str]]:
        rows = self.db.execute("SELECT intent FROM ingest_intents ORDER BY created, action_id")
        return [json.loads(row[0]) for row in rows]

    # sources ------------------------------------------------------------------------------------
    def record_source(self, key: str, action_id: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO sources (key, action_id, first_seen) VALUES (?, ?, ?)",
            (key, action_id, now_iso()),
        )

    def source(self, key: str) -> str | None:
        """The id of the first action made from this source (`sha256:<hex>`), if there was one."""
        row = self.db.execute("SELECT action_id FROM sources WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    # the note cache ------------------------------------------------------------------------------
    def cached_notes(self, folder: str) -> dict[str, tuple[int, int, str]]:
        """{note name: (size, mtime_ns, data)} of what was read from the notes of a folder."""
        rows = self.db.execute("SELECT name, size, mtime_ns, data FROM note_cache WHERE folder = ?", (folder,))
        return {str(r[0]): (int(r[1]), int(r[2]), str(r[3])) for r in rows}

    def cache_notes(self, folder: str, fresh: dict[str, tuple[int, int, str]], gone: set[str]) -> None:
        """Store what was read from notes that changed, and forget notes no longer there (one transaction)."""
        if not fresh and not gone:
            return
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO note_cache (folder, name, size, mtime_ns, data) VALUES (?, ?, ?, ?, ?)",
                [(folder, name, *row) for name, row in fresh.items()],
            )
            db.executemany("DELETE FROM note_cache WHERE folder = ? AND name = ?", [(folder, n) for n in gone])
