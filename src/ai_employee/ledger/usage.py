"""The ledger's record of model calls: tokens, cost and outcome of each, for budgets and `vault budget`."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Usage:
    """One model call's tokens, cost and outcome."""

    model: str
    scope: str  # reactive (planning what arrived) | proactive (scheduled work)
    action_id: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    cost_usd: float
    duration_ms: int
    outcome: str  # ok | error | timeout | lost


class UsageRecords:
    """The `token_usage` queries of the ledger (a part of `Ledger`, which provides `db` and
    `transaction`)."""

    db: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # pragma: no cover (Ledger's)

    def record_usage(self, usage: Usage, ts: str | None = None, release: int | None = None) -> None:
        """One model call, whatever came of it, at `ts` (default: now); in the same transaction the
        budget reservation `release` it was made under is dropped."""
        with self.transaction() as db:
            if release is not None:
                db.execute("DELETE FROM budget_reservations WHERE id = ?", (release,))
            db.execute(
                "INSERT INTO token_usage (ts, model, plan_id, action_id, scope, input_tokens, output_tokens,"
                " cache_read_tokens, cache_creation_tokens, cost_usd, duration_ms, outcome)"
                " VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    ts or now_iso(),
                    usage.model,
                    usage.action_id,
                    usage.scope,
                    usage.input_tokens,
                    usage.output_tokens,
                    usage.cache_read_tokens,
                    usage.cache_creation_tokens,
                    usage.cost_usd,
                    usage.duration_ms,
                    usage.outcome,
                ),
            )

    def tokens_used(self, scope: str, start_iso: str, end_iso: str) -> tuple[int, float]:
        """Tokens a scope's calls were billed for in [start, end) (fresh input, cache reads and writes,
        output), and their estimated cost."""
        row = self.db.execute(
            "SELECT COALESCE(SUM(input_tokens + output_tokens + cache_read_tokens + cache_creation_tokens), 0),"
            " COALESCE(SUM(cost_usd), 0) FROM token_usage WHERE scope = ? AND ts >= ? AND ts < ?",
            (scope, start_iso, end_iso),
        ).fetchone()
        return int(row[0]), float(row[1])

    def usage(self, since_iso: str = "") -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM token_usage WHERE ts >= ? ORDER BY id", (since_iso,)))

    def tokens_since(self, since_iso: str) -> dict[str, int]:
        row = self.db.execute(
            "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0) FROM token_usage WHERE ts >= ?",
            (since_iso,),
        ).fetchone()
        return {"input_tokens": int(row[0]), "output_tokens": int(row[1])}
