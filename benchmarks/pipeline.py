"""Pipeline latency and throughput of the real engine on a temp vault. Prints figures; asserts nothing.

Measures (targets from issue 2, on a 2-core machine):
  1. drop -> action and drop -> plan latency, files dropped one at a time,
     written in place and renamed in from outside the vault, in turn         (p99 drop->plan <= 250 ms)
  2. approve-move -> Done latency in dry-run                                 (p99 <= 500 ms)
  3. a burst of files dropped at once: time to drain, inputs unaccounted for (0 lost)
  4. the same file work in a bare loop (the floor), and the engine's burst
     throughput as a fraction of it: planned against the intake floor         (>= 25%)
     and drained through execution against the floor that also does
     execution's file work                                                    (>= 40%, issue 9)

Times come from the ledger's event timestamps (the engine's clock) against the drop time taken here
(the same machine clock). Usage: python benchmarks/pipeline.py [--latency-files 500] [--burst 5000]
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

from ai_employee.vault.fsops import create_file, fsync_dir, move_file, replace_file
from ai_employee.vault.layout import init_vault

EMAIL = """From: Client {n} <client{n}@example.org>
To: me@example.com
Subject: Question number {n}
Message-ID: <bench-{n}@example.org>

Hello, this is question {n}. Could you get back to me?
"""


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(name: str, values_s: list[float]) -> str:
    ms = [v * 1000 for v in values_s]
    return (
        f"{name:44} n={len(ms):5}  p50={percentile(ms, 50):7.1f} ms  p99={percentile(ms, 99):7.1f} ms"
        f"  max={max(ms):7.1f} ms  mean={statistics.fmean(ms):7.1f} ms"
    )


class Engine:
    def __init__(self, vault: Path, config: Path | None = None, *start_options: str) -> None:
        self.vault = vault
        self.log = open(vault.parent / "engine.log", "ab")  # noqa: SIM115
        with_config = ["--config", str(config)] if config else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ai_employee", "--vault", str(vault), *with_config, "start", *start_options],
            stdout=self.log,
            stderr=self.log,
            cwd=vault.parent,
        )
        deadline = time.monotonic() + 30
        while not (vault / ".ai_employee" / "heartbeat.json").exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"engine did not start; see {vault.parent / 'engine.log'}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        self.log.close()


def event_times(vault: Path, name: str, key: str) -> dict[str, float]:
    """{payload[key]: first event time (epoch s)} for events of this name."""
    db = sqlite3.connect(f"file:{vault / '.ai_employee' / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT ts, payload FROM events WHERE name = ?", (name,)).fetchall()
    finally:
        db.close()
    found: dict[str, float] = {}
    for ts, payload in rows:
        value = json.loads(payload).get(key)
        if value is not None and value not in found:
            found[str(value)] = datetime.fromisoformat(ts).timestamp()
    return found


def count(folder: Path, suffix: str = "") -> int:
    with os.scandir(folder) as it:
        return sum(1 for e in it if e.name.endswith(suffix) and not e.name.startswith("."))


def wait_until(predicate: object, timeout_s: float, poll_s: float = 0.002) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the engine")
        time.sleep(poll_s)


def drop(path: Path, data: bytes) -> float:
    t0 = time.time()
    with open(path, "wb") as fh:
        fh.write(data)
    return t0


def move_in(outside: Path, path: Path, data: bytes) -> float:
    """Written completely outside the vault, then renamed into Inbox/ (as `mv`, a file manager, a sync
    tool or a browser finishing a download do): the drop time is the rename."""
    staged = outside / path.name
    staged.write_bytes(data)
    t0 = time.time()
    os.rename(staged, path)
    return t0


def bench_latency(vault: Path, n: int, outside: Path) -> None:
    """Files dropped one at a time, both ways in turn (written in place; renamed in from outside the
    vault): drop->action, drop->plan for each way."""
    inbox, done = vault / "Inbox", vault / "Done"
    outside.mkdir(parents=True, exist_ok=True)
    dropped: dict[str, tuple[str, float]] = {}
    base = count(done, ".action.yaml")
    for i in range(n):
        name = f"lat-{i:05d}"
        data = f"Latency probe {i}\n".encode()
        if i % 2:
            dropped[name] = ("renamed in from outside", move_in(outside, inbox / f"{name}.txt", data))
        else:
            dropped[name] = ("written in place", drop(inbox / f"{name}.txt", data))
        wait_until(lambda i=i: count(done, ".action.yaml") >= base + i + 1, 90)
    # Action files are named "<date> <title>.action.yaml"; the template planner titles the plan after it.
    actions = {
        title.split(" ", 1)[1].removesuffix(".action.yaml"): ts
        for title, ts in event_times(vault, "action.generated", "title").items()
    }
    plans = event_times(vault, "plan.created", "title")
    for way in ("written in place", "renamed in from outside"):
        mine = {name: t0 for name, (how, t0) in dropped.items() if how == way}
        print(summary(f"drop -> action ({way})", [actions[name] - t0 for name, t0 in mine.items()]))
        print(summary(f"drop -> plan ({way})", [plans[f"File a summary of {name}"] - t0 for name, t0 in mine.items()]))


def bench_approve(vault: Path, n: int) -> None:
    """Plans waiting for approval moved into Approved/ one at a time: move -> note in Done/."""
    inbox, plans, approved, done = (vault / f for f in ("Inbox", "Plans", "Approved", "Done"))
    for i in range(n):
        (inbox / f"mail-{i:04d}.eml").write_text(EMAIL.format(n=i))
    wait_until(lambda: count(plans, ".md") >= n, 120, 0.05)
    latencies = []
    for note in sorted(plans.iterdir()):
        if note.name.startswith("."):
            continue
        t0 = time.monotonic()
        os.rename(note, approved / note.name)
        wait_until(lambda note=note: (done / note.name).exists(), 30, 0.001)
        latencies.append(time.monotonic() - t0)
    print(summary("approve-move -> Done (dry-run)", latencies))


def bench_burst(vault: Path, n: int) -> tuple[float, float]:
    inbox, done, attachments = vault / "Inbox", vault / "Done", vault / "Attachments"
    before_done = count(done, ".action.yaml")
    before_att = count(attachments)
    before_plans = plans_created(vault)
    t0 = time.monotonic()
    for i in range(n):
        with open(inbox / f"burst-{i:05d}.txt", "wb") as fh:
            fh.write(f"Burst item {i}\nSome text to read and summarise.\n".encode())
    written = time.monotonic() - t0
    # Polled gently (a cheap ledger count until every input is planned, then the Done/ count), so that
    # measuring takes as little as possible of the machine the engine is measured on.
    planned_at = None
    while planned_at is None or count(done, ".action.yaml") < before_done + n:
        if planned_at is None and plans_created(vault) >= before_plans + n:
            planned_at = time.monotonic() - t0
        if time.monotonic() - t0 > 1800:
            raise SystemExit("timed out waiting for the burst to drain")
        time.sleep(0.1 if planned_at is None else 0.5)
    drained = time.monotonic() - t0
    planned = planned_at if planned_at is not None else drained
    in_inbox = count(inbox)
    quarantined = count(vault / "Quarantine")
    moved = count(attachments) - before_att
    lost = n - moved + in_inbox
    print(
        f"burst of {n}: written in {written:.2f} s; every input planned after {planned:.2f} s"
        f" = {n / planned:.0f} files/s; drained (all executed, in Done/) after {drained:.2f} s"
        f" = {n / drained:.0f} files/s; unaccounted for: {lost} (Inbox left {in_inbox},"
        f" quarantined {quarantined})"
    )
    return n / planned, n / drained


def plans_created(vault: Path) -> int:
    db = sqlite3.connect(f"file:{vault / '.ai_employee' / 'ledger.sqlite3'}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT COUNT(*) FROM events WHERE name = 'plan.created'").fetchone()[0])
    finally:
        db.close()


def bench_floor(root: Path, n: int, execute: bool = False) -> float:
    """The same file work with no engine: read, write action + plan atomically with fsync, move original;
    with `execute`, also what executing a dry-run plan writes: the result into the plan note and the
    status into the action (atomic replaces with fsync), both moved into the done folder."""
    inbox, actions, plans, attachments, done, tmp = (root / f for f in ("in", "actions", "plans", "att", "done", "tmp"))
    for folder in (inbox, actions, plans, attachments, done, tmp):
        folder.mkdir(parents=True)
    for i in range(n):
        (inbox / f"floor-{i:05d}.txt").write_bytes(f"Burst item {i}\nSome text to read and summarise.\n".encode())
    t0 = time.monotonic()
    for entry in sorted(os.scandir(inbox), key=lambda e: e.name):
        data = Path(entry.path).read_bytes()
        action = create_file(actions, f"{entry.name}.action.yaml", b"id: x\npreview: " + data[:64], tmp)
        plan = create_file(plans, f"{entry.name}.md", b"---\nid: y\n---\n# plan\n" + data[:64], tmp)
        os.rename(entry.path, attachments / entry.name)
        fsync_dir(attachments)
        fsync_dir(inbox)
        if execute:
            replace_file(plan, plan.read_bytes() + b"\n## Execution log\n- done\n", tmp)
            move_file(plan, done)
            replace_file(action, action.read_bytes() + b"status: done\n", tmp)
            move_file(action, done)
    elapsed = time.monotonic() - t0
    what = "intake and execution" if execute else "intake"
    print(f"floor (bare loop, {what}, {n} files): {elapsed:.2f} s = {n / elapsed:.0f} files/s")
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-files", type=int, default=500)
    parser.add_argument("--approvals", type=int, default=200)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--keep", action="store_true", help="keep the temp vaults")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ai-employee-bench-"))
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; work dir {base}")
    # The disk of a shared VM drifts; the floor is timed before and after the engine, and averaged.
    floor_before = bench_floor(base / "floor-before", args.burst)
    full_before = bench_floor(base / "floor-full-before", args.burst, execute=True)
    vault = base / "vault"
    init_vault(vault)
    engine = Engine(vault)
    try:
        drop(vault / "Inbox" / "warmup.txt", b"warm up the MCP servers\n")
        wait_until(lambda: count(vault / "Done", ".action.yaml") >= 1, 60)
        bench_latency(vault, args.latency_files, base / "outside")
        bench_approve(vault, args.approvals)
        planned_rate, drained_rate = bench_burst(vault, args.burst)
    finally:
        engine.stop()
    floor_rate = (floor_before + bench_floor(base / "floor-after", args.burst)) / 2
    full_rate = (full_before + bench_floor(base / "floor-full-after", args.burst, execute=True)) / 2
    # Like for like: "planned" against the intake floor, "drained" against the floor that also does what
    # executing the plans writes (and, as before this floor existed, against the intake floor).
    print(
        f"engine burst throughput: planned = {planned_rate / floor_rate:.0%} of the intake floor"
        f" ({floor_rate:.0f} files/s, the mean of the two runs); drained through execution ="
        f" {drained_rate / full_rate:.0%} of the floor with execution ({full_rate:.0f} files/s),"
        f" {drained_rate / floor_rate:.0%} of the intake floor"
    )
    if not args.keep:
        subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
