"""One MCP server's connection: its transport (stdio, or streamable HTTP for a `url` server) and its
session, owned by a task of its own. The pool (`mcp_pool.py`) keeps one per server.

A stdio server's stderr goes, redacted, to its log file; a remote server's 401/403 is kept from the
HTTP layer (the SDK turns it into a generic error) so that it can be told apart as refused credentials.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import structlog
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import Tool

log = structlog.get_logger(__name__)


def resolve_command(command: str) -> str:
    """`python`/`python3` mean the engine's own interpreter; other commands are looked up in the
    engine's environment first (a virtualenv's bin/), then on PATH."""
    if command in ("python", "python3"):
        return sys.executable
    if "/" in command:
        return command
    beside = Path(sys.executable).parent / command
    if beside.exists():
        return str(beside)
    return shutil.which(command) or command


Streams = tuple[Any, Any]


def stdio(params: StdioServerParameters, errlog: TextIO) -> Callable[[], AbstractAsyncContextManager[Streams]]:
    return lambda: stdio_client(params, errlog=errlog)


class AuthRefused(ConnectionError):
    """A remote server answered HTTP 401 or 403: it does not accept the credentials (headers)."""


@dataclass
class _HttpStatus:
    refused: int | None = None  # the 401/403 a remote server answered the last request (POST) with


def _http(url: str, headers: dict[str, str], status: _HttpStatus) -> Callable[[], AbstractAsyncContextManager[Streams]]:
    """A remote server over streamable HTTP, with the configured headers (auth) on every request. The
    SDK turns an HTTP error into a generic one; a response hook keeps a 401/403 for `AuthRefused`."""

    @asynccontextmanager
    async def open_streams() -> AsyncIterator[Streams]:
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        async def note_status(response: Any) -> None:
            if response.request.method == "POST":  # a request's own answer, not the event stream's (GET)
                status.refused = response.status_code if response.status_code in (401, 403) else None

        client = create_mcp_http_client(headers=headers)
        client.event_hooks["response"].append(note_status)
        async with client, streamable_http_client(url, http_client=client) as (read, write):
            try:
                yield read, write
            except Exception as exc:
                if status.refused is not None:
                    raise AuthRefused(f"HTTP {status.refused}: the server refused the credentials") from exc
                raise

    return open_streams


class Connection:
    """One server's session, owned by a task of its own: the SDK's transports (anyio task groups) must
    be entered and left in one task, and a task per server lets servers start side by side while the
    pipeline goes on, and one server's failure stay its own."""

    def __init__(
        self, server: str, transport: Callable[[], AbstractAsyncContextManager[Streams]], errlog: TextIO | None
    ) -> None:
        self.server = server
        self.errlog = errlog
        self.http = _HttpStatus()
        self.tools: dict[str, Tool] = {}
        self.last_ok = 0.0  # when (monotonic) it last answered
        self.ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
        self._close = asyncio.Event()
        self.task = asyncio.create_task(self._serve(transport), name=f"mcp {server}")

    @classmethod
    def remote(cls, server: str, url: str, headers: dict[str, str]) -> Connection:
        status = _HttpStatus()
        connection = cls(server, _http(url, headers, status), None)
        connection.http = status
        return connection

    async def _serve(self, transport: Callable[[], AbstractAsyncContextManager[Streams]]) -> None:
        try:
            async with transport() as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                listed = await session.list_tools()
                self.tools = {tool.name: tool for tool in listed.tools}
                log.info("mcp server connected", server=self.server, tools=sorted(self.tools))
                self.last_ok = time.monotonic()
                self.ready.set_result(session)
                await self._close.wait()
        except Exception as exc:
            if not self.ready.done():
                self.ready.set_exception(exc)
                self.ready.exception()  # retrieved: the waiters (if any) raise it, none is fine too
            else:
                log.warning("mcp connection ended", server=self.server, error=f"{type(exc).__name__}: {exc}")
        finally:
            if not self.ready.done():  # cancelled while starting (the engine stopping)
                self.ready.set_exception(ConnectionError(f"MCP server `{self.server}` was stopped while starting"))
                self.ready.exception()
            if self.errlog is not None:
                self.errlog.close()

    @property
    def alive(self) -> bool:
        return not self.task.done()

    async def close(self) -> None:
        """End the session and the server; one still starting (a handshake that may never come) is
        cancelled."""
        self._close.set()
        if not self.ready.done():
            self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the caller itself is being cancelled: never swallowed
        except Exception:
            pass  # already logged by the connection's own task


# A server's tool `check_<name>` checks a step of `<name>` without doing anything: the executor runs it
# in dry-run and before a live step. Planners are not shown check tools.


def redacting_log(path: Path, redact: Callable[[str], str]) -> TextIO:
    """A pipe for a server's stderr: a thread copies what arrives, line by line and redacted, to the
    log at `path`, until every writer has closed the pipe (the server exited and the pool closed)."""
    read_fd, write_fd = os.pipe()

    def copy() -> None:
        with open(read_fd, encoding="utf-8", errors="replace") as source, open(path, "a", encoding="utf-8") as sink:
            for line in source:
                try:
                    sink.write(redact(line))
                    sink.flush()
                except OSError:
                    pass  # a full disk: the line is lost, the server is not blocked

    threading.Thread(target=copy, name=f"log {path.name}", daemon=True).start()
    return open(write_fd, "w", encoding="utf-8")
