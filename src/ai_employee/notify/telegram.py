"""The Telegram bot: a channel that sends approval requests with Approve / Deny / Defer buttons, and a
service that takes the answers back by long polling (no public URL needed).

Only allow-listed chats are told and may decide. A button or a typed reply (`YES 7F3K`) carries a
code bound to the plan and to the steps shown (`replies.py`); the decision goes through the one
decision API, with channel `telegram`. Whoever decides, and however (the CLI, a folder move, another
tap), the buttons of every message about that plan are replaced by the outcome.

`notify.telegram.api_base` points the bot at another Bot API endpoint (a local fake in the tests).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import structlog

from ai_employee.config import Config
from ai_employee.ledger import Ledger
from ai_employee.logsetup import Redactor
from ai_employee.notify.channels import Delivery
from ai_employee.notify.config import TELEGRAM
from ai_employee.notify.messages import Message, approval_request, pending_plan_ids
from ai_employee.notify.replies import Verb, decide, issue_code, outcome_words, parse_reply
from ai_employee.vault.layout import Vault

log = structlog.get_logger(__name__)
MAX_TEXT = 4000  # Telegram takes 4096 characters per message
MAX_BUTTON_ROWS = 8
MAX_PENDING_SHOWN = 10
ERROR_BACKOFF_S = (5.0, 300.0)
DECISION_EVENTS = ("action.approved", "action.denied", "action.deferred", "action.expired")
_BUTTONS: dict[str, Verb] = {"a": "approve", "d": "deny", "l": "defer"}
TOO_LONG = "This plan is too long to show here in full: read it in Obsidian (or `vault show ID`) to approve it."
HELP = (
    "I tell you when a plan needs your decision. Tap its buttons, or reply YES CODE, NO CODE or LATER CODE.\n"
    "/pending: what waits for you\n/show ID: one plan"
)


class BotError(Exception):
    """The Bot API did not answer, or answered an error (its description, without the token)."""


class BotApi:
    """The few Bot API methods used, over httpx2: `call` from worker threads, `acall` (long polling)
    from the event loop. The token is part of every URL: it never appears in an error."""

    def __init__(self, api_base: str, token: str, redact: Callable[[str], str], timeout_s: float = 20.0) -> None:
        self.url = f"{api_base.rstrip('/')}/bot{token}/"
        self.token = token
        self.redact = redact
        self.timeout_s = timeout_s
        self._client: Any = None
        self._aclient: Any = None
        self._lock = threading.Lock()

    def _scrub(self, text: str) -> str:
        return self.redact(text.replace(self.token, "***"))

    def _result(self, response: Any) -> Any:
        try:
            data = response.json()
        except ValueError:
            raise BotError(f"HTTP {response.status_code}: the answer is not JSON") from None
        if not isinstance(data, dict) or not data.get("ok"):
            said = data.get("description", "") if isinstance(data, dict) else ""
            raise BotError(self._scrub(f"HTTP {response.status_code}: {said}".strip(": ")))
        return data.get("result")

    def call(self, method: str, **params: Any) -> Any:
        import httpx2

        with self._lock:
            if self._client is None:
                self._client = httpx2.Client(timeout=self.timeout_s)
            client = self._client
        try:
            response = client.post(self.url + method, json=params)
        except httpx2.HTTPError as exc:
            raise BotError(self._scrub(f"{type(exc).__name__}: {exc}")) from None
        return self._result(response)

    async def acall(self, method: str, timeout_s: float, **params: Any) -> Any:
        import httpx2

        if self._aclient is None:
            self._aclient = httpx2.AsyncClient(timeout=self.timeout_s)
        try:
            response = await self._aclient.post(self.url + method, json=params, timeout=timeout_s)
        except httpx2.HTTPError as exc:
            raise BotError(self._scrub(f"{type(exc).__name__}: {exc}")) from None
        return self._result(response)

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _keyboard(rows: list[list[tuple[str, str]]]) -> dict[str, Any]:
    return {"inline_keyboard": [[{"text": text, "callback_data": data} for text, data in row] for row in rows]}


class TelegramChannel:
    """Sends to every allowed chat; requests for a decision carry buttons and a code."""

    name = TELEGRAM

    def __init__(self, config: Config, vault: Vault, redact: Callable[[str], str] | None = None) -> None:
        settings = config.notify.telegram
        token = settings.token.get_secret_value() if settings.token is not None else ""
        self.api = BotApi(settings.api_base, token, redact or Redactor(config.secrets()).scrub)
        self.chats = list(settings.allowed_chats)
        self.vault = vault
        self._ledger: Ledger | None = None

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.vault.ledger_path)
        return self._ledger

    def described(self) -> str:
        return f"Telegram bot, {len(self.chats)} allowed chat(s)"

    def send(self, message: Message, folded: list[Message]) -> Delivery:
        """To every allowed chat; delivered if any chat got it (a chat that did is never sent it again)."""
        text, rows, codes = self._compose(message, folded)
        problems, delivered = [], 0
        for chat in self.chats:
            try:
                sent = self.api.call(
                    "sendMessage",
                    chat_id=chat,
                    text=text[:MAX_TEXT],
                    **({"reply_markup": _keyboard(rows)} if rows else {}),
                )
            except BotError as exc:
                problems.append(f"chat {chat}: {exc}")
                continue
            delivered += 1
            try:
                for code in codes:
                    self.ledger.code_shown(code, str(chat), str((sent or {}).get("message_id")))
            except Exception as exc:  # the message went: its buttons may just not be updated later
                log.warning("telegram message not recorded", chat=chat, error=type(exc).__name__)
        return Delivery(delivered > 0, "; ".join(problems))

    def _compose(self, message: Message, folded: list[Message]) -> tuple[str, list[list[tuple[str, str]]], list[str]]:
        text = f"{message.title}\n\n{message.body}".strip()
        rows: list[list[tuple[str, str]]] = []
        codes: list[str] = []
        if message.decides:
            code = issue_code(self.ledger, message.plan_id, message.plan_hash, TELEGRAM, message.complete)
            codes.append(code)
            if message.complete:
                rows.append([("✅ Approve", f"a:{code}"), ("❌ Deny", f"d:{code}"), ("⏰ Later", f"l:{code}")])
                text += f"\n\nOr reply YES {code}, NO {code} or LATER {code}."
            else:
                rows.append([("❌ Deny", f"d:{code}"), ("⏰ Later", f"l:{code}")])
                text += f"\n\n{TOO_LONG} Or reply NO {code} or LATER {code}."
        deciding = [m for m in folded if m.decides][:MAX_BUTTON_ROWS]
        if deciding:
            lines = []
            for m in deciding:
                code = issue_code(self.ledger, m.plan_id, m.plan_hash, TELEGRAM, m.complete)
                codes.append(code)
                approve = [(f"✅ {code}", f"a:{code}")] if m.complete else []
                rows.append([*approve, (f"❌ {code}", f"d:{code}")])
                lines.append(f"{code}: {m.title}" + ("" if m.complete else " (too long to approve here)"))
            text += "\n\nCodes:\n" + "\n".join(lines) + "\nTap, or reply YES CODE / NO CODE."
        return text, rows, codes

    def observe(self, name: str, data: dict[str, Any]) -> None:
        """A decision taken anywhere: every message about the plan loses its buttons and says what
        happened; its codes are spent."""
        plan_id = str(data.get("plan_id") or "")
        if name not in DECISION_EVENTS or not plan_id:
            return
        decision = str(data.get("decision") or name.removeprefix("action."))
        when = str(data.get("_ts") or _now())  # when it was decided, as the ledger has it
        words = outcome_words(decision, str(data.get("actor") or "?"), str(data.get("channel") or "?"), when)
        title = str(data.get("title") or f"Plan {plan_id[:10]}")
        for chat, message_id in self.ledger.take_shown(plan_id, words):
            try:
                self.api.call("editMessageText", chat_id=chat, message_id=int(message_id), text=f"{title}\n\n{words}")
            except (BotError, ValueError) as exc:
                log.info("telegram message not updated", chat=chat, error=str(exc))

    def close(self) -> None:
        self.api.close()
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None


def _now() -> str:
    from ai_employee.ledger.usage import now_iso

    return now_iso()


class TelegramBot:
    """The service that reads what people answer: button taps and messages from allowed chats."""

    name = "telegram"

    def __init__(self, vault: Vault, config: Config) -> None:
        self.vault = vault
        self.settings = config.notify.telegram
        self.channel = TelegramChannel(config, vault)
        self.api = self.channel.api
        self.allowed = {int(chat) for chat in self.settings.allowed_chats}
        self.fault: str | None = None

    def healthy(self) -> bool:
        return self.fault is None

    async def run(self) -> None:
        ledger = self.channel.ledger
        offset = int(await asyncio.to_thread(ledger.value, "telegram_offset", "0") or 0)
        backoff = ERROR_BACKOFF_S[0]
        try:
            while True:
                try:
                    updates = await self.api.acall(
                        "getUpdates",
                        self.settings.poll_timeout_s + 10,
                        offset=offset,
                        timeout=int(self.settings.poll_timeout_s),
                        allowed_updates=["message", "callback_query"],
                    )
                except BotError as exc:
                    if self.fault is None:
                        log.warning("telegram not reachable; trying again", error=str(exc), in_s=backoff)
                    self.fault = str(exc)
                    await asyncio.sleep(backoff)
                    backoff = min(ERROR_BACKOFF_S[1], backoff * 2)
                    continue
                self.fault, backoff = None, ERROR_BACKOFF_S[0]
                for update in updates or []:
                    offset = max(offset, int(update.get("update_id", 0)) + 1)
                    await asyncio.to_thread(self._take, update, offset)
        finally:
            await self.api.aclose()
            self.channel.close()

    def _take(self, update: dict[str, Any], offset: int) -> None:
        """Handle one update, then remember it was handled (on a worker thread: the ledger and the
        vault are touched)."""
        try:
            self.handle(update)
        except Exception:  # one odd update must not stop the bot
            log.exception("telegram update not handled")
        self.channel.ledger.set_value("telegram_offset", str(offset))

    def handle(self, update: dict[str, Any]) -> None:
        if "callback_query" in update:
            self._tap(update["callback_query"])
        elif "message" in update:
            self._message(update["message"])

    def _actor(self, sender: dict[str, Any]) -> str:
        name = sender.get("username") or sender.get("first_name") or "someone"
        return f"{str(name)[:40]} (telegram {sender.get('id')})"

    def _tap(self, tap: dict[str, Any]) -> None:
        chat = int(((tap.get("message") or {}).get("chat") or {}).get("id") or 0)
        if chat not in self.allowed:
            self.api.call("answerCallbackQuery", callback_query_id=tap.get("id"), text="This bot is private.")
            log.warning("telegram tap from a chat not allowed", chat=chat)
            return
        kind, _, code = str(tap.get("data") or "").partition(":")
        verb = _BUTTONS.get(kind)
        if verb is None:
            self.api.call("answerCallbackQuery", callback_query_id=tap.get("id"), text="Unknown button.")
            return
        answer = self._decide(code, verb, self._actor(tap.get("from") or {}), chat)
        self.api.call("answerCallbackQuery", callback_query_id=tap.get("id"), text=answer[:190], show_alert=True)

    def _decide(self, code: str, verb: Verb, actor: str, chat: int) -> str:
        ledger = self.channel.ledger
        answer = decide(self.vault, ledger, code, verb, actor, TELEGRAM, self.settings.defer_minutes)
        if answer.changed:
            self._show(chat, answer.plan_id)
        return answer.text

    def _message(self, message: dict[str, Any]) -> None:
        chat = int((message.get("chat") or {}).get("id") or 0)
        text = str(message.get("text") or "").strip()
        if chat not in self.allowed:
            if text.startswith("/start"):
                self._say(
                    chat, f"This bot is private. Your chat id is {chat}: add it to notify.telegram.allowed_chats."
                )
            log.warning("telegram message from a chat not allowed", chat=chat)
            return
        reply = parse_reply(text)
        if reply is not None:
            self._say(chat, self._decide(reply[1], reply[0], self._actor(message.get("from") or {}), chat))
        elif text.startswith("/pending"):
            ids = pending_plan_ids(self.vault)
            if not ids:
                self._say(chat, "Nothing waits for you.")
            for plan_id in ids[:MAX_PENDING_SHOWN]:
                self._show(chat, plan_id)
            if len(ids) > MAX_PENDING_SHOWN:
                self._say(chat, f"… and {len(ids) - MAX_PENDING_SHOWN} more (vault list).")
        elif text.startswith("/show"):
            ref = text.removeprefix("/show").strip().lower()
            matches = [i for i in pending_plan_ids(self.vault) if ref and i.lower().startswith(ref)]
            if len(matches) == 1:
                self._show(chat, matches[0])
            else:
                self._say(chat, "No plan waiting for you has that id." if not matches else "Give more of the id.")
        else:
            self._say(chat, HELP)

    def _show(self, chat: int, plan_id: str) -> None:
        message = approval_request(self.vault, plan_id)
        if message is None:
            self._say(chat, f"Plan {plan_id[:10]} no longer waits for a decision.")
            return
        text, rows, codes = self.channel._compose(message, [])
        sent = self.api.call("sendMessage", chat_id=chat, text=text[:MAX_TEXT], reply_markup=_keyboard(rows))
        for code in codes:
            self.channel.ledger.code_shown(code, str(chat), str(sent.get("message_id")))

    def _say(self, chat: int, text: str) -> None:
        try:
            self.api.call("sendMessage", chat_id=chat, text=text[:MAX_TEXT])
        except BotError as exc:
            log.warning("telegram reply not sent", chat=chat, error=str(exc))
