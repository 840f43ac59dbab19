"""Approval by moving files, when people (and sync tools) do unexpected things: a plan copied instead of
moved into `Approved/`, sync-conflict copies, a plan moved away while it runs. A plan id runs at most
once; what is set aside says why. Counted at a real SMTP server."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, EngineProcess, files, live_config, wait_for
from tests.invariants import check_vault, fields, start_once
from tests.smtp_server import Collector, start_smtp

pytestmark = [pytest.mark.timeout(120), pytest.mark.integration]
QUOTE = {"quote.eml": (SAMPLES / "client-quote-request.eml").read_bytes()}


def planned_email(vault: Path) -> Path:
    """One email planned by a dry-run pass: its reply waits in `Plans/` for approval."""
    shutil.copy(SAMPLES / "client-quote-request.eml", vault / "Inbox" / "quote.eml")
    assert start_once(vault).returncode == 0
    [plan] = files(vault / "Plans", ".md")
    return plan


def why(vault: Path, name: str) -> str:
    [note] = [p for p in files(vault / "Quarantine", ".why.md") if p.name.startswith(Path(name).stem)]
    return note.read_text("utf-8")


class Live:
    """A live engine run (`start --once --live`) against the test's SMTP server, counting messages."""

    def __init__(self, vault: Path, tmp_path: Path, smtp: tuple[Collector, int]) -> None:
        self.vault, (self.collector, port) = vault, smtp
        self.config = live_config(tmp_path, port)

    def run(self) -> int:
        """Run once; return how many messages the SMTP server has received so far."""
        assert start_once(self.vault, "--live", config=self.config).returncode == 0
        return len(self.collector.envelopes)


@pytest.fixture
def live(vault: Path, tmp_path: Path, smtp: tuple[Collector, int]) -> Live:
    return Live(vault, tmp_path, smtp)


def test_a_plan_copied_into_approved_runs_once_and_its_original_is_set_aside(vault: Path, live: Live) -> None:
    plan = planned_email(vault)
    shutil.copy(plan, vault / "Approved" / plan.name)
    assert live.run() == 1
    assert fields(vault / "Done" / plan.name)["status"] == "done"
    assert files(vault / "Plans") == [], "the original still looks like it waits for approval"
    assert "ran from a copy of this note" in why(vault, plan.name)
    # Approving the set-aside original anyway sends nothing more.
    os.rename(vault / "Quarantine" / plan.name, vault / "Approved" / plan.name)
    assert live.run() == 1
    assert files(vault / "Approved") == []
    check_vault(vault, QUOTE)


def test_sync_conflict_copies_in_approved_are_never_run(vault: Path, live: Live) -> None:
    plan = planned_email(vault)
    os.rename(plan, vault / "Approved" / plan.name)
    assert live.run() == 1
    done = vault / "Done" / plan.name
    copies = [
        f"{plan.stem} (conflicted copy 2026-11-23).md",  # Dropbox
        f"{plan.stem}.sync-conflict-20261123-101010-ABCDEFG.md",  # Syncthing
    ]
    for name in copies:
        # Even one whose properties say it is approved and new.
        text = done.read_text("utf-8").replace("status: done", "status: approved")
        (vault / "Approved" / name).write_text(text, "utf-8")
    assert live.run() == 1
    quarantined = {p.name for p in files(vault / "Quarantine")}
    for name in copies:
        assert name in quarantined
        assert "sync conflict copy" in why(vault, name)
    check_vault(vault, QUOTE)


@contextlib.contextmanager
def send_in_flight(vault: Path, tmp_path: Path) -> Iterator[tuple[Path, Collector]]:
    """A live engine and a slow SMTP server; yields once an approved reply's send has started, with the
    note in `Approved/`: the moment to act while the engine is running the plan."""
    slow = Collector(delay_s=1.5)
    controller = start_smtp(slow)
    try:
        plan = planned_email(vault)
        engine = EngineProcess(vault, "--live", config=live_config(tmp_path, controller.port))
        try:
            approved = vault / "Approved" / plan.name
            os.rename(plan, approved)
            assert slow.receiving.wait(30), "the send never started"
            yield approved, slow
            wait_for((vault / "Done" / plan.name).exists, 30)
            wait_for(lambda: files(vault / "Done", ".action.yaml"), 10)
        finally:
            engine.stop()
    finally:
        controller.stop()


@pytest.mark.parametrize("moved_to", ["Plans", "Rejected"])
def test_a_plan_moved_away_while_it_runs_is_filed_once_where_it_belongs(
    vault: Path, tmp_path: Path, moved_to: str
) -> None:
    with send_in_flight(vault, tmp_path) as (approved, slow):
        os.rename(approved, vault / moved_to / approved.name)
    done = vault / "Done" / approved.name
    assert len(slow.envelopes) == 1
    note = fields(done)
    assert note["status"] == "done"
    assert files(vault / "Plans") == [] and files(vault / "Rejected") == [] and files(vault / "Approved") == []
    actions = check_vault(vault, QUOTE)
    assert actions["quote.eml"]["status"] == "done"


def test_your_edit_made_while_the_engine_updates_the_note_is_kept(vault: Path, tmp_path: Path) -> None:
    """The engine writes `status: executing`, then the result, into the note; the human edits the same
    note in between (as in Obsidian, while the send is in flight). Both end up in the note in `Done/`."""
    with send_in_flight(vault, tmp_path) as (approved, slow):
        text = approved.read_text("utf-8")
        assert "status: executing" in text
        approved.write_text(text + "\nMy own comment, typed while it ran.\n", "utf-8")
    done = vault / "Done" / approved.name
    text = done.read_text("utf-8")
    assert "My own comment, typed while it ran." in text
    assert "## Execution log" in text and fields(done)["status"] == "done"
    assert len(slow.envelopes) == 1
