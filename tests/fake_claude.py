"""A local HTTP server that speaks enough of the Messages API (`POST /v1/messages`) for the real
anthropic SDK: scripted answers (a plan through `submit_plan`, errors, slow answers), every request kept
for the test to inspect. Only Anthropic's host is faked, at the transport level."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USAGE = {"input_tokens": 1200, "output_tokens": 300, "cache_read_input_tokens": 800, "cache_creation_input_tokens": 0}


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] | str = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def plan_reply(
    steps: list[dict[str, Any]],
    title: str = "Reply to the quote request",
    confidence: float = 0.9,
    questions: list[str] | None = None,
    criticality: str = "low",
    summary: str = "A quote request from a prospective client; a draft reply is ready for you.",
    usage: dict[str, int] | None = None,
    **extra: Any,
) -> Reply:
    answer = {
        "title": title,
        "summary": summary,
        "reasoning": "The sender asked three questions; the draft answers what the handbook allows.",
        "steps": steps,
        "criticality": criticality,
        "confidence": confidence,
        "questions": questions or [],
        **extra,
    }
    return Reply(body=message([{"type": "tool_use", "id": "toolu_01", "name": "submit_plan", "input": answer}], usage))


def message(content: list[dict[str, Any]], usage: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-5-5",
        "content": content,
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": usage or USAGE,
    }


def error_reply(status: int, kind: str = "api_error", headers: dict[str, str] | None = None) -> Reply:
    body = {"type": "error", "error": {"type": kind, "message": f"scripted {status}"}}
    return Reply(status=status, body=body, headers=headers or {})


class FakeClaude:
    def __init__(self) -> None:
        self.script: list[Reply | Callable[[dict[str, Any]], Reply]] = []
        self.default: Reply | Callable[[dict[str, Any]], Reply] = error_reply(500)
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.refuse_keys: set[str] = set()  # API keys answered 401 (for `vault doctor`)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _next(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(request)
            item = self.script.pop(0) if self.script else self.default
        return item(request) if callable(item) else item

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                fake.headers.append(dict(self.headers.items()))
                reply = fake._next(request) if self.path.startswith("/v1/messages") else error_reply(404)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                data = reply.body.encode() if isinstance(reply.body, str) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def do_GET(self) -> None:
                """`GET /v1/models/<id>`: the model, or 401 for a refused key."""
                key = self.headers.get("x-api-key") or (self.headers.get("authorization") or "").removeprefix("Bearer ")
                if key in fake.refuse_keys:
                    reply = error_reply(401, "authentication_error")
                elif self.path.startswith("/v1/models/"):
                    model = self.path.rsplit("/", 1)[-1]
                    body = {"type": "model", "id": model, "display_name": model, "created_at": "2026-01-01T00:00:00Z"}
                    reply = Reply(status=200, body=body, headers={})
                else:
                    reply = error_reply(404, "not_found_error")
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@contextmanager
def fake_claude() -> Iterator[FakeClaude]:
    fake = FakeClaude()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


def text_reply(text: str, usage: dict[str, int] | None = None) -> Reply:
    """An answer to a request for prose (the briefing's opening), through `submit_text`."""
    return Reply(
        body=message([{"type": "tool_use", "id": "toolu_02", "name": "submit_text", "input": {"text": text}}], usage)
    )
