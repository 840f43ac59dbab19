"""Connections to the configured MCP servers over stdio, started on first use and kept open.

Each server gets only the environment its config names (plus the safe defaults the SDK passes and
`AI_EMPLOYEE_VAULT`); its stderr goes to a log file in the engine's state folder, not the console.
Known secrets (the config's) are redacted from that log and from every tool result before the
engine records it anywhere.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO

import jsonschema
import structlog
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.types import Tool

from ai_employee.config import McpServerConfig

log = structlog.get_logger(__name__)
MAX_RESULT_CHARS = 2000


class StepError(Exception):
    """A step cannot run: unknown server or tool, or arguments that do not fit the tool's schema."""


@dataclass(frozen=True)
class CallOutcome:
    ok: bool
    text: str
    structured: dict[str, Any] | None


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


class McpPool:
    """Open sessions to MCP servers by name. Must be used and closed from one asyncio task."""

    def __init__(
        self,
        servers: dict[str, McpServerConfig],
        vault_root: Path,
        log_dir: Path,
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.servers = servers
        self.vault_root = vault_root
        self.log_dir = log_dir
        self.redact = redact
        self._stack = AsyncExitStack()
        self._sessions: dict[str, ClientSession] = {}
        self._tools: dict[str, dict[str, Tool]] = {}
        self._validators: dict[str, jsonschema.Draft202012Validator] = {}
        self._logs: list[IO[str]] = []
        self.last_used = time.monotonic()

    async def aclose(self) -> None:
        try:
            await self._stack.aclose()
        finally:
            for fh in self._logs:
                fh.close()
            self._logs.clear()
            self._sessions.clear()
            self._tools.clear()
            self._validators.clear()
            self._stack = AsyncExitStack()

    async def stop_if_idle(self, idle_s: float) -> bool:
        """Stop every server when none was used for `idle_s`: an idle engine holds no server processes;
        the next step starts what it needs again. True if they were stopped."""
        if not self._sessions or time.monotonic() - self.last_used < idle_s:
            return False
        log.info("mcp servers stopped while idle", servers=sorted(self._sessions), idle_s=idle_s)
        await self.aclose()
        return True

    async def _session(self, server: str) -> ClientSession:
        self.last_used = time.monotonic()
        if server in self._sessions:
            return self._sessions[server]
        config = self.servers.get(server)
        if config is None:
            known = ", ".join(sorted(self.servers)) or "none"
            raise StepError(f"no MCP server named `{server}` is configured (configured: {known})")
        params = StdioServerParameters(
            command=resolve_command(config.command),
            args=list(config.args),
            env={**config.env, "AI_EMPLOYEE_VAULT": str(self.vault_root)},
            cwd=str(config.cwd) if config.cwd else None,
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        errlog = _redacting_log(self.log_dir / f"mcp-{server}.log", self.redact)
        self._logs.append(errlog)
        read, write = await self._stack.enter_async_context(stdio_client(params, errlog=errlog))
        session = await self._stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        listed = await session.list_tools()
        self._sessions[server] = session
        self._tools[server] = {tool.name: tool for tool in listed.tools}
        log.info("mcp server connected", server=server, tools=sorted(self._tools[server]))
        return session

    async def warm_up(self) -> None:
        """Start every configured server now, so the first approved plan does not wait for one.
        A server that fails to start is logged; the step that needs it reports the error later."""
        for server in self.servers:
            try:
                await self._session(server)
            except Exception as exc:
                log.warning("mcp server did not start", server=server, error=f"{type(exc).__name__}: {exc}")

    async def tool(self, server: str, name: str) -> Tool:
        await self._session(server)
        tools = self._tools[server]
        if name not in tools:
            known = ", ".join(sorted(tools)) or "none"
            raise StepError(f"MCP server `{server}` has no tool `{name}` (it has: {known})")
        return tools[name]

    async def validate(self, server: str, name: str, args: dict[str, Any]) -> None:
        """Check `args` against the tool's input schema; StepError listing every problem."""
        tool = await self.tool(server, name)
        key = f"{server}.{name}"
        validator = self._validators.get(key)
        if validator is None:
            validator = self._validators[key] = jsonschema.Draft202012Validator(tool.input_schema)
        problems = [
            (f"{'.'.join(map(str, err.path))}: " if err.path else "") + err.message
            for err in sorted(validator.iter_errors(args), key=lambda e: list(map(str, e.path)))
        ]
        if problems:
            raise StepError(f"arguments do not fit {server}.{name}: " + "; ".join(problems))

    async def call(self, server: str, name: str, args: dict[str, Any], timeout_s: float) -> CallOutcome:
        session = await self._session(server)
        result = await session.call_tool(name, args, read_timeout_seconds=timeout_s)
        texts = [getattr(block, "text", "") for block in result.content]
        text = self.redact(" ".join(t for t in texts if t))[:MAX_RESULT_CHARS]
        return CallOutcome(ok=not result.is_error, text=text, structured=result.structured_content)

    async def forget(self, server: str) -> None:
        """Drop every connection after a server misbehaved; the next call reconnects."""
        log.warning("resetting mcp connections", server=server)
        await self.aclose()


def _redacting_log(path: Path, redact: Callable[[str], str]) -> TextIO:
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
