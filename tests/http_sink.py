"""A local HTTP endpoint for notification tests: Apprise's `json://127.0.0.1:PORT/path` and
`ntfy://127.0.0.1:PORT/topic` post here; every request is recorded before it is answered, and the
answers can be scripted (`"500"`, `"hang"`) to make a channel fail or stall."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def text(self) -> str:
        data = self.json()
        if isinstance(data, dict):
            return f"{data.get('title', '')}\n{data.get('message', '')}"
        return self.body.decode("utf-8", "replace")


@dataclass
class Sink:
    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    script: list[str] = field(default_factory=list)  # answers for the next requests: "200", "500", "hang"
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, scheme: str = "json", path: str = "hook") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/{path}"

    def texts(self) -> list[str]:
        with self.lock:
            return [r.text for r in self.received]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A local HTTP server on 127.0.0.1 (a free port), serving on a thread of its own."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def answer_json(handler: BaseHTTPRequestHandler, status: int, data: object) -> None:
    """Answer a request with JSON."""
    body = json.dumps(data).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def start_sink() -> Sink:
    sink: Sink

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            with sink.lock:
                sink.received.append(Received(self.path, body))
                answer = sink.script.pop(0) if sink.script else "200"
            if answer == "hang":
                time.sleep(30)
                answer = "200"
            answer_json(self, int(answer), {})

        def log_message(self, *_args: Any) -> None:
            pass

    sink = Sink(serve(Handler))
    return sink
