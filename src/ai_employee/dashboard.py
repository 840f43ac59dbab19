"""The `Dashboard.md` writer: the engine is the note's only writer, and rewrites it atomically, at most
once per `MIN_INTERVAL_S`, whenever something happened."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from ai_employee.clock import local_time, now_stamp
from ai_employee.errors import machine_fault
from ai_employee.events import Event, EventBus
from ai_employee.ledger import Ledger
from ai_employee.status import VaultView, collect
from ai_employee.vault.actions import clean_text
from ai_employee.vault.fsops import replace_file
from ai_employee.vault.layout import DASHBOARD, Vault

log = structlog.get_logger(__name__)
MIN_INTERVAL_S = 1.0
FAULT_RETRY_S = 5.0
RECENT_EVENTS = 15


def _link(path: str, label: str = "", in_table: bool = False) -> str:
    """A wikilink to a vault file by its name (notes without `.md`), so it stays right when the note
    moves on from the folder it was in; showing `label`, else the name. Inside a table the alias bar is
    escaped, as Obsidian wants."""
    target = Path(path).name.removesuffix(".md").replace("|", " ").replace("]", " ").replace("[", " ")
    shown = clean_text(label or Path(path).stem, 80).replace("|", "/").replace("]", ")").replace("[", "(")
    bar = "\\|" if in_table else "|"
    return f"[[{target}{bar}{shown}]]" if shown else f"[[{target}]]"


def activity_line(name: str, data: dict[str, Any]) -> str | None:
    """One ledger event in plain words, with a link to the note it is about; None for the engine's
    inner workings (single steps, services starting), which are not news to a person."""
    title = str(data.get("title") or "")
    path = str(data.get("path") or "")
    subject = _link(path, title) if path else (f'"{clean_text(title, 80)}"' if title else "a plan")
    who = "the policy" if data.get("channel") == "policy" else clean_text(str(data.get("actor") or "someone"), 40)
    detail = clean_text(str(data.get("detail") or data.get("reason") or data.get("error") or ""), 120)
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
        "stage.error": f"Problem with {_link(path) if path else 'an item'}: {detail}",
        "pipeline.paused": f"Paused: {clean_text(str(data.get('problem') or ''), 120)}",
        "pipeline.resumed": "Resumed after the problem went away",
        "service.error": f"The {data.get('service')} service failed and was restarted: {detail}",
        "gmail.paused": f"Gmail sync paused: {clean_text(str(data.get('detail') or ''), 160)}",
        "gmail.resumed": "Gmail sync resumed",
        "engine.started": "Engine started",
        "engine.stopped": "Engine stopped",
    }
    if name == "action.failed" and "status" in data:  # the whole plan, not one step
        return f"Failed{dry}: {subject}: {detail}"
    return lines.get(name)


def recent_activity(ledger: Ledger | None, limit: int = RECENT_EVENTS) -> list[str]:
    """The latest things that happened, newest first, from the ledger: they survive restarts."""
    if ledger is None:
        return []
    found = []
    for row in ledger.recent_events(limit * 20):
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


def render(status: dict[str, Any], activity: list[str], mode: str) -> str:
    folders = status["folders"]
    lines = [
        "# Dashboard",
        "",
        f"*Written by the AI Employee engine at {local_time(now_stamp())} ({mode}). Do not edit: it is rewritten.*",
        "",
        "## Folders",
        "",
        "| " + " | ".join(folders) + " |",
        "|" + "---|" * len(folders),
        "| " + " | ".join(str(n) for n in folders.values()) + " |",
        "",
        f"## Waiting for your approval ({len(status['pending_approvals'])})",
        "",
    ]
    pending = status["pending_approvals"]
    if pending:
        lines += ["| Plan | Risk | Waiting since |", "|---|---|---|"]
        for plan in pending[:50]:
            created = local_time(plan["created"]) if plan["created"] else "?"
            link = _link(plan["file"], plan["title"], in_table=True)
            lines.append(f"| {link} | {plan['criticality'].upper()} | {created} |")
        lines += ["", "Move a note to `Approved/` to run it, or to `Rejected/` to decline it."]
    else:
        lines.append("Nothing is waiting for you.")
    deferred = status.get("deferred") or []
    if deferred:
        lines += ["", f"## Deferred ({len(deferred)})", ""]
        for plan in deferred[:50]:
            lines.append(f"- {_link(plan['file'], plan['title'])} until {local_time(plan['deferred_until'] or '')}")
    attention = status["attention"]
    lines += ["", f"## Needs attention ({len(attention)})", ""]
    for item in attention[:50]:
        why = clean_text(str(item.get("error") or item.get("status") or "quarantined"), 120)
        lines.append(f"- {_link(item['file'], item.get('title') or '')} — {why}")
    if not attention:
        lines.append("Nothing needs attention.")
    gmail = status.get("gmail")
    if gmail:
        synced = local_time(gmail["last_sync"]) if gmail.get("last_sync") else "never"
        lines += ["", "## Gmail", "", f"{clean_text(str(gmail.get('account') or 'Gmail'), 120)}: last sync {synced}."]
        if gmail.get("problem"):
            lines += ["", f"> [!warning] {clean_text(str(gmail['problem']), 300)}"]
    lines += ["", "## Recent activity", "", *(activity or ["No activity yet."])]
    return "\n".join(lines) + "\n"


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
        ledger = Ledger(self.vault.ledger_path)
        try:
            text = render(collect(self.vault, ledger, self.view), recent_activity(ledger), self.mode())
        finally:
            ledger.close()
        replace_file(self.vault.root / DASHBOARD, text.encode("utf-8"), self.vault.tmp_dir)

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
