"""Named, forward-only ledger migrations: each is applied with its record in one transaction.

Add new migrations at the end of MIGRATIONS; never edit or reorder an applied one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

Migration = Callable[[sqlite3.Connection], None]


def _run(db: sqlite3.Connection, script: str) -> None:
    # Not executescript(): it COMMITs first, which would break the migration's transaction.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def m001_initial(db: sqlite3.Connection) -> None:
    _run(
        db,
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            name TEXT NOT NULL,
            payload TEXT NOT NULL
        );
        CREATE INDEX events_ts ON events(ts);
        CREATE TABLE decisions (
            id INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            plan_id TEXT NOT NULL,
            decision TEXT NOT NULL,   -- approve | deny | defer | expire | auto_approve
            channel TEXT NOT NULL,    -- file | cli | policy
            actor TEXT NOT NULL,
            plan_hash TEXT,
            feedback TEXT NOT NULL DEFAULT '',
            until TEXT
        );
        CREATE INDEX decisions_plan ON decisions(plan_id);
        CREATE TABLE plans (
            plan_id TEXT PRIMARY KEY,
            action_id TEXT NOT NULL,
            created TEXT NOT NULL,
            criticality TEXT NOT NULL,
            planner TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX plans_action ON plans(action_id);
        CREATE TABLE runs (
            plan_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            plan_hash TEXT NOT NULL,
            dry_run INTEGER NOT NULL,
            state TEXT NOT NULL,      -- started | done | failed | interrupted
            started TEXT NOT NULL,
            finished TEXT,
            detail TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (plan_id, attempt)
        );
        CREATE TABLE executions (
            id INTEGER PRIMARY KEY,
            plan_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            step_index INTEGER NOT NULL,
            idem_key TEXT NOT NULL,
            tool TEXT NOT NULL,
            args_hash TEXT NOT NULL,
            dry_run INTEGER NOT NULL,
            state TEXT NOT NULL,      -- started | ok | error | dry_run | skipped | interrupted
            result TEXT NOT NULL DEFAULT '',
            started TEXT NOT NULL,
            finished TEXT,
            UNIQUE (plan_id, attempt, step_index)
        );
        CREATE INDEX executions_key ON executions(idem_key);
        CREATE TABLE sources (
            key TEXT PRIMARY KEY,
            action_id TEXT NOT NULL,
            first_seen TEXT NOT NULL
        );
        CREATE TABLE token_usage (
            id INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            model TEXT NOT NULL,
            plan_id TEXT,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cache_read_tokens INTEGER NOT NULL DEFAULT 0,
            cache_creation_tokens INTEGER NOT NULL DEFAULT 0
        );
        """,
    )


def m002_ingest_intents(db: sqlite3.Connection) -> None:
    _run(
        db,
        """
        CREATE TABLE ingest_intents (
            action_id TEXT PRIMARY KEY,
            created TEXT NOT NULL,
            intent TEXT NOT NULL      -- JSON: inbox and attachment names, the action file to publish
        );
        """,
    )


def m003_decision_steps(db: sqlite3.Connection) -> None:
    # The steps a decision saw (canonical JSON), so a plan edited after its approval can show the
    # human what changed.
    _run(db, "ALTER TABLE decisions ADD COLUMN steps TEXT")


def m004_note_cache(db: sqlite3.Connection) -> None:
    # What `vault status`, `vault list` and the dashboard read from each plan note, keyed by the note's
    # size and modification time: a cache checked against the file system, never the only copy.
    _run(
        db,
        """
        CREATE TABLE note_cache (
            folder TEXT NOT NULL,
            name TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            data TEXT NOT NULL,       -- JSON: the properties read from the note
            PRIMARY KEY (folder, name)
        );
        """,
    )


def m005_usage_details(db: sqlite3.Connection) -> None:
    # Every model call, whatever came of it: what it served (scope, action), what it cost and how long
    # it took, and its outcome (ok, invalid, error, timeout), for `vault budget` and the budgets.
    _run(
        db,
        """
        ALTER TABLE token_usage ADD COLUMN scope TEXT NOT NULL DEFAULT 'reactive';
        ALTER TABLE token_usage ADD COLUMN action_id TEXT;
        ALTER TABLE token_usage ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0;
        ALTER TABLE token_usage ADD COLUMN duration_ms INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE token_usage ADD COLUMN outcome TEXT NOT NULL DEFAULT 'ok';
        CREATE INDEX token_usage_ts ON token_usage(ts);
        """,
    )


def m006_budget(db: sqlite3.Connection) -> None:
    # Tokens held for model calls in flight (their worst case), so budgets are never exceeded even by
    # calls side by side; and the budget warnings already given, once per scope, level and day.
    _run(
        db,
        """
        CREATE TABLE budget_reservations (
            id INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            scope TEXT NOT NULL,
            tokens INTEGER NOT NULL,
            action_id TEXT
        );
        CREATE TABLE budget_warnings (
            day TEXT NOT NULL,
            scope TEXT NOT NULL,
            percent INTEGER NOT NULL,
            PRIMARY KEY (day, scope, percent)
        );
        """,
    )


def m007_plan_memory(db: sqlite3.Connection) -> None:
    # What the planner remembers of earlier work: who an item came from and its thread, and the steps
    # as planned (the decision rows hold the steps as approved: the difference is the human's edit).
    _run(
        db,
        """
        ALTER TABLE plans ADD COLUMN sender TEXT;
        ALTER TABLE plans ADD COLUMN thread TEXT;
        ALTER TABLE plans ADD COLUMN steps TEXT;
        CREATE INDEX plans_sender ON plans(sender);
        """,
    )


def m008_plan_versions(db: sqlite3.Connection) -> None:
    """Plans rewritten after the owner's feedback: the current version, and each revision's feedback and
    the steps it replaced."""
    _run(
        db,
        """
        ALTER TABLE plans ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
        CREATE TABLE plan_versions (
            plan_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            ts TEXT NOT NULL,
            feedback TEXT NOT NULL,
            replaced_steps TEXT,
            PRIMARY KEY (plan_id, version)
        );
        """,
    )


def m009_gmail(db: sqlite3.Connection) -> None:
    """Gmail messages the source has taken (by Gmail's id: dedup across restarts) and its sync cursor."""
    _run(
        db,
        """
        CREATE TABLE gmail_messages (
            gmail_id TEXT PRIMARY KEY,
            thread_id TEXT NOT NULL,
            state TEXT NOT NULL,      -- writing (an intent) | stored (its note is in the vault) | skipped
            note TEXT,                -- the note's file name in Inbox/
            sha256 TEXT,              -- of the note's bytes (ingest records the same hash)
            rule TEXT,                -- the noise rule that skipped or filed it
            marked INTEGER NOT NULL DEFAULT 0,
            ts TEXT NOT NULL
        );
        CREATE INDEX gmail_unmarked ON gmail_messages(marked, state);
        CREATE TABLE gmail_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)
        """,
    )


def m010_reminders(db: sqlite3.Connection) -> None:
    """Reminders sent for waiting plans: one per plan and waiting period (from its creation or its last
    deferral), so a restart does not remind again."""
    _run(
        db,
        """
        CREATE TABLE reminders (
            plan_id TEXT NOT NULL,
            since TEXT NOT NULL,
            ts TEXT NOT NULL,
            PRIMARY KEY (plan_id, since)
        )
        """,
    )


def m011_plan_rules(db: sqlite3.Connection) -> None:
    """The policy rules that matched each plan (JSON: rule, level, why, step), for learning and history."""
    _run(db, "ALTER TABLE plans ADD COLUMN rules TEXT")


def m012_step_tries(db: sqlite3.Connection) -> None:
    """How often a step was tried in its run, and the kind of its last failure (transient, auth,
    unavailable, logic, unknown); the index finds a tool's recent live calls (rate limits)."""
    _run(
        db,
        """
        ALTER TABLE executions ADD COLUMN tries INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE executions ADD COLUMN failure TEXT NOT NULL DEFAULT '';
        CREATE INDEX executions_tool ON executions(tool, started);
        """,
    )


def m013_notifications(db: sqlite3.Connection) -> None:
    """The notification outbox: one row per (event, channel), claimed (`sending`) before it is sent, so
    an event is notified at most once per channel across crashes; the cursor over `events` that routing
    has reached (starting at the events already there: history is not sent); reply codes bound to a plan
    and the hash of the steps shown; and small named values (the Telegram update offset)."""
    _run(
        db,
        """
        CREATE TABLE notifications (
            id INTEGER PRIMARY KEY,
            event_id INTEGER NOT NULL,
            channel TEXT NOT NULL,
            kind TEXT NOT NULL,
            criticality TEXT NOT NULL,
            plan_id TEXT NOT NULL DEFAULT '',
            title TEXT NOT NULL,
            body TEXT NOT NULL,
            created TEXT NOT NULL,
            state TEXT NOT NULL,        -- queued | sending | sent | failed | unknown | skipped | gave_up
            tries INTEGER NOT NULL DEFAULT 0,
            next_try TEXT NOT NULL,
            batch TEXT NOT NULL DEFAULT '',
            sent TEXT,
            outcome TEXT NOT NULL DEFAULT '',
            UNIQUE (event_id, channel)
        );
        CREATE INDEX notifications_due ON notifications(channel, state, next_try);
        CREATE TABLE reply_codes (
            code TEXT PRIMARY KEY,
            plan_id TEXT NOT NULL,
            plan_hash TEXT NOT NULL,
            channel TEXT NOT NULL,
            created TEXT NOT NULL,
            expires TEXT NOT NULL,
            messages TEXT NOT NULL DEFAULT '[]',  -- JSON [[chat, message id], ...] showing it
            used TEXT,
            outcome TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX reply_codes_plan ON reply_codes(plan_id);
        CREATE TABLE kv (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO kv (name, value) SELECT 'notify_cursor', COALESCE(MAX(id), 0) FROM events;
        """,
    )


def m014_reply_scope(db: sqlite3.Connection) -> None:
    """Whether a reply code may approve: not when the message could not show every step in full."""
    _run(db, "ALTER TABLE reply_codes ADD COLUMN may_approve INTEGER NOT NULL DEFAULT 1")


def m015_schedule_runs(db: sqlite3.Connection) -> None:
    """Each schedule slot, claimed before its action is written (at most once per slot): skipped ones
    too, so missed slots are on record; the action id is chosen at the claim (recovery looks for it)."""
    _run(
        db,
        """
        CREATE TABLE schedule_runs (
            job TEXT NOT NULL,
            slot TEXT NOT NULL,          -- ISO 8601 UTC (manual runs: the time asked)
            state TEXT NOT NULL,         -- claimed | done | skipped
            claimed TEXT NOT NULL,
            late_s REAL NOT NULL DEFAULT 0,
            action_id TEXT NOT NULL DEFAULT '',
            manual INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (job, slot)
        )
        """,
    )


def m016_monitors(db: sqlite3.Connection) -> None:
    """Each monitor check (the value, or why there was none) and each alert it raised."""
    _run(
        db,
        """
        CREATE TABLE monitor_values (
            id INTEGER PRIMARY KEY,
            monitor TEXT NOT NULL,
            ts TEXT NOT NULL,
            value TEXT,
            error TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX monitor_values_by ON monitor_values(monitor, ts);
        CREATE TABLE monitor_alerts (
            id INTEGER PRIMARY KEY,
            monitor TEXT NOT NULL,
            ts TEXT NOT NULL,
            value TEXT NOT NULL,
            reason TEXT NOT NULL,
            action_id TEXT NOT NULL DEFAULT ''
        )
        """,
    )


MIGRATIONS: list[tuple[str, Migration]] = [
    ("001_initial", m001_initial),
    ("002_ingest_intents", m002_ingest_intents),
    ("003_decision_steps", m003_decision_steps),
    ("004_note_cache", m004_note_cache),
    ("005_usage_details", m005_usage_details),
    ("006_budget", m006_budget),
    ("007_plan_memory", m007_plan_memory),
    ("008_plan_versions", m008_plan_versions),
    ("009_gmail", m009_gmail),
    ("010_reminders", m010_reminders),
    ("011_plan_rules", m011_plan_rules),
    ("012_step_tries", m012_step_tries),
    ("013_notifications", m013_notifications),
    ("014_reply_scope", m014_reply_scope),
    ("015_schedule_runs", m015_schedule_runs),
    ("016_monitors", m016_monitors),
]


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply every migration not yet recorded, each in its own transaction; return the names applied."""
    db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {row[0] for row in db.execute("SELECT name FROM migrations")}
    applied = []
    for name, migration in MIGRATIONS:
        if name in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            # Re-check inside the write lock: another process may have migrated meanwhile.
            if db.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
                db.execute("ROLLBACK")
                continue
            migration(db)
            db.execute(
                "INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat()),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
