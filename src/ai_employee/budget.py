"""Daily token budgets per scope (`reactive`: planning what arrived; `proactive`: scheduled work).

Before a model call its worst case (the input's estimate plus `max_tokens`) is reserved in the ledger;
the call goes ahead only if the day's use plus every reservation plus this one fits the budget. After
the call the reservation is settled to the real usage. So a budget is never exceeded, not even by one
call, not even by calls side by side. A reservation left by a crash counts as spent (its worst case):
the call may have been answered and billed.

Days start at midnight in `budget.timezone` (default: the machine's). `budget.warning` is published when
a scope's use crosses 80% and 95% of its budget, each once per scope and day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from ai_employee.clock import day_bounds
from ai_employee.config import BudgetConfig
from ai_employee.events import BudgetPayload, EventName, Payload
from ai_employee.ledger import Ledger, Usage

SCOPES = ("reactive", "proactive")
WARN_AT = (80, 95)


class BudgetSpent(Exception):
    """The call does not fit today's budget; the message says so in a few words, for the note."""


@dataclass(frozen=True)
class Reservation:
    id: int
    scope: str
    tokens: int
    action_id: str


class Budget:
    def __init__(
        self,
        ledger: Ledger,
        config: BudgetConfig,
        publish: Callable[[EventName, Payload], object] = lambda name, payload: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.ledger = ledger
        self.config = config
        self.publish = publish
        self.clock = clock

    def limit(self, scope: str) -> int | None:
        return self.config.reactive_daily_tokens if scope == "reactive" else self.config.proactive_daily_tokens

    @property
    def zone(self) -> tzinfo:
        if self.config.timezone:
            return ZoneInfo(self.config.timezone)
        return datetime.now().astimezone().tzinfo or UTC

    def _day(self, when: datetime | None = None) -> tuple[date, str, str]:
        """The day `when` (default: now) falls on, and its start and end as UTC timestamps."""
        return day_bounds(when or self.clock(), self.zone)

    def used(self, scope: str, when: datetime | None = None) -> int:
        _, start, end = self._day(when)
        return self.ledger.tokens_used(scope, start, end)[0]

    def used_fraction(self, scope: str) -> float | None:
        """How much of today's budget of a scope is used (1.0: spent); None if it has no limit."""
        limit = self.limit(scope)
        return None if limit is None else (self.used(scope) + self.held(scope)) / limit

    def held(self, scope: str) -> int:
        row = self.ledger.db.execute(
            "SELECT COALESCE(SUM(tokens), 0) FROM budget_reservations WHERE scope = ?", (scope,)
        ).fetchone()
        return int(row[0])

    def reserve(self, scope: str, tokens: int, action_id: str = "") -> Reservation:
        """Hold `tokens` for a call, or raise BudgetSpent if they do not fit today's budget."""
        with self.ledger.transaction() as db:
            limit = self.limit(scope)
            if limit is not None:
                taken = self.used(scope) + self.held(scope)
                if taken + tokens > limit:
                    raise BudgetSpent(
                        f"today's {scope} token budget is spent: {taken:,} of {limit:,} used or held, and the"
                        f" next call could need {tokens:,}"
                    )
            cursor = db.execute(
                "INSERT INTO budget_reservations (ts, scope, tokens, action_id) VALUES (?, ?, ?, ?)",
                (_iso(self.clock()), scope, tokens, action_id),
            )
        return Reservation(int(cursor.lastrowid or 0), scope, tokens, action_id)

    def settle(self, reservation: Reservation, usage: Usage) -> None:
        """The call is over: record what it really used in place of what was held; warn if the day's use
        crossed a threshold."""
        self.ledger.record_usage(replace(usage, scope=reservation.scope), _iso(self.clock()), reservation.id)
        self._warn(reservation.scope)

    def settle_unknown(self, reservation: Reservation, usage: Usage) -> None:
        """The call's fate is unknown (cut off while in flight): its worst case counts as used."""
        self.settle(reservation, replace(usage, input_tokens=reservation.tokens))

    def clear_stale(self) -> int:
        """At start-up: reservations a crash left behind count as spent (their worst case)."""
        rows = list(self.ledger.db.execute("SELECT * FROM budget_reservations ORDER BY id"))
        for row in rows:
            lost = Usage("", row["scope"], row["action_id"] or "", row["tokens"], 0, 0, 0, 0.0, 0, "lost")
            self.ledger.record_usage(lost, row["ts"], row["id"])
        return len(rows)

    def _warn(self, scope: str) -> None:
        limit = self.limit(scope)
        if not limit:
            return
        used = self.used(scope)
        day, _, _ = self._day()
        for percent in WARN_AT:
            if used * 100 < limit * percent:
                continue
            with self.ledger.transaction() as db:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO budget_warnings (day, scope, percent) VALUES (?, ?, ?)",
                    (day.isoformat(), scope, percent),
                )
            if cursor.rowcount == 1:
                self.publish(EventName.BUDGET_WARNING, BudgetPayload(scope, percent, used, limit, day.isoformat()))

    def summary(self, days: int = 7) -> dict[str, Any]:
        """Today's use, holds and remainder per scope, with cost; and the last `days` days."""
        today, start, end = self._day()
        scopes = {}
        for scope in SCOPES:
            limit, used, held = self.limit(scope), self.used(scope), self.held(scope)
            scopes[scope] = {
                "used": used,
                "reserved": held,
                "limit": limit,
                "remaining": None if limit is None else max(0, limit - used - held),
                "cost_usd": round(self._cost(scope, start, end), 4),
            }
        history = []
        for back in range(days - 1, -1, -1):
            when = datetime.combine(today - timedelta(days=back), datetime.min.time(), self.zone)
            _, day_start, day_end = self._day(when)
            history.append(
                {
                    "day": (today - timedelta(days=back)).isoformat(),
                    **{scope: self.used(scope, when) for scope in SCOPES},
                    "cost_usd": round(sum(self._cost(scope, day_start, day_end) for scope in SCOPES), 4),
                }
            )
        return {"day": today.isoformat(), "timezone": str(self.zone), "scopes": scopes, "history": history}

    def _cost(self, scope: str, start: str, end: str) -> float:
        return self.ledger.tokens_used(scope, start, end)[1]


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def estimate_tokens(*texts: str) -> int:
    """An upper bound of the tokens in `texts`, for reservations (the real count is settled after the
    call): half their UTF-8 bytes. English runs at about 4 characters a token, and text in scripts of
    3-byte characters (Chinese, Japanese) at about one character a token, so both stay under it."""
    return sum(len(text.encode("utf-8")) for text in texts) // 2 + 16
