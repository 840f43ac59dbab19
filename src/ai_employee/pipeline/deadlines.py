"""Timeouts of waiting plans (`policy.timeouts`): a reminder once a plan has waited `remind_after`, and
expiry after `expire_after`: the plan is declined (`status: expired`, into `Rejected/`). A timeout never
approves. A plan waits from when it was written, or from the end of its last deferral (`vault defer`
postpones both). Deadlines come from what is stored (the note's `created` and `deferred_until`; the
ledger's reminders), so they hold across restarts: what expired while the engine was down expires at
start-up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from ai_employee.errors import UserError
from ai_employee.events import EventName, ReminderPayload
from ai_employee.pipeline.context import EngineContext
from ai_employee.pipeline.decisions import expire
from ai_employee.status import PlanSummary, VaultView, human_age

log = structlog.get_logger(__name__)
Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class DeadlineStage:
    def __init__(self, ctx: EngineContext, clock: Clock = _now) -> None:
        self.ctx = ctx
        self.clock = clock
        self.view = VaultView()  # waiting plans, read through the note cache
        self.recheck_s: float | None = None  # until the next deadline
        self._swept_at = float("-inf")

    @property
    def active(self) -> bool:
        t = self.ctx.config.policy.timeouts
        return any(x.remind_after or x.expire_after for x in (t.low, t.medium, t.high))

    def run_once(self, force: bool = False) -> int:
        """Remind and expire what is due; at most once per sweep unless a deadline is due sooner."""
        if not self.active:
            return 0
        now_m = time.monotonic()
        due = self.recheck_s is not None and now_m - self._swept_at >= self.recheck_s
        if not (force or due or now_m - self._swept_at >= self.ctx.config.watcher.poll_interval):
            return 0
        self._swept_at = now_m
        now = self.clock()
        handled = 0
        soonest: float | None = None
        for plan in self.view.plans(self.ctx.vault, self.ctx.ledger):
            if not plan.waiting:
                continue
            try:
                done, next_s = self._check(plan, now)
            except Exception as exc:  # one bad note must not stop the others
                self.ctx.item_failed("timeouts", self.ctx.vault.root / plan.file, exc, "timeout failed")
                continue
            handled += done
            if next_s is not None:
                soonest = next_s if soonest is None else min(soonest, next_s)
        self.recheck_s = soonest
        return handled

    def _check(self, plan: PlanSummary, now: datetime) -> tuple[int, float | None]:
        """Act on one waiting plan; (items handled, seconds until its next deadline)."""
        timeout = getattr(self.ctx.config.policy.timeouts, plan.criticality, None)
        if timeout is None:
            timeout = self.ctx.config.policy.timeouts.high  # unrated: as strict as HIGH
        since = _since(plan, now, self._restarted(plan.id))
        if since is None:
            return 0, None  # deferred: its deadlines start when the deferral ends
        waited = (now - since).total_seconds()
        if timeout.expire_after is not None and waited >= timeout.expire_after:
            try:
                expire(self.ctx.vault, self.ctx.ledger, plan.id, human_age(timeout.expire_after), self.ctx.bus.publish)
            except UserError as exc:  # decided meanwhile, by someone else: nothing to do
                log.info("plan not expired", plan_id=plan.id, reason=str(exc))
                return 0, None
            log.info("plan expired", plan_id=plan.id, waited_s=round(waited))
            return 1, None
        pending = [t for t in (timeout.remind_after, timeout.expire_after) if t is not None and t > waited]
        stamp = since.isoformat(timespec="seconds")
        if timeout.remind_after is not None and waited >= timeout.remind_after:
            pending = [t for t in pending if t != timeout.remind_after]
            if not self.ctx.ledger.reminded(plan.id, stamp):
                self._remind(plan, waited, since, timeout.expire_after)
                self.ctx.ledger.record_reminder(plan.id, stamp)
        return 0, (min(pending) - waited if pending else None)

    def _restarted(self, plan_id: str) -> datetime | None:
        """When the plan last began waiting again: a new version written from your feedback, or its
        steps sent back after an approval (both are decisions in the ledger)."""
        last = self.ctx.ledger.last_decision(plan_id, ("approve", "auto_approve", "revise"))
        return _parse(str(last["ts"])) if last is not None else None

    def _remind(self, plan: PlanSummary, waited: float, since: datetime, expire_after: float | None) -> None:
        expires = (since + timedelta(seconds=expire_after)).isoformat(timespec="seconds") if expire_after else None
        log.info("plan still waiting", plan_id=plan.id, waited_s=round(waited))
        payload = ReminderPayload(plan.id, plan.criticality, plan.file, plan.title, round(waited, 1), expires)
        self.ctx.bus.publish(EventName.APPROVAL_REMINDER, payload)


def _since(plan: PlanSummary, now: datetime, restarted: datetime | None = None) -> datetime | None:
    """When the plan started waiting: the latest of when it was written, when it began waiting again
    (a new version, steps sent back) and the end of its deferral; None while it is deferred."""
    created = _parse(plan.created) or now
    until = _parse(plan.deferred_until) if plan.deferred_until else None
    if until is not None and until > now:
        return None
    return max(t for t in (created, restarted, until) if t is not None)


def _parse(stamp: str | None) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(stamp))
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.astimezone()
