"""What must hold in a vault after any crash, fault or restart: every input accounted for exactly once,
no half-written file, no plan run or note filed twice, nothing left open in the ledger."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from ai_employee.faults import CRASH_ENV
from ai_employee.vault.notes import load_yaml, split_note
from tests.conftest import SAMPLES, engine_env, files, run_cli

VAULT_FOLDERS = ("Inbox", "Needs_Action", "Plans", "Approved", "Rejected", "Done", "Attachments", "Quarantine", "Notes")


def drop_inputs(vault: Path) -> dict[str, bytes]:
    """Two notes and a newsletter (LOW plans that run by themselves: bulk mail gets no reply) and two
    emails (plans that wait): an `.eml` file and a note whose frontmatter has `from`/`subject`."""
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
            engine_note = path.name.endswith(".why.md")  # a quarantine note: plain Markdown
            if (
                path.name.endswith((".md", ".action.yaml"))
                and folder not in ("Attachments", "Inbox", "Notes")
                and not engine_note
            ):
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


def start_once(
    vault: Path, *extra: str, config: Path | None = None, crash: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`vault start --once` on the vault, as a subprocess (with `crash`: killed at that crash point)."""
    env = engine_env({**(env or {}), **({CRASH_ENV: crash} if crash else {})})
    args = ["--vault", str(vault)] + (["--config", str(config)] if config else [])
    return run_cli(*args, "start", "--once", *extra, env=env, timeout=120)
