"""End to end: the real CLI and a real engine subprocess on a temp vault."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import SAMPLES, EngineProcess, files, run_cli, wait_for

pytestmark = [pytest.mark.timeout(120), pytest.mark.integration]


def frontmatter(path: Path) -> dict[str, object]:
    text = path.read_text("utf-8")
    return yaml.safe_load(text.split("---\n", 2)[1])


def drop(vault: Path, name: str, content: str | bytes) -> Path:
    """Write a file in place into Inbox/, as an editor or a copy would."""
    path = vault / "Inbox" / name
    data = content.encode() if isinstance(content, str) else content
    path.write_bytes(data)
    return path


def test_note_dropped_while_running_is_planned_and_filed_by_itself(
    vault: Path, engine: Callable[..., EngineProcess]
) -> None:
    engine()
    drop(vault, "groceries.md", "# Groceries\n\n- milk\n- eggs\n")
    done = wait_for(lambda: files(vault / "Done", ".md"))
    note = done[0]
    fm = frontmatter(note)
    assert fm["status"] == "done" and fm["criticality"] == "low" and fm["dry_run"] is True
    text = note.read_text()
    assert "DRY RUN — WOULD CALL vault.create_note" in text
    assert "- [x] 1. `vault.create_note`" in text
    assert "template planner" in text
    wait_for(lambda: files(vault / "Done", ".action.yaml"))
    action = yaml.safe_load(files(vault / "Done", ".action.yaml")[0].read_text())
    assert action["status"] == "done" and action["type"] == "file_drop"
    assert "milk" in action["content"]["preview"]
    assert (vault / "Attachments" / "groceries.md").exists()
    assert files(vault / "Inbox") == []
    wait_for(lambda: files(vault / "Needs_Action") == [])  # a move is a link, then an unlink


def test_email_waits_for_approval_then_runs_after_a_move(vault: Path, engine: Callable[..., EngineProcess]) -> None:
    engine()
    shutil.copy(SAMPLES / "client-quote-request.eml", vault / "Inbox" / "quote.eml")
    plan = wait_for(lambda: files(vault / "Plans", ".md"))[0]
    fm = frontmatter(plan)
    assert fm["status"] == "pending_approval" and fm["criticality"] == "medium"
    text = plan.read_text()
    assert "email.send_email" in text and "maria@brightpath-design.co" in text
    action = wait_for(lambda: files(vault / "Needs_Action", ".action.yaml"))[0]
    wait_for(lambda: yaml.safe_load(action.read_text())["status"] == "planned")
    os.rename(plan, vault / "Approved" / plan.name)
    done = wait_for(lambda: files(vault / "Done", ".md"))[0]
    text = done.read_text()
    assert "DRY RUN — WOULD CALL email.send_email" in text
    assert frontmatter(done)["status"] == "done"
    wait_for(lambda: files(vault / "Done", ".action.yaml"))
    wait_for(lambda: files(vault / "Needs_Action") == [])  # a move is a link, then an unlink
    history = run_cli("--vault", str(vault), "history")
    assert "approved by" in history.stdout and "by moving the note" in history.stdout


def test_edit_before_approve_runs_what_the_note_says(vault: Path, engine: Callable[..., EngineProcess]) -> None:
    engine()
    shutil.copy(SAMPLES / "client-quote-request.eml", vault / "Inbox" / "quote.eml")
    plan = wait_for(lambda: files(vault / "Plans", ".md"))[0]
    text = plan.read_text()
    edited = text.replace("maria@brightpath-design.co\n", "someone.else@example.org\n", 1)
    edited = edited.replace("Kind regards,", "Warm regards from the edited note,")
    assert edited != text
    plan.write_text(edited)
    os.rename(plan, vault / "Approved" / plan.name)
    done = wait_for(lambda: files(vault / "Done", ".md"))[0]
    log = done.read_text().split("## Execution log", 1)[1]
    assert "someone.else@example.org" in log and "Warm regards from the edited note" in log
    assert "maria@brightpath-design.co" not in log


def test_cli_approve_and_deny(vault: Path, engine: Callable[..., EngineProcess]) -> None:
    engine()
    shutil.copy(SAMPLES / "client-quote-request.eml", vault / "Inbox" / "a.eml")
    shutil.copy(SAMPLES / "q4-numbers-for-board.md", vault / "Inbox" / "b.md")  # a note from Dana: a reply
    plans = wait_for(lambda: len(files(vault / "Plans", ".md")) == 2 and files(vault / "Plans", ".md"))
    listed = run_cli("--vault", str(vault), "list")
    assert listed.returncode == 0
    ids = {str(frontmatter(p)["title" if False else "id"]): p for p in plans}
    quote_id = next(i for i, p in ids.items() if "Maria" in p.name)
    news_id = next(i for i, p in ids.items() if "Maria" not in p.name)
    assert quote_id in listed.stdout and news_id in listed.stdout

    approved = run_cli("--vault", str(vault), "approve", quote_id, "--feedback", "looks right")
    assert approved.returncode == 0, approved.stderr
    denied = run_cli("--vault", str(vault), "deny", news_id, "--feedback", "not this one")
    assert denied.returncode == 0, denied.stderr

    done = wait_for(lambda: files(vault / "Done", ".md"))[0]
    assert "WOULD CALL email.send_email" in done.read_text()
    rejected = files(vault / "Rejected", ".md")
    assert len(rejected) == 1 and frontmatter(rejected[0])["status"] == "rejected"
    wait_for(lambda: files(vault / "Rejected", ".action.yaml"))
    action = yaml.safe_load(files(vault / "Rejected", ".action.yaml")[0].read_text())
    assert action["status"] == "rejected"

    history = run_cli("--vault", str(vault), "history").stdout
    assert "looks right" in history and "not this one" in history and "from the command line" in history
    assert "Reply to Maria Lopez" in history, "history names the plan, not only its id"
    again = run_cli("--vault", str(vault), "approve", news_id)
    assert again.returncode == 1 and "Rejected/" in again.stderr and "Traceback" not in again.stderr
    missing = run_cli("--vault", str(vault), "approve", "nosuchplan")
    assert missing.returncode == 1 and "no plan matches" in missing.stderr


def test_plan_moved_to_rejected_closes_the_item(vault: Path, engine: Callable[..., EngineProcess]) -> None:
    engine()
    shutil.copy(SAMPLES / "client-quote-request.eml", vault / "Inbox" / "a.eml")
    plan = wait_for(lambda: files(vault / "Plans", ".md"))[0]
    os.rename(plan, vault / "Rejected" / plan.name)
    wait_for(lambda: files(vault / "Rejected", ".action.yaml"))
    wait_for(lambda: frontmatter(vault / "Rejected" / plan.name)["status"] == "rejected")
    assert files(vault / "Done") == []


def test_files_dropped_while_down_are_handled_at_start(vault: Path) -> None:
    for sample in sorted(SAMPLES.iterdir()):
        shutil.copy(sample, vault / "Inbox" / sample.name)
    count = len(files(vault / "Inbox"))
    result = run_cli("--vault", str(vault), "start", "--once")
    assert result.returncode == 0, result.stderr
    assert files(vault / "Inbox") == []
    assert len(files(vault / "Attachments")) == count
    # Replies wait: the quote request, and the note with from/subject (the newsletter gets no reply).
    emails = 2
    assert len(files(vault / "Plans", ".md")) == emails
    assert len(files(vault / "Done", ".action.yaml")) == count - emails
    assert len(files(vault / "Needs_Action", ".action.yaml")) == emails
    # A second run finds nothing to do and changes nothing.
    before = sorted(p.name for p in vault.rglob("*") if ".ai_employee" not in p.parts)
    again = run_cli("--vault", str(vault), "start", "--once")
    assert again.returncode == 0 and "Processed 0" in again.stdout
    assert sorted(p.name for p in vault.rglob("*") if ".ai_employee" not in p.parts) == before


def test_status_json_shape_and_second_engine_refused(vault: Path, engine: Callable[..., EngineProcess]) -> None:
    down = json.loads(run_cli("--vault", str(vault), "status", "--json").stdout)
    assert down["engine"]["running"] is False
    proc = engine()
    shutil.copy(SAMPLES / "client-quote-request.eml", vault / "Inbox" / "a.eml")
    wait_for(lambda: files(vault / "Plans", ".md"))
    data = json.loads(run_cli("--vault", str(vault), "status", "--json").stdout)
    assert data["engine"]["running"] is True and data["engine"]["pid"] == proc.proc.pid
    assert set(data["folders"]) == {"Inbox", "Needs_Action", "Plans", "Approved", "Rejected", "Done", "Quarantine"}
    assert data["folders"]["Plans"] == 1
    assert data["pending_approvals"][0]["criticality"] == "medium"
    wait_for(lambda: json.loads(run_cli("--vault", str(vault), "status", "--json").stdout)["engine"].get("services"))
    second = run_cli("--vault", str(vault), "start")
    assert second.returncode == 1
    assert "already running" in second.stderr and str(proc.proc.pid) in second.stderr
    assert "Traceback" not in second.stderr


def test_vault_stop_stops_a_running_engine_gracefully(vault: Path, engine: Callable[..., EngineProcess]) -> None:
    proc = engine()
    result = run_cli("--vault", str(vault), "stop")
    assert result.returncode == 0 and "stopped" in result.stdout
    assert proc.proc.wait(timeout=10) == 0
    assert json.loads(run_cli("--vault", str(vault), "status", "--json").stdout)["engine"]["running"] is False
    assert "No engine is running" in run_cli("--vault", str(vault), "stop").stdout


def test_init_is_idempotent_and_keeps_user_files(tmp_path: Path) -> None:
    root = tmp_path / "MyVault"
    first = run_cli("init", str(root))
    assert first.returncode == 0
    for name in ("Inbox", "Needs_Action", "Plans", "Approved", "Rejected", "Done", "Attachments", "Quarantine"):
        assert (root / name).is_dir()
    handbook = root / "Company_Handbook.md"
    handbook.write_text("# My own rules\n")
    (root / "Inbox" / "keep.md").write_text("mine")
    second = run_cli("init", str(root))
    assert second.returncode == 0 and "nothing changed" in second.stdout
    assert handbook.read_text() == "# My own rules\n" and (root / "Inbox" / "keep.md").read_text() == "mine"


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    missing = run_cli("--vault", str(tmp_path / "nope"), "status")
    assert missing.returncode == 1 and "vault init" in missing.stderr and "Traceback" not in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("watcher:\n  pol_interval: 3\n")
    result = run_cli("--config", str(bad), "--vault", str(tmp_path), "start", "--once")
    assert result.returncode == 1 and "watcher.pol_interval" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_hand_written_action_and_plan_are_adopted(vault: Path) -> None:
    (vault / "Needs_Action" / "call the bank.action.yaml").write_text(
        "# my own reminder\ntitle: Call the bank about the card\ncontent: Ask about the new card.\n"
    )
    (vault / "Approved" / "my plan.md").write_text(
        "# File a note\n\n## Steps\n\n```yaml\n- tool: vault.create_note\n  args:\n"
        "    path: Notes/mine.md\n    content: hello\n```\n"
    )
    result = run_cli("--vault", str(vault), "start", "--once")
    assert result.returncode == 0, result.stderr
    [action] = files(vault / "Done", ".action.yaml")
    text = action.read_text()
    assert "# my own reminder\ntitle: Call the bank about the card\ncontent: Ask about the new card.\n" in text
    assert text.startswith("id: ")
    data = yaml.safe_load(text)
    assert data["status"] == "done" and len(data["id"]) == 26 and data["plan_id"]
    done = {p.name: frontmatter(p) for p in files(vault / "Done", ".md")}
    assert done["my plan.md"]["planner"] == "human" and done["my plan.md"]["criticality"] == "low"
    assert "WOULD CALL vault.create_note" in (vault / "Done" / "my plan.md").read_text()
    assert "# File a note\n\n" in (vault / "Done" / "my plan.md").read_text()


def test_dry_run_plan_moved_back_runs_again_but_a_live_one_does_not(vault: Path) -> None:
    drop(vault, "n.md", "# A note\n")
    assert run_cli("--vault", str(vault), "start", "--once").returncode == 0
    [done] = files(vault / "Done", ".md")
    os.rename(done, vault / "Approved" / done.name)
    assert run_cli("--vault", str(vault), "start", "--once").returncode == 0
    again = vault / "Done" / done.name
    assert again.exists() and "Execution log (attempt 2)" in again.read_text()
    assert files(vault / "Quarantine") == []
