"""The ledger's runs and outbox: each attempt at a plan (`runs`) and each step's call (`executions`),
written before the call and after it, so a step that ran is never run again and one in doubt is
handed to the human. Also what the executor asks of them: rate-limit windows, tries, interventions."""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass

from ai_employee.ledger.usage import now_iso


@dataclass(frozen=True)
class RunRecord:
    plan_id: str
    attempt: int
    plan_hash: str
    dry_run: bool
    state: str
    started: str
    finished: str | None
    detail: str


@dataclass(frozen=True)
class StepRecord:
    plan_id: str
    attempt: int
    step_index: int
    idem_key: str
    tool: str
    args_hash: str
    dry_run: bool
    state: str
    result: str
    tries: int = 1
    failure: str = ""


class RunRecords:
    """The `runs` and `executions` queries of the ledger (a part of `Ledger`, which provides `db` and
    `durable`)."""

    db: sqlite3.Connection

    def durable(self, really: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError  # pragma: no cover (Ledger's)

    def runs(self, plan_id: str) -> list[RunRecord]:
        rows = self.db.execute("SELECT * FROM runs WHERE plan_id = ? ORDER BY attempt", (plan_id,))
        return [_run_record(row) for row in rows]

    def unfinished_runs(self) -> list[RunRecord]:
        rows = self.db.execute("SELECT * FROM runs WHERE state = 'started' ORDER BY started")
        return [_run_record(row) for row in rows]

    def start_run(self, plan_id: str, plan_hash: str, dry_run: bool) -> int:
        """Claim the next attempt number for a plan; the row is durable before any step runs."""
        with self.durable(not dry_run) as db:
            row = db.execute("SELECT COALESCE(MAX(attempt), 0) FROM runs WHERE plan_id = ?", (plan_id,)).fetchone()
            attempt = int(row[0]) + 1
            db.execute(
                "INSERT INTO runs (plan_id, attempt, plan_hash, dry_run, state, started)"
                " VALUES (?, ?, ?, ?, 'started', ?)",
                (plan_id, attempt, plan_hash, int(dry_run), now_iso()),
            )
        return attempt

    def finish_run(self, plan_id: str, attempt: int, state: str, detail: str = "", durable: bool = True) -> None:
        with self.durable(durable) as db:
            db.execute(
                "UPDATE runs SET state = ?, finished = ?, detail = ? WHERE plan_id = ? AND attempt = ?",
                (state, now_iso(), detail, plan_id, attempt),
            )
            if state in ("interrupted", "stopped"):
                db.execute(
                    "UPDATE executions SET state = 'interrupted', finished = ?"
                    " WHERE plan_id = ? AND attempt = ? AND state = 'started'",
                    (now_iso(), plan_id, attempt),
                )

    def step_started(
        self,
        plan_id: str,
        attempt: int,
        step_index: int,
        idem_key: str,
        tool: str,
        args_hash: str,
        dry_run: bool,
    ) -> None:
        with self.durable(not dry_run) as db:
            db.execute(
                "INSERT INTO executions"
                " (plan_id, attempt, step_index, idem_key, tool, args_hash, dry_run, state, started)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'started', ?)",
                (plan_id, attempt, step_index, idem_key, tool, args_hash, int(dry_run), now_iso()),
            )

    def step_finished(
        self,
        plan_id: str,
        attempt: int,
        step_index: int,
        state: str,
        result: str,
        durable: bool = True,
        failure: str = "",
    ) -> None:
        with self.durable(durable) as db:
            db.execute(
                "UPDATE executions SET state = ?, result = ?, finished = ?, failure = ?"
                " WHERE plan_id = ? AND attempt = ? AND step_index = ?",
                (state, result, now_iso(), failure, plan_id, attempt, step_index),
            )

    def step_retried(self, plan_id: str, attempt: int, step_index: int) -> None:
        """A step is about to be tried again (its earlier try failed and did not happen): `started`
        again, durably, before the call, as before the first."""
        with self.durable() as db:
            db.execute(
                "UPDATE executions SET state = 'started', tries = tries + 1, started = ?, finished = NULL"
                " WHERE plan_id = ? AND attempt = ? AND step_index = ?",
                (now_iso(), plan_id, attempt, step_index),
            )

    def live_calls_since(self, tool: str, since: str) -> list[str]:
        """When each live call of `tool` started since `since` (oldest first): what a rate limit counts."""
        rows = self.db.execute(
            "SELECT started FROM executions WHERE tool = ? AND started >= ? AND dry_run = 0"
            " AND state NOT IN ('skipped', 'dry_run') ORDER BY started",
            (tool, since),
        )
        return [str(row[0]) for row in rows]

    def last_failure(self, plan_id: str) -> sqlite3.Row | None:
        """The plan's latest failed or doubtful step (any attempt), with its tries and kind."""
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM executions WHERE plan_id = ? AND state IN ('error', 'unknown', 'interrupted')"
            " ORDER BY attempt DESC, step_index DESC LIMIT 1",
            (plan_id,),
        ).fetchone()
        return row

    def successes(self, plan_id: str, tool: str, args_hash: str) -> int:
        """How many live calls of this tool with these arguments succeeded for the plan (any attempt,
        whatever their step number: a person may have deleted or moved steps before resuming)."""
        row = self.db.execute(
            "SELECT COUNT(*) FROM executions WHERE plan_id = ? AND tool = ? AND args_hash = ?"
            " AND state = 'ok' AND dry_run = 0",
            (plan_id, tool, args_hash),
        ).fetchone()
        return int(row[0])

    def steps(self, plan_id: str, attempt: int) -> list[StepRecord]:
        rows = self.db.execute(
            "SELECT * FROM executions WHERE plan_id = ? AND attempt = ? ORDER BY step_index",
            (plan_id, attempt),
        )
        return [
            StepRecord(
                plan_id=row["plan_id"],
                attempt=row["attempt"],
                step_index=row["step_index"],
                idem_key=row["idem_key"],
                tool=row["tool"],
                args_hash=row["args_hash"],
                dry_run=bool(row["dry_run"]),
                state=row["state"],
                result=row["result"],
                tries=row["tries"],
                failure=row["failure"],
            )
            for row in rows
        ]


def _run_record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        plan_id=row["plan_id"],
        attempt=row["attempt"],
        plan_hash=row["plan_hash"],
        dry_run=bool(row["dry_run"]),
        state=row["state"],
        started=row["started"],
        finished=row["finished"],
        detail=row["detail"],
    )
