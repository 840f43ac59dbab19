"""Finding a plan's note with the id cache of a long-lived process (the web page, the engine): what
changed since the last look is seen, in `Plans/` (an edit in place) and in `Done/` (a note added)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ai_employee.errors import NotFoundError
from ai_employee.pipeline import lookup
from ai_employee.pipeline.lookup import resolve_plan
from ai_employee.vault.layout import Vault


def note(path: Path, plan_id: str) -> None:
    path.write_text(f"---\nid: {plan_id}\nstatus: pending_approval\n---\n# Plan\n", "utf-8")


def test_an_edit_in_place_and_a_copy_filed_in_done_are_seen(vault: Path) -> None:
    v = Vault(vault)
    note(vault / "Plans" / "a.md", "PLAN-A")
    assert resolve_plan(v, "PLAN-A").folder == "Plans"
    with open(vault / "Plans" / "a.md", "r+", encoding="utf-8") as fh:  # in place: same inode
        fh.write("---\nid: PLAN-B")
    assert resolve_plan(v, "PLAN-B").path.name == "a.md"
    note(vault / "Done" / "b.md", "PLAN-B")  # a copy that ran: the note furthest along wins
    assert resolve_plan(v, "PLAN-B").folder == "Done"


def test_the_archive_listing_is_reused_only_while_done_is_unchanged(vault: Path) -> None:
    v = Vault(vault)
    done = vault / "Done"
    for n in range(3):
        note(done / f"{n}.md", f"DONE-{n}")
    old = 1_000_000_000_000_000_000  # 2001: older than a clock's tick, so the listing may be kept
    os.utime(done, ns=(old, old))
    assert resolve_plan(v, "DONE-1").folder == "Done"
    cached = lookup._ARCHIVES[str(done)]
    assert resolve_plan(v, "DONE-2").folder == "Done" and lookup._ARCHIVES[str(done)] is cached
    note(done / "3.md", "DONE-3")  # the folder changes: listed again
    assert resolve_plan(v, "DONE-3").folder == "Done"


def test_a_stale_cache_is_dropped_when_the_note_found_says_otherwise(vault: Path) -> None:
    v = Vault(vault)
    done = vault / "Done"
    note(done / "a.md", "OLD-ID")
    old = 1_000_000_000_000_000_000
    os.utime(done, ns=(old, old))
    assert resolve_plan(v, "OLD-ID").folder == "Done"
    # Rewritten in place with another id, the folder's mtime put back (as a coarse clock would leave it):
    # the listing is reused, but the note read says otherwise, so the plan is looked for afresh.
    with open(done / "a.md", "r+", encoding="utf-8") as fh:
        fh.write("---\nid: NEW-ID")
    os.utime(done, ns=(old, old))
    with pytest.raises(NotFoundError):
        resolve_plan(v, "OLD-ID")  # not the note of a plan that is no more
    assert resolve_plan(v, "NEW-ID").path.name == "a.md"
