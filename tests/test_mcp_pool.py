"""The MCP pool against the real built-in `vault` server over stdio: idle servers are stopped and
started again on demand."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ai_employee.config import Config
from ai_employee.executor.mcp_pool import McpPool, ServerUnavailable
from ai_employee.vault.layout import init_vault

pytestmark = pytest.mark.timeout(60)


async def test_servers_idle_for_long_enough_are_stopped_and_start_again_on_demand(tmp_path: Path) -> None:
    init_vault(tmp_path / "vault")
    servers = {"vault": Config().mcp_servers["vault"]}
    pool = McpPool(servers, tmp_path / "vault", tmp_path / "logs")
    try:
        await pool.validate("vault", "create_note", {"path": "Notes/a.md", "content": "x"})
        assert not await pool.stop_if_idle(300.0), "used just now: kept running"
        pool.last_used -= 301.0
        assert await pool.stop_if_idle(300.0)
        assert not await pool.stop_if_idle(300.0), "nothing left to stop"
        await pool.validate("vault", "create_note", {"path": "Notes/a.md", "content": "x"})  # on demand
        assert await pool.tool("vault", "create_note")
    finally:
        await pool.aclose()


async def test_warm_up_starts_servers_in_the_background_and_a_broken_one_stays_its_own_problem(
    tmp_path: Path,
) -> None:
    init_vault(tmp_path / "vault")
    good = Config().mcp_servers["vault"]
    broken = good.model_copy(update={"command": str(tmp_path / "no-such-server")})
    pool = McpPool({"vault": good, "broken": broken}, tmp_path / "vault", tmp_path / "logs")
    try:
        pool.warm_up()  # returns at once: the pipeline goes on while the servers start
        with pytest.raises(Exception, match=r"no-such-server|No such file"):
            await pool.tool("broken", "anything")
        await pool.validate("vault", "create_note", {"path": "Notes/a.md", "content": "x"})
        with pytest.raises(Exception, match=r"no-such-server|No such file"):
            await pool.tool("broken", "anything")  # tried again on the next use, still broken
        await pool.forget("broken")
        assert await pool.tool("vault", "create_note"), "forgetting one server leaves the others running"
    finally:
        await pool.aclose()


async def test_a_server_that_never_gets_ready_is_given_up_and_never_holds_the_others(tmp_path: Path) -> None:
    init_vault(tmp_path / "vault")
    good = Config().mcp_servers["vault"]
    hung = good.model_copy(update={"command": "sleep", "args": ["1000"]})  # starts, never answers
    # Long enough for the real server to start on a busy machine; the hung one never will.
    pool = McpPool({"hung": hung, "vault": good}, tmp_path / "vault", tmp_path / "logs", start_timeout_s=8.0)
    try:
        started = time.monotonic()
        names = [name for name, _ in await pool.catalog()]
        assert "vault.create_note" in names and not any(n.startswith("hung.") for n in names)
        assert time.monotonic() - started < 30
        started = time.monotonic()
        with pytest.raises(ServerUnavailable, match="did not start within 8 s"):
            await pool.tool("hung", "anything")  # given up for a while: fails at once
        assert time.monotonic() - started < 1
    finally:
        started = time.monotonic()
        await pool.aclose()
        assert time.monotonic() - started < 5, "closing does not wait for a handshake that never comes"
