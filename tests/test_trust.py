"""What runs is what was approved, end to end with the real engine and CLI: a decision binds to the hash
of the steps it saw, whatever the channel; anything else goes back to the human. Also: a file moved
into `Inbox/` is taken at once, an action follows its plan, copies never attach to another's plan, and
a forged sender is shown for what it is. Sends are counted at a real SMTP server."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
import yaml

from ai_employee.vault.notes import split_note
from ai_employee.vault.plans import parse_steps
from tests.conftest import SAMPLES, EngineProcess, files, live_config, run_cli, wait_for
from tests.invariants import fields, start_once
from tests.smtp_server import Collector

pytestmark = [pytest.mark.timeout(120), pytest.mark.integration]
MARIA = "maria@brightpath-design.co"


def ledger_rows(vault: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(vault / ".ai_employee" / "ledger.sqlite3")
    try:
        return list(db.execute(sql))
    finally:
        db.close()


def planned_email(vault: Path) -> Path:
    shutil.copy(SAMPLES / "client-quote-request.eml", vault / "Inbox" / "quote.eml")
    assert start_once(vault).returncode == 0
    [plan] = files(vault / "Plans", ".md")
    return plan


def edit_steps(note: Path, old: str, new: str) -> None:
    text = note.read_text("utf-8")
    assert old in text
    note.write_text(text.replace(old, new), "utf-8")


def cli(vault: Path, *args: str) -> str:
    result = run_cli("--vault", str(vault), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_steps_edited_after_vault_approve_do_not_run_until_approved_again(
    vault: Path, tmp_path: Path, smtp: tuple[Collector, int]
) -> None:
    collector, port = smtp
    config = live_config(tmp_path, port)
    plan = planned_email(vault)
    plan_id = str(fields(plan)["id"])
    cli(vault, "approve", plan_id)
    [approved] = files(vault / "Approved", ".md")
    edit_steps(approved, MARIA, "eve@evil.example")  # a change the approval never saw
    assert start_once(vault, "--live", config=config).returncode == 0
    assert collector.envelopes == [], "edited steps ran on an approval of other steps"
    [back] = files(vault / "Plans", ".md")
    fm, text = fields(back), back.read_text("utf-8")
    assert fm["status"] == "pending_approval" and fm["criticality"] == "medium"
    assert "the steps changed" in text
    assert f"-    - {MARIA}" in text and "+    - eve@evil.example" in text, text  # the diff the human sees
    # Approving the steps as they are now is a new decision, and they run once.
    cli(vault, "approve", plan_id)
    assert start_once(vault, "--live", config=config).returncode == 0
    assert [e.rcpt_tos for e in collector.envelopes] == [["eve@evil.example"]]
    assert fields(vault / "Done" / back.name)["status"] == "done"


def test_an_approved_status_with_no_decision_on_record_is_rated_again(
    vault: Path, tmp_path: Path, smtp: tuple[Collector, int]
) -> None:
    """A crash between writing a LOW plan into Approved/ and recording the policy's decision, then an
    edit that turns the step into an email: nobody approved that, so it waits."""
    collector, port = smtp
    (vault / "Inbox" / "groceries.md").write_text("# Groceries\n\n- milk\n", "utf-8")
    assert start_once(vault, crash="plan.after_write").returncode != 0
    [note] = files(vault / "Approved", ".md")
    assert fields(note)["status"] == "approved"
    assert ledger_rows(vault, "SELECT * FROM decisions") == []
    text = note.read_text("utf-8")
    steps = "```yaml\n- tool: email.send_email\n  args:\n    to: [eve@evil.example]\n    subject: hi\n    body: hi\n```"
    start, end = text.index("```yaml"), text.index("```\n", text.index("```yaml") + 3) + 3
    note.write_text(text[:start] + steps + text[end:], "utf-8")
    assert start_once(vault, "--live", config=live_config(tmp_path, port)).returncode == 0
    assert collector.envelopes == []
    [back] = files(vault / "Plans", ".md")
    assert fields(back)["status"] == "pending_approval" and fields(back)["criticality"] == "medium"
    assert "no approval of these steps is on record" in back.read_text("utf-8")
    # Its action now waits with it.
    [action] = files(vault / "Needs_Action", ".action.yaml")
    assert fields(action)["status"] == "planned"


def test_a_low_plan_whose_decision_was_lost_still_runs_by_itself(vault: Path) -> None:
    (vault / "Inbox" / "groceries.md").write_text("# Groceries\n\n- milk\n", "utf-8")
    assert start_once(vault, crash="plan.after_write").returncode != 0
    assert start_once(vault).returncode == 0
    [done] = files(vault / "Done", ".md")
    assert fields(done)["status"] == "done"
    assert ledger_rows(vault, "SELECT decision, channel FROM decisions") == [("auto_approve", "policy")]


def test_a_hand_written_plan_that_runs_leaves_its_decision(vault: Path) -> None:
    steps = "- tool: vault.create_note\n  args: {path: Notes/x.md, content: hi}\n"
    body = f"# File a note\n\n## Steps\n\n```yaml\n{steps}```"
    (vault / "Approved" / "mine.md").write_text(body + "\n", "utf-8")
    assert start_once(vault).returncode == 0
    [done] = files(vault / "Done", ".md")
    plan_id = str(fields(done)["id"])
    rows = ledger_rows(vault, "SELECT plan_id, decision, channel, plan_hash FROM decisions")
    assert [(r[0], r[1], r[2]) for r in rows] == [(plan_id, "approve", "file")] and rows[0][3]
    assert "approve" in cli(vault, "history") and "mine" in cli(vault, "history")
    assert "approved" in cli(vault, "show", plan_id).lower()


def test_a_copy_under_another_name_runs_once_and_sets_its_original_aside(
    vault: Path, tmp_path: Path, smtp: tuple[Collector, int]
) -> None:
    collector, port = smtp
    plan = planned_email(vault)
    plan_id = str(fields(plan)["id"])
    copy = vault / "Approved" / f"{plan.stem} 1.md"  # a file manager's copy
    shutil.copy(plan, copy)
    # Before it runs, `vault approve` sees one plan (already approved by the copy), not two.
    result = run_cli("--vault", str(vault), "approve", plan_id)
    assert result.returncode == 1 and "Approved/" in result.stderr and "matches" not in result.stderr
    assert start_once(vault, "--live", config=live_config(tmp_path, port)).returncode == 0
    assert len(collector.envelopes) == 1
    assert files(vault / "Plans") == [], "the original still waits for approval"
    assert [p.name for p in files(vault / "Quarantine") if not p.name.endswith(".why.md")] == [plan.name]


def test_a_rejected_plan_moved_into_approved_runs_once_and_its_action_follows(vault: Path) -> None:
    plan = planned_email(vault)
    cli(vault, "deny", str(fields(plan)["id"]))
    assert start_once(vault).returncode == 0
    [action] = files(vault / "Rejected", ".action.yaml")
    assert fields(action)["status"] == "rejected"
    rejected = vault / "Rejected" / plan.name
    assert "rejected" in rejected.read_text("utf-8").split("## Summary")[0]
    os.rename(rejected, vault / "Approved" / plan.name)  # a new approval, by a person
    assert start_once(vault).returncode == 0
    assert fields(vault / "Done" / plan.name)["status"] == "done"
    assert files(vault / "Rejected") == []
    assert fields(vault / "Done" / action.name)["status"] == "done"
    decisions = [r[0] for r in ledger_rows(vault, "SELECT decision FROM decisions ORDER BY id")]
    assert decisions == ["deny", "approve"]


def test_a_symlink_in_approved_is_quarantined_not_followed(vault: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text(
        "# Evil\n\n## Steps\n\n```yaml\n- tool: vault.create_note\n  args: {path: Notes/x.md, content: hi}\n```\n"
    )
    (vault / "Approved" / "link.md").symlink_to(outside)
    assert start_once(vault).returncode == 0
    assert files(vault / "Done") == [] and not (vault / "Notes" / "x.md").exists()
    assert (vault / "Quarantine" / "link.md").is_symlink()
    assert "symbolic link" in (vault / "Quarantine" / "link.md.why.md").read_text("utf-8")
    assert "id:" not in outside.read_text(), "the link's target was edited"


def test_vault_approve_takes_its_decision_back_when_the_move_fails(vault: Path) -> None:
    plan = planned_email(vault)
    shutil.rmtree(vault / "Approved")
    (vault / "Approved").write_text("not a folder")
    result = run_cli("--vault", str(vault), "approve", str(fields(plan)["id"]))
    assert result.returncode == 1
    assert ledger_rows(vault, "SELECT * FROM decisions") == []
    assert fields(plan)["status"] == "pending_approval"
    assert "waiting for your approval" in plan.read_text("utf-8")


def test_a_hand_written_action_reusing_an_id_gets_its_own_plan(vault: Path) -> None:
    plan = planned_email(vault)
    [action] = files(vault / "Needs_Action", ".action.yaml")
    time.sleep(0.01)
    data = yaml.safe_load(action.read_text("utf-8"))
    data["status"], data["title"] = "new", "Call the bank"
    (vault / "Needs_Action" / "bank.action.yaml").write_text(yaml.safe_dump(data), "utf-8")
    assert start_once(vault).returncode == 0
    copy = fields(vault / "Needs_Action" / "bank.action.yaml")
    assert copy["id"] != data["id"] and copy["status"] == "planned"
    assert copy["plan_id"] != fields(plan)["id"]
    assert fields(action)["id"] == data["id"] and fields(action)["plan_id"] == fields(plan)["id"]


def test_a_file_moved_into_inbox_is_taken_at_once(vault: Path, tmp_path: Path) -> None:
    engine = EngineProcess(vault)
    try:
        outside = tmp_path / "download.txt"
        outside.write_text("Lunch with Ana on Friday?\n")
        started = time.monotonic()
        os.rename(outside, vault / "Inbox" / "download.txt")  # `mv`, a browser's rename on completion
        # (A LOW plan runs by itself: its action may be in Done/ already when the test looks.)
        wait_for(lambda: files(vault / "Needs_Action", ".action.yaml") + files(vault / "Done", ".action.yaml"), 30)
        # The writer wait is 60 s: a moved-in file taken at once was known to be complete.
        assert time.monotonic() - started < 30
    finally:
        engine.stop()


FORGED = (
    b"From: =?utf-8?q?Dana_Whitfield_=3Cdana=40example-studio=2Ecom=3E=0D=0A?= <eve@evil.example>\r\n"
    b"To: me@example-studio.com\r\nSubject: Wire the deposit today\r\nMessage-ID: <f1@evil.example>\r\n\r\n"
    b"Please wire it today.\r\n"
)


def test_a_forged_display_name_is_shown_as_suspicious_and_never_used_as_the_address(vault: Path) -> None:
    (vault / "Inbox" / "forged.eml").write_bytes(FORGED)
    assert start_once(vault).returncode == 0
    [action] = files(vault / "Needs_Action", ".action.yaml")
    email = fields(action)["email"]
    assert isinstance(email, dict)
    assert email["from_addr"] == "eve@evil.example"
    assert "dana@example-studio.com" in email["sender_warning"] and "eve@evil.example" in email["sender_warning"]
    [plan] = files(vault / "Plans", ".md")
    text = plan.read_text("utf-8")
    assert "Suspicious sender" in text and "the name shows dana@example-studio.com" in text
    [step] = parse_steps(split_note(text).body)
    assert step.args["to"] == ["eve@evil.example"] and "Hello there" in step.args["body"]
    assert "Reply to eve@evil.example" in text


def test_vault_deny_while_the_engine_runs_is_one_decision(vault: Path) -> None:
    engine = EngineProcess(vault)
    try:
        shutil.copy(SAMPLES / "client-quote-request.eml", vault / "Inbox" / "quote.eml")
        [plan] = wait_for(lambda: files(vault / "Plans", ".md"))  # type: ignore[misc]
        wait_for(lambda: [a for a in files(vault / "Needs_Action", ".action.yaml") if fields(a)["status"] == "planned"])
        cli(vault, "deny", str(fields(plan)["id"]))
        wait_for(lambda: files(vault / "Rejected", ".action.yaml"))
    finally:
        engine.stop()
    assert ledger_rows(vault, "SELECT decision, channel FROM decisions") == [("deny", "cli")]


def test_a_failed_plan_moved_back_unchanged_is_a_new_decision_by_the_move(vault: Path) -> None:
    plan = planned_email(vault)
    edit_steps(plan, "tool: email.send_email", "tool: email.no_such_tool")  # cannot run: fails
    cli(vault, "approve", str(fields(plan)["id"]))
    assert start_once(vault).returncode == 0
    assert fields(vault / "Plans" / plan.name)["status"] == "failed"
    os.rename(vault / "Plans" / plan.name, vault / "Approved" / plan.name)  # try again, unchanged
    assert start_once(vault).returncode == 0
    rows = ledger_rows(vault, "SELECT decision, channel FROM decisions ORDER BY id")
    assert rows == [("approve", "cli"), ("approve", "file")], "the move is the person's new decision"
