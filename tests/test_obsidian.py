"""What Obsidian gets without plugins: Bases views written by `vault init`, and property types that
hold vault-wide (every property the engine writes has one declared type, and every note keeps to it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from ai_employee.vault.layout import init_vault
from ai_employee.vault.obsidian import BASES, PROPERTY_TYPES, PYTHON_TYPES
from tests.conftest import SAMPLES, files
from tests.invariants import start_once


def test_init_writes_bases_views_once_and_never_over_the_users(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    created = init_vault(root)
    for name in BASES:
        path = root / "Views" / name
        assert path in created
        base = yaml.safe_load(path.read_text("utf-8"))
        assert base["filters"] and base["views"]
        for view in base["views"]:
            assert view["type"] == "table" and view["order"][0] == "file.name"
            assert all(p == "file.name" or p in PROPERTY_TYPES for p in view["order"])
    (root / "Views" / "Pending approvals.base").write_text("views: []\n")  # the user's own version
    assert init_vault(root) == []
    assert (root / "Views" / "Pending approvals.base").read_text() == "views: []\n"


def test_property_types_are_added_to_the_users_without_changing_theirs(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    (root / ".obsidian").mkdir(parents=True)
    types = root / ".obsidian" / "types.json"
    types.write_text(json.dumps({"types": {"status": "multitext", "mine": "number"}}))
    init_vault(root)
    declared = json.loads(types.read_text())["types"]
    assert declared["status"] == "multitext" and declared["mine"] == "number"  # theirs kept
    assert declared["dry_run"] == "checkbox" and declared["created"] == "datetime"
    broken = tmp_path / "other" / ".obsidian" / "types.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    init_vault(tmp_path / "other")
    assert broken.read_text() == "{not json"  # not ours to repair


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_every_property_the_engine_writes_keeps_its_one_type(vault: Path) -> None:
    (vault / "Inbox" / "groceries.md").write_text("# Groceries\n\n- milk\n")  # LOW: runs, to Done/
    shutil.copy(SAMPLES / "client-quote-request.eml", vault / "Inbox" / "quote.eml")  # MEDIUM: waits
    (vault / "Approved" / "Broken.md").write_text(
        "# Broken\n\n## Steps\n\n```yaml\n- tool: nowhere.x\n  args: {}\n```\n"
    )
    assert start_once(vault).returncode == 0
    seen: dict[str, set[str]] = {}
    notes = [p for folder in ("Plans", "Done", "Rejected", "Approved") for p in files(vault / folder, ".md")]
    assert len(notes) == 3
    for note in notes:
        fm = yaml.safe_load(note.read_text("utf-8").split("---\n", 2)[1])
        for key, value in fm.items():
            assert key in PROPERTY_TYPES, f"{note.name}: the engine wrote `{key}`, which has no declared type"
            assert isinstance(value, PYTHON_TYPES[PROPERTY_TYPES[key]]), f"{note.name}: {key}={value!r}"
            seen.setdefault(key, set()).add(type(value).__name__)
    assert all(len(kinds) == 1 for kinds in seen.values()), seen
    assert {"status", "criticality", "created", "dry_run", "executed", "error"} <= set(seen)
