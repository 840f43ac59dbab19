"""Deciding from the phone: the Telegram bot against a local fake of the Bot API, driving approvals
through the one decision API: buttons and typed codes, the allow-list, a stale code after an edit, a
double tap, a race with the CLI, and the buttons replaced by the outcome wherever the decision came
from."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ai_employee.config import Config
from ai_employee.events import EventBus, EventName, PlanPayload
from ai_employee.ledger import Ledger
from ai_employee.notify.notifier import Notifier
from ai_employee.notify.replies import parse_reply
from ai_employee.notify.telegram import TelegramBot, TelegramChannel
from ai_employee.pipeline import decisions
from ai_employee.vault.layout import Vault
from tests.conftest import files, wait_for
from tests.fake_telegram import TOKEN, FakeTelegram, start_fake_telegram
from tests.test_notify import PLAN

pytestmark = pytest.mark.timeout(60)
ANN, EVE = 111, 666


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    fake = start_fake_telegram()
    yield fake
    fake.stop()


class Phone:
    """The engine's side: the notifier with the Telegram channel, and the bot, on one vault."""

    def __init__(self, root: Path, fake: FakeTelegram) -> None:
        self.vault = Vault(root)
        settings = {"enabled": True, "token": TOKEN, "allowed_chats": [ANN], "api_base": fake.url, "poll_timeout_s": 1}
        self.config = Config.model_validate({"notify": {"telegram": settings, "min_interval_s": 0}})
        self.fake = fake
        self.ledger = Ledger(self.vault.ledger_path)
        self.bus = EventBus()
        self.bus.subscribe(self.ledger.record_event)
        channel = TelegramChannel(self.config, self.vault)
        self.notifier = Notifier(
            self.vault, self.config.notify, self.bus, {"telegram": channel}, lambda: datetime.now(UTC)
        )
        self.bot = TelegramBot(self.vault, self.config)

    def plan(self, plan_id: str, level: str = "medium") -> Path:
        path = self.vault.root / "Plans" / f"Pay {plan_id}.md"
        path.write_text(PLAN.format(id=plan_id, level=level, title=f"Pay {plan_id}"), "utf-8")
        self.bus.publish(
            EventName.APPROVAL_REQUIRED,
            PlanPayload(plan_id, f"A{plan_id}", level, f"Plans/{path.name}", f"Pay {plan_id}"),
        )
        return path

    def deliver(self) -> None:
        """Hand the bot what the phone sent (as its polling would)."""
        updates, self.fake.updates = list(self.fake.updates), []
        for update in updates:
            self.bot.handle(update)

    def decision(self, plan_id: str) -> Any:
        return self.ledger.last_decision(plan_id)

    def close(self) -> None:
        self.notifier.close()
        self.bot.channel.close()
        self.ledger.close()


@pytest.fixture
def phone(vault: Path, fake: FakeTelegram) -> Iterator[Phone]:
    phone = Phone(vault, fake)
    yield phone
    phone.close()


def buttons(sent: dict[str, Any]) -> list[str]:
    return [b["callback_data"] for row in sent.get("reply_markup", {}).get("inline_keyboard", []) for b in row]


async def test_an_approval_request_comes_with_buttons_and_a_tap_approves(phone: Phone, fake: FakeTelegram) -> None:
    note = phone.plan("01JT0000001")
    await phone.notifier.cycle()
    [sent] = fake.sent
    assert sent["chat_id"] == ANN and "Approve? Pay 01JT0000001 (MEDIUM)" in sent["text"]
    assert "to ann@example.org" in sent["text"] and "reply_markup" in sent
    approve, deny, later = buttons(sent)
    assert approve.startswith("a:") and deny.startswith("d:") and later.startswith("l:")
    code = approve[2:]
    assert f"YES {code}" in sent["text"]
    fake.tap(ANN, sent["message_id"], approve)
    phone.deliver()
    assert not note.exists() and files(phone.vault.root / "Approved", ".md")
    decided = phone.decision("01JT0000001")
    assert (decided["decision"], decided["channel"]) == ("approve", "telegram") and "ann" in decided["actor"]
    assert fake.answers[-1]["text"] == "“Pay 01JT0000001”: approved, it runs now."
    await phone.notifier.cycle()  # the decision event: the buttons become the outcome
    [edit] = fake.edits
    assert edit["message_id"] == sent["message_id"] and "✅ Approved by ann" in edit["text"]
    assert "reply_markup" not in edit


async def test_only_allowed_chats_decide(phone: Phone, fake: FakeTelegram) -> None:
    note = phone.plan("01JT0000002")
    await phone.notifier.cycle()
    [sent] = fake.sent
    fake.tap(EVE, sent["message_id"], buttons(sent)[0], user="eve")
    fake.say(EVE, f"YES {buttons(sent)[0][2:]}", user="eve")
    fake.say(EVE, "/start", user="eve")
    phone.deliver()
    assert note.exists() and phone.decision("01JT0000002") is None
    assert fake.answers[-1]["text"] == "This bot is private."
    assert [m["text"] for m in fake.sent if m["chat_id"] == EVE] == [
        f"This bot is private. Your chat id is {EVE}: add it to notify.telegram.allowed_chats."
    ]


async def test_a_code_shown_before_an_edit_is_refused_and_the_plan_shown_again(
    phone: Phone, fake: FakeTelegram
) -> None:
    note = phone.plan("01JT0000003")
    await phone.notifier.cycle()
    [sent] = fake.sent
    note.write_text(note.read_text().replace("Invoice 1042", "Invoice 9999"))  # edited after it was shown
    fake.tap(ANN, sent["message_id"], buttons(sent)[0])
    phone.deliver()
    assert note.exists() and phone.decision("01JT0000003") is None
    assert "changed after it was shown" in fake.answers[-1]["text"]
    again = fake.sent[-1]
    assert "Invoice 9999" in again["text"] and buttons(again)[0] != buttons(sent)[0]
    fake.tap(ANN, again["message_id"], buttons(again)[0])  # the fresh code works
    phone.deliver()
    assert phone.decision("01JT0000003")["decision"] == "approve"


async def test_requests_that_waited_together_come_as_one_message_with_a_button_row_each(
    phone: Phone, fake: FakeTelegram
) -> None:
    phone.plan("01JT0000009")
    phone.plan("01JT0000010")
    await phone.notifier.cycle()
    [digest] = fake.sent
    assert "2 updates" in digest["text"] and len(digest["reply_markup"]["inline_keyboard"]) == 2
    fake.tap(ANN, digest["message_id"], buttons(digest)[2])  # the second plan's approve
    phone.deliver()
    assert phone.decision("01JT0000010")["decision"] == "approve" and phone.decision("01JT0000009") is None


async def test_a_double_tap_decides_once(phone: Phone, fake: FakeTelegram) -> None:
    phone.plan("01JT0000004")
    await phone.notifier.cycle()
    [sent] = fake.sent
    fake.tap(ANN, sent["message_id"], buttons(sent)[0])
    fake.tap(ANN, sent["message_id"], buttons(sent)[0])
    phone.deliver()
    assert [row["decision"] for row in phone.ledger.decisions(plan_id="01JT0000004")] == ["approve"]
    assert "already used" in fake.answers[-1]["text"]


async def test_the_cli_first_wins_and_the_phone_is_told(phone: Phone, fake: FakeTelegram) -> None:
    phone.plan("01JT0000005")
    await phone.notifier.cycle()
    [sent] = fake.sent
    decisions.deny(phone.vault, phone.ledger, "01JT0000005", "not now", actor="sam", channel="cli")
    fake.tap(ANN, sent["message_id"], buttons(sent)[0])
    phone.deliver()
    assert [row["decision"] for row in phone.ledger.decisions(plan_id="01JT0000005")] == ["deny"]
    assert "already denied by sam" in fake.answers[-1]["text"]
    await phone.notifier.cycle()
    assert "❌ Declined by sam via cli" in fake.edits[-1]["text"]


async def test_typed_replies_and_commands(phone: Phone, fake: FakeTelegram) -> None:
    phone.plan("01JT0000006")
    await phone.notifier.cycle()
    phone.plan("01JT0000007")
    await phone.notifier.cycle()
    first, second = fake.sent
    fake.say(ANN, f"no {buttons(first)[1][2:].lower()}")
    fake.say(ANN, f"LATER {buttons(second)[2][2:]}")
    phone.deliver()
    assert phone.decision("01JT0000006")["decision"] == "deny"
    assert phone.decision("01JT0000007")["decision"] == "defer"
    fake.say(ANN, "/pending")
    phone.deliver()
    assert fake.sent[-1]["text"].startswith("Nothing waits for you")  # the deferred one is hidden for now
    assert parse_reply("YES 7F3K") == ("approve", "7F3K") and parse_reply("please pay") is None


async def test_the_bot_polls_with_its_offset_and_survives_an_outage(phone: Phone, fake: FakeTelegram) -> None:
    note = phone.plan("01JT0000008")
    await phone.notifier.cycle()
    [sent] = fake.sent
    fake.token = "another"  # Telegram refuses the token for a while
    task = asyncio.create_task(phone.bot.run())
    try:
        await asyncio.to_thread(wait_for, lambda: phone.bot.fault is not None)
        assert "401" in str(phone.bot.fault) and TOKEN not in str(phone.bot.fault)
        fake.token = TOKEN
        fake.tap(ANN, sent["message_id"], buttons(sent)[0])
        await asyncio.to_thread(wait_for, lambda: not note.exists(), 20.0)
        assert phone.bot.fault is None
        await asyncio.to_thread(wait_for, lambda: int(phone.bot.channel.ledger.value("telegram_offset") or 0) > 1000)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_vault_doctor_checks_each_channel_and_the_bots_token(vault: Path, fake: FakeTelegram) -> None:
    from ai_employee.doctor import check_notifications

    telegram = {"enabled": True, "token": TOKEN, "allowed_chats": [ANN], "api_base": fake.url}
    channels = {"bad": "nonsense://x", "hook": "json://127.0.0.1:9/x"}
    config = Config.model_validate({"notify": {"channels": channels, "telegram": telegram}})
    found = {f.what: f for f in check_notifications(config, Vault(vault))}
    assert found["notify bad"].level == "fail" and "not a URL Apprise knows" in found["notify bad"].detail
    assert found["notify hook"].level == "ok" and "sendMessage" not in fake.calls
    assert found["telegram"].level == "ok" and "@desk_test_bot" in found["telegram"].detail
    fake.token = "revoked"
    [refused] = [f for f in check_notifications(config, Vault(vault)) if f.what == "telegram"]
    assert refused.level == "fail" and "401" in refused.detail and TOKEN not in refused.detail


@pytest.mark.parametrize(
    ("before", "after", "button", "said"),
    [
        ("status: pending_approval", "status: failed\ninterrupted: true", 0, "was interrupted"),  # resume it instead
        ("Invoice 1042", "Invoice 7", 1, "changed after it was shown"),  # even declining binds to what was seen
    ],
)
async def test_a_code_does_nothing_once_the_plan_is_not_what_was_shown(
    phone: Phone, fake: FakeTelegram, before: str, after: str, button: int, said: str
) -> None:
    note = phone.plan("01JT0000011")
    await phone.notifier.cycle()
    [sent] = fake.sent
    note.write_text(note.read_text().replace(before, after))
    fake.tap(ANN, sent["message_id"], buttons(sent)[button])
    phone.deliver()
    assert note.exists() and phone.decision("01JT0000011") is None
    assert said in fake.answers[-1]["text"]


async def test_a_plan_too_long_to_show_in_full_cannot_be_approved_from_the_phone(
    phone: Phone, fake: FakeTelegram
) -> None:
    note = phone.plan("01JT0000012")
    long_body = "Dear Ann, " + "the details of the offer follow. " * 60
    note.write_text(note.read_text().replace("body: Paid.", f"body: {long_body}"))
    await phone.notifier.cycle()
    sent = fake.sent[-1]
    assert [b.split(":")[0] for b in buttons(sent)] == ["d", "l"]  # no Approve button
    assert "too long to show here in full" in sent["text"]
    fake.say(ANN, f"YES {buttons(sent)[0][2:]}")
    phone.deliver()
    assert note.exists() and "cannot approve" in fake.sent[-1]["text"]
    fake.say(ANN, f"NO {buttons(sent)[0][2:]}")  # declining needs no reading in full
    phone.deliver()
    assert phone.decision("01JT0000012")["decision"] == "deny"


async def test_a_short_email_is_shown_with_its_body(phone: Phone, fake: FakeTelegram) -> None:
    phone.plan("01JT0000013")
    await phone.notifier.cycle()
    [sent] = fake.sent
    assert "body: Paid." in sent["text"] and len(buttons(sent)) == 3


async def test_a_chat_that_cannot_be_reached_does_not_make_the_others_get_it_twice(
    vault: Path, fake: FakeTelegram
) -> None:
    fake.unreachable_chats = {222}
    phone = Phone(vault, fake)
    settings = {"enabled": True, "token": TOKEN, "allowed_chats": [ANN, 222], "api_base": fake.url}
    phone.config = Config.model_validate({"notify": {"telegram": settings, "min_interval_s": 0}})
    phone.notifier.channels = {"telegram": TelegramChannel(phone.config, phone.vault)}
    try:
        phone.plan("01JT0000015")
        for _ in range(3):
            await phone.notifier.cycle()
        assert [m["chat_id"] for m in fake.sent] == [ANN]
        [outcome] = [row[0] for row in phone.ledger.db.execute("SELECT outcome FROM notifications")]
        assert "chat 222: HTTP 400: Bad Request: chat not found" in outcome
    finally:
        phone.notifier.channels["telegram"].close()  # type: ignore[attr-defined]
        phone.close()
