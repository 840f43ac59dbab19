"""Execution speed: approve -> Done in dry-run, and what the engine adds to each live step. Prints
figures; asserts nothing.

Targets (issue 13, a 2-core machine):
  1. approve-move -> Done in dry-run, the real engine on a temp vault           (p99 <= 100 ms)
     beside the floor: the same file work (read, write, rename a note) in a bare loop
  2. live: the engine's step (PlanRunner: outbox rows, checks, rate limit, the call) against the same
     tool called directly over the same MCP session, both sending to a local SMTP server (aiosmtpd)
                                                                                 (<= 20 ms added per step)
  3. live approve-move -> Done end to end, beside the direct call's time

Usage: python benchmarks/execution.py [--approvals 200] [--sends 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.smtp_server import Collector, start_smtp

from ai_employee.config_sections import ExecutionConfig, McpServerConfig
from ai_employee.events import EventBus
from ai_employee.executor.limits import ToolRules
from ai_employee.executor.mcp_pool import McpPool
from ai_employee.executor.run import PlanRunner
from ai_employee.ledger import Ledger
from ai_employee.vault.fsops import move_file, replace_file
from ai_employee.vault.layout import init_vault
from ai_employee.vault.plans import Step
from pipeline import Engine, bench_approve, count, percentile, summary, wait_until

SEND = {"to": ["ann@example.org"], "subject": "Benchmark", "body": "Hello Ann, this is a benchmark.\n"}


def file_floor(root: Path, n: int) -> list[float]:
    """The file work of filing one plan, in a bare loop: read the note, write it back, move it."""
    (root / "Approved").mkdir(parents=True)
    (root / "Done").mkdir()
    tmp = root / "tmp"
    tmp.mkdir()
    times = []
    for i in range(n):
        note = root / "Approved" / f"plan-{i}.md"
        note.write_text("---\nid: x\n---\n# Plan\n\n## Steps\n\n```yaml\n- tool: vault.create_note\n```\n")
        t0 = time.monotonic()
        text = note.read_bytes()
        replace_file(note, text + b"\n## Execution log\n\n- done\n", tmp)
        move_file(note, root / "Done")
        times.append(time.monotonic() - t0)
    return times


def email_server(port: int) -> McpServerConfig:
    env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_FROM": "Me <me@example.com>"}
    return McpServerConfig(command=sys.executable, args=["-m", "ai_employee.mcp_servers.email_server"], env=env)


async def bench_live_steps(root: Path, port: int, n: int) -> tuple[list[float], list[float]]:
    """(direct call times, engine step times), interleaved so that drift hits both alike."""
    servers = {"email": email_server(port)}
    pool = McpPool(servers, root, root / "logs")
    ledger = Ledger(root / "ledger.db")
    runner = PlanRunner(ledger, EventBus(), pool, ToolRules(servers, ExecutionConfig(dry_run=False)))
    direct, engine = [], []
    try:
        await pool.session_for("email")
        for i in range(n):
            t0 = time.monotonic()
            outcome = await pool.call("email", "send_email", SEND, 30.0, f"direct-{i}")
            direct.append(time.monotonic() - t0)
            assert outcome.ok, outcome.text
            t0 = time.monotonic()
            result = await runner.run(f"P{i}", [Step(tool="email.send_email", args=SEND)], False, lambda: False)
            engine.append(time.monotonic() - t0)
            assert result.status == "done", result.detail
    finally:
        await pool.aclose()
        ledger.close()
    return direct, engine


def bench_live_e2e(base: Path, port: int, n: int) -> list[float]:
    """A live engine; plans with one send_email step moved into Approved/ one at a time."""
    vault = base / "live-vault"
    init_vault(vault)
    config = base / "live.yaml"
    config.write_text(
        "execution: {dry_run: false}\nmcp_servers:\n  email:\n    command: python\n"
        "    args: [-m, ai_employee.mcp_servers.email_server]\n"
        f"    env: {{SMTP_HOST: 127.0.0.1, SMTP_PORT: '{port}', SMTP_FROM: 'Me <me@example.com>'}}\n"
    )
    engine = Engine(vault, config, "--live")
    latencies = []
    try:
        step = "- tool: email.send_email\n  args: {to: [ann@example.org], subject: B, body: hi}\n"
        body = f"# Send\n\n## Steps\n\n```yaml\n{step}```\n"
        for i in range(n + 1):
            outside = base / f"plan-{i}.md"
            outside.write_text(body.replace("subject: B", f"subject: B{i}"))
            t0 = time.monotonic()
            os.rename(outside, vault / "Approved" / outside.name)
            wait_until(lambda i=i: count(vault / "Done", ".md") >= i + 1, 60, 0.001)
            if i:  # the first starts the server
                latencies.append(time.monotonic() - t0)
    finally:
        engine.stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--approvals", type=int, default=200)
    parser.add_argument("--sends", type=int, default=200)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ai-employee-bench-exec-"))
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; work dir {base}")
    print(summary("floor: the file work of filing a plan", file_floor(base / "floor", args.approvals)))
    vault = base / "vault"
    init_vault(vault)
    engine = Engine(vault)
    try:
        (vault / "Inbox" / "warmup.txt").write_text("warm up\n")
        wait_until(lambda: count(vault / "Done", ".action.yaml") >= 1, 60)
        bench_approve(vault, args.approvals)
    finally:
        engine.stop()
    handler = Collector()
    controller = start_smtp(handler)
    try:
        direct, stepped = asyncio.run(bench_live_steps(base / "live", controller.port, args.sends))
        added = [e - d for d, e in zip(direct, stepped, strict=True)]
        print(summary("live: send_email called directly (the tool's own time)", direct))
        print(summary("live: the same step through the engine's runner", stepped))
        print(
            f"live: the engine adds p50 {statistics.median(added) * 1000:.1f} ms, p99"
            f" {percentile(added, 99) * 1000:.1f} ms per step (target <= 20 ms)"
        )
        print(summary("live: approve-move -> Done, one send_email step", bench_live_e2e(base, controller.port, 50)))
        print(f"messages received by the SMTP server: {len(handler.envelopes)}")
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
