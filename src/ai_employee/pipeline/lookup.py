"""Finding a plan's note: by id, a unique prefix of it, or the note's file name, across the plan folders;
copies of one plan (the same id in two notes) are one plan, the note furthest along."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ai_employee.errors import NotFoundError, UserError
from ai_employee.vault.layout import APPROVED, DONE, PLAN_FOLDERS, PLANS, REJECTED, Vault, entries, file_key
from ai_employee.vault.notes import find_by_id, read_frontmatter, read_id, split_note


@dataclass(frozen=True)
class PlanRef:
    path: Path
    plan_id: str
    frontmatter: dict[str, Any]

    @property
    def folder(self) -> str:
        return self.path.parent.name


# Each note's id by path, with what it was read at: a long-lived process (the web page, the engine)
# reads again only the notes that changed, not all of `Done/` for each decision. Notes waiting or
# approved are known by inode, mtime and size (an edit in place is seen); notes in `Done/`, the archive
# (100,000 of them cost 0.3 s of stat calls), by inode: a note written anew or moved in is read again.
_IDS: dict[str, tuple[tuple[int, ...], str | None]] = {}
MAX_CACHED = 300_000  # about 170 MB at most; `Done/`'s entries are pruned when it is listed again


def _id_of(path: str, key: tuple[int, ...]) -> str | None:
    known = _IDS.get(path)
    if known is not None and known[0] == key:
        return known[1]
    plan_id = read_id(Path(path))
    if plan_id is None:  # not cached: an unreadable note (EMFILE, EACCES) or one still being written
        return None
    if len(_IDS) > MAX_CACHED:  # a bound: paths of notes long gone are not kept forever
        _IDS.clear()
    _IDS[path] = (key, plan_id)
    return plan_id


def all_plans(vault: Vault, folders: tuple[str, ...] = PLAN_FOLDERS) -> list[tuple[str, str, str]]:
    """(folder, file name, plan id) of every plan note in the given folders (as text: 100,000 notes in
    `Done/` cost a scan, not 100,000 `Path`s)."""
    found: list[tuple[str, str, str]] = []
    for folder in folders:
        if folder == DONE:
            found.extend((DONE, name, plan_id) for name, plan_id in _archive(vault.folder(DONE)))
            continue
        for entry in entries(vault.folder(folder), ".md"):
            try:
                key: tuple[int, ...] = file_key(entry)
            except OSError:
                continue
            plan_id = _id_of(entry.path, key)
            if plan_id:
                found.append((folder, entry.name, plan_id))
    return found


# `Done/`, the archive, as of its folder's mtime: notes are added, moved and removed there, which changes
# the folder. A listing is trusted only if it was taken more than a coarse clock's tick (2 s) after the
# folder last changed: a note added in the same tick as the listing (the mtime does not move) is not
# missed.
_ARCHIVES: dict[str, tuple[int, int, list[tuple[str, str]]]] = {}
ARCHIVE_TICK_NS = 2_000_000_000


def _archive(folder: Path) -> list[tuple[str, str]]:
    """(file name, plan id) of each note in `Done/`; each note's id read once (known by its inode after)."""
    import time

    try:
        changed = os.stat(folder).st_mtime_ns
    except FileNotFoundError:
        return []
    cached = _ARCHIVES.get(str(folder))
    if cached is not None and cached[0] == changed and cached[1] - changed > ARCHIVE_TICK_NS:
        return cached[2]
    taken = time.time_ns()  # before the scan: what the listing may have missed is after this
    listing, seen = [], set()
    for entry in entries(folder, ".md"):
        try:
            key: tuple[int, ...] = (entry.inode(),)
        except OSError:
            continue
        seen.add(entry.path)
        plan_id = _id_of(entry.path, key)
        if plan_id:
            listing.append((entry.name, plan_id))
    prefix = os.path.join(str(folder), "")
    for gone in [k for k in _IDS if k.startswith(prefix) and k not in seen]:
        _IDS.pop(gone, None)
    _ARCHIVES[str(folder)] = (changed, taken, listing)
    return listing


# Where a plan whose id is in two places (a copy) stands: the furthest along wins.
_FOLDER_RANK = {DONE: 0, REJECTED: 1, APPROVED: 2, PLANS: 3}


def resolve_plan(vault: Vault, ref: str, fresh: bool = False) -> PlanRef:
    """A plan by id, unique id prefix, or note file name (with or without `.md`). Copies of one plan (the
    same id in two notes) are one plan: the note furthest along (`Done/`, `Rejected/`, `Approved/`).
    The note found is read: if it is gone or has another id than the cache said, the caches are
    dropped and the plan is looked for again (`fresh`)."""
    if fresh:
        _IDS.clear()
        _ARCHIVES.clear()
    ref = ref.strip()
    if not ref:
        raise UserError("give a plan id, a unique prefix of it, or the note's file name")
    plans = all_plans(vault)
    low = ref.lower()
    by_name = [p for p in plans if p[1] in (ref, f"{ref}.md")]
    exact = [p for p in plans if p[2] == ref or p[2].lower() == low]
    prefix = [p for p in plans if p[2].lower().startswith(low)]
    for matches in (by_name, exact, prefix):
        if len({plan_id for _, _, plan_id in matches}) == 1:
            folder, name, plan_id = min(matches, key=lambda m: (_FOLDER_RANK.get(m[0], 9), m[1]))
            path = vault.folder(folder) / name
            try:
                fm = read_frontmatter(split_note(path.read_text("utf-8")), path.name)
            except FileNotFoundError:
                if fresh:
                    raise NotFoundError(f"plan `{ref}` moved while it was looked for: try again") from None
                return resolve_plan(vault, ref, fresh=True)
            if str(fm.get("id", "")) != plan_id and not fresh:
                return resolve_plan(vault, ref, fresh=True)
            return PlanRef(path, plan_id, fm)
        if matches:
            names = ", ".join(f"{folder}/{name}" for folder, name, _ in matches[:5])
            raise UserError(f"`{ref}` matches {len(matches)} plans ({names}): give more of the id")
    raise NotFoundError(f"no plan matches `{ref}`: see `vault list` for pending plans")


def resolve_folder(plan: PlanRef) -> str:
    """The folder the plan's note is in now ("" if it cannot be found): it may have moved since."""
    if plan.path.exists():
        return plan.path.parent.name
    vault_root = plan.path.parent.parent
    found = find_by_id([vault_root / name for name in PLAN_FOLDERS], ".md", plan.plan_id)
    return found.parent.name if found is not None else ""
