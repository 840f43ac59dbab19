"""How files reach `Inbox/`, when it goes wrong: events the watcher never sees, writers that are slow
or pause, and engines that die holding the vault's lock.

The burst test stops the engine (SIGSTOP) in the middle of a burst, so the kernel's inotify queue
overflows (past 16,384 events) and watchdog drops events; the sweep must find every file anyway.
`make test` runs it with 400 files (no overflow: the pause alone); `make stress` sets
MISSED_EVENTS_FILES (20,000 there), which overflows the queue on a default kernel.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import EngineProcess, files, run_cli, wait_for
from tests.invariants import check_vault

pytestmark = pytest.mark.integration

COUNT = int(os.environ.get("MISSED_EVENTS_FILES", "400"))


@pytest.mark.timeout(120 + COUNT // 20)
def test_a_burst_while_the_engine_is_stopped_loses_nothing(vault: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    # Plans wait for approval: this is about intake, so nothing is executed (and the run is shorter).
    config.write_text(yaml.safe_dump({"policy": {"auto_approve": "none"}, "watcher": {"poll_interval": 2.0}}))
    log = tmp_path / "engine.log"
    engine = EngineProcess(vault, config=config, log=log)
    inbox = vault / "Inbox"
    inputs = {f"burst-{n:05d}.md": f"# Burst item {n}\n".encode() for n in range(COUNT)}
    names = sorted(inputs)
    try:
        first = len(names) // 10
        for name in names[:first]:
            (inbox / name).write_bytes(inputs[name])
        engine.proc.send_signal(signal.SIGSTOP)  # mid-burst: the engine reads no events for a while
        try:
            for name in names[first:]:
                (inbox / name).write_bytes(inputs[name])
        finally:
            engine.proc.send_signal(signal.SIGCONT)
        started = time.monotonic()
        wait_for(lambda: len(files(vault / "Plans", ".md")) == COUNT, 60 + COUNT / 20, interval_s=0.5)
        drained_s = time.monotonic() - started
    finally:
        engine.stop(timeout_s=120)
    print(f"{COUNT} files, engine stopped for {COUNT - first}: all planned {drained_s:.1f} s after SIGCONT")
    check_vault(vault, inputs)
    if COUNT > 16384:
        assert "Inotify queue overflowed" in log.read_text("utf-8"), "the burst did not overflow the queue"


@pytest.mark.timeout(60)
def test_a_slow_writer_that_pauses_is_not_taken_half_done(vault: Path, tmp_path: Path) -> None:
    """Written in chunks over ~4 s with a 2.5 s pause (longer than `settle_s`, 1 s) while the file is
    open: the engine waits for the close, because the watcher saw the file created and not yet closed."""
    engine = EngineProcess(vault, log=tmp_path / "engine.log")
    chunk = b"x" * 4096 + b"\n"
    try:
        with open(vault / "Inbox" / "slow.log", "wb") as fh:
            for n in range(8):
                fh.write(chunk)
                fh.flush()
                time.sleep(2.5 if n == 3 else 0.2)
                assert files(vault / "Attachments") == [], "taken while still being written"
        wait_for(lambda: files(vault / "Done", ".action.yaml"))
    finally:
        engine.stop()
    [action] = files(vault / "Done", ".action.yaml")
    content = yaml.safe_load(action.read_text("utf-8"))["content"]
    assert content["size_bytes"] == 8 * len(chunk)


def test_a_second_engine_is_refused_and_a_killed_engines_lock_is_taken_over(vault: Path, tmp_path: Path) -> None:
    first = EngineProcess(vault, log=tmp_path / "first.log")
    second = run_cli("--vault", str(vault), "start", "--once")
    assert second.returncode == 1 and f"already running on this vault (pid {first.proc.pid} " in second.stderr
    first.proc.kill()  # SIGKILL: no cleanup, the lock file stays with the dead engine's pid in it
    first.stop()
    lock = vault / ".ai_employee" / "engine.lock"
    assert str(first.proc.pid) in lock.read_text()
    (vault / "Inbox" / "after.md").write_text("# After the crash\n")
    taken = run_cli("--vault", str(vault), "start", "--once")
    assert taken.returncode == 0, taken.stderr
    assert files(vault / "Inbox") == [] and len(files(vault / "Done", ".md")) == 1
