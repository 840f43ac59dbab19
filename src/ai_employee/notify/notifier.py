"""The notifier service: reads the events the ledger holds, routes them to channels, and delivers them
with rate limits, digests and quiet hours, at most once per channel.

Nothing happens on the event bus's publishing path: a subscriber only sets a flag; the service reads
events after its cursor from its own ledger connection (so it also sees what the CLI did), and every
send runs on a worker thread. A slow channel delays only the notifier, never the pipeline.

Per channel: HIGH is sent at once, alone, whatever the hour or the rate; the rest waits for quiet
hours to end and for `min_interval_s` since the channel's last message, then goes as one message, or
as one digest when several waited. A failed delivery is tried again with backoff (up to `MAX_TRIES`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from ulid import ULID

from ai_employee.clock import local_zone
from ai_employee.events import Event, EventBus
from ai_employee.ledger import Ledger
from ai_employee.ledger.notifications import Outgoing, Queued
from ai_employee.notify.channels import Channel, Delivery
from ai_employee.notify.config import NotifyConfig, QuietHours
from ai_employee.notify.messages import DECIDING, Message, at_least, criticality_of, digest, kind_of, render
from ai_employee.vault.layout import Vault

log = structlog.get_logger(__name__)
POLL_S = 2.0  # how often the ledger is read for events the CLI wrote (the bus wakes it for the engine's)
MAX_TRIES = 8
STOP_GRACE_S = 20.0  # a stop waits this long at most for the cycle in progress (sends time out at 15 s)
RETRY_BASE_S = 30.0
RETRY_MAX_S = 1800.0


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def quiet_until(now: datetime, quiet: QuietHours | None) -> datetime | None:
    """When the quiet hours `now` falls in end; None if it is not in quiet hours."""
    if quiet is None:
        return None
    zone: tzinfo = ZoneInfo(quiet.timezone) if quiet.timezone else local_zone()
    local = now.astimezone(zone)
    start = local.replace(hour=quiet.start.hour, minute=quiet.start.minute, second=0, microsecond=0)
    end = local.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
    if quiet.start <= quiet.end:  # within one day, e.g. 12:00-14:00
        return end if start <= local < end else None
    if local >= start:  # overnight, e.g. 22:00-07:00: before midnight
        return end + timedelta(days=1)
    return end if local < end else None


@dataclass
class _Batch:
    channel: str
    rows: list[Outgoing]
    messages: list[Message] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)


class Notifier:
    name = "notifier"

    def __init__(
        self,
        vault: Vault,
        config: NotifyConfig,
        bus: EventBus,
        channels: dict[str, Channel],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.vault = vault
        self.redact = redact
        self.config = config
        self.channels = channels
        self.clock = clock
        self.fault: str | None = None
        self._wake = asyncio.Event()
        self._ledger: Ledger | None = None
        self._db = threading.Lock()  # the ledger connection is used by one worker thread at a time
        bus.subscribe(self._on_event)

    def _on_event(self, _event: Event) -> None:
        self._wake.set()  # only a flag: routing and sending happen on the notifier's own time

    def healthy(self) -> bool:
        return self.fault is None

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.vault.ledger_path)
            abandoned = self._ledger.abandon_sending()
            if abandoned:
                log.warning("notifications left in flight by a crash are not sent again", count=abandoned)
        return self._ledger

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                # A stop lets the cycle in progress finish (its sends are bounded by their timeout), so
                # a message handed to a channel is recorded as sent, and a claimed one is sent.
                cycle = asyncio.ensure_future(self.cycle())
                try:
                    wait_s = await asyncio.shield(cycle)
                except asyncio.CancelledError:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(cycle, STOP_GRACE_S)
                    raise
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(wait_s, POLL_S))
        finally:
            self.close()

    def close(self) -> None:
        with self._db:  # not while a worker thread still uses the connection
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None
        for channel in self.channels.values():
            closing = getattr(channel, "close", None)
            if closing is not None:
                closing()

    async def cycle(self) -> float:
        """Route new events, send what is due, settle it; seconds until something is due again."""
        batches: list[_Batch]
        wait_s: float
        batches, wait_s = await asyncio.to_thread(self._locked, self._prepare)
        if not batches:
            return wait_s
        # Channels side by side; one channel's messages in order, on one thread (an Apprise object is
        # not shared between threads, and some services want their messages spaced out).
        by_channel: dict[str, list[_Batch]] = {}
        for batch in batches:
            by_channel.setdefault(batch.channel, []).append(batch)
        sent = await asyncio.gather(*(asyncio.to_thread(self._send_all, group) for group in by_channel.values()))
        done = [batch for group in by_channel.values() for batch in group]
        results = [delivery for deliveries in sent for delivery in deliveries]
        await asyncio.to_thread(self._locked, lambda: self._settle(done, results))
        return 0.0

    def _locked(self, work: Callable[[], Any]) -> Any:
        with self._db:
            return work()

    # routing ----------------------------------------------------------------------------------------
    def route(self) -> None:
        """Queue a row per (event, channel) for the events after the cursor, and move the cursor."""
        ledger = self.ledger
        cursor = ledger.notify_cursor()
        events = ledger.events_after(cursor)
        if not events:
            return
        queued: list[Queued] = []
        oldest = self.clock() - timedelta(seconds=self.config.max_age_s)
        for row in events:
            data = _payload(row["payload"])
            for channel in self.channels.values():
                try:
                    channel.observe(str(row["name"]), {**data, "_ts": str(row["ts"])})
                except Exception as exc:  # a channel's trouble must not hold up routing
                    log.warning("a channel could not follow an event", channel=channel.name, error=type(exc).__name__)
            kind = kind_of(str(row["name"]), data)
            if kind is None or datetime.fromisoformat(row["ts"]) < oldest:
                continue
            try:
                queued += self._rows_for(int(row["id"]), str(row["ts"]), kind, data)
            except Exception:  # one event that cannot be told (a broken note) must not stop the others
                log.exception("an event could not be routed; it is not notified", event_id=int(row["id"]))
        ledger.queue_notifications(int(events[-1]["id"]), queued, _iso(self.clock()))

    def _rows_for(self, event_id: int, ts: str, kind: str, data: dict[str, Any]) -> list[Queued]:
        plan_id = str(data.get("plan_id") or "")
        level = criticality_of(kind, data, self.ledger.plan_criticality(plan_id) if plan_id else None)
        targets: list[str] = []
        for route in self.config.active_routes():
            if kind in route.events and at_least(level, route.min_criticality):
                names = list(self.channels) if "*" in route.channels else route.channels
                targets += [name for name in names if name in self.channels and name not in targets]
        if not targets:
            return []
        message = render(kind, level, data, self.vault)
        if message is None:
            return []
        return [Queued(event_id, name, kind, level, plan_id, message.title, message.body, ts) for name in targets]

    # delivery ---------------------------------------------------------------------------------------
    def _prepare(self) -> tuple[list[_Batch], float]:
        self.route()
        now = self.clock()
        batches: list[_Batch] = []
        waits = [POLL_S * 15]
        quiet_end = quiet_until(now, self.config.quiet_hours)
        for name in self.channels:
            due = self.ledger.due_notifications(name, _iso(now))
            urgent = [row for row in due if row.criticality == "high"]
            rest = [row for row in due if row.criticality != "high"]
            batches += [_Batch(name, [row]) for row in urgent]
            if not rest:
                continue
            last = self.ledger.last_sent(name)
            free_at = datetime.fromisoformat(last) + timedelta(seconds=self.config.min_interval_s) if last else now
            if quiet_end is not None:
                waits.append((quiet_end - now).total_seconds())
            elif free_at > now:
                waits.append((free_at - now).total_seconds())
            else:
                batches.append(_Batch(name, rest))
        for batch in batches:
            self._fill(batch)
            if batch.skipped:
                self.ledger.settle_notifications(batch.skipped, "skipped", "decided before it was sent", _iso(now))
        claimed = [row.id for batch in batches for row in batch.rows if row.id not in batch.skipped]
        if claimed:
            self.ledger.claim_notifications(claimed, str(ULID()))
        next_try = self.ledger.next_notification_try(_iso(now))
        if next_try is not None:
            waits.append((datetime.fromisoformat(next_try) - now).total_seconds())
        return [b for b in batches if b.messages], max(0.05, min(waits))

    def _fill(self, batch: _Batch) -> None:
        """The messages of a batch as they are now: a plan decided while its request waited is skipped,
        and a request shows the steps as they are at sending time."""
        for row in batch.rows:
            message = Message(row.kind, row.criticality, row.title, row.body, row.plan_id)
            if row.kind in DECIDING:
                event = self.ledger.event(row.event_id)
                try:
                    fresh = render(row.kind, row.criticality, _payload(event["payload"]) if event else {}, self.vault)
                except Exception:  # the note cannot be read now: the request is not sent
                    log.exception("a request could not be rendered", event_id=row.event_id)
                    fresh = None
                if fresh is None:
                    batch.skipped.append(row.id)
                    continue
                message = fresh
            batch.messages.append(message)

    def _send_all(self, batches: list[_Batch]) -> list[Delivery]:
        return [self._send(batch) for batch in batches]

    def _send(self, batch: _Batch) -> Delivery:
        channel = self.channels[batch.channel]
        one = len(batch.messages) == 1
        message = batch.messages[0] if one else digest(batch.messages)
        try:
            delivery = channel.send(message, [] if one else batch.messages)
        except Exception as exc:  # a channel's bug must not stop the notifier
            delivery = Delivery(False, self.redact(f"{type(exc).__name__}: {exc}"))
        if delivery.ok:
            log.info("notified", channel=batch.channel, kind=message.kind, messages=len(batch.messages))
        else:
            log.warning("notification not delivered", channel=batch.channel, detail=delivery.detail)
        return delivery

    def _settle(self, batches: list[_Batch], results: list[Delivery]) -> None:
        now = self.clock()
        for batch, delivery in zip(batches, results, strict=True):
            sent = [row for row in batch.rows if row.id not in batch.skipped]
            if delivery.ok:
                self.ledger.settle_notifications([r.id for r in sent], "sent", delivery.detail, _iso(now))
                continue
            for row in sent:
                tries = row.tries + 1
                if tries >= MAX_TRIES:
                    self.ledger.settle_notifications([row.id], "gave_up", delivery.detail, _iso(now))
                else:
                    retry = now + timedelta(seconds=min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (tries - 1)))
                    self.ledger.settle_notifications([row.id], "failed", delivery.detail, _iso(now), _iso(retry))
        self.fault = None


def _payload(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
