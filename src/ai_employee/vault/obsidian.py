"""What `vault init` gives Obsidian: Bases views (`Views/*.base`, YAML that Obsidian shows as live,
sortable tables of the notes' properties, with no plugin) of pending approvals, what needs attention
and recent work; and the types of the properties the engine writes (`.obsidian/types.json`), so that
each keeps one type vault-wide. Existing files are never overwritten; a `types.json` of the user's
only gains the keys it lacks."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

VIEWS = "Views"

# Every property the engine writes into plan notes, with its one Obsidian type.
PROPERTY_TYPES = {
    "id": "text",
    "action_id": "text",
    "status": "text",
    "criticality": "text",
    "planner": "text",
    "created": "datetime",
    "executed": "datetime",
    "decided": "datetime",
    "deferred_until": "datetime",
    "revised": "datetime",
    "dry_run": "checkbox",
    "interrupted": "checkbox",
    "version": "number",
    "error": "text",
    "feedback": "text",
    "resolution": "text",
    "waiting_for": "text",
    "tags": "tags",
}
# What YAML values each type may hold (for the test that every note keeps to them).
PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,),
    "datetime": (str,),
    "checkbox": (bool,),
    "number": (int, float),
    "tags": (list,),
}


def _view(name: str, order: list[str], sort: str, direction: str, limit: int | None = None) -> dict[str, object]:
    view: dict[str, object] = {
        "type": "table",
        "name": name,
        "order": order,
        "sort": [{"property": sort, "direction": direction}],
    }
    if limit is not None:
        view["limit"] = limit
    return view


BASES: dict[str, dict[str, object]] = {
    "Pending approvals.base": {
        "filters": {"and": ['file.inFolder("Plans")', 'status == "pending_approval"']},
        "properties": {"criticality": {"displayName": "Risk"}, "created": {"displayName": "Waiting since"}},
        "views": [
            _view("Waiting for your approval", ["file.name", "criticality", "created", "planner"], "created", "ASC")
        ],
    },
    "Needs attention.base": {
        "filters": {"or": ['file.inFolder("Plans")', 'file.inFolder("Approved")']},
        "views": [
            {
                **_view(
                    "Failed or interrupted",
                    ["file.name", "criticality", "error", "interrupted", "executed"],
                    "executed",
                    "DESC",
                ),
                "filters": {"and": ['file.inFolder("Plans")', 'status == "failed"']},
            },
            {
                **_view(
                    "Waiting for a server or a rate limit",
                    ["file.name", "waiting_for", "criticality"],
                    "file.name",
                    "ASC",
                ),
                "filters": {"and": ['file.inFolder("Approved")', 'status == "waiting"']},
            },
        ],
    },
    "Recent work.base": {
        "filters": {"and": ['file.inFolder("Done")', 'file.ext == "md"', 'status == "done"']},
        "views": [
            _view("Done", ["file.name", "criticality", "executed", "dry_run", "planner"], "executed", "DESC", 100)
        ],
    },
}


def write_views(root: Path) -> list[Path]:
    """The Bases views and the property types; what was created."""
    created = []
    folder = root / VIEWS
    folder.mkdir(exist_ok=True)
    for name, base in BASES.items():
        path = folder / name
        try:
            with open(path, "x", encoding="utf-8") as fh:
                fh.write(yaml.safe_dump(base, sort_keys=False, allow_unicode=True, width=200))
        except FileExistsError:
            continue
        created.append(path)
    types = root / ".obsidian" / "types.json"
    if _add_types(types):
        created.append(types)
    return created


def _add_types(path: Path) -> bool:
    """Add the engine's property types that `types.json` lacks (creating it); never change one the user
    set. False if nothing was added, or the file is not JSON (then it is left alone)."""
    try:
        data = json.loads(path.read_text("utf-8")) if path.exists() else {"types": {}}
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or not isinstance(data.get("types", {}), dict):
        return False
    types = data.setdefault("types", {})
    missing = {key: kind for key, kind in PROPERTY_TYPES.items() if key not in types}
    if not missing:
        return False
    types.update(missing)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", "utf-8")
    tmp.replace(path)
    return True
