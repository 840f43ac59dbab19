"""The pool of connections to the configured MCP servers (over stdio, or streamable HTTP for a `url`
server), started on first use and kept open; servers that refuse their credentials or do not start
are paused and probed again later.

Each stdio server gets only the environment its config names (plus the safe defaults the SDK passes and
`AI_EMPLOYEE_VAULT`); its stderr goes to a log file in the engine's state folder, not the console.
Known secrets (the config's) are redacted from that log and from every tool result before the
engine records it anywhere.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import structlog
from mcp import ClientSession, StdioServerParameters
from mcp.types import Tool

from ai_employee.config import Config
from ai_employee.config_sections import McpServerConfig
from ai_employee.executor.connection import AuthRefused, Connection, redacting_log, resolve_command, stdio
from ai_employee.executor.failures import Failure, failure_of_exception
from ai_employee.vault.layout import Vault

log = structlog.get_logger(__name__)
MAX_RESULT_CHARS = 2000


class StepError(Exception):
    """A step cannot run: unknown server or tool, or arguments that do not fit the tool's schema."""


class ServerUnavailable(ConnectionError):
    """A configured server did not start (in time), or is paused; nothing was called."""


# A server given up on is tried again after this long at first; each failed try doubles it, to this most.
RETRY_START_S = 60.0
MAX_PROBE_S = 900.0
PING_AFTER_IDLE_S = 1.0  # a session unused this long is pinged before a live call
PING_TIMEOUT_S = 5.0


@dataclass
class Pause:
    """A server set aside: not started or called until `retry_at` (monotonic), then tried once."""

    kind: str  # unavailable (did not start or answer) | auth (refused the credentials)
    reason: str
    since: float
    retry_at: float
    interval_s: float
    wall_since: str = ""


@dataclass(frozen=True)
class CallOutcome:
    ok: bool
    text: str
    structured: dict[str, Any] | None


CHECK_PREFIX = "check_"
# A tool argument the engine fills in with the step's idempotency key (planners leave it out).
IDEMPOTENCY_ARG = "idempotency_key"


def is_check(name: str, tools: dict[str, Any]) -> bool:
    return name.startswith(CHECK_PREFIX) and name.removeprefix(CHECK_PREFIX) in tools


class McpPool:
    """Open sessions to MCP servers by name, each started on first use (or by `warm_up`) and kept open
    until `aclose`, `forget` or `stop_if_idle`."""

    def __init__(
        self,
        servers: dict[str, McpServerConfig],
        vault_root: Path,
        log_dir: Path,
        redact: Callable[[str], str] = lambda text: text,
        start_timeout_s: float = 30.0,
        probe_interval_s: float = RETRY_START_S,
    ) -> None:
        self.servers = servers
        self.vault_root = vault_root
        self.log_dir = log_dir
        self.redact = redact
        self.start_timeout_s = start_timeout_s
        self.probe_interval_s = probe_interval_s
        self.paused: dict[str, Pause] = {}
        # Told when a server is paused (server, pause) and when it works again (server, the pause it ended).
        self.on_pause: Callable[[str, Pause], object] = lambda server, pause: None
        self.on_resume: Callable[[str, Pause], object] = lambda server, pause: None
        self._last_interval: dict[str, float] = {}  # a server paused again before it worked: longer
        self._connections: dict[str, Connection] = {}
        self._validators: dict[str, jsonschema.Draft202012Validator] = {}
        self.last_used = time.monotonic()

    @classmethod
    def for_engine(cls, config: Config, vault: Vault) -> McpPool:
        """The pool of the configured servers, logging to the vault's state folder, redacting the
        config's secrets."""
        from ai_employee.logsetup import Redactor

        return cls(
            config.engine_servers(),
            vault.root,
            vault.state_dir / "logs",
            Redactor(config.secrets()).scrub,
            config.mcp.start_timeout_s,
            config.execution.probe_interval_s,
        )

    async def aclose(self) -> None:
        connections, self._connections = list(self._connections.values()), {}
        self._validators.clear()
        await asyncio.gather(*(connection.close() for connection in connections))

    async def stop_if_idle(self, idle_s: float) -> bool:
        """Stop every server when none was used for `idle_s`: an idle engine holds no server processes;
        the next step starts what it needs again. True if they were stopped."""
        if not self._connections or time.monotonic() - self.last_used < idle_s:
            return False
        log.info("mcp servers stopped while idle", servers=sorted(self._connections), idle_s=idle_s)
        await self.aclose()
        return True

    def _connect(self, server: str) -> Connection:
        """The server's connection, started now if it has none (or its last one ended)."""
        connection = self._connections.get(server)
        if connection is not None and connection.alive:
            return connection
        config = self.servers.get(server)
        if config is None:
            known = ", ".join(sorted(self.servers)) or "none"
            raise StepError(f"no MCP server named `{server}` is configured (configured: {known})")
        if config.url is not None:
            connection = self._connections[server] = Connection.remote(server, config.url, config.headers)
            return connection
        params = StdioServerParameters(
            command=resolve_command(config.command or ""),
            args=list(config.args),
            env={**config.env, "AI_EMPLOYEE_VAULT": str(self.vault_root)},
            cwd=str(config.cwd) if config.cwd else None,
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        errlog = redacting_log(self.log_dir / f"mcp-{server}.log", self.redact)
        connection = self._connections[server] = Connection(server, stdio(params, errlog), errlog)
        return connection

    async def _session(self, server: str) -> tuple[ClientSession, Connection]:
        """The server's session, started if needed. A paused server fails at once until its next try is
        due (so one hung or refused server does not hold up every plan, or every draft's tool list);
        that try is the probe: a session that opens ends the pause (`on_resume`). A server not ready
        within `start_timeout_s` is paused."""
        self.last_used = time.monotonic()
        pause = self.paused.get(server)
        if pause is not None and time.monotonic() < pause.retry_at:
            raise ServerUnavailable(pause.reason)
        connection = self._connect(server)
        try:
            session = await asyncio.wait_for(asyncio.shield(connection.ready), self.start_timeout_s)
        except TimeoutError:
            why = f"MCP server `{server}` did not start within {self.start_timeout_s:g} s"
            if self._connections.get(server) is connection:  # the first of its waiters to give up
                del self._connections[server]
                await connection.close()
                self._start_failed(server, pause, Failure("unavailable", why))
            raise ServerUnavailable(why) from None
        except BaseException as exc:
            if self._connections.get(server) is connection and connection.ready.done():
                del self._connections[server]  # it never started: the next use tries again
                if isinstance(exc, Exception):
                    self._start_failed(server, pause, failure_of_exception(exc, started=False))
            raise
        if pause is not None and pause.kind == "unavailable":
            self.resume(server)  # it answers again (an auth pause ends when a call succeeds)
        return session, connection

    def _start_failed(self, server: str, pause: Pause | None, failure: Failure) -> None:
        """A server did not start (or its probe failed): paused, once per failed start, however many
        callers waited for it; a failed probe keeps the pause's kind and reason and waits longer."""
        if pause is not None:
            self.pause(server, pause.kind, pause.reason)
        else:
            self.pause(server, failure.kind, self.redact(failure.detail)[:500])

    def pause(self, server: str, kind: str, reason: str) -> Pause:
        """Set a server aside: plans that need it wait, and it is tried again after the probe interval
        (doubling each time it fails again, up to 15 minutes)."""
        from ai_employee.ledger.usage import now_iso

        previous = self.paused.get(server)
        last = self._last_interval.get(server)
        interval = min(MAX_PROBE_S, last * 2) if last is not None else self.probe_interval_s
        now = time.monotonic()
        pause = Pause(
            kind,
            reason,
            previous.since if previous else now,
            now + interval,
            interval,
            previous.wall_since if previous else now_iso(),
        )
        self.paused[server] = pause
        self._last_interval[server] = interval
        if previous is None:
            log.warning("mcp server paused", server=server, kind=kind, reason=reason, retry_in_s=interval)
            self.on_pause(server, pause)
        return pause

    def resume(self, server: str) -> None:
        """A server works again (a call succeeded, or a paused server started): end its pause."""
        self._last_interval.pop(server, None)
        pause = self.paused.pop(server, None)
        if pause is not None:
            log.info("mcp server resumed", server=server, paused_s=round(time.monotonic() - pause.since, 1))
            self.on_resume(server, pause)

    def due(self, server: str) -> bool:
        """Whether a step of this server may be tried now (it is not paused, or its next try is due)."""
        pause = self.paused.get(server)
        return pause is None or time.monotonic() >= pause.retry_at

    def next_try_s(self) -> float | None:
        """Seconds until the next paused server may be tried; None if none is paused."""
        if not self.paused:
            return None
        return max(0.0, min(p.retry_at for p in self.paused.values()) - time.monotonic())

    async def session_for(self, server: str) -> dict[str, Tool]:
        """Make sure the server is started and answering, right before a live call: one idle for a while
        is pinged first, and started again if it died meanwhile (its process exited, say), so that a call
        is never sent into a dead session, where its outcome would be unknown. Its tools."""
        session, connection = await self._session(server)
        if time.monotonic() - connection.last_ok > PING_AFTER_IDLE_S:
            try:
                await asyncio.wait_for(session.send_ping(), PING_TIMEOUT_S)
            except Exception as exc:
                log.warning("mcp server stopped answering; starting it again", server=server, error=type(exc).__name__)
                await self.forget(server)
                session, connection = await self._session(server)
            connection.last_ok = time.monotonic()
        return connection.tools

    def warm_up(self) -> None:
        """Start every configured server now, side by side and without waiting, so the first approved
        plan does not wait for one. A server that fails to start is retried by the step that needs it."""
        for server in self.servers:
            self._connect(server)

    async def catalog(self) -> list[tuple[str, Tool]]:
        """Every tool of every configured server, as (`server.tool`, tool), sorted; servers are started
        side by side if they are not running, and one that fails to start is left out (and logged)."""
        results = await asyncio.gather(*(self._session(server) for server in self.servers), return_exceptions=True)
        found: list[tuple[str, Tool]] = []
        for server, result in zip(self.servers, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("mcp server left out of the tool list", server=server, error=f"{type(result).__name__}")
                continue
            tools = result[1].tools
            found.extend(
                (f"{server}.{name}", tool) for name, tool in sorted(tools.items()) if not is_check(name, tools)
            )
        return sorted(found, key=lambda item: item[0])

    def annotations(self, tool: str) -> Any:
        """A tool's MCP annotations (`server.tool`), if its server has told us its tools; None if not
        (not started yet, or no such tool). Never starts a server: the policy asks synchronously."""
        server, _, name = tool.partition(".")
        connection = self._connections.get(server)
        found = connection.tools.get(name) if connection is not None else None
        return found.annotations if found is not None else None

    async def tool(self, server: str, name: str) -> Tool:
        _, connection = await self._session(server)
        tools = connection.tools
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

    async def check(self, server: str, name: str, args: dict[str, Any], timeout_s: float) -> None:
        """Run the server's own check of a step (its tool `check_<name>`, if it has one: read-only, it
        creates or sends nothing); StepError with the server's reason if the step would fail."""
        session, connection = await self._session(server)
        if CHECK_PREFIX + name not in connection.tools:
            return
        call_args = {k: v for k, v in args.items() if k != IDEMPOTENCY_ARG}
        result = await session.call_tool(CHECK_PREFIX + name, call_args, read_timeout_seconds=timeout_s)
        if result.is_error:
            text = " ".join(t for t in (getattr(block, "text", "") for block in result.content) if t)
            raise StepError(self.redact(text)[:MAX_RESULT_CHARS] or f"{server}.{name} would fail")

    async def call(
        self, server: str, name: str, args: dict[str, Any], timeout_s: float, key: str | None = None
    ) -> CallOutcome:
        """Call a tool; a tool that takes an `idempotency_key` is given the step's `key`."""
        session, connection = await self._session(server)
        tool = connection.tools.get(name)
        if key is not None and tool is not None and IDEMPOTENCY_ARG in (tool.input_schema.get("properties") or {}):
            args = {**args, IDEMPOTENCY_ARG: key}
        connection.http.refused = None  # only this call's answer counts
        try:
            result = await session.call_tool(name, args, read_timeout_seconds=timeout_s)
        except Exception as exc:
            if connection.http.refused is not None:  # refused before the tool ran
                raise AuthRefused(f"HTTP {connection.http.refused}: the server refused the credentials") from exc
            raise
        connection.last_ok = time.monotonic()
        texts = [getattr(block, "text", "") for block in result.content]
        text = self.redact(" ".join(t for t in texts if t))[:MAX_RESULT_CHARS]
        return CallOutcome(ok=not result.is_error, text=text, structured=result.structured_content)

    async def forget(self, server: str) -> None:
        """Drop a server's connection after it misbehaved; the next call starts it again."""
        log.warning("resetting mcp connection", server=server)
        connection = self._connections.pop(server, None)
        self._validators = {key: v for key, v in self._validators.items() if not key.startswith(f"{server}.")}
        if connection is not None:
            await connection.close()
