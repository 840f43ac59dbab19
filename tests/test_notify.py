"""Notifications through Apprise against real local HTTP endpoints (`json://`, `ntfy://` on
127.0.0.1), counting what arrives: routing, rate limits and digests, quiet hours with an injected
clock, HIGH never held, a failing channel retried, at most once after a crash, URL checks and
secrets kept out of the ledger."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ai_employee.config import Config
from ai_employee.errors import ConfigError
from ai_employee.events import BudgetPayload, EventBus, EventName, PlanPayload, ServerPayload, ServicePayload
from ai_employee.ledger import Ledger
from ai_employee.notify.channels import AppriseChannel, Delivery
from ai_employee.notify.config import NotifyConfig
from ai_employee.notify.messages import Message
from ai_employee.notify.notifier import Notifier, quiet_until
from ai_employee.vault.layout import Vault
from tests.http_sink import Sink, start_sink

pytestmark = pytest.mark.timeout(60)
PLAN = """---
id: {id}
action_id: A{id}
status: pending_approval
criticality: {level}
created: 2026-12-03T09:00:00+00:00
planner: template
---
# {title}

## Summary

Ann asks for the invoice to be paid today.

## Why this criticality

- sends an email in your name

## Steps

```yaml
- tool: email.send_email
  args:
    to: [ann@example.org]
    subject: Invoice 1042
    body: Paid.
    amount: 1250.00
```
"""


@pytest.fixture
def sink() -> Iterator[Sink]:
    sink = start_sink()
    yield sink
    sink.stop()


class Rig:
    def __init__(self, vault_root: Path, notify: dict[str, Any]) -> None:
        self.vault = Vault(vault_root)
        self.config = Config.model_validate({"notify": notify})
        self.ledger = Ledger(self.vault.ledger_path)
        self.bus = EventBus()
        self.bus.subscribe(self.ledger.record_event)
        self.now = datetime.now(UTC)
        self.notifier = self.make()

    def make(self) -> Notifier:
        redact = lambda text: text  # noqa: E731
        channels: dict[str, Any] = {
            name: AppriseChannel(name, urls, redact) for name, urls in self.config.notify.channels.items()
        }
        return Notifier(self.vault, self.config.notify, self.bus, channels, lambda: self.now)

    def plan(self, plan_id: str, level: str = "medium", title: str = "Pay the invoice") -> str:
        path = self.vault.root / "Plans" / f"{title} {plan_id}.md"
        path.write_text(PLAN.format(id=plan_id, level=level, title=title), "utf-8")
        self.bus.publish(
            EventName.APPROVAL_REQUIRED, PlanPayload(plan_id, f"A{plan_id}", level, f"Plans/{path.name}", title)
        )
        return f"Plans/{path.name}"

    async def cycle(self, seconds: float = 0) -> None:
        self.now += timedelta(seconds=seconds)
        await self.notifier.cycle()

    def states(self) -> list[tuple[str, str, str]]:
        rows = self.ledger.db.execute("SELECT channel, kind, state FROM notifications ORDER BY id")
        return [tuple(row) for row in rows]

    def close(self) -> None:
        self.notifier.close()
        self.ledger.close()


@pytest.fixture
def rig(vault: Path) -> Iterator[Any]:
    made: list[Rig] = []

    def make(notify: dict[str, Any]) -> Rig:
        made.append(Rig(vault, notify))
        return made[-1]

    yield make
    for one in made:
        one.close()


async def test_an_approval_reaches_its_channel_with_what_is_needed_to_decide(rig: Any, sink: Sink) -> None:
    r = rig({"channels": {"phone": sink.url()}})
    r.plan("01JTEST0001")
    await r.cycle()
    [text] = sink.texts()
    assert "Approve? Pay the invoice (MEDIUM)" in text
    assert "Ann asks for the invoice" in text  # the summary
    assert "email.send_email → to ann@example.org · “Invoice 1042” · amount 1250.0" in text
    assert "vault approve 01JTEST000" in text and "Why MEDIUM: sends an email in your name" in text
    await r.cycle(600)
    assert len(sink.received) == 1  # once


async def test_routes_send_each_kind_where_it_belongs_above_its_criticality(rig: Any, sink: Sink) -> None:
    other = start_sink()
    try:
        r = rig(
            {
                "channels": {"phone": sink.url(), "ops": other.url("json", "ops")},
                "routes": [
                    {"events": ["approval.required"], "channels": ["phone"], "min_criticality": "medium"},
                    {"events": ["service.error", "server.paused"], "channels": ["ops"]},
                ],
                "min_interval_s": 0,
            }
        )
        r.plan("01JLOW00001", level="low", title="Note it")
        r.plan("01JHIGH0001", level="high", title="Wire the money")
        r.bus.publish(EventName.SERVICE_ERROR, ServicePayload("gmail", "quota exceeded", 1))
        r.bus.publish(EventName.SERVER_PAUSED, ServerPayload("crm", "auth", "HTTP 401"))
        await r.cycle()
        await r.cycle(1)
        assert [t.splitlines()[0] for t in sink.texts()] == ["Approve? Wire the money (HIGH)"]
        assert len(other.received) == 2 and other.received[0].path.startswith("/ops")
        assert {"The gmail service failed", "The crm server refuses its credentials"} <= {
            line for text in other.texts() for line in text.splitlines()
        }
    finally:
        other.stop()


async def test_an_ntfy_topic_gets_the_message(rig: Any, sink: Sink) -> None:
    r = rig({"channels": {"phone": sink.url("ntfy", "alerts-x1")}})
    r.bus.publish(EventName.ENGINE_CRASHED, ServicePayload("engine", "last heard of at 09:00"))
    await r.cycle()
    [got] = [m.json() for m in sink.received]
    assert got["topic"] == "alerts-x1" and got["title"] == "The engine stopped unexpectedly"


async def test_the_rate_limit_folds_what_waited_into_one_digest(rig: Any, sink: Sink) -> None:
    r = rig({"channels": {"phone": sink.url()}, "min_interval_s": 300})
    r.plan("01JA0000001", title="First")
    await r.cycle()
    r.plan("01JA0000002", title="Second")
    r.plan("01JA0000003", title="Third")
    await r.cycle(10)
    await r.cycle(100)
    assert len(sink.received) == 1  # still within 300 s of the first
    await r.cycle(200)
    assert len(sink.received) == 2
    digest = sink.texts()[1]
    assert "2 updates" in digest and "Second" in digest and "Third" in digest
    assert "01JA000000" in digest  # how to decide on each
    assert [state for _, _, state in r.states()] == ["sent", "sent", "sent"]


async def test_quiet_hours_hold_all_but_high_until_they_end(rig: Any, sink: Sink) -> None:
    now = datetime.now(UTC)
    quiet = {"start": (now - timedelta(hours=1)).strftime("%H:%M"), "end": (now + timedelta(hours=1)).strftime("%H:%M")}
    r = rig({"channels": {"phone": sink.url()}, "quiet_hours": {**quiet, "timezone": "UTC"}, "min_interval_s": 0})
    r.now = now
    r.plan("01JQ0000001", title="Can wait")
    r.bus.publish(EventName.BUDGET_WARNING, BudgetPayload("reactive", 80, 800, 1000, "2026-12-03"))
    r.bus.publish(EventName.SERVER_PAUSED, ServerPayload("email", "auth", "535 5.7.8"))  # HIGH
    await r.cycle()
    assert [t.splitlines()[0] for t in sink.texts()] == ["The email server refuses its credentials"]
    assert await r.notifier.cycle() > 1  # held messages do not make the notifier spin
    await r.cycle(1800)
    assert len(sink.received) == 1  # still quiet
    await r.cycle(1900)  # quiet hours are over: one digest of what waited
    assert len(sink.received) == 2 and "2 updates" in sink.texts()[1] and "Budget 80% used" in sink.texts()[1]


def test_quiet_hours_over_midnight() -> None:
    from ai_employee.notify.config import QuietHours

    quiet = QuietHours.model_validate({"start": "22:00", "end": "07:00", "timezone": "UTC"})
    at = lambda h, m=0: datetime(2026, 12, 3, h, m, tzinfo=UTC)  # noqa: E731
    assert quiet_until(at(23), quiet) == datetime(2026, 12, 4, 7, 0, tzinfo=UTC)
    assert quiet_until(at(3), quiet) == datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
    assert quiet_until(at(7), quiet) is None and quiet_until(at(12), quiet) is None


async def test_a_plan_decided_while_its_request_waited_is_not_sent(rig: Any, sink: Sink) -> None:
    r = rig({"channels": {"phone": sink.url()}, "min_interval_s": 300})
    r.plan("01JD0000001", title="First")
    await r.cycle()
    path = r.plan("01JD0000002", title="Decided meanwhile")
    await r.cycle(5)
    (r.vault.root / path).rename(r.vault.root / "Approved" / Path(path).name)  # approved in Obsidian
    await r.cycle(400)
    assert len(sink.received) == 1
    assert r.states()[-1] == ("phone", "approval.required", "skipped")


async def test_a_failing_channel_is_retried_with_backoff_and_shows_as_failing(rig: Any, sink: Sink) -> None:
    r = rig({"channels": {"phone": sink.url()}})
    sink.script = ["500", "500"]
    r.bus.publish(EventName.SERVICE_ERROR, ServicePayload("watcher", "inotify limit", 1))
    await r.cycle()
    assert r.states() == [("phone", "service.error", "failed")]
    from ai_employee.status import collect

    assert collect(r.vault, r.ledger)["notifications"]["phone"]["state"] == "failed"  # vault status shows it
    await r.cycle(5)
    assert len(sink.received) == 1  # not before its backoff (30 s)
    await r.cycle(31)
    await r.cycle(61)
    assert len(sink.received) == 3 and r.states() == [("phone", "service.error", "sent")]


async def test_a_send_cut_short_by_a_crash_is_never_sent_again(rig: Any, sink: Sink) -> None:
    r = rig({"channels": {"phone": sink.url()}})
    r.bus.publish(EventName.ENGINE_CRASHED, ServicePayload("engine", "last heard of at 09:00"))
    r.notifier._locked(r.notifier._prepare)  # claimed ("sending"); the engine dies before it is settled
    r.notifier.close()
    r.notifier = r.make()  # the next start
    await r.cycle(60)
    assert sink.received == [] and r.states() == [("phone", "engine.crashed", "unknown")]


async def test_sending_happens_on_a_worker_thread_not_on_the_publishing_path(rig: Any, sink: Sink) -> None:
    r = rig({"channels": {"phone": sink.url()}})
    threads: list[str] = []

    class Recording:
        name = "rec"

        def send(self, message: Message, folded: list[Message]) -> Delivery:
            threads.append(threading.current_thread().name)
            return Delivery(True)

        def observe(self, name: str, data: dict[str, Any]) -> None:
            return None

        def described(self) -> str:
            return "recording"

    r.notifier.channels = {"phone": Recording()}
    r.bus.publish(EventName.SERVICE_ERROR, ServicePayload("gmail", "x", 1))
    assert threads == []  # publishing only set a flag
    await r.cycle()
    assert threads and threads[0] != threading.main_thread().name


def test_urls_are_checked_by_apprise_and_fixed_host_services_validate_offline() -> None:
    import apprise

    redact = lambda text: text  # noqa: E731
    with pytest.raises(ConfigError, match=r"notify.channels.bad: nonsense://… is not a URL Apprise knows"):
        AppriseChannel("bad", ["nonsense://x"], redact)
    for url in (
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
        "discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js",
        "twilio://AC0123456789abcdef0123456789abcdef:authtoken1234567@+15551234567/+15557654321",
        "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi",
    ):
        assert apprise.Apprise.instantiate(url) is not None, url
    with pytest.raises(ValueError, match="not configured"):
        NotifyConfig.model_validate(
            {"channels": {"phone": "json://x"}, "routes": [{"events": ["service.error"], "channels": ["pager"]}]}
        )
    with pytest.raises(ValueError, match="unknown event"):
        NotifyConfig.model_validate({"routes": [{"events": ["action.paid"], "channels": ["*"]}]})


def test_channel_tokens_are_secrets(tmp_path: Path) -> None:
    notify = {
        "channels": {
            "phone": "tgram://123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0/12345",
            "hook": "json://127.0.0.1:8080/x",
        }
    }
    secrets = Config.model_validate({"notify": notify}).secrets()
    assert "123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0" in secrets
    assert "127.0.0.1" not in secrets and "json://127.0.0.1:8080/x" in secrets


def test_vault_notify_test_sends_to_each_channel_and_says_what_happened(
    vault: Path, tmp_path: Path, sink: Sink
) -> None:
    from click.testing import CliRunner

    from ai_employee.cli import cli

    config = tmp_path / "config.yaml"
    config.write_text(f"notify:\n  channels:\n    phone: {sink.url()}\n    dead: json://127.0.0.1:9/x\n")
    run = CliRunner().invoke(cli, ["--vault", str(vault), "--config", str(config), "notify", "test"])
    assert run.exit_code == 1, run.output
    assert "phone: OK · json://127.0.0.1:" in run.output and "dead: FAILED · json://127.0.0.1:9/…" in run.output
    assert sink.texts() == ["AI Employee: test message\nIf you can read this, notifications reach you."]
    one = CliRunner().invoke(cli, ["--vault", str(vault), "--config", str(config), "notify", "test", "phone"])
    assert one.exit_code == 0 and len(sink.received) == 2


async def test_one_dead_url_of_a_channel_does_not_repeat_the_message_to_the_others(rig: Any, sink: Sink) -> None:
    r = rig({"channels": {"phone": [sink.url(), "json://127.0.0.1:9/dead"]}})
    r.bus.publish(EventName.SERVICE_ERROR, ServicePayload("gmail", "quota", 1))
    for _ in range(4):
        await r.cycle(3600)
    assert len(sink.received) == 1 and r.states() == [("phone", "service.error", "sent")]
    [outcome] = [row[0] for row in r.ledger.db.execute("SELECT outcome FROM notifications")]
    assert "127.0.0.1" in outcome  # the URL that failed is on record


async def test_a_broken_note_does_not_stop_the_rest(rig: Any, sink: Sink) -> None:
    r = rig({"channels": {"phone": sink.url()}, "min_interval_s": 0})
    broken = r.vault.root / "Plans" / "broken.md"
    broken.write_bytes(PLAN.format(id="01JBAD00001", level="medium", title="Caf\xe9").encode("latin-1"))
    r.bus.publish(EventName.APPROVAL_REQUIRED, PlanPayload("01JBAD00001", "A1", "medium", "Plans/broken.md", "x"))
    r.bus.publish(EventName.SERVICE_ERROR, ServicePayload("gmail", "quota", 1))
    await r.cycle()
    await r.cycle(1)
    assert any("The gmail service failed" in text for text in sink.texts())
    assert r.ledger.notify_cursor() >= 2


async def test_a_request_shows_the_plan_as_it_is_when_sent(rig: Any, sink: Sink) -> None:
    r = rig({"channels": {"phone": sink.url()}, "min_interval_s": 300})
    r.plan("01JR0000001", title="First")
    await r.cycle()
    second = r.vault.root / r.plan("01JR0000002", title="Raised")
    third = r.vault.root / r.plan("01JR0000003", title="Snoozed")
    second.write_text(second.read_text().replace("criticality: medium", "criticality: high"))  # a revision raised it
    third.write_text(
        third.read_text().replace("planner: template", "planner: template\ndeferred_until: 2099-01-01T00:00:00+00:00")
    )
    await r.cycle(400)
    texts = sink.texts()
    assert len(texts) == 2 and "Approve? Raised (HIGH)" in texts[1]
    assert all("Snoozed" not in text for text in texts)  # deferred: not asked about until its time


async def test_a_stop_lets_the_send_in_progress_finish_and_be_recorded(rig: Any, sink: Sink) -> None:
    import asyncio
    import time

    r = rig({"channels": {"phone": sink.url()}})
    started = threading.Event()

    class Slow:
        name = "phone"

        def send(self, message: Message, folded: list[Message]) -> Delivery:
            started.set()
            time.sleep(1.0)
            return Delivery(True)

        def observe(self, name: str, data: dict[str, Any]) -> None:
            return None

        def described(self) -> str:
            return "slow"

    r.notifier.channels = {"phone": Slow()}
    r.bus.publish(EventName.SERVICE_ERROR, ServicePayload("gmail", "quota", 1))
    task = asyncio.create_task(r.notifier.run())
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    check = Ledger(r.vault.ledger_path)
    try:
        assert [row[0] for row in check.db.execute("SELECT state FROM notifications")] == ["sent"]
    finally:
        check.close()


def test_an_ntfy_topic_is_a_secret() -> None:
    from ai_employee.config_sections import url_tokens

    assert "myalertsecret" in url_tokens("ntfy://ntfy.sh/myalertsecret")
    assert "supersecretvalue1" in url_tokens("json://hooks.example.com/x?-X-Api-Key=supersecretvalue1")
