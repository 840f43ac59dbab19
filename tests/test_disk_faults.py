"""Faults of the machine, on a real running engine: a full disk and a read-only vault (a small tmpfs of
their own), and an input the engine may not read (the engine runs as an unprivileged user).

Each time the engine must say what is wrong (log, `vault status`, ledger), keep every input where it
was, run nothing twice, and carry on by itself once the cause is gone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_employee.errors import machine_fault
from ai_employee.vault.fsops import FileOpError
from tests.conftest import SAMPLES, EngineProcess, files, live_config, run_cli, wait_for
from tests.invariants import check_vault, fields, start_once
from tests.smtp_server import Collector

pytestmark = [pytest.mark.timeout(180), pytest.mark.integration]


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs of its own, so it can be filled up and made read-only."""
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(fs: Path) -> Path:
    """Use up every free block of `fs`; returns the file to delete to free them again."""
    filler = fs / "filler"
    with open(filler, "wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * (1 << 16))
            fh.flush()
    return filler


def status(vault: Path) -> dict[str, object]:
    done = run_cli("--vault", str(vault), "status", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert isinstance(data, dict)
    return data


def pipeline_problem(vault: Path) -> str:
    engine = status(vault)["engine"]
    assert isinstance(engine, dict)
    return str(engine.get("services", {}).get("pipeline", {}).get("problem") or "")


def ledger_events(vault: Path, name: str) -> list[dict[str, object]]:
    db = sqlite3.connect(vault / ".ai_employee" / "ledger.sqlite3")
    try:
        rows = db.execute("SELECT payload FROM events WHERE name = ?", (name,)).fetchall()
    finally:
        db.close()
    return [json.loads(payload) for (payload,) in rows]


@contextlib.contextmanager
def paused(engine: EngineProcess) -> Iterator[None]:
    """The engine stopped (SIGSTOP) for the length of the block, so a fault is in place before it looks."""
    engine.proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        engine.proc.send_signal(signal.SIGCONT)


NEW_INPUTS = {"groceries.md": b"# Groceries\n\n- milk\n", "meeting.txt": (SAMPLES / "meeting_request.txt").read_bytes()}


def test_full_disk_pauses_reports_and_resumes_without_sending_twice(
    small_fs: Path, tmp_path: Path, smtp: tuple[Collector, int]
) -> None:
    collector, port = smtp
    vault = small_fs / "vault"
    assert run_cli("init", str(vault)).returncode == 0
    log = tmp_path / "engine.log"
    engine = EngineProcess(vault, "--live", config=live_config(tmp_path, port), log=log)
    try:
        shutil.copy(SAMPLES / "client-quote-request.eml", vault / "Inbox" / "quote.eml")
        [plan] = wait_for(lambda: files(vault / "Plans", ".md"))  # type: ignore[misc]
        with paused(engine):
            os.rename(plan, vault / "Approved" / plan.name)
            for name, data in NEW_INPUTS.items():
                (vault / "Inbox" / name).write_bytes(data)
            filler = fill(small_fs)
        wait_for(lambda: "disk is full" in pipeline_problem(vault), 30)
        problems = status(vault)["disk_problems"]
        assert isinstance(problems, list) and "the disk is full" in problems[0]
        shown = run_cli("--vault", str(vault), "status").stdout
        assert "UNHEALTHY: the disk is full" in shown and "problem: the disk is full" in shown
        # While it lasts, nothing is lost: each input is in Inbox/ or (moved, its intent kept) Attachments/.
        for name in NEW_INPUTS:
            assert (vault / "Inbox" / name).exists() or (vault / "Attachments" / name).exists()
        assert len(collector.envelopes) <= 1
        filler.unlink()
        wait_for(lambda: not files(vault / "Inbox") and not files(vault / "Approved"), 60)
        wait_for(lambda: len(files(vault / "Done", ".md")) >= 2, 30)  # the two notes' summaries
    finally:
        engine.stop()
    output = log.read_text("utf-8", errors="replace")
    assert "pipeline paused" in output and "pipeline resumed" in output
    assert "Traceback" not in output, "a full disk is a reported condition, not a crash"
    resumed = ledger_events(vault, "pipeline.resumed")
    assert resumed and "disk is full" in str(resumed[0]["problem"])
    # Sent exactly once; or, if the disk filled between the send and its record, shown as interrupted.
    inputs = {"quote.eml": (SAMPLES / "client-quote-request.eml").read_bytes(), **NEW_INPUTS}
    actions = check_vault(vault, inputs)
    ran = (vault / "Done" / plan.name).exists()
    print(f"the approved email: {'sent once, done' if ran else 'interrupted'}")
    if ran:
        assert len(collector.envelopes) == 1
        assert actions["quote.eml"]["status"] == "done"
    else:
        back = fields(vault / "Plans" / plan.name)
        assert back["interrupted"] is True and len(collector.envelopes) <= 1
    for name in NEW_INPUTS:
        assert actions[name]["status"] == "done"


def test_read_only_vault_is_refused_plainly_then_worked_once_writable(small_fs: Path) -> None:
    """A running engine cannot be made read-only under its feet (the kernel refuses while the ledger is
    open for writing); a vault that is read-only when the engine starts is refused with the cause."""
    vault = small_fs / "vault"
    assert run_cli("init", str(vault)).returncode == 0
    for name, data in NEW_INPUTS.items():
        (vault / "Inbox" / name).write_bytes(data)
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    refused = start_once(vault)
    assert refused.returncode == 1
    assert "Error: the vault's file system is read-only" in refused.stderr and "fix that" in refused.stderr
    assert "unexpected" not in refused.stderr
    problems = status(vault)["disk_problems"]
    assert isinstance(problems, list) and "read-only" in problems[0]
    assert sorted(p.name for p in files(vault / "Inbox")) == sorted(NEW_INPUTS)
    subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    assert start_once(vault).returncode == 0
    check_vault(vault, NEW_INPUTS)


@pytest.mark.parametrize(
    ("exc", "fault"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
        (OSError(errno.EROFS, "Read-only file system"), "the vault's file system is read-only"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "the disk quota is used up"),
        (sqlite3.OperationalError("database or disk is full"), "the disk is full (the ledger cannot be written)"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "the vault's file system is read-only"),
        (OSError(errno.EACCES, "Permission denied"), None),  # one item's problem, not the machine's
        (sqlite3.OperationalError("no such table: x"), None),
        (ValueError("bad"), None),
    ],
)
def test_machine_faults_are_told_apart_from_item_errors(exc: Exception, fault: str | None) -> None:
    found = machine_fault(exc)
    assert (found is None) if fault is None else (found is not None and found.startswith(fault))
    wrapped = FileOpError("could not create x")  # the cause is found through the chain
    wrapped.__cause__ = exc
    assert machine_fault(wrapped) == found


# Root reads every file: the engine runs without the capabilities that let it ignore permissions.
NO_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if os.geteuid() == 0 else []


def test_unreadable_input_is_reported_kept_and_taken_once_readable(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    assert run_cli("init", str(vault)).returncode == 0
    secret = vault / "Inbox" / "locked.txt"
    secret.write_text("not for the engine yet\n")
    secret.chmod(0)
    (vault / "Inbox" / "open.txt").write_text("an ordinary note\n")
    engine = EngineProcess(vault, log=tmp_path / "engine.log", prefix=NO_OVERRIDE)
    try:
        wait_for(lambda: any("locked.txt" in p for p in status(vault)["engine"]["last_problems"]), 30)  # type: ignore[index]
        [problem] = [p for p in status(vault)["engine"]["last_problems"] if "locked.txt" in p]  # type: ignore[index]
        assert "cannot read locked.txt: Permission denied" in problem
        assert [p.name for p in files(vault / "Inbox")] == ["locked.txt"]
        errors = ledger_events(vault, "stage.error")
        assert any("locked.txt" in str(e["path"]) for e in errors)
        secret.chmod(0o644)
        wait_for(lambda: not files(vault / "Inbox"), 30)
        wait_for(lambda: not any("locked.txt" in p for p in status(vault)["engine"]["last_problems"]), 10)  # type: ignore[index]
    finally:
        engine.stop()
    check_vault(vault, {"locked.txt": b"not for the engine yet\n", "open.txt": b"an ordinary note\n"})
