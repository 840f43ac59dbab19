"""The Claude planner's speed against a local server playing the Messages API with a scripted latency:
the engine must not add to the model's time, nor serialise it. Prints figures; asserts nothing.

Measured, with the real engine (`vault start`, dry-run) and the real SDK pointed at the local server:
  1. single emails dropped one at a time: drop -> plan, against the API's own latency (target: + ≤ 50 ms)
  2. a burst of emails dropped at once: time until every one is planned, against the ideal
     (burst / max_concurrency × latency; target ≤ 1.2×)
  3. the heartbeat's age, sampled throughout the burst (target < 2 s)
  4. a LOW plan from a file dropped as the burst starts: does it run while the burst is planned?

    python benchmarks/planner.py [--latency-s 2] [--concurrency 8] [--burst 200] [--singles 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fake_claude import Reply, fake_claude, plan_reply  # noqa: E402

from ai_employee.vault.layout import init_vault  # noqa: E402

EMAIL = """From: Client {n} <client{n}@example.org>
To: me@example.com
Subject: Question number {n}
Message-ID: <planner-bench-{n}@example.org>

Hello, this is question {n}. Could you get back to me?
"""


def answer(request: dict[str, Any]) -> Reply:
    """A draft reply to whoever wrote (a LOW plan), or a summary note for a file."""
    text = request["messages"][0]["content"]
    sender = next((line.split("<")[1].split(">")[0] for line in text.splitlines() if line.startswith("from: ")), "")
    if sender:
        step = {
            "tool": "email.draft_email",
            "args": {"to": [sender], "subject": "Re: your question", "body": "Hello,\n\nThank you.\n"},
            "why": "a draft for you to send",
        }
    else:
        title = next((line[7:] for line in text.splitlines() if line.startswith("title: ")), "note")
        path = f"Notes/{abs(hash(title)) % 10**9} summary.md"
        step = {"tool": "vault.create_note", "args": {"path": path, "content": "A summary.\n"}, "why": "file it"}
    return plan_reply([step], title=f"Answer {sender or 'a file'}")


def events(vault: Path, name: str) -> list[tuple[float, dict[str, Any]]]:
    db = sqlite3.connect(f"file:{vault / '.ai_employee' / 'ledger.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute("SELECT ts, payload FROM events WHERE name = ?", (name,)).fetchall()
    finally:
        db.close()
    return [(datetime.fromisoformat(ts).timestamp(), json.loads(payload)) for ts, payload in rows]


def wait_for(predicate: Any, timeout_s: float, poll_s: float = 0.02) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the engine")
        time.sleep(poll_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-s", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--singles", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ai-employee-planner-bench-"))
    vault = root / "vault"
    init_vault(vault)
    with fake_claude() as fake:

        def slow(request: dict[str, Any]) -> Reply:
            reply = answer(request)
            reply.delay_s = args.latency_s
            return reply

        fake.default = slow
        config = root / "config.yaml"
        config.write_text(
            f"claude:\n  api_key: sk-bench-not-a-key\n  base_url: {fake.url}\n"
            f"  max_concurrency: {args.concurrency}\n  timeout_s: 120\nwatcher:\n  settle_s: 0\n"
        )
        log = open(root / "engine.log", "ab")  # noqa: SIM115
        heartbeat = vault / ".ai_employee" / "heartbeat.json"
        engine = subprocess.Popen(
            [sys.executable, "-m", "ai_employee", "--config", str(config), "--vault", str(vault), "start"],
            stdout=log,
            stderr=log,
            cwd=root,
        )
        try:
            wait_for(heartbeat.exists, 60)
            # 1. single emails, one at a time (the first also starts the MCP servers: not counted)
            overheads = []
            for n in range(args.singles + 1):
                t0 = time.time()
                (vault / "Inbox" / f"single-{n}.eml").write_text(EMAIL.format(n=f"s{n}"))
                wait_for(lambda n=n: len(events(vault, "plan.created")) >= n + 1, 60)
                if n:
                    overheads.append(events(vault, "plan.created")[-1][0] - t0 - args.latency_s)
            # 2-4. the burst, a file dropped with it, and the heartbeat meanwhile
            before = len(events(vault, "plan.created"))
            t0 = time.time()
            for n in range(args.burst):
                (vault / "Inbox" / f"burst-{n:04d}.eml").write_text(EMAIL.format(n=n))
            (vault / "Inbox" / "a-note.md").write_text("# A note dropped with the burst\n\nFile it.\n")
            ages = []
            while len(events(vault, "plan.created")) < before + args.burst + 1:
                ages.append(time.time() - heartbeat.stat().st_mtime)
                if time.time() - t0 > 600:
                    raise SystemExit("the burst was not planned within 10 minutes")
                time.sleep(0.25)
            planned = max(ts for ts, _ in events(vault, "plan.created")) - t0
            note_done = [ts for ts, p in events(vault, "plan.execution_completed") if "Answer a file" in str(p)]
            emails_planned = sorted(ts for ts, p in events(vault, "plan.created") if "client" in str(p))
        finally:
            engine.send_signal(signal.SIGTERM)
            engine.wait(timeout=120)
            log.close()
        calls = len(fake.requests)
    ideal = args.burst / args.concurrency * args.latency_s
    print(f"API latency {args.latency_s:g} s, claude.max_concurrency {args.concurrency}, {os.cpu_count()} cores")
    print(
        f"single email drop -> plan, above the API's latency: median {statistics.median(overheads) * 1000:.0f} ms,"
        f" max {max(overheads) * 1000:.0f} ms (n={len(overheads)}; target ≤ 50 ms)"
    )
    print(
        f"burst of {args.burst} emails: all planned after {planned:.1f} s; ideal {ideal:.1f} s;"
        f" {planned / ideal:.2f}× the ideal (target ≤ 1.2×); {calls} API calls in all"
    )
    print(f"heartbeat age during the burst: max {max(ages):.2f} s over {len(ages)} samples (target < 2 s)")
    if note_done:
        print(
            f"a note dropped with the burst: its LOW plan ran {note_done[0] - t0:.1f} s after the drop,"
            f" while {sum(1 for ts in emails_planned if ts > note_done[0])} emails were still being planned"
        )
    else:
        print("a note dropped with the burst: its plan did not run during the measurement")


if __name__ == "__main__":
    main()
