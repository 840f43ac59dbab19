"""Schedules: cron jobs that create an action at each slot, at most once per slot across restarts
and crashes, with missed slots handled per job (`catch_up: latest | all | skip`), and lateness said.

A slot is claimed in the ledger (durably) before its action file is written; the action's id is chosen
at the claim, so after a crash between the two the action is looked for by that id and written only
if it is not there. The action goes through the same pipeline as everything else (plan → policy →
approval → execution).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo

import structlog
from pydantic import Field, field_validator

from ai_employee.clock import local_zone
from ai_employee.config_sections import Section, known_zone
from ai_employee.proactive.onloop import EngineLoop

log = structlog.get_logger(__name__)
LATE_AFTER_S = 60.0  # a slot handled later than this after its time says it ran late
MAX_CATCH_UP = 50  # `catch_up: all` runs at most this many missed slots (the rest are recorded skipped)
MAX_SLOTS = 500  # missed slots looked at, newest first (older ones are neither run nor recorded one by one)
STALE_CLAIM_S = 900.0  # a slot claimed this long ago and not done is finished by the running engine
TICK_S = 30.0  # the service looks again at least this often (a clock that jumped, a config reloaded)
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")


class ScheduleConfig(Section):
    cron: str = Field(description="When, as a cron expression: `0 8 * * *` (08:00 daily), `0 7 * * mon`.")
    job: Literal["action", "review", "briefing"] = Field(
        "action",
        description="action: an action with `instructions`; review: an action listing what still waits;"
        " briefing: a note in Briefings/ on the period since the last one, its suggestions as actions.",
    )
    title: str = Field("", description="The action's title (default: the job's name).")
    instructions: str = Field("", description="What the planner is asked to do at each slot.")
    catch_up: Literal["latest", "all", "skip"] = Field(
        "latest", description="Slots missed while the engine was down: run the latest, all, or none."
    )
    timezone: str | None = Field(None, description="IANA zone the cron is read in; default: the machine's.")
    enabled: bool = True

    _known_zone = field_validator("timezone")(known_zone)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (minute hour day month weekday, e.g. `0 8 * * *`)")
        return value

    def zone(self) -> tzinfo:
        return ZoneInfo(self.timezone) if self.timezone else local_zone()


def check_names(names: Iterable[str], what: str = "schedule") -> None:
    """Names that become file names and ledger keys (a monitor's note is `Monitors/<name>.md`): lowercase
    letters, digits, - and _, so none can reach outside its folder."""
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"{what} name {name!r}: use lowercase letters, digits, - and _ (at most 48)")


def slots_between(job: ScheduleConfig, after: datetime, until: datetime, limit: int = MAX_SLOTS) -> list[datetime]:
    """The job's slots in (after, until], in UTC, oldest first, at most the newest `limit` (a minute cron
    over a month's downtime: the newest are what is decided on, and they are found without walking the
    month). DST is croniter's, in the job's zone: a time that does not exist that day moves on to the
    next that does; a wall time that happens twice (the night clocks go back) runs once."""
    from croniter import croniter

    zone = job.zone()
    it = croniter(job.cron, (until + timedelta(seconds=1)).astimezone(zone))
    newest_first: list[datetime] = []
    while len(newest_first) < limit:
        local = it.get_prev(datetime)
        slot = local.astimezone(UTC)
        if slot <= after:
            break
        if slot <= until:
            newest_first.append(local)
    # A wall time no later than one seen already (from `after` on: the scheduler asks slot by slot, so
    # the second 02:30 comes in the call after the one that ran the first) is the repeated hour's.
    seen = after.astimezone(zone).replace(tzinfo=None)
    found = []
    for local in reversed(newest_first):
        wall = local.replace(tzinfo=None)
        if wall > seen:
            found.append(local.astimezone(UTC))
            seen = wall
    return found


def next_slot(job: ScheduleConfig, after: datetime) -> datetime:
    from croniter import croniter

    slot: datetime = croniter(job.cron, after.astimezone(job.zone())).get_next(datetime)
    return slot.astimezone(UTC)


@dataclass(frozen=True)
class Due:
    """A slot to run now (`late_s` after its time), or to record as skipped. `missed`: its time passed
    while the engine was not running (else it was busy: a briefing being written)."""

    job: str
    slot: datetime
    late_s: float
    run: bool
    missed: bool = True


def due_slots(
    name: str, job: ScheduleConfig, last: datetime, now: datetime, looked: datetime | None = None
) -> list[Due]:
    """What to do with the slots since `last` (the latest slot handled, or when the job was first seen):
    every slot due by `now`, run or skipped per `catch_up`. A slot is missed when its time passed before
    the scheduler's previous look (`looked`; at start-up, on time means within LATE_AFTER_S): the
    newest slot that was not missed always runs."""
    slots = slots_between(job, last, now)
    if not slots:
        return []
    late = [(now - slot).total_seconds() for slot in slots]
    missed = [slot <= looked if looked is not None else late[i] > LATE_AFTER_S for i, slot in enumerate(slots)]
    if job.catch_up == "all":
        keep = set(range(max(0, len(slots) - MAX_CATCH_UP), len(slots)))
    elif job.catch_up == "latest":
        keep = {len(slots) - 1}
    else:  # skip: only a slot that was not missed runs
        keep = {len(slots) - 1} if not missed[-1] else set()
    return [Due(name, slot, late[i], i in keep, missed[i]) for i, slot in enumerate(slots)]


class Scheduler:
    """The service: at each slot of each enabled job, claim it and write its action (`fire`). Each cycle
    first finishes slots left claimed (`recover(older_than_s)`): at start-up every one (a crash), later
    those claimed STALE_CLAIM_S ago (a write that failed: a full disk), so none stays claimed for good."""

    name = "scheduler"

    def __init__(
        self,
        jobs: dict[str, ScheduleConfig],
        fire: Callable[[Due, str], None],
        claims: ScheduleClaims,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        recover: Callable[[float], object] = lambda older_than_s: None,
        engine: EngineLoop | None = None,
    ) -> None:
        self.jobs = {name: job for name, job in jobs.items() if job.enabled}
        self.recover = recover
        self.engine = engine or EngineLoop()  # what a job needs from the loop (Claude) runs there
        self.fire = fire
        self.claims = claims
        self.clock = clock
        self.fault: str | None = None
        self.handled = 0  # slots handled (run or skipped) since it started
        self.looked: datetime | None = None  # when the last cycle started (None: not yet)
        self._wake = asyncio.Event()

    def healthy(self) -> bool:
        return self.fault is None

    def cycle(self) -> float:
        """Handle every slot due now; seconds until the next one. A slot whose job fails (its action
        cannot be written) stays claimed, is retried by recovery, and makes the service unhealthy until
        a cycle goes through."""
        faults = []
        try:
            self.recover(0.0 if self.looked is None else STALE_CLAIM_S)
        except Exception as exc:
            log.exception("schedule recovery failed")
            faults.append(f"recovery: {type(exc).__name__}")
        looked, self.looked = self.looked, self.clock()
        waits = [TICK_S]
        for name, job in self.jobs.items():
            now = self.clock()  # a job before this one may have taken a while (Claude writing a briefing)
            last = self.claims.last_slot(name) or self.claims.first_seen(name, now)
            due = due_slots(name, job, last, now, looked)
            skipped = [d for d in due if not d.run]
            if skipped:
                self.handled += self.claims.skip(skipped)
                log.info("schedule slots skipped", job=name, slots=len(skipped), catch_up=job.catch_up)
            for one in (d for d in due if d.run):
                action_id = self.claims.claim(one)
                if action_id is None:
                    continue  # handled already (another engine, a restart)
                self.handled += 1
                try:
                    self.fire(one, action_id)
                except Exception as exc:  # one job's trouble is not the others'
                    log.exception("schedule slot failed", job=name, slot=one.slot.isoformat())
                    faults.append(f"{name}: {type(exc).__name__}")
            now = self.clock()
            waits.append((next_slot(job, now) - now).total_seconds())
        self.fault = "; ".join(faults) or None
        return max(0.5, min(waits))

    async def once(self) -> int:
        """One look, for `vault start --once` (cron): the slots due now run; how many were handled."""
        self.engine.attach()
        before = self.handled
        await asyncio.to_thread(self.cycle)
        return self.handled - before

    async def run(self) -> None:
        self.engine.attach()
        while True:
            wait_s = await asyncio.to_thread(self.cycle)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_s)
            self._wake.clear()


class ScheduleClaims:
    """The ledger's record of slots (see `ledger/schedules.py`), as the scheduler needs it."""

    def __init__(self, ledger: object) -> None:
        from ai_employee.ledger import Ledger

        assert isinstance(ledger, Ledger)
        self.ledger = ledger

    def last_slot(self, job: str) -> datetime | None:
        stamp = self.ledger.last_schedule_slot(job)
        return datetime.fromisoformat(stamp) if stamp else None

    def first_seen(self, job: str, now: datetime) -> datetime:
        """When the job was first seen: its slots start there (a new job does not run the past)."""
        return datetime.fromisoformat(self.ledger.schedule_since(job, now.astimezone(UTC).isoformat()))

    def claim(self, due: Due) -> str | None:
        """Claim a slot to run: the id its action will have; None if it was handled."""
        from ai_employee.vault.actions import new_id

        action_id = new_id()
        if self.ledger.claim_slot(due.job, due.slot.isoformat(), "claimed", round(due.late_s, 1), action_id):
            return action_id
        return None

    def skip(self, skipped: list[Due]) -> int:
        """Record slots skipped, in one transaction; how many were not on record already."""
        return self.ledger.skip_slots([(d.job, d.slot.isoformat(), round(d.late_s, 1)) for d in skipped])


def late_words(late_s: float) -> str:
    """How late a slot ran, in words ("" when on time)."""
    if late_s <= LATE_AFTER_S:
        return ""
    minutes = late_s / 60
    return f"{minutes:.0f} min late" if minutes < 120 else f"{minutes / 60:.1f} h late"
