"""Quarantine notes and retrying a quarantined input (the web page's Retry): the note is read back the
way it was written, an input goes back into `Inbox/` and is taken again, and nothing else can be put
back by this door (a plan set aside from `Approved/` would be an approval; a link stays a link)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_employee.config import Config
from ai_employee.errors import NotFoundError, UserError
from ai_employee.interventions import collect
from ai_employee.orchestrator import Engine
from ai_employee.pipeline.context import EngineContext
from ai_employee.pipeline.quarantine import quarantine, read_why, release
from ai_employee.vault.layout import Vault
from tests.conftest import files


@pytest.fixture
def ctx(vault: Path) -> Iterator[EngineContext]:
    engine = Engine(Vault(vault), Config())
    try:
        yield engine._open()
    finally:
        engine._close()


def test_the_why_note_reads_back_what_was_written(ctx: EngineContext, vault: Path) -> None:
    path = vault / "Inbox" / "scan.pdf"
    path.write_bytes(b"%PDF-1.4 broken")
    quarantine(ctx, path, "the engine could not read this file: **bad** xref", "fix it, then move it back.")
    why = read_why(vault / "Quarantine" / "scan.pdf.why.md")
    assert why.reason == "the engine could not read this file: **bad** xref"
    assert why.retry == "fix it, then move it back." and why.origin == "Inbox"
    [item] = [i for i in collect(ctx.vault, ctx.ledger) if i.kind == "quarantine"]
    assert item.origin == "Inbox" and item.what_to_do.startswith(
        "fix it, then move it back (or `vault retry scan.pdf`). See"
    )
    assert read_why(vault / "Quarantine" / "missing.why.md") == type(why)()


def test_release_puts_an_input_back_into_inbox_once(ctx: EngineContext, vault: Path) -> None:
    path = vault / "Inbox" / "note.md"
    path.write_text("# Call the plumber\n\nThe sink leaks.\n", "utf-8")
    quarantine(ctx, path, "the engine could not read this file: boom", "move it back.")
    (vault / "Inbox" / "note.md").write_text("# Another note of the same name\n", "utf-8")
    moved = release(ctx.vault, "note.md")
    assert moved != "note.md" and (vault / "Inbox" / moved).read_text("utf-8").startswith("# Call the plumber")
    assert files(vault / "Quarantine") == []  # the why-note went with it
    with pytest.raises(NotFoundError, match="not there any more"):
        release(ctx.vault, "note.md")  # a second click: nothing is moved twice


def test_release_refuses_names_outside_quarantine_and_why_notes(ctx: EngineContext, vault: Path) -> None:
    (vault / "secret.md").write_text("outside", "utf-8")
    for name in ("../secret.md", "/etc/passwd", "..", "", "a.why.md", "sub\\x"):
        with pytest.raises(UserError):
            release(ctx.vault, name)
    assert (vault / "secret.md").exists()


def test_release_trusts_only_the_notes_own_came_from_line(ctx: EngineContext, vault: Path) -> None:
    # A name cannot speak for the note: the title line holds it, and only the anchored line counts.
    spoof = vault / "Approved" / "- Came from: `Inbox` **Why:** fine.md"
    spoof.write_text("---\nid: p2\n---\n# Plan\n", "utf-8")
    quarantine(ctx, spoof, "a second copy of a plan that ran", "delete it.")
    assert read_why(vault / "Quarantine" / f"{spoof.name}.why.md").origin == "Approved"
    with pytest.raises(UserError, match="came from Approved/"):
        release(ctx.vault, spoof.name)
    # A file in Quarantine/ without its note (a crash between the move and the note): not put back.
    (vault / "Quarantine" / "orphan.md").write_text("# Orphan\n", "utf-8")
    with pytest.raises(UserError, match="no note saying it came from Inbox/"):
        release(ctx.vault, "orphan.md")
    assert (vault / "Quarantine" / "orphan.md").exists() and files(vault / "Inbox") == []


def test_release_refuses_links_and_plans_set_aside_from_approved(ctx: EngineContext, vault: Path) -> None:
    link = vault / "Inbox" / "link.md"
    os.symlink("/etc/hostname", link)
    quarantine(ctx, link, "a link", "put a regular copy into `Inbox/`.")
    with pytest.raises(UserError, match="not a regular file"):
        release(ctx.vault, "link.md")
    plan = vault / "Approved" / "plan (conflicted copy).md"
    plan.write_text("---\nid: p1\n---\n# Plan\n", "utf-8")
    quarantine(ctx, plan, "a sync conflict copy", "rename it without the conflict marker.")
    with pytest.raises(UserError, match="came from Approved/"):
        release(ctx.vault, plan.name)  # putting it back would approve it: that is a decision, not a retry
    assert sorted(p.name for p in files(vault / "Quarantine")) == [
        "link.md",
        "link.md.why.md",
        "plan (conflicted copy).md",
        "plan (conflicted copy).md.why.md",
    ]
    assert files(vault / "Approved") == []


def test_vault_retry_from_the_cli(vault: Path) -> None:
    from tests.conftest import run_cli

    engine = Engine(Vault(vault), Config())
    ctx = engine._open()
    try:
        path = vault / "Inbox" / "scan.md"
        path.write_text("# Scan\n", "utf-8")
        quarantine(ctx, path, "the engine could not read this file: boom", "fix it, then move it back.")
        [item] = [i for i in collect(ctx.vault, ctx.ledger) if i.kind == "quarantine"]
        assert "`vault retry scan.md`" in item.what_to_do
    finally:
        engine._close()
    done = run_cli("--vault", str(vault), "retry", "scan.md")
    assert done.returncode == 0 and "Back in Inbox/: scan.md." in done.stdout, done.stderr
    assert (vault / "Inbox" / "scan.md").read_text("utf-8") == "# Scan\n"
    again = run_cli("--vault", str(vault), "retry", "scan.md")
    assert again.returncode == 1 and "not there any more" in again.stderr and "Traceback" not in again.stderr
    escape = run_cli("--vault", str(vault), "retry", "../Inbox/scan.md")
    assert escape.returncode == 1 and "not a quarantined file's name" in escape.stderr
