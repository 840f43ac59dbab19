"""A small MCP server for tests that can be told to fail, hang, crash or succeed, counting every call it
receives (to prove at-most-once).

Run it over stdio with `python -m tests.flaky_server`, or over streamable HTTP on 127.0.0.1 with
`python -m tests.flaky_server --http PORT [--token TOKEN]`. Its environment says where its files are:
- FLAKY_SCRIPT: a JSON list of what the next calls do, one item each, taken from the front:
  ok | fail | transient | ratelimit | auth | unknown | hang | crash (empty or missing: ok).
- FLAKY_CALLS: every call received is appended here as a JSON line, before it does what it was told.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations

FAILURES = {
    "fail": "refused: there is no widget with that id",
    "transient": "temporary failure: the service is unavailable (503); try again later",
    "ratelimit": "too many requests (429): retry after 1 s",
    "auth": "authentication failed: invalid credentials (401)",
    "unknown": "the upstream request timed out; the outcome is unknown",
}


def _next_move() -> str:
    path = Path(os.environ["FLAKY_SCRIPT"]) if os.environ.get("FLAKY_SCRIPT") else None
    if path is None or not path.exists():
        return "ok"
    with open(path, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        script = json.loads(fh.read() or "[]")
        move = script.pop(0) if script else "ok"
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(script))
    return str(move)


def _record(tool: str, args: dict[str, Any]) -> int:
    path = Path(os.environ.get("FLAKY_CALLS", "/dev/null"))
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"tool": tool, **args, "pid": os.getpid()}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return sum(1 for _ in open(path, encoding="utf-8")) if path != Path("/dev/null") else 0


def build_server(**settings: Any) -> MCPServer:
    server: MCPServer = MCPServer("flaky", **settings)

    def act(what: str, idempotency_key: str = "") -> dict[str, Any]:
        """Do a thing once (a stand-in for sending or paying): fails, hangs or crashes when told to."""
        count = _record("act", {"what": what, "idempotency_key": idempotency_key})
        move = _next_move()
        if move == "hang":
            time.sleep(3600)
        if move == "crash":
            os._exit(3)
        if move in FAILURES:
            raise ToolError(FAILURES[move])
        return {"done": what, "calls": count}

    def look(what: str) -> dict[str, Any]:
        """Read a thing; safe to repeat."""
        count = _record("look", {"what": what})
        move = _next_move()
        if move == "hang":
            time.sleep(3600)
        if move in FAILURES:
            raise ToolError(FAILURES[move])
        return {"seen": what, "calls": count}

    server.add_tool(act, description=act.__doc__, annotations=ToolAnnotations(destructive_hint=False))
    server.add_tool(look, description=look.__doc__, annotations=ToolAnnotations(read_only_hint=True))
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, default=0)
    parser.add_argument("--token", default="")
    options = parser.parse_args()
    if not options.http:
        build_server().run()
        return
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    app = build_server().streamable_http_app(host="127.0.0.1")

    async def with_token(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and options.token:
            request = Request(scope)
            if request.headers.get("authorization") != f"Bearer {options.token}":
                response: Response = JSONResponse({"error": "unauthorized"}, status_code=401)
                await response(scope, receive, send)
                return
        await app(scope, receive, send)

    print(f"listening on {options.http}", file=sys.stderr, flush=True)
    uvicorn.run(with_token, host="127.0.0.1", port=options.http, log_level="warning")


if __name__ == "__main__":
    main()
