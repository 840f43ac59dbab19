"""The ledger's proactive records: schedule slots, claimed durably before a slot's action is written
(each slot runs at most once across restarts, crashes and a second engine; skipped slots are kept too),
and monitors' values and alerts."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from ai_employee.ledger.usage import now_iso

MONITOR_KEEP_DAYS = 90  # how long each check is kept (trends, the briefing's week, `vault monitors`)


class ScheduleRecords:
    """The `schedule_runs`, `monitor_values` and `monitor_alerts` queries of the ledger (a part of
    `Ledger`)."""

    db: sqlite3.Connection

    def durable(self, really: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # pragma: no cover (Ledger's)

    def value(self, name: str, default: str = "") -> str:
        raise NotImplementedError  # pragma: no cover (NotificationRecords')

    def schedule_since(self, job: str, now: str) -> str:
        """When the job was first seen (recorded now if it is new): its slots start there."""
        seen = self.value(f"schedule_since:{job}")
        if seen:
            return seen
        with self.durable() as db:
            db.execute("INSERT OR IGNORE INTO kv (name, value) VALUES (?, ?)", (f"schedule_since:{job}", now))
        return self.value(f"schedule_since:{job}", now)

    def last_schedule_slot(self, job: str) -> str | None:
        row = self.db.execute("SELECT MAX(slot) FROM schedule_runs WHERE job = ? AND manual = 0", (job,)).fetchone()
        return str(row[0]) if row is not None and row[0] else None

    def previous_schedule_slot(self, job: str, before: str) -> str | None:
        """The job's slot before this one that ran (for the period a briefing covers)."""
        row = self.db.execute(
            "SELECT MAX(slot) FROM schedule_runs WHERE job = ? AND slot < ? AND state = 'done' AND manual = 0",
            (job, before),
        ).fetchone()
        return str(row[0]) if row is not None and row[0] else None

    def claim_slot(
        self, job: str, slot: str, state: str, late_s: float, action_id: str = "", manual: bool = False
    ) -> bool:
        """Claim a slot (or record it skipped); False if it was handled already."""
        with self.durable() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO schedule_runs (job, slot, state, claimed, late_s, action_id, manual)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job, slot, state, now_iso(), late_s, action_id, int(manual)),
            )
        return cur.rowcount == 1

    def skip_slots(self, slots: list[tuple[str, str, float]]) -> int:
        """Record slots (job, slot, late_s) skipped, in one durable transaction; how many were new."""
        with self.durable() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO schedule_runs (job, slot, state, claimed, late_s, action_id, manual)"
                " VALUES (?, ?, 'skipped', ?, ?, '', 0)",
                [(job, slot, now_iso(), late_s) for job, slot, late_s in slots],
            )
            return db.total_changes - before

    def slot_done(self, job: str, slot: str, state: str = "done") -> None:
        """A claimed slot settled: `done` (what it writes is written), or `abandoned` (its job was
        removed or disabled before it could run)."""
        with self.durable() as db:
            db.execute("UPDATE schedule_runs SET state = ? WHERE job = ? AND slot = ?", (state, job, slot))

    def open_slots(self, claimed_before: str = "") -> list[sqlite3.Row]:
        """Slots claimed whose action may not have been written (a crash in between, a write that
        failed); with `claimed_before`, only those claimed before that time."""
        sql = "SELECT * FROM schedule_runs WHERE state = 'claimed'"
        if claimed_before:
            return list(self.db.execute(sql + " AND claimed < ? ORDER BY slot", (claimed_before,)))
        return list(self.db.execute(sql + " ORDER BY slot"))

    def schedule_runs(self, job: str, limit: int = 10) -> list[sqlite3.Row]:
        return list(
            self.db.execute("SELECT * FROM schedule_runs WHERE job = ? ORDER BY claimed DESC LIMIT ?", (job, limit))
        )

    # monitors ---------------------------------------------------------------------------------------
    def record_monitor_value(self, monitor: str, ts: str, value: str | None, error: str) -> None:
        """A check's value (or why there was none); checks older than MONITOR_KEEP_DAYS are let go."""
        horizon = (datetime.fromisoformat(ts) - timedelta(days=MONITOR_KEEP_DAYS)).isoformat()
        with self.durable(False) as db:
            db.execute(
                "INSERT INTO monitor_values (monitor, ts, value, error) VALUES (?, ?, ?, ?)",
                (monitor, ts, value, error[:300]),
            )
            db.execute("DELETE FROM monitor_values WHERE monitor = ? AND ts < ?", (monitor, horizon))

    def monitor_shown(self, monitor: str) -> tuple[object, ...]:
        """What a monitor's note shows at a glance: the latest value (or error) and the latest alert."""
        value = self.db.execute(
            "SELECT value, error FROM monitor_values WHERE monitor = ? ORDER BY ts DESC LIMIT 1", (monitor,)
        ).fetchone()
        alert = self.db.execute("SELECT MAX(id) FROM monitor_alerts WHERE monitor = ?", (monitor,)).fetchone()
        return (tuple(value) if value else None, alert[0] if alert else None)

    def last_monitor_check(self, monitor: str) -> str | None:
        row = self.db.execute("SELECT MAX(ts) FROM monitor_values WHERE monitor = ?", (monitor,)).fetchone()
        return str(row[0]) if row is not None and row[0] else None

    def monitor_values(self, monitor: str, since: str = "", limit: int = 500) -> list[sqlite3.Row]:
        """Checks oldest first (the latest `limit` since a time)."""
        rows = self.db.execute(
            "SELECT * FROM monitor_values WHERE monitor = ? AND ts >= ? ORDER BY ts DESC LIMIT ?",
            (monitor, since, limit),
        )
        return list(reversed(list(rows)))

    def record_monitor_alert(self, monitor: str, ts: str, value: str, reason: str, action_id: str = "") -> None:
        with self.durable() as db:
            db.execute(
                "INSERT INTO monitor_alerts (monitor, ts, value, reason, action_id) VALUES (?, ?, ?, ?, ?)",
                (monitor, ts, value, reason[:500], action_id),
            )

    def monitor_alerts(self, monitor: str, limit: int = 50) -> list[sqlite3.Row]:
        return list(
            self.db.execute("SELECT * FROM monitor_alerts WHERE monitor = ? ORDER BY ts DESC LIMIT ?", (monitor, limit))
        )
