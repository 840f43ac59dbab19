"""How the engine's cost per event grows with the vault: the same measurements on an empty vault and on
vaults of 1k, 10k and 100k notes, in one run. Prints a table; asserts nothing.

The vaults are built quickly from notes the engine really produced (a seed vault is planned and run
once; its plan notes and action files are copied with fresh ids and names), with matching ledger rows
(plans, decisions, runs, events): 90% of the files in `Done/`, 5% in `Plans/` (waiting for approval),
5% in `Needs_Action/` (their actions, `planned`).

Measured per vault, side by side with the empty vault and the floor (`python -c "import click"`):
  - one dropped file -> its plan (median over --drops files dropped one at a time)
  - engine CPU per dropped file
  - engine CPU while idle (after start-up has settled), over --idle-s seconds
  - a file dropped right after a restart -> its plan, from the engine reporting running
  - `vault status` and `vault list` (wall, a fresh process each), and status rebuilt in-process
  - the engine's RSS

    python benchmarks/scale.py [--sizes 1000 10000 100000] [--drops 20] [--idle-s 30]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from ulid import ULID

from ai_employee.ledger import Ledger
from ai_employee.status import collect
from ai_employee.vault.layout import Vault, init_vault

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ai_employee", *args]


def seed(root: Path) -> dict[str, str]:
    """Templates from a vault the engine really worked on: a done plan and its action, a waiting plan and
    its action (each with the ids to replace)."""
    vault = root / "seed"
    init_vault(vault)
    shutil.copy(SAMPLES / "client-quote-request.eml", vault / "Inbox")
    shutil.copy(SAMPLES / "meeting_request.txt", vault / "Inbox")
    subprocess.run(cli("--vault", str(vault), "start", "--once"), check=True, capture_output=True)
    [done_plan] = (vault / "Done").glob("*.md")
    [done_action] = (vault / "Done").glob("*.action.yaml")
    [wait_plan] = (vault / "Plans").glob("*.md")
    [wait_action] = (vault / "Needs_Action").glob("*.action.yaml")
    return {
        "done_plan": done_plan.read_text("utf-8"),
        "done_action": done_action.read_text("utf-8"),
        "wait_plan": wait_plan.read_text("utf-8"),
        "wait_action": wait_action.read_text("utf-8"),
    }


def ids_in(text: str) -> list[str]:
    """The ULIDs a note or action file holds (its own id, its plan's or action's)."""
    found = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        value = value.strip().strip("'\"")
        if key.strip() in ("id", "action_id", "plan_id") and len(value) == 26 and value not in found:
            found.append(value)
    return found


def build(root: Path, size: int, templates: dict[str, str]) -> Path:
    """A vault of about `size` files: 90% in Done/, 5% in Plans/, 5% in Needs_Action/."""
    vault = root / f"vault-{size}"
    init_vault(vault)
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    pairs_done, pairs_waiting = size * 9 // 20, size // 20
    plans, decisions, runs, events = [], [], [], []
    for kind, count, folder_plan, folder_action in (
        ("done", pairs_done, "Done", "Done"),
        ("wait", pairs_waiting, "Plans", "Needs_Action"),
    ):
        plan_text, action_text = templates[f"{kind}_plan"], templates[f"{kind}_action"]
        old_action = ids_in(action_text)[0]
        old_plan = next(i for i in ids_in(plan_text) if i != old_action)
        for n in range(count):
            plan_id, action_id = str(ULID()), str(ULID())
            new_plan = plan_text.replace(old_plan, plan_id).replace(old_action, action_id)
            new_action = action_text.replace(old_action, action_id).replace(old_plan, plan_id)
            name = f"2026-01-01 {kind} item {n:06d}"
            (vault / folder_plan / f"{name}.md").write_text(new_plan, "utf-8")
            (vault / folder_action / f"{name}.action.yaml").write_text(new_action, "utf-8")
            title = f"{kind} item {n}"
            plans.append((plan_id, action_id, now, "low" if kind == "done" else "medium", "template", title))
            payload = json.dumps({"plan_id": plan_id, "action_id": action_id, "title": title, "path": name})
            events += [(now, "action.generated", payload), (now, "plan.created", payload)]
            if kind == "done":
                decisions.append((now, plan_id, "auto_approve", "policy", "policy", "h", "", None))
                runs.append((plan_id, 1, "h", 1, "done", now, now, ""))
                events.append((now, "plan.execution_completed", payload))
            else:
                events.append((now, "approval.required", payload))
    ledger = Ledger(vault / ".ai_employee" / "ledger.sqlite3")  # creates the tables (migrations)
    ledger.close()
    db = sqlite3.connect(vault / ".ai_employee" / "ledger.sqlite3")
    with db:
        db.executemany("INSERT INTO plans VALUES (?, ?, ?, ?, ?, ?)", plans)
        db.executemany(
            "INSERT INTO decisions (ts, plan_id, decision, channel, actor, plan_hash, feedback, until)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            decisions,
        )
        db.executemany(
            "INSERT INTO runs (plan_id, attempt, plan_hash, dry_run, state, started, finished, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            runs,
        )
        db.executemany("INSERT INTO events (ts, name, payload) VALUES (?, ?, ?)", events)
    db.close()
    return vault


class Engine:
    def __init__(self, vault: Path) -> None:
        self.log = open(vault.parent / f"{vault.name}.engine.log", "ab")  # noqa: SIM115
        heartbeat = vault / ".ai_employee" / "heartbeat.json"
        heartbeat.unlink(missing_ok=True)
        # Run outside the repo, so that its config.yaml (found in the working directory) is not used.
        self.proc = subprocess.Popen(
            cli("--vault", str(vault), "start"), stdout=self.log, stderr=self.log, cwd=vault.parent
        )
        deadline = time.monotonic() + 120
        while not heartbeat.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"the engine did not start: see {self.log.name}")
            time.sleep(0.01)
        self.running_at = time.time()

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def settle(self, quiet_pct: float = 5.0, limit_s: float = 120.0) -> None:
        """Wait until the engine uses less than `quiet_pct` of a core over a second (start-up done)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            before = self.cpu_s()
            time.sleep(1.0)
            if (self.cpu_s() - before) * 100 < quiet_pct:
                return

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        self.log.close()


def plan_time(vault: Path, title: str) -> float | None:
    db = sqlite3.connect(f"file:{vault / '.ai_employee' / 'ledger.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute(
            "SELECT ts FROM events WHERE name = 'plan.created' AND payload LIKE ? ORDER BY id DESC LIMIT 1",
            (f'%"title": "{title}"%',),
        ).fetchall()
    finally:
        db.close()
    return datetime.fromisoformat(rows[0][0]).timestamp() if rows else None


def drop_and_wait(vault: Path, name: str, timeout_s: float = 600) -> float:
    """Drop a file; seconds until its plan was created (the ledger's clock, the same machine clock)."""
    t0 = time.time()
    (vault / "Inbox" / f"{name}.txt").write_text(f"Scale probe {name}\n")
    deadline = time.monotonic() + timeout_s
    while (at := plan_time(vault, f"File a summary of {name}")) is None:
        if time.monotonic() > deadline:
            return float("nan")
        time.sleep(0.005)
    return at - t0


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - t0


def measure(vault: Path, drops: int, idle_s: float) -> dict[str, float]:
    figures: dict[str, float] = {}
    engine = Engine(vault)
    try:
        drop_and_wait(vault, "warmup")  # the MCP servers start on first use
        engine.settle()  # start-up work (re-reading what is there) is the restart figure, not this one
        cpu0 = engine.cpu_s()
        latencies = [drop_and_wait(vault, f"probe-{n:03d}") for n in range(drops)]
        time.sleep(0.5)
        figures["drop_plan_ms"] = statistics.median(latencies) * 1000
        figures["cpu_per_drop_s"] = (engine.cpu_s() - cpu0) / drops
        engine.settle()
        cpu0, t0 = engine.cpu_s(), time.monotonic()
        time.sleep(idle_s)
        figures["idle_cpu_pct"] = (engine.cpu_s() - cpu0) / (time.monotonic() - t0) * 100
        figures["rss_mb"] = engine.rss_mb()
    finally:
        engine.stop()
    engine = Engine(vault)  # a restart: is new work planned at once, however much there is to re-check?
    try:
        t0 = time.time()
        after = drop_and_wait(vault, "after-restart", timeout_s=900)
        figures["restart_plan_s"] = after + (t0 - engine.running_at)
    finally:
        engine.stop()
    figures["status_ms"] = statistics.median(timed(cli("--vault", str(vault), "status")) for _ in range(5)) * 1000
    figures["list_ms"] = statistics.median(timed(cli("--vault", str(vault), "list")) for _ in range(5)) * 1000
    ledger = Ledger(vault / ".ai_employee" / "ledger.sqlite3")
    try:
        t0 = time.perf_counter()
        collect(Vault(vault), ledger)
        figures["status_inproc_ms"] = (time.perf_counter() - t0) * 1000
    finally:
        ledger.close()
    return figures


ROWS = (
    ("one dropped file -> its plan (median)", "drop_plan_ms", "{:.0f} ms"),
    ("engine CPU per dropped file", "cpu_per_drop_s", "{:.3f} s"),
    ("engine CPU idle", "idle_cpu_pct", "{:.2f}%"),
    ("dropped after a restart -> plan", "restart_plan_s", "{:.2f} s"),
    ("`vault status` (wall)", "status_ms", "{:.0f} ms"),
    ("`vault list` (wall)", "list_ms", "{:.0f} ms"),
    ("status rebuilt in-process", "status_inproc_ms", "{:.0f} ms"),
    ("engine RSS", "rss_mb", "{:.0f} MB"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--drops", type=int, default=20)
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--keep", action="store_true", help="keep the temp vaults")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ai-employee-scale-"))
    try:
        templates = seed(root)
        floor = statistics.median(timed([sys.executable, "-c", "import click"]) for _ in range(5)) * 1000
        results: dict[str, dict[str, float]] = {}
        empty = root / "vault-0"
        init_vault(empty)
        results["empty"] = measure(empty, args.drops, args.idle_s)
        for size in args.sizes:
            t0 = time.monotonic()
            vault = build(root, size, templates)
            print(f"built a vault of {size} files in {time.monotonic() - t0:.1f} s", file=sys.stderr)
            results[f"{size // 1000}k"] = measure(vault, args.drops, args.idle_s)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f'floor: python -c "import click" = {floor:.0f} ms; {os.cpu_count()} cores; {datetime.now():%Y-%m-%d}')
    print("| measured | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for label, key, fmt in ROWS:
        print(f"| {label} | " + " | ".join(fmt.format(r[key]) for r in results.values()) + " |")


if __name__ == "__main__":
    main()
