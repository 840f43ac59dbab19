"""The `Dashboard.md` writer: the engine is the note's only writer, and rewrites it atomically, at most
once per `MIN_INTERVAL_S`, whenever something happened."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from ai_employee.errors import machine_fault
from ai_employee.events import Event, EventBus
from ai_employee.ledger import Ledger
from ai_employee.pipeline.context import now_stamp
from ai_employee.status import collect, human_age
from ai_employee.vault.actions import clean_text
from ai_employee.vault.fsops import replace_file
from ai_employee.vault.layout import DASHBOARD, Vault

log = structlog.get_logger(__name__)
MIN_INTERVAL_S = 1.0
FAULT_RETRY_S = 5.0
RECENT_EVENTS = 15


def _describe(event: Event) -> str:
    data = event.data()
    subject = data.get("title") or data.get("path") or data.get("plan_id") or data.get("service") or ""
    extra = data.get("outcome") or data.get("status") or data.get("decision") or data.get("reason") or ""
    text = f"`{event.name}` {clean_text(str(subject), 100)}"
    return text + (f" — {clean_text(str(extra), 100)}" if extra else "")


def render(status: dict[str, Any], recent: list[Event], mode: str) -> str:
    folders = status["folders"]
    lines = [
        "# Dashboard",
        "",
        f"*Written by the AI Employee engine at {now_stamp()} ({mode}). Do not edit: it is rewritten.*",
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
        lines += ["| Plan | Risk | Waiting |", "|---|---|---|"]
        for plan in pending[:50]:
            link = plan["file"].removesuffix(".md")
            title = clean_text(plan["title"], 80).replace("|", "/")
            lines.append(f"| [[{link}\\|{title}]] | {plan['criticality'].upper()} | {human_age(plan['age_s'])} |")
        lines += ["", "Move a note to `Approved/` to run it, or to `Rejected/` to decline it."]
    else:
        lines.append("Nothing is waiting for you.")
    attention = status["attention"]
    lines += ["", f"## Needs attention ({len(attention)})", ""]
    for item in attention[:50]:
        link = item["file"].removesuffix(".md")
        why = clean_text(str(item.get("error") or item.get("status") or "quarantined"), 120)
        lines.append(f"- [[{link}]] — {why}")
    if not attention:
        lines.append("Nothing needs attention.")
    lines += ["", "## Recent activity", ""]
    lines += [f"- {e.ts.astimezone():%H:%M:%S} {_describe(e)}" for e in reversed(recent[-RECENT_EVENTS:])]
    if not recent:
        lines.append("No activity yet.")
    return "\n".join(lines) + "\n"


class DashboardWriter:
    """A service: marks itself dirty on every event and rewrites the dashboard shortly after."""

    name = "dashboard"

    def __init__(self, vault: Vault, ledger: Ledger, bus: EventBus, mode: Callable[[], str]) -> None:
        self.vault = vault
        self.ledger = ledger
        self.bus = bus
        self.mode = mode
        self._dirty = asyncio.Event()
        self._dirty.set()
        self.fault: str | None = None  # why the last write failed (a full disk, a read-only vault)
        bus.subscribe(self._on_event)

    def _on_event(self, _event: Event) -> None:
        self._dirty.set()

    def healthy(self) -> bool:
        return self.fault is None

    def write(self) -> None:
        text = render(collect(self.vault, self.ledger), list(self.bus.history), self.mode())
        replace_file(self.vault.root / DASHBOARD, text.encode("utf-8"), self.vault.tmp_dir)

    async def run(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                self.write()
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
