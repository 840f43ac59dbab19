"""A local stand-in for Telegram's Bot API (`notify.telegram.api_base` points the bot here): the methods
the bot uses, a queue of updates the test puts in (taps, messages), and a record of what the bot sent,
edited and answered. A wrong token gets Telegram's 401."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.http_sink import answer_json, serve

TOKEN = "123456:TEST-token_abcdefghijklmnop"


@dataclass
class FakeTelegram:
    server: ThreadingHTTPServer
    token: str = TOKEN
    updates: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    unreachable_chats: set[int] = field(default_factory=set)  # sendMessage to these: "chat not found"
    lock: threading.Condition = field(default_factory=threading.Condition)
    _next_update: int = 1000
    _next_message: int = 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def push(self, update: dict[str, Any]) -> None:
        with self.lock:
            self._next_update += 1
            self.updates.append({"update_id": self._next_update, **update})
            self.lock.notify_all()

    def tap(self, chat: int, message_id: int, data: str, user: str = "ann") -> None:
        self.push(
            {
                "callback_query": {
                    "id": f"cb{self._next_update}",
                    "from": {"id": chat, "username": user},
                    "message": {"message_id": message_id, "chat": {"id": chat}},
                    "data": data,
                }
            }
        )

    def say(self, chat: int, text: str, user: str = "ann") -> None:
        self.push(
            {"message": {"message_id": 1, "chat": {"id": chat}, "from": {"id": chat, "username": user}, "text": text}}
        )

    def answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.calls.append(method)
            if method == "getUpdates":
                offset = int(params.get("offset") or 0)
                deadline = time.monotonic() + min(float(params.get("timeout") or 0), 1.0)
                while True:
                    self.updates = [u for u in self.updates if u["update_id"] >= offset]
                    if self.updates or time.monotonic() >= deadline:
                        return {"ok": True, "result": list(self.updates)}
                    self.lock.wait(max(0.0, deadline - time.monotonic()))
            if method == "sendMessage" and int(params.get("chat_id") or 0) in self.unreachable_chats:
                return {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
            if method == "sendMessage":
                self._next_message += 1
                self.sent.append({**params, "message_id": self._next_message})
                return {"ok": True, "result": {"message_id": self._next_message, "chat": {"id": params["chat_id"]}}}
            if method == "getMe":
                return {"ok": True, "result": {"id": 1, "is_bot": True, "username": "desk_test_bot"}}
            if method == "editMessageText":
                self.edits.append(params)
                return {"ok": True, "result": True}
            if method == "answerCallbackQuery":
                self.answers.append(params)
                return {"ok": True, "result": True}
        return {"ok": False, "error_code": 404, "description": "Not Found: method not found"}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_fake_telegram() -> FakeTelegram:
    fake: FakeTelegram

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            params = json.loads(self.rfile.read(length) or b"{}")
            prefix, _, method = self.path.strip("/").rpartition("/")
            if prefix != f"bot{fake.token}":
                status, answer = 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            else:
                answer = fake.answer(method, params)
                status = 200 if answer.get("ok") else int(answer.get("error_code", 400))
            answer_json(self, status, answer)

        def log_message(self, *_args: Any) -> None:
            pass

    fake = FakeTelegram(serve(Handler))
    return fake
