"""The ledger's totals, for `vault stats`: counts by kind, and the outcomes of plans and decisions."""

from __future__ import annotations

import sqlite3
from typing import Any


class StatsRecords:
    """Queries over the whole ledger (a part of `Ledger`, which provides `db`)."""

    db: sqlite3.Connection

    def decision_stats(self) -> dict[str, Any]:
        """Outcomes of plans: approved by a person, by the policy, denied, expired; the approval rate of
        people's decisions; the median time from a plan to a person's decision; plans run by the policy."""
        counts = {
            str(row[0]): int(row[1])
            for row in self.db.execute(
                "SELECT decision, COUNT(DISTINCT plan_id) FROM decisions"
                " WHERE decision IN ('approve', 'auto_approve', 'deny', 'expire') GROUP BY decision"
            )
        }
        waits = sorted(
            float(row[0])
            for row in self.db.execute(
                "SELECT (julianday(d.ts) - julianday(p.created)) * 86400 FROM decisions d JOIN plans p"
                " ON p.plan_id = d.plan_id WHERE d.decision IN ('approve', 'deny') AND d.channel != 'policy'"
            )
            if row[0] is not None and row[0] >= 0
        )
        auto_run = self.db.execute(
            "SELECT COUNT(DISTINCT r.plan_id) FROM runs r JOIN decisions d ON d.plan_id = r.plan_id"
            " WHERE d.decision = 'auto_approve' AND r.state = 'done'"
        ).fetchone()[0]
        people = counts.get("approve", 0) + counts.get("deny", 0)  # an expiry is nobody's decision
        median = None
        if waits:
            middle = len(waits) // 2
            median = waits[middle] if len(waits) % 2 else (waits[middle - 1] + waits[middle]) / 2
        return {
            "approved": counts.get("approve", 0),
            "auto_approved": counts.get("auto_approve", 0),
            "denied": counts.get("deny", 0),
            "expired": counts.get("expire", 0),
            "approval_rate": round(counts.get("approve", 0) / people, 3) if people else None,
            "median_time_to_decide_s": round(median, 1) if median is not None else None,
            "auto_executed": int(auto_run),
        }

    def counts(self) -> dict[str, Any]:
        """Totals for `vault stats`: events by name, decisions by kind, runs by state."""

        def grouped(sql: str) -> dict[str, int]:
            return {str(row[0]): int(row[1]) for row in self.db.execute(sql)}

        return {
            "events": grouped("SELECT name, COUNT(*) FROM events GROUP BY name ORDER BY name"),
            "decisions": grouped("SELECT decision, COUNT(*) FROM decisions GROUP BY decision ORDER BY decision"),
            "runs": grouped("SELECT state, COUNT(*) FROM runs GROUP BY state ORDER BY state"),
            "steps": grouped("SELECT state, COUNT(*) FROM executions GROUP BY state ORDER BY state"),
            "plans": grouped("SELECT criticality, COUNT(*) FROM plans GROUP BY criticality ORDER BY criticality"),
        }
