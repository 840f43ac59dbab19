"""Failures of the outside world, against a real MCP server that can be told to fail, hang, crash or
succeed (`tests/flaky_server.py`), counting the calls it receives: each kind is classified, retried or
not, paused and resumed, and a step that ran never runs again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ai_employee.config_sections import ExecutionConfig, McpServerConfig, RetryConfig, ToolSettings
from ai_employee.events import EventBus, EventName
from ai_employee.executor.failures import Failure, backoff_s, classify_error_text
from ai_employee.executor.limits import RateLimiter, ToolRules
from ai_employee.executor.mcp_pool import McpPool
from ai_employee.executor.run import PlanRunner
from ai_employee.ledger import Ledger
from ai_employee.vault.plans import Step
from tests.conftest import wait_for
from tests.smtp_server import free_port

pytestmark = pytest.mark.timeout(60)
FAST = ExecutionConfig(
    dry_run=False,
    step_timeout_s=5,
    probe_interval_s=0.2,
    retry=RetryConfig(attempts=4, base_delay_s=0.01, max_delay_s=0.05, rate_limit_delay_s=0.01),
)


@pytest.mark.parametrize(
    ("text", "idempotent", "kind"),
    [
        ("could not send: 421 4.7.0 try again later", False, "transient"),
        ("could not send: [Errno 111] Connection refused", False, "transient"),
        ("HTTP 503 Service Unavailable", False, "transient"),
        ("too many requests (429): retry after 30 s", False, "transient"),
        ("authentication failed: 535 5.7.8 bad credentials", False, "auth"),
        ("401 Unauthorized", False, "auth"),
        ("the token has been revoked", False, "auth"),
        ("upstream request timed out", False, "unknown"),
        ("upstream request timed out", True, "transient"),
        ("502 Bad Gateway", False, "unknown"),
        ("refused: the subject contains a line break", False, "logic"),
        ("Input validation error: 'to' is a required property", False, "logic"),
        ("550 5.1.1 no such mailbox", False, "logic"),
        # What a server declares first wins, over numbers and words further on.
        ("temporary failure: could not reach the SMTP server (timed out); nothing was sent", False, "transient"),
        ("temporary failure: the SMTP server answered 421 4.4.2 Timeout waiting for data", False, "transient"),
        ("outcome unknown: request 403 timed out", False, "unknown"),
        ("refused: permission denied for folder Finance", False, "logic"),
        # A number is a status code only where it stands as one.
        ("refused: invoice 450 is already paid", False, "logic"),
        ("no customer with id 401", False, "logic"),
        ("order #503 not found", False, "logic"),
        ("Invalid request: field 'timeout' must be a number", False, "logic"),
        ("Sender address rejected: Access denied", False, "logic"),
        # A sign that the other side may have acted wins over "try again", for a tool not idempotent.
        ("Payment may have been charged; connection closed by peer, try again later", False, "unknown"),
        ("the message may have been delivered; do not try again", False, "unknown"),
        ("slow down: the order was placed but confirmation timed out", False, "unknown"),
        ("error 500 from backend", False, "unknown"),
        ("timed out connecting; nothing was sent", False, "transient"),
    ],
)
def test_a_tools_error_is_classified_by_what_it_says(text: str, idempotent: bool, kind: str) -> None:
    assert classify_error_text(text, idempotent).kind == kind


def test_backoff_doubles_with_jitter_is_capped_and_honours_retry_after() -> None:
    failure = Failure("transient", "503")
    waits = [backoff_s(n, failure, 1.0, 30.0, 20.0) for n in range(1, 8)]
    for n, wait in enumerate(waits, 1):
        ceiling = min(30.0, 2 ** (n - 1))
        assert ceiling / 2 <= wait <= ceiling
    rate = Failure("transient", "429", rate_limited=True)
    assert 10.0 <= backoff_s(1, rate, 1.0, 30.0, 20.0) <= 20.0  # longer for rate limits
    told = classify_error_text("429 too many requests, retry-after: 90", False)
    assert backoff_s(1, told, 1.0, 30.0, 20.0) == 90.0


def test_the_signature_ignores_numbers_but_not_the_reason() -> None:
    assert Failure("transient", "503 at 12:01:07").signature == Failure("transient", "503 at 12:01:09").signature
    assert Failure("transient", "503").signature != Failure("transient", "connection refused").signature


class Flaky:
    """The flaky server's script and the calls it received."""

    def __init__(self, folder: Path) -> None:
        self.script_file = folder / "script.json"
        self.calls_file = folder / "calls.jsonl"
        self.env = {"FLAKY_SCRIPT": str(self.script_file), "FLAKY_CALLS": str(self.calls_file)}

    def script(self, *moves: str) -> None:
        self.script_file.write_text(json.dumps(list(moves)))

    def calls(self, what: str | None = None) -> list[dict[str, Any]]:
        if not self.calls_file.exists():
            return []
        found = [json.loads(line) for line in self.calls_file.read_text().splitlines()]
        return [c for c in found if what is None or c.get("what") == what]


@pytest.fixture
def flaky(tmp_path: Path) -> Flaky:
    return Flaky(tmp_path)


def flaky_server(flaky: Flaky, tools: dict[str, ToolSettings] | None = None) -> McpServerConfig:
    return McpServerConfig(command=sys.executable, args=["-m", "tests.flaky_server"], env=flaky.env, tools=tools or {})


class Rig:
    def __init__(self, tmp_path: Path, servers: dict[str, McpServerConfig], execution: ExecutionConfig) -> None:
        self.ledger = Ledger(tmp_path / "ledger.db")
        self.bus = EventBus()
        self.pool = McpPool(servers, tmp_path, tmp_path / "logs", start_timeout_s=10, probe_interval_s=0.2)
        self.pool.on_pause = lambda server, p: self.bus.publish(EventName.SERVER_PAUSED, _payload(server, p))
        self.pool.on_resume = lambda server, p: self.bus.publish(EventName.SERVER_RESUMED, _payload(server, p))
        self.now = datetime.now(UTC)
        self.rules = ToolRules(servers, execution)
        self.runner = PlanRunner(
            self.ledger, self.bus, self.pool, self.rules, RateLimiter(self.ledger, self.rules, lambda: self.now)
        )

    async def run(self, plan_id: str, *steps: Step, dry_run: bool = False) -> Any:
        return await self.runner.run(plan_id, list(steps), dry_run, lambda: False)

    def events(self, name: EventName) -> list[Any]:
        return [e.payload for e in self.bus.history if e.name == name]


def _payload(server: str, pause: Any) -> Any:
    from ai_employee.events import ServerPayload

    return ServerPayload(server, pause.kind, pause.reason)


@pytest.fixture
async def rig(tmp_path: Path, flaky: Flaky) -> AsyncIterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(
        tools: dict[str, ToolSettings] | None = None, execution: ExecutionConfig = FAST, **servers: McpServerConfig
    ) -> Rig:
        made.append(Rig(tmp_path, servers or {"flaky": flaky_server(flaky, tools)}, execution))
        return made[-1]

    yield make
    for one in made:
        await one.pool.aclose()
        one.ledger.close()


def act(what: str) -> Step:
    return Step(tool="flaky.act", args={"what": what})


async def test_a_transient_failure_is_tried_again_until_it_works(rig: Callable[..., Rig], flaky: Flaky) -> None:
    flaky.script("transient", "ratelimit", "ok")
    r = rig()
    result = await r.run("P1", act("pay"))
    assert result.status == "done"
    assert result.steps[0].tries == 3
    assert len(flaky.calls("pay")) == 3  # two refused, one done


async def test_the_same_failure_twice_in_a_row_stops_retrying(rig: Callable[..., Rig], flaky: Flaky) -> None:
    flaky.script("transient", "transient", "ok")
    result = await rig().run("P1", act("pay"))
    assert result.status == "failed"
    assert len(flaky.calls("pay")) == 2
    assert "the same failure twice" in result.detail and result.steps[0].failure == "transient"


async def test_a_tools_refusal_stops_at_once(rig: Callable[..., Rig], flaky: Flaky) -> None:
    flaky.script("fail")
    result = await rig().run("P1", act("pay"), act("then this"))
    assert result.status == "failed" and result.steps[0].failure == "logic"
    assert len(flaky.calls()) == 1  # not retried, and the next step never ran


async def test_refused_credentials_pause_the_server_and_the_plan_waits_then_goes_on(
    rig: Callable[..., Rig], flaky: Flaky
) -> None:
    flaky.script("ok", "auth")
    r = rig()
    first = await r.run("P1", act("one"), act("two"))
    assert first.status == "waiting" and "credentials" in first.blocker
    assert "flaky" in r.pool.paused and r.pool.paused["flaky"].kind == "auth"
    assert [p.server for p in r.events(EventName.SERVER_PAUSED)] == ["flaky"]
    # Before the probe is due the plan waits without calling anything.
    again = await r.run("P1", act("one"), act("two"))
    assert again.status == "waiting" and len(flaky.calls()) == 2
    wait_for(lambda: r.pool.due("flaky"), timeout_s=5)
    last = await r.run("P1", act("one"), act("two"))
    assert last.status == "done"
    assert [s.outcome for s in last.steps] == ["skipped", "ok"]  # step 1 ran once, ever
    assert len(flaky.calls("one")) == 1 and len(flaky.calls("two")) == 2
    assert "flaky" not in r.pool.paused and len(r.events(EventName.SERVER_RESUMED)) == 1


async def test_a_hung_call_is_never_repeated_unless_the_tool_is_idempotent(
    rig: Callable[..., Rig], flaky: Flaky
) -> None:
    flaky.script("hang", "hang")
    tools = {"act": ToolSettings(timeout_s=0.5), "look": ToolSettings(timeout_s=0.5, idempotent=True)}
    r = rig(tools)
    result = await r.run("P1", act("pay"))
    assert result.status == "interrupted" and result.steps[0].outcome == "unknown"
    assert len(flaky.calls("pay")) == 1
    looked = await r.run("P2", Step(tool="flaky.look", args={"what": "balance"}))
    assert looked.status == "done"  # the hung server was restarted; a read is safe to repeat
    assert len(flaky.calls("balance")) == 2


async def test_a_crashed_server_leaves_the_step_in_doubt_and_is_restarted(
    rig: Callable[..., Rig], flaky: Flaky
) -> None:
    flaky.script("crash")
    r = rig()
    result = await r.run("P1", act("pay"))
    assert result.status == "interrupted"
    assert len(flaky.calls("pay")) == 1
    assert (await r.run("P2", act("other"))).status == "done"  # started again on demand


async def test_an_unknown_outcome_reported_by_the_tool_is_not_retried(rig: Callable[..., Rig], flaky: Flaky) -> None:
    flaky.script("unknown")
    result = await rig().run("P1", act("pay"))
    assert result.status == "interrupted" and len(flaky.calls("pay")) == 1


async def test_resuming_a_failed_plan_goes_on_from_the_first_step_not_done(
    rig: Callable[..., Rig], flaky: Flaky
) -> None:
    flaky.script("ok", "fail")
    r = rig()
    steps = (act("one"), act("two"), act("three"))
    assert (await r.run("P1", *steps)).status == "failed"
    resumed = await r.run("P1", *steps)
    assert resumed.status == "done" and [s.outcome for s in resumed.steps] == ["skipped", "ok", "ok"]
    # The person deleted the first step before resuming again: nothing that ran runs again.
    again = await r.run("P1", act("two"), act("three"))
    assert [s.outcome for s in again.steps] == ["skipped", "skipped"]
    assert [c["what"] for c in flaky.calls()] == ["one", "two", "two", "three"]


async def test_a_server_that_does_not_start_pauses_and_blocks_only_its_own_plans(
    rig: Callable[..., Rig], flaky: Flaky, tmp_path: Path
) -> None:
    broken = McpServerConfig(command=sys.executable, args=["-c", "import sys; sys.exit(2)"])
    r = rig(flaky=flaky_server(flaky), broken=broken)
    waiting = await r.run("P1", Step(tool="broken.anything", args={}))
    assert waiting.status == "waiting" and "not available" in waiting.blocker
    assert r.pool.paused["broken"].kind == "unavailable"
    assert (await r.run("P2", act("pay"))).status == "done"


async def test_a_rate_limit_makes_the_excess_wait_not_dropped(rig: Callable[..., Rig], flaky: Flaky) -> None:
    r = rig({"act": ToolSettings(rate_limit=(2, 3600.0))})
    assert (await r.run("P1", act("a"))).status == "done"
    assert (await r.run("P2", act("b"))).status == "done"
    third = await r.run("P3", act("c"))
    assert third.status == "waiting" and "rate limit (2 calls per hour)" in third.blocker
    assert 3500 < (third.wait_s or 0) <= 3610  # the injected clock stands still while the calls run
    assert len(flaky.calls()) == 2
    r.now += timedelta(hours=1, seconds=1)  # the injected clock: an hour later
    assert (await r.run("P3", act("c"))).status == "done"
    assert len(flaky.calls("c")) == 1


async def test_a_tools_own_dry_run_overrides_the_global_mode(rig: Callable[..., Rig], flaky: Flaky) -> None:
    r = rig({"act": ToolSettings(dry_run=False), "look": ToolSettings(dry_run=True)})
    in_dry_run = await r.run("P1", act("note"), Step(tool="flaky.look", args={"what": "x"}), dry_run=True)
    assert [s.outcome for s in in_dry_run.steps] == ["ok", "dry_run"] and not in_dry_run.dry_run
    assert [c["what"] for c in flaky.calls()] == ["note"]
    live = await r.run("P2", Step(tool="flaky.look", args={"what": "y"}), dry_run=False)
    assert [s.outcome for s in live.steps] == ["dry_run"] and live.dry_run
    assert [c["what"] for c in flaky.calls()] == ["note"]


@pytest.fixture
def remote(flaky: Flaky) -> Any:
    port = free_port()
    env = {**__import__("os").environ, **flaky.env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.flaky_server", "--http", str(port), "--token", "s3cret-token"],
        env=env,
        cwd=Path(__file__).parent.parent,
    )

    def listening() -> bool:
        import socket

        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, timeout_s=20)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    proc.wait(10)


async def test_a_remote_server_over_streamable_http_with_a_header_from_config(
    rig: Callable[..., Rig], flaky: Flaky, remote: str
) -> None:
    good = McpServerConfig(url=remote, headers={"Authorization": "Bearer s3cret-token"})
    bad = McpServerConfig(url=remote, headers={"Authorization": "Bearer wrong-token"})
    r = rig(remote=good, other=bad)
    result = await r.run("P1", Step(tool="remote.act", args={"what": "over http"}))
    assert result.status == "done", result.detail
    assert [c["what"] for c in flaky.calls()] == ["over http"]
    refused = await r.run("P2", Step(tool="other.act", args={"what": "nope"}))
    assert refused.status == "waiting" and r.pool.paused["other"].kind == "auth"
    assert "wrong-token" not in json.dumps([p.reason for p in r.pool.paused.values()])


async def test_an_interrupted_step_runs_again_only_if_the_person_leaves_it_in(
    rig: Callable[..., Rig], flaky: Flaky
) -> None:
    flaky.script("ok", "unknown")
    r = rig()
    steps = [act("one"), act("two"), act("three")]
    assert (await r.run("P1", *steps)).status == "interrupted"
    # The person checked: step 2 did happen, so they delete it and resume.
    resumed = await r.run("P1", act("one"), act("three"))
    assert [s.outcome for s in resumed.steps] == ["skipped", "ok"]
    assert [c["what"] for c in flaky.calls()] == ["one", "two", "three"]
    # Another plan: the step did not happen, they leave it in, and it runs again (their decision).
    flaky.script("unknown")
    assert (await r.run("P2", act("four"))).status == "interrupted"
    assert (await r.run("P2", act("four"))).status == "done"
    assert [c["what"] for c in flaky.calls()][-2:] == ["four", "four"]


async def test_plans_arriving_while_a_server_is_paused_do_not_lengthen_its_pause(
    rig: Callable[..., Rig], flaky: Flaky
) -> None:
    broken = McpServerConfig(command=sys.executable, args=["-c", "import sys; sys.exit(2)"])
    r = rig(broken=broken)
    assert (await r.run("P1", Step(tool="broken.x", args={}))).status == "waiting"
    first = r.pool.paused["broken"]
    retry_at, interval = first.retry_at, first.interval_s
    for n in range(5):
        assert (await r.run(f"Q{n}", Step(tool="broken.x", args={}))).status == "waiting"
    assert r.pool.paused["broken"].retry_at == retry_at and r.pool.paused["broken"].interval_s == interval
    wait_for(lambda: r.pool.due("broken"), timeout_s=5)
    assert (await r.run("P1", Step(tool="broken.x", args={}))).status == "waiting"  # the probe failed
    assert r.pool.paused["broken"].interval_s == interval * 2  # once, not once per plan
    assert len(r.events(EventName.SERVER_PAUSED)) == 1


async def test_the_same_rate_limit_twice_is_waited_out_not_given_up(rig: Callable[..., Rig], flaky: Flaky) -> None:
    flaky.script("ratelimit", "ratelimit", "ok")
    result = await rig().run("P1", act("pay"))
    assert result.status == "done" and result.steps[0].tries == 3
    assert len(flaky.calls("pay")) == 3


async def test_a_server_that_died_while_idle_is_started_again_before_the_call(
    rig: Callable[..., Rig], flaky: Flaky
) -> None:
    r = rig()
    assert (await r.run("P1", act("one"))).status == "done"
    [first] = flaky.calls("one")
    os.kill(first["pid"], signal.SIGKILL)
    await asyncio.sleep(1.5)  # idle longer than PING_AFTER_IDLE_S
    result = await r.run("P2", act("two"))
    assert result.status == "done", result.detail  # not "may or may not have happened"
    [second] = flaky.calls("two")
    assert second["pid"] != first["pid"]


async def test_a_server_failing_to_start_is_paused_once_however_many_wait_for_it(tmp_path: Path) -> None:
    spawns = tmp_path / "spawns"
    crashing = McpServerConfig(command=sys.executable, args=["-c", f"open({str(spawns)!r}, 'a').write('x')"])
    hanging = McpServerConfig(command=sys.executable, args=["-c", "import time; time.sleep(60)"])
    pool = McpPool({"crashing": crashing, "hanging": hanging}, tmp_path, tmp_path / "logs", start_timeout_s=0.5)
    try:
        await asyncio.gather(*(pool.catalog() for _ in range(6)))
        for _ in range(4):  # every planner's draft lists the tools: the crashing server is not spawned again
            await pool.catalog()
        assert spawns.read_text() == "x"
        assert pool.paused["crashing"].interval_s == pool.probe_interval_s
        assert pool.paused["hanging"].interval_s == pool.probe_interval_s  # not doubled per waiter
    finally:
        await pool.aclose()
