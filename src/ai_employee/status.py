"""What `vault status` and `Dashboard.md` show: engine state, counts per folder, plans awaiting a
decision and items needing attention. Works from the vault alone, whether or not the engine runs."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ai_employee.clock import day_bounds, local_now
from ai_employee.errors import FormatError
from ai_employee.ledger import Ledger
from ai_employee.lock import holder
from ai_employee.vault.layout import (
    ACTION_SUFFIX,
    APPROVED,
    NEEDS_ACTION,
    PLANS,
    QUARANTINE,
    STATUS_FOLDERS,
    Vault,
    entries,
    is_ignored,
)
from ai_employee.vault.notes import read_frontmatter, read_id_and_status, split_note
from ai_employee.vault.plans import plan_title

HEARTBEAT_STALE_S = 30.0
# Below this much free space the engine cannot be relied on to write its notes and ledger.
LOW_SPACE_BYTES = 1 << 20


@dataclass(frozen=True)
class PlanSummary:
    id: str
    title: str
    criticality: str
    status: str
    created: str
    age_s: float
    file: str
    deferred_until: str | None
    error: str | None

    @property
    def waiting(self) -> bool:
        """Waiting for the human's decision (not failed or interrupted: those need attention)."""
        return self.status in ("pending_approval", "")

    def deferred(self, now: datetime) -> bool:
        """Snoozed with `vault defer` until a time still to come."""
        if not self.deferred_until:
            return False
        try:
            until = datetime.fromisoformat(self.deferred_until)
        except ValueError:
            return False
        return (until if until.tzinfo else until.astimezone()) > now


@dataclass(frozen=True)
class PlanGroups:
    """The notes in `Plans/` by what they need: one definition for `vault status`, `vault list` and
    the dashboard."""

    waiting: list[PlanSummary]  # for a decision, oldest first
    deferred: list[PlanSummary]  # waiting, but snoozed until `deferred_until`
    attention: list[PlanSummary]  # failed or interrupted: the human has to look


def group_plans(vault: Vault, ledger: Ledger | None = None, view: VaultView | None = None) -> PlanGroups:
    now = local_now()
    plans = view.plans(vault, ledger) if view is not None else plans_in(vault, PLANS, ledger)
    return PlanGroups(
        waiting=[p for p in plans if p.waiting and not p.deferred(now)],
        deferred=[p for p in plans if p.waiting and p.deferred(now)],
        attention=[p for p in plans if not p.waiting],
    )


def human_age(seconds: float) -> str:
    """A duration as a person reads it: `45 s`, `12 min`, `3.5 h`, `2.0 d`."""
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 5400:
        return f"{int(seconds // 60)} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _age_s(stamp: str, now: datetime) -> float:
    try:
        created = datetime.fromisoformat(stamp)
    except ValueError:
        return 0.0
    if created.tzinfo is None:
        created = created.astimezone()
    return max(0.0, (now - created).total_seconds())


def disk_problems(vault: Vault) -> list[str]:
    """What is wrong with the vault's file system, seen from outside the engine (which may be unable
    to write anything, its heartbeat included, while the disk is full)."""
    try:
        fs = os.statvfs(vault.root)
    except OSError as exc:
        return [f"the vault's file system cannot be checked: {exc.strerror or exc}"]
    if fs.f_flag & os.ST_RDONLY:
        return ["the vault's file system is read-only: nothing can be filed until it is writable again"]
    free = fs.f_bavail * fs.f_frsize
    if free < LOW_SPACE_BYTES:
        return [f"the disk is full ({free // 1024} KiB free): free some space; the engine resumes by itself"]
    return []


def folder_counts(vault: Vault, view: VaultView | None = None) -> dict[str, int]:
    """How many files each folder holds (for the dashboard, kept between calls by `view`)."""
    return {name: view.count(vault, name) if view else count_folder(vault, name) for name in STATUS_FOLDERS}


def count_folder(vault: Vault, name: str) -> int:
    try:
        # The names the engine writes (notes, action files) cannot be debris: only the rest is checked.
        names = [
            n
            for n in os.listdir(vault.folder(name))
            if (n.endswith(_OWN_SUFFIXES) and n[0] not in ".~") or not is_ignored(n)
        ]
    except FileNotFoundError:
        return 0
    if name == NEEDS_ACTION:
        return sum(1 for n in names if n.endswith(ACTION_SUFFIX))
    if name == QUARANTINE:
        return sum(1 for n in names if not n.endswith(".why.md"))
    return len(names)


_OWN_SUFFIXES = (".md", ACTION_SUFFIX)


class VaultView:
    """What status shows, kept between calls by a long-lived reader (the dashboard writer), so a vault of
    years costs little per event: a folder is listed again only when its modification time changed, and
    one of more than BIG_FOLDER files at most every REFRESH_S (its count may lag that long); `Plans/`
    is re-read only when it changed, or every REFRESH_S (for notes edited in place), and then only the
    notes whose size or modification time changed are parsed."""

    BIG_FOLDER = 10_000
    REFRESH_S = 60.0

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float, int]] = {}  # folder -> (its mtime_ns, when, count)
        self._plans: tuple[int, float, list[PlanSummary]] | None = None
        self.memo: dict[str, tuple[int, int, dict[str, Any]]] = {}  # note name -> (size, mtime_ns, props)

    def count(self, vault: Vault, name: str) -> int:
        mtime = _settled_mtime_ns(vault.folder(name))
        known = self._counts.get(name)
        now = time.monotonic()
        if known is not None and (
            (mtime and known[0] == mtime) or (known[2] > self.BIG_FOLDER and now - known[1] < self.REFRESH_S)
        ):
            return known[2]
        count = count_folder(vault, name)
        self._counts[name] = (mtime, now, count)
        return count

    def plans(self, vault: Vault, ledger: Ledger | None) -> list[PlanSummary]:
        mtime, now = _settled_mtime_ns(vault.folder(PLANS)), time.monotonic()
        if self._plans is not None and mtime and self._plans[0] == mtime and now - self._plans[1] < self.REFRESH_S:
            return self._plans[2]
        found = plans_in(vault, PLANS, ledger, self.memo)
        self._plans = (mtime, now, found)
        return found


# A folder changed this recently may change again within the same tick of its coarse timestamp clock.
_MTIME_TICK_NS = 50_000_000


def _settled_mtime_ns(folder: Path) -> int:
    """The folder's modification time, or 0 (never to be trusted) when it is missing or so recent that a
    later change could still carry the same timestamp."""
    try:
        mtime = os.stat(folder).st_mtime_ns
    except FileNotFoundError:
        return 0
    return mtime if time.time_ns() - mtime > _MTIME_TICK_NS else 0


def plans_in(
    vault: Vault,
    folder: str = PLANS,
    ledger: Ledger | None = None,
    memo: dict[str, tuple[int, int, dict[str, Any]]] | None = None,
) -> list[PlanSummary]:
    """Every plan note in a folder, oldest first; notes that cannot be read are listed as such. Only notes
    whose size or modification time changed since they were last read are parsed: `memo` (in memory,
    kept by a long-lived caller) is checked first, then the ledger's note cache (shared with the CLI)."""
    now = local_now()
    memo = {} if memo is None else memo
    cached = ledger.cached_notes(folder) if ledger is not None and not memo else {}
    fresh: dict[str, tuple[int, int, str]] = {}
    found, present = [], set()
    for entry in entries(vault.folder(folder), ".md"):
        try:
            st = entry.stat()
        except FileNotFoundError:
            continue
        present.add(entry.name)
        key = (st.st_size, st.st_mtime_ns)
        props = _known(entry.name, key, memo, cached)
        if props is None:
            props = _read_plan_props(Path(entry.path))
            if props["status"] != "unreadable":
                fresh[entry.name] = (*key, json.dumps(props))
        memo[entry.name] = (*key, props)
        found.append(PlanSummary(**props, age_s=round(_age_s(props["created"], now), 1), file=f"{folder}/{entry.name}"))
    gone = set(memo) - present
    for name in gone:
        del memo[name]
    if ledger is not None:
        with contextlib.suppress(sqlite3.Error):  # a cache: a read-only or busy ledger just means no cache
            ledger.cache_notes(folder, fresh, gone | (set(cached) - present))
    return sorted(found, key=lambda p: p.created)


def _known(
    name: str,
    key: tuple[int, int],
    memo: dict[str, tuple[int, int, dict[str, Any]]],
    cached: dict[str, tuple[int, int, str]],
) -> dict[str, Any] | None:
    """A note's properties as last read, if it has not changed since (same size and mtime)."""
    remembered = memo.get(name)
    if remembered is not None and remembered[:2] == key:
        return remembered[2]
    stored = cached.get(name)
    if stored is not None and stored[:2] == key:
        props: dict[str, Any] = json.loads(stored[2])
        return props
    return None


def _read_plan_props(path: Path) -> dict[str, Any]:
    """What a plan summary holds besides its age and file, read from the note."""
    try:
        parts = split_note(path.read_text("utf-8"))
        fm = read_frontmatter(parts, path.name)
        title = plan_title(parts.body, fm) or path.stem
    except (OSError, UnicodeDecodeError, FormatError) as exc:
        fm, title = {"status": "unreadable", "error": str(exc)}, path.stem
    deferred = fm.get("deferred_until")
    return {
        "id": str(fm.get("id") or ""),
        "title": title,
        "criticality": str(fm.get("criticality") or "unrated"),
        "status": str(fm.get("status") or ""),
        "created": str(fm.get("created") or ""),
        "deferred_until": str(deferred) if deferred else None,
        "error": str(fm["error"]) if fm.get("error") else None,
    }


def engine_state(vault: Vault) -> dict[str, Any]:
    info = holder(vault.lock_path)
    state: dict[str, Any] = {"running": info is not None}
    if info is not None:
        state["pid"] = info.pid
        state["host"] = info.host
    try:
        beat = json.loads(vault.heartbeat_path.read_text("utf-8"))
    except (OSError, ValueError):
        beat = None
    if isinstance(beat, dict):
        age = time.time() - os.stat(vault.heartbeat_path).st_mtime
        state["heartbeat_age_s"] = round(age, 1)
        if info is not None:
            state["started"] = beat.get("started")
            state["uptime_s"] = round(time.time() - float(beat.get("started_ts", time.time())), 1)
            state["mode"] = beat.get("mode")
            state["services"] = beat.get("services", {})
            state["healthy"] = age < HEARTBEAT_STALE_S and all(
                s.get("healthy", False) for s in state["services"].values()
            )
        state["last_problems"] = beat.get("problems", [])
        state["paused_servers"] = beat.get("paused_servers", {}) if info is not None else {}
        state["budget"] = beat.get("budget")
    return state


def collect(vault: Vault, ledger: Ledger | None, view: VaultView | None = None) -> dict[str, Any]:
    """The whole status as plain data (the `vault status --json` shape)."""
    groups = group_plans(vault, ledger, view)
    quarantined = [e.name for e in entries(vault.folder(QUARANTINE)) if not e.name.endswith(".why.md")]
    midnight = local_now().replace(hour=0, minute=0, second=0, microsecond=0)
    tokens = ledger.tokens_since(midnight.astimezone(UTC).isoformat(timespec="milliseconds")) if ledger else {}
    engine = engine_state(vault)
    return {
        "vault": str(vault.root),
        "engine": engine,
        "disk_problems": disk_problems(vault),
        "folders": folder_counts(vault, view),
        "pending_approvals": [asdict(p) for p in groups.waiting],
        "deferred": [asdict(p) for p in groups.deferred],
        "attention": [asdict(p) for p in groups.attention]
        + waiting_in_approved(vault)
        + [{"file": f"{QUARANTINE}/{q}"} for q in quarantined],
        "tokens_today": tokens,
        "budget": budget_today(ledger, engine.get("budget")),
        "gmail": gmail_state(ledger),
        "notifications": ledger.channel_health() if ledger is not None else {},
    }


def waiting_in_approved(vault: Vault) -> list[dict[str, Any]]:
    """Approved plans waiting for a paused server or a rate limit (they go on by themselves)."""
    found = []
    for entry in entries(vault.folder(APPROVED), ".md"):
        path = Path(entry.path)
        plan_id, status = read_id_and_status(path)
        if status == "waiting":
            with contextlib.suppress(OSError, FormatError, UnicodeDecodeError):
                fm = read_frontmatter(split_note(path.read_text("utf-8")), path.name)
                found.append({"id": plan_id, "file": f"{APPROVED}/{entry.name}", "error": fm.get("waiting_for")})
    return found


def gmail_state(ledger: Ledger | None) -> dict[str, Any] | None:
    """The Gmail source's account, last sync and problem (None if Gmail was never synced or set up)."""
    state = ledger.gmail_state() if ledger is not None else {}
    if not state:
        return None
    return {
        "account": state.get("account"),
        "last_sync": state.get("last_sync"),
        "paused": state.get("paused") == "1",
        "problem": state.get("problem"),
    }


def budget_today(ledger: Ledger | None, limits: dict[str, Any] | None) -> dict[str, Any]:
    """Today's tokens per scope, with the running engine's budgets (None: no limit, or no engine running
    to say), in the budget's time zone."""
    limits = limits or {}
    zone_name = limits.get("timezone")
    zone = ZoneInfo(zone_name) if zone_name else (local_now().tzinfo or UTC)
    today, start, end = day_bounds(datetime.now(UTC), zone)
    found: dict[str, Any] = {"day": today.isoformat(), "limits_known": bool(limits)}
    for scope in ("reactive", "proactive"):
        used, cost = ledger.tokens_used(scope, start, end) if ledger else (0, 0.0)
        limit = limits.get(scope)
        found[scope] = {
            "used": used,
            "limit": limit,
            "remaining": None if limit is None else max(0, int(limit) - used),
            "cost_usd": round(cost, 4),
        }
    return found
