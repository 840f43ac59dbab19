"""Time as the engine writes and shows it: local, with the offset, to the second in notes and to the
minute for people."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo


def local_now() -> datetime:
    return datetime.now().astimezone()


def now_stamp() -> str:
    """Now as ISO 8601 with the local offset, to the second (what notes and action files carry)."""
    return local_now().isoformat(timespec="seconds")


def local_time(stamp: str) -> str:
    """An ISO 8601 time (the ledger's, in UTC) as a person reads it: local, to the minute."""
    try:
        when = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return str(stamp)
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def day_bounds(when: datetime, zone: tzinfo) -> tuple[date, str, str]:
    """The day `when` falls on in `zone`, and its start and end (midnight to midnight there) as UTC
    timestamps in the ledger's format: for counting a day's use (budgets, `vault status`)."""
    day = when.astimezone(zone).date()

    def midnight(of: date) -> str:
        return datetime.combine(of, datetime.min.time(), zone).astimezone(UTC).isoformat(timespec="milliseconds")

    return day, midnight(day), midnight(day + timedelta(days=1))
