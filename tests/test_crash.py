"""Crash proof: the real engine is killed (SIGKILL) at each named point of the pipeline, restarted with
`vault start --once`, and the vault is checked: every input accounted for exactly once, no half-written
file, no tool call run twice (counted at a real SMTP server), an unknown outcome shown to the human.

The random-kill stress run lives in tests/test_stress.py (`make stress`).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from ai_employee.faults import CRASH_ENV, CRASH_POINTS
from ai_employee.vault.notes import load_yaml, split_note
from tests.conftest import SAMPLES, engine_env, files, live_config, run_cli
from tests.smtp_server import Collector

pytestmark = pytest.mark.timeout(180)
KILLED = -9
VAULT_FOLDERS = ("Inbox", "Needs_Action", "Plans", "Approved", "Rejected", "Done", "Attachments", "Quarantine", "Notes")


def start_once(
    vault: Path, *extra: str, config: Path | None = None, crash: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = engine_env({CRASH_ENV: crash} if crash else None)
    args = ["--vault", str(vault)] + (["--config", str(config)] if config else [])
    return run_cli(*args, "start", "--once", *extra, env=env, timeout=120)


def drop_inputs(vault: Path) -> dict[str, bytes]:
    """Two notes (LOW plans that run by themselves) and three emails (plans that wait): two `.eml` files
    and a note whose frontmatter has `from`/`subject`."""
    inputs = {
        "groceries.md": b"# Groceries\n\n- milk\n",
        "meeting.txt": (SAMPLES / "meeting_request.txt").read_bytes(),
        "numbers.md": (SAMPLES / "q4-numbers-for-board.md").read_bytes(),
        "quote.eml": (SAMPLES / "client-quote-request.eml").read_bytes(),
        "digest.eml": (SAMPLES / "newsletter-weekly-digest.eml").read_bytes(),
    }
    for name, data in inputs.items():
        (vault / "Inbox" / name).write_bytes(data)
    return inputs


def fields(path: Path) -> dict[str, object]:
    text = path.read_text("utf-8")
    if path.name.endswith(".action.yaml"):
        data = load_yaml(text, path.name)
    else:
        data = load_yaml(split_note(text).frontmatter, path.name)
    assert isinstance(data, dict), f"{path} does not parse to a mapping"
    return data


def check_vault(vault: Path, inputs: dict[str, bytes]) -> dict[str, dict[str, object]]:
    """The invariants after any crash and restart; returns {input name: its action's fields}."""
    assert files(vault / "Inbox") == [], "an input was left in Inbox/"
    for folder in VAULT_FOLDERS:
        for path in files(vault / folder):
            assert not path.name.startswith(".partial"), f"temp debris in {folder}/"
            if path.name.endswith((".md", ".action.yaml")) and folder not in ("Attachments", "Inbox", "Notes"):
                fields(path)  # every note and action file is whole: it parses
    actions = [
        fields(p) for folder in ("Needs_Action", "Done", "Rejected") for p in files(vault / folder, ".action.yaml")
    ]
    by_name: dict[str, dict[str, object]] = {}
    for action in actions:
        source = action["source"]
        assert isinstance(source, dict)
        name = str(source["original_name"])
        assert name not in by_name, f"two actions for {name}"
        by_name[name] = action
    assert set(by_name) == set(inputs), "an input has no action (or an action has no input)"
    attachments = sorted(p.read_bytes() for p in files(vault / "Attachments"))
    assert attachments == sorted(inputs.values()), "originals lost or duplicated in Attachments/"
    plans = [fields(p) for folder in ("Plans", "Approved", "Done", "Rejected") for p in files(vault / folder, ".md")]
    planned = [str(p["action_id"]) for p in plans]
    assert sorted(planned) == sorted(str(a["id"]) for a in actions), "an action has no plan, or two"
    notes = [p.name for p in files(vault / "Notes")]
    assert not any(" (2)." in name for name in notes), f"a summary note was filed twice: {notes}"
    db = sqlite3.connect(vault / ".ai_employee" / "ledger.sqlite3")
    try:
        assert db.execute("SELECT COUNT(*) FROM ingest_intents").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM runs WHERE state = 'started'").fetchone()[0] == 0
    finally:
        db.close()
    return by_name


@pytest.mark.parametrize("point", [p for p in CRASH_POINTS if p.startswith(("ingest.", "plan."))])
def test_killed_while_ingesting_or_planning_loses_nothing_and_plans_once(vault: Path, point: str) -> None:
    inputs = drop_inputs(vault)
    killed = start_once(vault, crash=point)
    assert killed.returncode == KILLED, f"the engine did not reach {point}:\n{killed.stderr[-2000:]}"
    again = start_once(vault)
    assert again.returncode == 0, again.stderr[-2000:]
    actions = check_vault(vault, inputs)
    # Notes were summarised (dry-run) and closed; emails wait for approval with their action planned.
    for name in ("groceries.md", "meeting.txt"):
        assert actions[name]["status"] == "done", name
    for name in ("quote.eml", "digest.eml", "numbers.md"):
        assert actions[name]["status"] == "planned", name
    assert len(files(vault / "Plans", ".md")) == 3 and len(files(vault / "Done", ".md")) == 2
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
