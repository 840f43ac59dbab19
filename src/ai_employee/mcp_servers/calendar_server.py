"""MCP server "calendar": events in a local iCalendar file in the vault (default `Calendar/calendar.ics`),
which Obsidian plugins and calendar apps (Apple Calendar, Thunderbird, Outlook) open or subscribe to.

Serve it over stdio with `python -m ai_employee.mcp_servers.calendar_server`. The environment says where:
AI_EMPLOYEE_VAULT (the vault), CALENDAR_FILE (vault-relative, ending in .ics) and CALENDAR_TIMEZONE (an
IANA name for times given without an offset; default: the machine's). Recurring events (from a calendar
you imported) are expanded when listing and finding free time. The file is replaced atomically, never
over an edit made meanwhile.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field
from typing_extensions import TypedDict  # nested ones need it on Python < 3.12 (pydantic)

from ai_employee import __version__
from ai_employee.clock import local_zone
from ai_employee.errors import ConcurrentEditError
from ai_employee.mcp_servers.email_server import check_header_value
from ai_employee.mcp_servers.vault_server import check_note_path, note_target
from ai_employee.vault import layout
from ai_employee.vault.fsops import FileOpError, create_file, os_reason, replace_file

log = logging.getLogger(__name__)
DEFAULT_FILE = "Calendar/calendar.ics"
MAX_EVENTS_LISTED = 500
MAX_DAYS = 366
UID_DOMAIN = "ai-employee.invalid"

When = Annotated[
    str, Field(description="A time as ISO 8601, e.g. '2026-12-05T10:00' (calendar's zone) or with an offset.")
]
Title = Annotated[str, Field(description="What the event is, one line, e.g. 'Call with Maria (BrightPath)'.")]
Minutes = Annotated[int, Field(ge=5, le=24 * 60, description="Length in minutes.")]
DayTime = Annotated[str, Field(description="A time of day as HH:MM, e.g. '09:00'.")]
IdempotencyKey = Annotated[str | None, Field(description="Filled in by the engine (the step's key); leave it out.")]


class EventInfo(TypedDict):
    uid: str
    title: str
    start: str
    end: str
    location: str


class EventCreated(TypedDict):
    uid: str
    path: str
    start: str
    end: str
    conflicts: list[EventInfo]


class EventList(TypedDict):
    events: list[EventInfo]


class Slot(TypedDict):
    start: str
    end: str


class FreeSlots(TypedDict):
    slots: list[Slot]


@dataclass(frozen=True)
class CalendarSettings:
    vault: Path
    file: str = DEFAULT_FILE
    zone: tzinfo = UTC

    @classmethod
    def from_env(cls, env: dict[str, str]) -> CalendarSettings:
        raw = env.get("AI_EMPLOYEE_VAULT", "")
        if not raw or not Path(raw).expanduser().is_dir():
            raise SystemExit("calendar MCP server: set AI_EMPLOYEE_VAULT to the vault folder")
        file = env.get("CALENDAR_FILE") or DEFAULT_FILE
        try:
            check_note_path(file, ".ics")
        except ToolError as exc:
            raise SystemExit(f"calendar MCP server: CALENDAR_FILE={file!r}: {exc}") from None
        name = env.get("CALENDAR_TIMEZONE", "")
        try:
            zone: tzinfo = ZoneInfo(name) if name else local_zone(env)
        except (ZoneInfoNotFoundError, ValueError):
            raise SystemExit(f"calendar MCP server: CALENDAR_TIMEZONE={name!r} is not an IANA time zone") from None
        return cls(Path(raw).expanduser().resolve(), file, zone)


def _parse_when(value: str, zone: tzinfo, what: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ToolError(f"refused: {what} {value!r} is not a time like 2026-12-05T10:00") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)


def _parse_day_time(value: str, what: str) -> time:
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ToolError(f"refused: {what} {value!r} is not a time of day like 09:00") from None


def _as_datetime(value: Any, zone: tzinfo) -> datetime:
    """An event's start or end: a date (all day) is midnight in the calendar's zone."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    if isinstance(value, date):
        return datetime.combine(value, time.min, zone)
    raise ValueError(f"not a time: {value!r}")


class CalendarFile:
    """The calendar file: read, changed and written back, never over an edit made meanwhile."""

    def __init__(self, settings: CalendarSettings) -> None:
        self.settings = settings
        self.vault = layout.Vault(settings.vault)
        self.rel = check_note_path(settings.file, ".ics")

    @property
    def path(self) -> Path:
        return note_target(self.settings.vault, self.rel)

    def read(self) -> tuple[Any, bytes | None]:
        from icalendar import Calendar

        path = self.path
        if not path.exists():
            calendar = Calendar()
            calendar.add("prodid", f"-//AI Employee//calendar {__version__}//EN")
            calendar.add("version", "2.0")
            return calendar, None
        raw = path.read_bytes()
        try:
            return Calendar.from_ical(raw), raw
        except ValueError as exc:
            raise ToolError(f"refused: {self.rel} is not a calendar file that can be read ({exc})") from None

    def write(self, calendar: Any, old: bytes | None) -> None:
        data = calendar.to_ical()
        path = self.path
        try:
            if old is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                written = create_file(path.parent, path.name, data, self.vault.tmp_dir)
                if written != path:  # someone created it meanwhile: never written over
                    written.unlink()
                    raise ToolError(f"{self.rel} was created meanwhile; nothing was written, try again")
            else:
                replace_file(path, data, self.vault.tmp_dir, expected=old)
        except ConcurrentEditError:
            raise ToolError(f"{self.rel} changed while the event was added; nothing was written, try again") from None
        except (OSError, FileOpError) as exc:
            raise ToolError(f"could not write {self.rel}: {os_reason(exc)}") from None

    def events(self, calendar: Any, start: datetime, end: datetime) -> list[EventInfo]:
        import recurring_ical_events

        zone = self.settings.zone
        found: list[EventInfo] = []
        for event in recurring_ical_events.of(calendar).between(start, end):
            begins = _as_datetime(event.decoded("dtstart"), zone)
            ends = _as_datetime(event.decoded("dtend"), zone) if event.get("dtend") else begins + timedelta(hours=1)
            found.append(
                {
                    "uid": str(event.get("uid", "")),
                    "title": str(event.get("summary", "")),
                    "start": begins.astimezone(zone).isoformat(timespec="minutes"),
                    "end": ends.astimezone(zone).isoformat(timespec="minutes"),
                    "location": str(event.get("location", "")),
                }
            )
        found.sort(key=lambda e: e["start"])
        return found[:MAX_EVENTS_LISTED]


def _window(start: datetime, end: datetime) -> None:
    if end <= start:
        raise ToolError("refused: the end must be after the start")
    if end - start > timedelta(days=MAX_DAYS):
        raise ToolError(f"refused: ask for at most {MAX_DAYS} days at a time")


def build_server(settings: CalendarSettings) -> MCPServer:
    """The "calendar" MCP server on the calendar file of `settings`."""
    file = CalendarFile(settings)
    zone = settings.zone

    def create_event(
        title: Title,
        start: When,
        end: When | None = None,
        duration_minutes: Minutes | None = None,
        location: str = "",
        description: str = "",
        attendees: list[str] | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> EventCreated:
        """Add an event to your calendar file; it invites nobody (attendees are only written down).

        Give `end` or `duration_minutes` (default 60). Returns its uid and the events it overlaps, if any.
        The same step run again adds nothing and returns the event it added.
        """
        from icalendar import Event

        check_header_value(title, "the title")
        check_header_value(location, "the location")
        begins = _parse_when(start, zone, "start")
        ends = _parse_when(end, zone, "end") if end else begins + timedelta(minutes=duration_minutes or 60)
        _window(begins, ends)
        calendar, old = file.read()
        seed = idempotency_key or os.urandom(16).hex()
        uid = f"{hashlib.sha256(seed.encode()).hexdigest()[:32]}@{UID_DOMAIN}"
        result: EventCreated = {
            "uid": uid,
            "path": file.rel.as_posix(),
            "start": begins.isoformat(timespec="minutes"),
            "end": ends.isoformat(timespec="minutes"),
            "conflicts": [e for e in file.events(calendar, begins, ends) if e["uid"] != uid],
        }
        if any(str(existing.get("uid")) == uid for existing in calendar.walk("VEVENT")):
            return result  # this step added it already
        event = Event()
        event.add("uid", uid)
        event.add("summary", title)
        event.add("dtstart", begins)
        event.add("dtend", ends)
        event.add("dtstamp", datetime.now(UTC))
        if location:
            event.add("location", location)
        if description:
            event.add("description", description)
        for attendee in attendees or []:
            event.add("attendee", f"mailto:{check_header_value(attendee, 'an attendee').strip()}")
        calendar.add_component(event)
        calendar.add_missing_timezones()
        file.write(calendar, old)
        log.info("event created uid=%s start=%s", uid, result["start"])
        return result

    def list_events(start: When, end: When) -> EventList:
        """The events between two times (recurring ones expanded), soonest first."""
        begins, ends = _parse_when(start, zone, "start"), _parse_when(end, zone, "end")
        _window(begins, ends)
        calendar, _ = file.read()
        return {"events": file.events(calendar, begins, ends)}

    def find_free_slots(
        start: When,
        end: When,
        duration_minutes: Minutes,
        day_start: DayTime = "09:00",
        day_end: DayTime = "17:00",
        weekdays_only: bool = True,
    ) -> FreeSlots:
        """Free times of at least `duration_minutes` between two times, within working hours
        (`day_start` to `day_end`, weekdays unless told otherwise), soonest first."""
        begins, ends = _parse_when(start, zone, "start"), _parse_when(end, zone, "end")
        _window(begins, ends)
        opens, closes = _parse_day_time(day_start, "day_start"), _parse_day_time(day_end, "day_end")
        if closes <= opens:
            raise ToolError("refused: day_end must be after day_start")
        calendar, _ = file.read()
        busy = [
            (datetime.fromisoformat(e["start"]), datetime.fromisoformat(e["end"]))
            for e in file.events(calendar, begins, ends)
        ]
        need = timedelta(minutes=duration_minutes)
        slots = free_slots(busy, begins, ends, need, (opens, closes), weekdays_only, zone)
        return {"slots": slots}

    server: MCPServer = MCPServer("calendar", version=__version__)
    reading = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    adding = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
    for tool, hints in ((create_event, adding), (list_events, reading), (find_free_slots, reading)):
        server.add_tool(tool, description=inspect.getdoc(tool), annotations=hints)
    return server


def free_slots(
    busy: list[tuple[datetime, datetime]],
    begins: datetime,
    ends: datetime,
    need: timedelta,
    hours: tuple[time, time],
    weekdays_only: bool,
    zone: tzinfo,
) -> list[Slot]:
    """The gaps of at least `need` between the `busy` intervals, day by day within `hours`."""
    slots: list[Slot] = []
    day = begins.astimezone(zone).date()
    while day <= ends.astimezone(zone).date() and len(slots) < MAX_EVENTS_LISTED:
        if not (weekdays_only and day.weekday() >= 5):
            cursor = max(begins, datetime.combine(day, hours[0], zone))
            closing = min(ends, datetime.combine(day, hours[1], zone))
            for b_start, b_end in sorted(busy):
                if b_end <= cursor or b_start >= closing:
                    continue
                if b_start - cursor >= need:
                    slots.append(_slot(cursor, b_start, zone))
                cursor = max(cursor, b_end)
            if closing - cursor >= need:
                slots.append(_slot(cursor, closing, zone))
        day += timedelta(days=1)
    return slots


def _slot(start: datetime, end: datetime, zone: tzinfo) -> Slot:
    return {
        "start": start.astimezone(zone).isoformat(timespec="minutes"),
        "end": end.astimezone(zone).isoformat(timespec="minutes"),
    }


def main() -> None:
    """Serve the calendar tools over stdio with settings from the environment."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    build_server(CalendarSettings.from_env(dict(os.environ))).run()


if __name__ == "__main__":
    main()
