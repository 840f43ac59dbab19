"""Time as the engine writes and shows it: local, with the offset, to the second in notes and to the
minute for people."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def local_now() -> datetime:
    return datetime.now().astimezone()


def local_zone(env: dict[str, str] | None = None) -> tzinfo:
    """The machine's time zone with its rules (`Europe/Berlin`, not today's `+01:00`), so that a time in
    July gets July's offset: from `$TZ`, else what `/etc/localtime` links to; else the current offset."""
    name = (os.environ if env is None else env).get("TZ", "").lstrip(":")
    if not name:
        try:
            target = str(Path("/etc/localtime").resolve())
        except OSError:
            target = ""
        name = target.partition("zoneinfo/")[2]
    try:
        return ZoneInfo(name) if name else local_now().tzinfo or UTC
    except (ZoneInfoNotFoundError, ValueError):
        return local_now().tzinfo or UTC


def now_stamp() -> str:
    """Now as ISO 8601 with the local offset, to the second (what notes and action files carry)."""
    return local_now().isoformat(timespec="seconds")


def local_time(stamp: str, zone: tzinfo | None = None) -> str:
    """An ISO 8601 time (the ledger's, in UTC) as a person reads it: local (or in `zone`), to the minute."""
    try:
        when = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return str(stamp)
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def day_bounds(when: datetime, zone: tzinfo) -> tuple[date, str, str]:
    """The day `when` falls on in `zone`, and its start and end (midnight to midnight there) as UTC
    timestamps in the ledger's format: for counting a day's use (budgets, `vault status`)."""
    day = when.astimezone(zone).date()

    def midnight(of: date) -> str:
        return datetime.combine(of, datetime.min.time(), zone).astimezone(UTC).isoformat(timespec="milliseconds")

    return day, midnight(day), midnight(day + timedelta(days=1))
