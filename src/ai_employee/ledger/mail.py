"""The ledger's record of Gmail: each message taken (so none is taken twice, across restarts and
crashes) and the sync cursor (the history id, which only moves forward once the mail up to it is in the
vault)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from ai_employee.ledger.usage import now_iso

_CHUNK = 500  # ids per IN (...) query: well under SQLite's variable limit


@dataclass(frozen=True)
class MailIntent:
    """A message about to be written into `Inbox/` as the note `note` with these bytes' hash."""

    gmail_id: str
    thread_id: str
    note: str
    sha256: str
    rule: str | None = None


class MailRecords:
    """The `gmail_*` queries of the ledger (a part of `Ledger`, which provides `db`, `transaction` and
    `durable`)."""

    db: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # pragma: no cover (Ledger's)

    def durable(self, really: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # pragma: no cover (Ledger's)

    def known_mail(self, gmail_ids: Iterable[str]) -> set[str]:
        """Which of these messages were taken before (stored, skipped, or being written)."""
        ids = list(gmail_ids)
        found: set[str] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                row[0]
                for row in self.db.execute(f"SELECT gmail_id FROM gmail_messages WHERE gmail_id IN ({marks})", chunk)
            )
        return found

    def mail_intents(self, intents: list[MailIntent], skipped: list[tuple[str, str, str]]) -> None:
        """Record notes about to be written (and messages skipped by a rule: (id, thread, rule)), durably, in
        one transaction, before any note is written."""
        ts = now_iso()
        with self.durable() as db:
            db.executemany(
                "INSERT OR REPLACE INTO gmail_messages (gmail_id, thread_id, state, note, sha256, rule, ts)"
                " VALUES (?, ?, 'writing', ?, ?, ?, ?)",
                [(i.gmail_id, i.thread_id, i.note, i.sha256, i.rule, ts) for i in intents],
            )
            db.executemany(
                "INSERT OR IGNORE INTO gmail_messages (gmail_id, thread_id, state, rule, marked, ts)"
                " VALUES (?, ?, 'skipped', ?, 1, ?)",
                [(gid, thread, rule, ts) for gid, thread, rule in skipped],
            )

    def mail_stored(self, written: dict[str, str]) -> None:
        """These messages' notes are in the vault (gmail id -> the note's final file name)."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE gmail_messages SET state = 'stored', note = ?, ts = ? WHERE gmail_id = ?",
                [(note, now_iso(), gid) for gid, note in written.items()],
            )

    def mail_writing(self) -> list[MailIntent]:
        """Intents a crash left behind: notes that may or may not have been written."""
        rows = self.db.execute(
            "SELECT gmail_id, thread_id, note, sha256, rule FROM gmail_messages WHERE state = 'writing'"
        )
        return [MailIntent(r[0], r[1], r[2] or "", r[3] or "", r[4]) for r in rows]

    def forget_mail(self, gmail_ids: list[str]) -> None:
        """Forget messages whose note never reached the vault: the next sync takes them again."""
        with self.transaction() as db:
            db.executemany("DELETE FROM gmail_messages WHERE gmail_id = ?", [(i,) for i in gmail_ids])

    def unmarked_mail(self, limit: int = 1000) -> list[str]:
        """Stored messages not yet marked in Gmail (remove UNREAD, or add the label)."""
        rows = self.db.execute(
            "SELECT gmail_id FROM gmail_messages WHERE marked = 0 AND state = 'stored' ORDER BY ts LIMIT ?", (limit,)
        )
        return [str(row[0]) for row in rows]

    def mail_marked(self, gmail_ids: list[str]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE gmail_messages SET marked = 1 WHERE gmail_id = ?", [(i,) for i in gmail_ids])

    def mail_counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT state, COUNT(*) FROM gmail_messages GROUP BY state")
        return {str(row[0]): int(row[1]) for row in rows}

    def gmail_state(self) -> dict[str, str]:
        return {str(row[0]): str(row[1]) for row in self.db.execute("SELECT key, value FROM gmail_state")}

    def set_gmail_state(self, **values: str | None) -> None:
        """Set (or, with None, clear) keys of the sync state in one transaction."""
        with self.transaction() as db:
            for key, value in values.items():
                if value is None:
                    db.execute("DELETE FROM gmail_state WHERE key = ?", (key,))
                else:
                    db.execute("INSERT OR REPLACE INTO gmail_state (key, value) VALUES (?, ?)", (key, value))
