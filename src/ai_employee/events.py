"""The event bus: a fixed set of event names with typed payloads, recent history kept in memory.

Every transition in the pipeline publishes one event; subscribers (the ledger, the dashboard writer,
later the notifier) react. The same name strings go into the ledger's `events` table.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from ai_employee.errors import machine_fault

log = structlog.get_logger(__name__)
HISTORY_SIZE = 1000


class EventName(enum.StrEnum):
    FILE_CREATED = "file.created"
    FILE_QUARANTINED = "file.quarantined"
    FILE_DUPLICATE = "file.duplicate"
    ACTION_GENERATED = "action.generated"
    PLAN_CREATED = "plan.created"
    APPROVAL_REQUIRED = "approval.required"
    APPROVAL_REMINDER = "approval.reminder"
    ACTION_APPROVED = "action.approved"
    ACTION_DENIED = "action.denied"
    ACTION_DEFERRED = "action.deferred"
    ACTION_EXPIRED = "action.expired"
    REVISION_REQUESTED = "plan.revision_requested"
    PLAN_REVISED = "plan.revised"
    ACTION_EXECUTED = "action.executed"
    ACTION_FAILED = "action.failed"
    PLAN_EXECUTION_COMPLETED = "plan.execution_completed"
    PLAN_INTERRUPTED = "plan.interrupted"
    PLAN_DUPLICATE = "plan.duplicate"
    EMAIL_RECEIVED = "email.received"
    GMAIL_SYNCED = "gmail.synced"
    GMAIL_PAUSED = "gmail.paused"
    GMAIL_RESUMED = "gmail.resumed"
    SERVICE_STARTED = "service.started"
    SERVICE_STOPPED = "service.stopped"
    SERVICE_ERROR = "service.error"
    HEALTH_STATUS = "health.status"
    BUDGET_WARNING = "budget.warning"
    ENGINE_STARTED = "engine.started"
    ENGINE_STOPPED = "engine.stopped"
    ENGINE_CRASHED = "engine.crashed"  # found at start: the previous run did not stop cleanly
    STAGE_ERROR = "stage.error"
    PIPELINE_PAUSED = "pipeline.paused"
    PIPELINE_RESUMED = "pipeline.resumed"
    SERVER_PAUSED = "server.paused"
    SERVER_RESUMED = "server.resumed"
    MONITOR_ALERT = "monitor.alert"


@dataclass(frozen=True)
class Payload:
    """Base of every payload; subclasses add typed fields."""


@dataclass(frozen=True)
class FilePayload(Payload):
    path: str
    reason: str = ""


@dataclass(frozen=True)
class ActionPayload(Payload):
    action_id: str
    type: str
    title: str
    path: str


@dataclass(frozen=True)
class PlanPayload(Payload):
    plan_id: str
    action_id: str
    criticality: str
    path: str
    title: str = ""


@dataclass(frozen=True)
class ReminderPayload(Payload):
    plan_id: str
    criticality: str
    path: str
    title: str
    waiting_s: float
    expires: str | None = None  # when it will expire if nobody decides (ISO 8601), or None: never


@dataclass(frozen=True)
class DecisionPayload(Payload):
    plan_id: str
    decision: str
    channel: str
    actor: str
    feedback: str = ""
    title: str = ""


@dataclass(frozen=True)
class StepPayload(Payload):
    plan_id: str
    step_index: int
    tool: str
    outcome: str
    dry_run: bool
    detail: str = ""


@dataclass(frozen=True)
class ExecutionPayload(Payload):
    plan_id: str
    status: str
    steps: int
    dry_run: bool
    path: str
    detail: str = ""
    title: str = ""


@dataclass(frozen=True)
class ServicePayload(Payload):
    service: str
    detail: str = ""
    restarts: int = 0


@dataclass(frozen=True)
class MailPayload(Payload):
    gmail_id: str
    thread_id: str
    path: str  # the note in Inbox/ ("" for mail a noise rule skipped)
    rule: str = ""


@dataclass(frozen=True)
class SyncPayload(Payload):
    kind: str  # first | incremental | resync
    taken: int
    skipped: int
    detail: str = ""


@dataclass(frozen=True)
class StageErrorPayload(Payload):
    stage: str
    path: str
    error: str


@dataclass(frozen=True)
class PausePayload(Payload):
    problem: str
    paused_s: float = 0.0


@dataclass(frozen=True)
class ServerPayload(Payload):
    server: str
    kind: str  # auth | unavailable
    detail: str = ""
    paused_s: float = 0.0


@dataclass(frozen=True)
class MonitorPayload(Payload):
    monitor: str
    value: str
    reason: str
    criticality: str
    title: str
    action_id: str
    path: str


@dataclass(frozen=True)
class BudgetPayload(Payload):
    scope: str
    percent: int  # the threshold crossed: 80 or 95
    used: int
    limit: int
    day: str


@dataclass(frozen=True)
class Event:
    name: EventName
    payload: Payload
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))

    def data(self) -> dict[str, Any]:
        return asdict(self.payload)


Subscriber = Callable[[Event], None]


class EventBus:
    """In-process publish/subscribe. Subscribers run synchronously, in order, on the publisher's thread;
    one failing subscriber is logged and does not stop the others or the publisher."""

    def __init__(self, history_size: int = HISTORY_SIZE) -> None:
        self._subscribers: list[Subscriber] = []
        self.history: deque[Event] = deque(maxlen=history_size)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def publish(self, name: EventName, payload: Payload) -> Event:
        event = Event(name, payload)
        self.history.append(event)
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception as exc:
                fault = machine_fault(exc)
                if fault is None:
                    log.exception("event subscriber failed", event_name=str(name), subscriber=repr(subscriber))
                else:  # expected while the disk is full: one line, no traceback
                    log.warning("event subscriber failed", event_name=str(name), problem=fault)
        return event
