"""The `Dashboard.md` writer: the engine is the note's only writer, and rewrites it atomically, at most
once per `MIN_INTERVAL_S`, whenever something happened."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from ai_employee.clock import local_now, local_time, now_stamp
from ai_employee.errors import machine_fault
from ai_employee.events import Event, EventBus
from ai_employee.ledger import Ledger
from ai_employee.status import VaultView, collect, human_age
from ai_employee.vault.actions import clean_text
from ai_employee.vault.fsops import create_file, replace_file
from ai_employee.vault.layout import BRIEFINGS, DASHBOARD, DASHBOARD_PLACEHOLDER, Vault, entries

log = structlog.get_logger(__name__)
MIN_INTERVAL_S = 1.0
FAULT_RETRY_S = 5.0
RECENT_EVENTS = 15
MAX_TODAY = 40
MAX_ERRORS = 5
MAX_BRIEFINGS = 5
ERROR_EVENTS = ("stage.error", "service.error", "action.failed", "plan.interrupted", "engine.crashed")
WRITTEN = "dashboard.sha256"  # in the state folder: the hash of what the engine last wrote
KEPT = "dashboard-edited.txt"  # the name of the latest copy of a dashboard a person had edited
EDITED_STEM = "Dashboard (edited)"


_MARKUP = re.compile(r"([\\`*_{}\[\]<>()#+!|$=~^%&])")


_BARE_URL = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]*://|www\.)[^\s`|]*[^\s`|.,;:!?)'\"]")


def plain(text: str, limit: int = 120) -> str:
    """Untrusted text (a subject, a title, an error) as literal text in a note: one line, and every
    character Markdown or Obsidian would act on escaped (no link, embed, tag, callout, HTML or maths).
    A bare URL, which Obsidian would make clickable, is shown as code: readable, not a link."""
    clean = clean_text(text, limit)
    parts, at = [], 0
    for url in _BARE_URL.finditer(clean):
        parts += [_MARKUP.sub(r"\\\1", clean[at : url.start()]), f"`{url.group(0)}`"]
        at = url.end()
    parts.append(_MARKUP.sub(r"\\\1", clean[at:]))
    return "".join(parts)


def wikilink(path: str, label: str = "", in_table: bool = False) -> str:
    """A wikilink to a vault file by its name (notes without `.md`), so it stays right when the note
    moves on from the folder it was in; showing `label`, else the name. Inside a table the alias bar is
    escaped, as Obsidian wants."""
    target = clean_text(Path(path).name.removesuffix(".md"), 200).replace("|", " ").replace("]", " ").replace("[", " ")
    shown = clean_text(label or Path(path).stem, 80).replace("|", "/").replace("]", ")").replace("[", "(")
    bar = "\\|" if in_table else "|"
    return f"[[{target}{bar}{shown}]]" if shown and shown != target else f"[[{target}]]"


def activity_line(name: str, data: dict[str, Any]) -> str | None:
    """One ledger event in plain words, with a link to the note it is about; None for the engine's
    inner workings (single steps, services starting), which are not news to a person."""
    title = str(data.get("title") or "")
    path = str(data.get("path") or "")
    subject = wikilink(path, title) if path else (f'"{plain(title, 80)}"' if title else "a plan")
    who = "the policy" if data.get("channel") == "policy" else plain(str(data.get("actor") or "someone"), 40)
    detail = plain(str(data.get("detail") or data.get("reason") or data.get("error") or ""), 120)
    dry = " (dry run)" if data.get("dry_run") else ""
    lines = {
        "file.created": f"Received {subject}",
        "file.duplicate": f"Received {subject} again: {detail}",
        "file.quarantined": f"Set aside {subject}: {detail}",
        "approval.required": f"Waiting for you: {subject} ({str(data.get('criticality') or '').upper()})",
        "action.approved": f"Approved {subject} by {who}",
        "action.denied": f"Declined {subject} by {who}",
        "action.deferred": f"Deferred {subject} by {who} until {local_time(str(data.get('feedback') or ''))}",
        "action.expired": f"Expired {subject}: nobody decided within {detail}",
        "approval.reminder": f"Still waiting for you: {subject} ({str(data.get('criticality') or '').upper()})",
        "plan.execution_completed": f"Done{dry}: {subject}",
        "plan.interrupted": f"Interrupted, may or may not have happened: {subject}",
        "plan.duplicate": f"A copy of an already approved plan was set aside ({data.get('plan_id')})",
        "stage.error": f"Problem with {wikilink(path) if path else 'an item'}: {detail}",
        "pipeline.paused": f"Paused: {plain(str(data.get('problem') or ''), 120)}",
        "pipeline.resumed": "Resumed after the problem went away",
        "service.error": f"The {data.get('service')} service failed and was restarted: {detail}",
        "gmail.paused": f"Gmail sync paused: {plain(str(data.get('detail') or ''), 160)}",
        "gmail.resumed": "Gmail sync resumed",
        "engine.started": "Engine started",
        "engine.stopped": "Engine stopped",
        "engine.crashed": f"The engine had stopped unexpectedly: {detail}",
        "monitor.alert": f"Monitor {plain(str(data.get('monitor') or ''), 40)}"
        f" {plain(str(data.get('reason') or ''), 160)}: {subject}",
    }
    if name == "action.failed" and "status" in data:  # the whole plan, not one step
        return f"Failed{dry}: {subject}: {detail}"
    return lines.get(name)


def recent_activity(
    ledger: Ledger | None, limit: int = RECENT_EVENTS, since: str | None = None, names: tuple[str, ...] = ()
) -> list[str]:
    """What happened, newest first, in words, from the ledger (it survives restarts): since a time
    (ISO 8601, UTC), and of some events only, if given."""
    if ledger is None:
        return []
    found = []
    for row in ledger.recent_events(limit * 20, since, names):
        try:
            data = json.loads(row["payload"])
        except ValueError:
            continue
        line = activity_line(str(row["name"]), data if isinstance(data, dict) else {})
        if line is not None:
            found.append(f"- {local_time(str(row['ts']))} · {line}")
        if len(found) >= limit:
            break
    return found


@dataclass(frozen=True)
class Extras:
    """What the dashboard shows besides the status: today's activity, the last errors, briefings, and
    the copy of a dashboard the user had edited."""

    today: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    briefings: list[str] = field(default_factory=list)
    edited: str | None = None
    crashed_today: bool = False


def gather(vault: Vault, ledger: Ledger, edited: str | None = None) -> Extras:
    midnight = local_now().replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    week = datetime.now(UTC) - timedelta(days=7)
    briefings = sorted((e.name for e in entries(vault.folder(BRIEFINGS), ".md")), reverse=True)[:MAX_BRIEFINGS]
    since = midnight.isoformat(timespec="milliseconds")
    return Extras(
        crashed_today=bool(ledger.recent_events(1, since, ("engine.crashed",))),
        today=recent_activity(ledger, MAX_TODAY, since),
        errors=recent_activity(ledger, MAX_ERRORS, week.isoformat(timespec="milliseconds"), ERROR_EVENTS),
        briefings=[f"- {wikilink(f'{BRIEFINGS}/{name}')}" for name in briefings],
        edited=edited,
    )


def urgent(status: dict[str, Any], extras: Extras) -> list[str]:
    """What needs the person now, one line each: the callout at the top."""
    lines = [f"{problem}" for problem in status.get("disk_problems") or []]
    high = [p for p in status["pending_approvals"] if p["criticality"] == "high"]
    if high:
        lines.append(
            f"{len(high)} HIGH plan(s) wait for your approval: "
            + ", ".join(wikilink(p["file"], p["title"]) for p in high[:3])
        )
    failed = [a for a in status["attention"] if a.get("status") == "failed"]
    if failed:
        lines.append(
            f"{len(failed)} plan(s) failed or were interrupted: "
            + ", ".join(wikilink(a["file"], a.get("title") or "") for a in failed[:3])
        )
    for server, pause in (status["engine"].get("paused_servers") or {}).items():
        lines.append(f"The `{plain(str(server), 40)}` server is paused: {plain(str(pause.get('reason') or ''), 160)}")
    for scope in ("reactive", "proactive"):
        entry = (status.get("budget") or {}).get(scope) or {}
        if entry.get("limit") and entry.get("used", 0) >= 0.95 * entry["limit"]:
            lines.append(f"The {scope} token budget is {100 * entry['used'] // entry['limit']}% used today")
    for channel, health in (status.get("notifications") or {}).items():
        if health.get("state") in ("failed", "gave_up"):
            lines.append(f"Notifications to {channel} are failing: {plain(str(health.get('outcome') or ''), 160)}")
    if extras.crashed_today:
        lines.append("The engine had stopped unexpectedly today (see Today below)")
    return lines


def _engine_line(engine: dict[str, Any], mode: str) -> str:
    if not engine.get("running"):
        return f"**Engine:** not running ({mode} when it ran). Start it with `vault start`."
    since = f", since {local_time(engine['started'])}" if engine.get("started") else ""
    return f"**Engine:** running (pid {engine.get('pid')}{since}) · **mode:** {mode}"


def _budget(budget: dict[str, Any]) -> list[str]:
    rows = ["| Scope | Used today | Limit | Cost |", "|---|---|---|---|"]
    for scope in ("reactive", "proactive"):
        entry = budget.get(scope) or {}
        limit = f"{entry['limit']:,}" if entry.get("limit") else "none"
        rows.append(
            f"| {scope} | {int(entry.get('used') or 0):,} | {limit} | ${float(entry.get('cost_usd') or 0):.2f} |"
        )
    return rows


def _waiting(status: dict[str, Any]) -> list[str]:
    """The sections of plans: waiting for a decision (oldest first), deferred, needing attention."""
    pending = status["pending_approvals"]
    lines = [f"## Waiting for your approval ({len(pending)})", ""]
    if pending:
        lines += ["| Plan | Risk | Waiting since |", "|---|---|---|"]
        for plan in pending[:50]:
            created = local_time(plan["created"]) if plan["created"] else "?"
            age = f" ({human_age(plan['age_s'])})" if plan.get("age_s") is not None else ""
            link = wikilink(plan["file"], plan["title"], in_table=True)
            lines.append(f"| {link} | {plan['criticality'].upper()} | {created}{age} |")
        if len(pending) > 50:
            lines += ["", f"… and {len(pending) - 50} more (`vault list`)."]
        lines += ["", "Move a note to `Approved/` to run it, or to `Rejected/` to decline it."]
    else:
        lines.append("Nothing is waiting for you.")
    deferred = status.get("deferred") or []
    if deferred:
        lines += ["", f"## Deferred ({len(deferred)})", ""]
        for plan in deferred[:50]:
            lines.append(f"- {wikilink(plan['file'], plan['title'])} until {local_time(plan['deferred_until'] or '')}")
    attention = status["attention"]
    lines += ["", f"## Needs attention ({len(attention)})", ""]
    for item in attention[:50]:
        why = plain(str(item.get("error") or item.get("status") or "quarantined"), 120)
        lines.append(f"- {wikilink(item['file'], item.get('title') or '')} — {why}")
    if not attention:
        lines.append("Nothing needs attention.")
    return lines


def render(status: dict[str, Any], activity: list[str] | Extras, mode: str) -> str:
    extras = activity if isinstance(activity, Extras) else Extras(today=activity)
    folders = status["folders"]
    lines = [
        "# Dashboard",
        "",
        f"*Written by the AI Employee engine at {local_time(now_stamp())}. Do not edit: it is rewritten;"
        " keep your own notes elsewhere.*",
        "",
        _engine_line(status["engine"], mode),
        "",
    ]
    if extras.edited:
        lines += [
            f"> [!note] Your edits of this note are kept in {wikilink(extras.edited)}: the dashboard is generated,"
            " so edits here are not kept.",
            "",
        ]
    now = urgent(status, extras)
    if now:
        lines += ["> [!warning] Needs you now", *(f"> - {line}" for line in now), ""]
    lines += _waiting(status)
    gmail = status.get("gmail")
    if gmail:
        synced = local_time(gmail["last_sync"]) if gmail.get("last_sync") else "never"
        lines += ["", "## Gmail", "", f"{plain(str(gmail.get('account') or 'Gmail'), 120)}: last sync {synced}."]
        if gmail.get("problem"):
            lines += ["", f"> [!warning] {plain(str(gmail['problem']), 300)}"]
    lines += ["", "## Today", "", *(extras.today or ["Nothing yet today."])]
    lines += ["", "## Token budget", "", *_budget(status.get("budget") or {})]
    if extras.errors:
        lines += ["", "## Last errors", "", *extras.errors]
    if extras.briefings:
        lines += ["", "## Briefings", "", *extras.briefings]
    lines += [
        "",
        "## Folders",
        "",
        "| " + " | ".join(folders) + " |",
        "|" + "---|" * len(folders),
        "| " + " | ".join(str(n) for n in folders.values()) + " |",
    ]
    return "\n".join(lines) + "\n"


def keep_edits(vault: Vault, handled: str | None = None) -> str | None:
    """If `Dashboard.md` is not what the engine last wrote (a person edited it, or wrote their own before
    the engine's first write), keep it as `Dashboard (edited).md` (or `(edited 2)`, ... : never over
    another file) before it is rewritten (unless its hash is `handled`: kept already). The name of the
    latest kept copy, if it still exists."""
    path = vault.root / DASHBOARD
    record = vault.state_dir / WRITTEN
    kept = vault.state_dir / KEPT
    try:
        current = path.read_bytes()
    except FileNotFoundError:
        current = None
    written = record.read_text("utf-8").split() if record.exists() else None
    ours = (
        current is None
        or current == DASHBOARD_PLACEHOLDER.encode()
        or (written is not None and hashlib.sha256(current).hexdigest() in written)
        or (written is None and current.startswith(b"# Dashboard\n\n*Written by the AI Employee engine"))
    )
    if not ours and current is not None and hashlib.sha256(current).hexdigest() != handled:
        copy = create_file(vault.root, f"{EDITED_STEM}.md", current, vault.tmp_dir)  # a free name: never over a file
        replace_file(kept, copy.name.encode(), vault.tmp_dir)
        log.info("the dashboard had been edited; the edited version is kept", kept=copy.name)
    name = kept.read_text("utf-8").strip() if kept.exists() else ""
    return name if name and (vault.root / name).exists() else None


class DashboardWriter:
    """A service: marks itself dirty on every event and rewrites the dashboard shortly after, at most once
    per `MIN_INTERVAL_S`, on a thread of its own with its own ledger connection: however big the vault,
    writing the dashboard never holds up the event loop (intake, planning, execution)."""

    name = "dashboard"

    def __init__(self, vault: Vault, bus: EventBus, mode: Callable[[], str]) -> None:
        self.vault = vault
        self.bus = bus
        self.mode = mode
        self._dirty = asyncio.Event()
        self._dirty.set()
        self.fault: str | None = None  # why the last write failed (a full disk, a read-only vault)
        self.view = VaultView()  # what the last write saw: a big vault is not read whole per event
        bus.subscribe(self._on_event)

    def _on_event(self, _event: Event) -> None:
        self._dirty.set()

    def healthy(self) -> bool:
        return self.fault is None

    def write(self) -> None:
        """Rewrite the dashboard; a dashboard edited since the last write is kept first (once). The
        hash of the new text is recorded before it is written (with the previous one: a crash between
        the two leaves either text recognised as the engine's), and an edit made while this one was
        being rendered is kept too, just before the replace."""
        path = self.vault.root / DASHBOARD
        edited = keep_edits(self.vault)
        seen = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
        ledger = Ledger(self.vault.ledger_path)
        try:
            text = render(collect(self.vault, ledger, self.view), gather(self.vault, ledger, edited), self.mode())
        finally:
            ledger.close()
        data = text.encode("utf-8")
        record = self.vault.state_dir / WRITTEN
        previous = record.read_text("utf-8").split()[:1] if record.exists() else []
        keep_edits(self.vault, seen)  # edited meanwhile: kept too (the window left is a rename's)
        replace_file(record, " ".join([hashlib.sha256(data).hexdigest(), *previous]).encode(), self.vault.tmp_dir)
        replace_file(self.vault.root / DASHBOARD, data, self.vault.tmp_dir)

    async def run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await asyncio.to_thread(self.write)
            except Exception as exc:
                fault = machine_fault(exc)
                if fault is None:
                    raise
                if self.fault is None:
                    log.warning("dashboard not written", problem=fault)
                self.fault = fault
                self._dirty.set()  # write it once the disk has room again
                await asyncio.sleep(FAULT_RETRY_S)
                continue
            self.fault = None
            await asyncio.sleep(MIN_INTERVAL_S)
