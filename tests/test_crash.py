"""Crash proof: the real engine is killed (SIGKILL) at each named point of the pipeline, restarted with
`vault start --once`, and the vault is checked: every input accounted for exactly once, no half-written
file, no tool call run twice (counted at a real SMTP server), an unknown outcome shown to the human.

The random-kill stress run lives in tests/test_stress.py (`make stress`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ai_employee.faults import CRASH_POINTS
from tests.conftest import SAMPLES, files, live_config, run_cli
from tests.invariants import check_vault, drop_inputs, fields, start_once
from tests.smtp_server import Collector

pytestmark = [pytest.mark.timeout(180), pytest.mark.integration]
KILLED = -9


@pytest.mark.parametrize("point", [p for p in CRASH_POINTS if p.startswith(("ingest.", "plan."))])
def test_killed_while_ingesting_or_planning_loses_nothing_and_plans_once(vault: Path, point: str) -> None:
    inputs = drop_inputs(vault)
    killed = start_once(vault, crash=point)
    assert killed.returncode == KILLED, f"the engine did not reach {point}:\n{killed.stderr[-2000:]}"
    again = start_once(vault)
    assert again.returncode == 0, again.stderr[-2000:]
    actions = check_vault(vault, inputs)
    # Notes and the newsletter were filed (dry-run) and closed; emails wait for approval, action planned.
    for name in ("groceries.md", "meeting.txt", "digest.eml"):
        assert actions[name]["status"] == "done", name
    for name in ("quote.eml", "numbers.md"):
        assert actions[name]["status"] == "planned", name
    assert len(files(vault / "Plans", ".md")) == 2 and len(files(vault / "Done", ".md")) == 3
    assert files(vault / "Quarantine") == []


def approved_email(vault: Path) -> Path:
    """One email, planned (dry-run engine) and approved with `vault approve`: ready to run live."""
    shutil.copy(SAMPLES / "client-quote-request.eml", vault / "Inbox" / "quote.eml")
    assert start_once(vault).returncode == 0
    [plan] = files(vault / "Plans", ".md")
    approved = run_cli("--vault", str(vault), "approve", plan.name)
    assert approved.returncode == 0, approved.stderr
    return vault / "Approved" / plan.name


@pytest.mark.parametrize(
    ("point", "sent", "outcome"),
    [
        ("execute.after_outbox", 0, "interrupted"),
        ("execute.after_call", 1, "interrupted"),
        ("execute.after_result", 1, "done"),
        ("execute.after_done", 1, "done"),
    ],
)
def test_killed_while_executing_never_sends_twice(
    vault: Path, tmp_path: Path, smtp: tuple[Collector, int], point: str, sent: int, outcome: str
) -> None:
    collector, port = smtp
    config = live_config(tmp_path, port)
    note = approved_email(vault)
    killed = start_once(vault, "--live", config=config, crash=point)
    assert killed.returncode == KILLED, f"the engine did not reach {point}:\n{killed.stderr[-2000:]}"
    assert len(collector.envelopes) == sent
    for _ in range(2):  # restarting twice changes nothing more
        again = start_once(vault, "--live", config=config)
        assert again.returncode == 0, again.stderr[-2000:]
        assert len(collector.envelopes) == sent, "a tool call ran twice (or ran after an unknown outcome)"
    actions = check_vault(vault, {"quote.eml": (SAMPLES / "client-quote-request.eml").read_bytes()})
    if outcome == "done":
        assert fields(vault / "Done" / note.name)["status"] == "done"
        assert actions["quote.eml"]["status"] == "done"
    else:
        back = vault / "Plans" / note.name
        assert fields(back)["status"] == "failed" and fields(back)["interrupted"] is True
        assert "interrupted: may or may not have happened" in back.read_text("utf-8")
        assert actions["quote.eml"]["status"] == "planned"
    assert files(vault / "Quarantine") == []


def test_an_unknown_crash_point_is_a_clear_error(vault: Path) -> None:
    result = start_once(vault, crash="nowhere")
    assert result.returncode != 0 and "unknown crash point" in result.stderr
