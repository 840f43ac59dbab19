"""The ledger's notification outbox and reply codes.

Routing reads `events` after a cursor and queues one row per (event, channel) in the same transaction
that moves the cursor, so nothing is routed twice or skipped across a crash. A row is claimed
(`sending`, durably) before it is handed to its channel and settled after; a row found `sending` at
start-up was perhaps delivered, so it becomes `unknown` and is never sent again: at most once.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass

from ai_employee.ledger.usage import now_iso


@dataclass(frozen=True)
class Queued:
    """A notification to queue: the event it comes from and what to say, for one channel."""

    event_id: int
    channel: str
    kind: str
    criticality: str
    plan_id: str
    title: str
    body: str
    created: str  # the event's time


@dataclass(frozen=True)
class Outgoing(Queued):
    """A queued row as delivery sees it."""

    id: int
    tries: int


@dataclass(frozen=True)
class ReplyCode:
    code: str
    plan_id: str
    plan_hash: str
    channel: str
    expires: str
    messages: list[list[str]]
    used: str | None
    outcome: str
    may_approve: bool = True


class NotificationRecords:
    """The `notifications`, `reply_codes` and `kv` queries of the ledger (a part of `Ledger`)."""

    db: sqlite3.Connection

    def durable(self, really: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # pragma: no cover (Ledger's)

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # pragma: no cover (Ledger's)

    # named values --------------------------------------------------------------------------------
    def value(self, name: str, default: str = "") -> str:
        row = self.db.execute("SELECT value FROM kv WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row is not None else default

    def set_value(self, name: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO kv (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = ?",
                (name, value, value),
            )

    def set_values(self, values: dict[str, str]) -> None:
        """Several named values, in one durable transaction (all or none)."""
        with self.durable() as db:
            db.executemany(
                "INSERT INTO kv (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )

    def delete_value(self, name: str) -> None:
        with self.durable() as db:
            db.execute("DELETE FROM kv WHERE name = ?", (name,))

    # routing ----------------------------------------------------------------------------------------
    def events_after(self, event_id: int, limit: int = 500) -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", (event_id, limit)))

    def queue_notifications(self, cursor: int, rows: list[Queued], now: str | None = None) -> None:
        """Queue what the events up to `cursor` make (due `now`), and move the cursor there: one
        transaction."""
        now = now or now_iso()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO notifications (event_id, channel, kind, criticality, plan_id, title, body,"
                " created, state, next_try) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
                [
                    (q.event_id, q.channel, q.kind, q.criticality, q.plan_id, q.title, q.body, q.created, now)
                    for q in rows
                ],
            )
            db.execute("UPDATE kv SET value = ? WHERE name = 'notify_cursor'", (str(cursor),))

    def notify_cursor(self) -> int:
        return int(self.value("notify_cursor", "0") or 0)

    # delivery ---------------------------------------------------------------------------------------
    def abandon_sending(self) -> int:
        """At start-up: rows a crash left `sending` may have been delivered; never sent again."""
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE notifications SET state = 'unknown', outcome = 'the engine stopped while sending it'"
                " WHERE state = 'sending'"
            )
        return cur.rowcount

    def due_notifications(self, channel: str, now: str) -> list[Outgoing]:
        rows = self.db.execute(
            "SELECT event_id, channel, kind, criticality, plan_id, title, body, created, id, tries FROM notifications"
            " WHERE channel = ? AND state IN ('queued', 'failed') AND next_try <= ? ORDER BY id",
            (channel, now),
        )
        return [Outgoing(*row) for row in rows]

    def next_notification_try(self, after: str) -> str | None:
        """The next time a row not yet due becomes due (a failed delivery's retry)."""
        row = self.db.execute(
            "SELECT MIN(next_try) FROM notifications WHERE state IN ('queued', 'failed') AND next_try > ?", (after,)
        ).fetchone()
        return str(row[0]) if row is not None and row[0] is not None else None

    def claim_notifications(self, ids: list[int], batch: str) -> None:
        """Durably mark rows as being sent (before they are handed to the channel)."""
        with self.durable() as db:
            db.executemany(
                "UPDATE notifications SET state = 'sending', batch = ?, tries = tries + 1 WHERE id = ?",
                [(batch, i) for i in ids],
            )

    def settle_notifications(
        self, ids: list[int], state: str, outcome: str, at: str, next_try: str | None = None
    ) -> None:
        """What became of rows: `sent` (at `at`), `failed` (tried again at `next_try`), `skipped`, `gave_up`."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE notifications SET state = ?, outcome = ?, sent = CASE WHEN ? = 'sent' THEN ? ELSE sent END,"
                " next_try = COALESCE(?, next_try) WHERE id = ?",
                [(state, outcome[:500], state, at, next_try, i) for i in ids],
            )

    def event(self, event_id: int) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
        return row

    def plan_criticality(self, plan_id: str) -> str | None:
        row = self.db.execute("SELECT criticality FROM plans WHERE plan_id = ?", (plan_id,)).fetchone()
        return str(row[0]) if row is not None and row[0] else None

    def last_sent(self, channel: str) -> str | None:
        row = self.db.execute(
            "SELECT MAX(sent) FROM notifications WHERE channel = ? AND state = 'sent'", (channel,)
        ).fetchone()
        return str(row[0]) if row is not None and row[0] is not None else None

    def channel_health(self) -> dict[str, dict[str, object]]:
        """Per channel: its last delivery attempt (state, when, outcome) and how many wait."""
        health: dict[str, dict[str, object]] = {}
        rows = self.db.execute(
            "SELECT channel, state, outcome, COALESCE(sent, next_try) AS at FROM notifications WHERE id IN"
            " (SELECT MAX(id) FROM notifications WHERE state NOT IN ('queued', 'skipped') GROUP BY channel)"
        )
        for row in rows:
            health[row["channel"]] = {"state": row["state"], "at": row["at"], "outcome": row["outcome"]}
        for row in self.db.execute(
            "SELECT channel, COUNT(*) FROM notifications WHERE state IN ('queued', 'failed') GROUP BY channel"
        ):
            health.setdefault(row[0], {"state": "queued", "at": None, "outcome": ""})["waiting"] = row[1]
        return health

    def deliveries(self, limit: int = 50) -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM notifications ORDER BY id DESC LIMIT ?", (limit,)))

    # reply codes ------------------------------------------------------------------------------------
    def add_reply_code(
        self, code: str, plan_id: str, plan_hash: str, channel: str, expires: str, may_approve: bool = True
    ) -> bool:
        """A new code; False if it is taken (the caller draws another)."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO reply_codes (code, plan_id, plan_hash, channel, created, expires, may_approve)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (code, plan_id, plan_hash, channel, now_iso(), expires, int(may_approve)),
            )
        return cur.rowcount == 1

    def reply_code(self, code: str) -> ReplyCode | None:
        row = self.db.execute("SELECT * FROM reply_codes WHERE code = ?", (code.upper(),)).fetchone()
        return _code(row) if row is not None else None

    def open_codes(self, plan_id: str) -> list[ReplyCode]:
        rows = self.db.execute("SELECT * FROM reply_codes WHERE plan_id = ? AND used IS NULL", (plan_id,))
        return [_code(row) for row in rows]

    def code_shown(self, code: str, chat: str, message_id: str) -> None:
        with self.transaction() as db:
            row = db.execute("SELECT messages FROM reply_codes WHERE code = ?", (code,)).fetchone()
            shown = json.loads(row[0]) if row is not None else []
            shown.append([chat, message_id])
            db.execute("UPDATE reply_codes SET messages = ? WHERE code = ?", (json.dumps(shown), code))

    def take_shown(self, plan_id: str, outcome: str) -> list[tuple[str, str]]:
        """The messages (chat, message id) still showing buttons for a plan, forgotten as they are
        returned (each is updated once); the plan's open codes are spent with `outcome`."""
        with self.transaction() as db:
            rows = list(db.execute("SELECT code, messages FROM reply_codes WHERE plan_id = ?", (plan_id,)))
            db.execute("UPDATE reply_codes SET messages = '[]' WHERE plan_id = ?", (plan_id,))
            db.execute(
                "UPDATE reply_codes SET used = ?, outcome = ? WHERE plan_id = ? AND used IS NULL",
                (now_iso(), outcome[:300], plan_id),
            )
        return [(str(chat), str(message)) for row in rows for chat, message in json.loads(row["messages"] or "[]")]

    def use_code(self, code: str, outcome: str) -> bool:
        """Spend a code (single use); False if it was already used."""
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE reply_codes SET used = ?, outcome = ? WHERE code = ? AND used IS NULL",
                (now_iso(), outcome[:300], code),
            )
        return cur.rowcount == 1


def _code(row: sqlite3.Row) -> ReplyCode:
    return ReplyCode(
        row["code"],
        row["plan_id"],
        row["plan_hash"],
        row["channel"],
        row["expires"],
        json.loads(row["messages"] or "[]"),
        row["used"],
        row["outcome"],
        bool(row["may_approve"]),
    )
