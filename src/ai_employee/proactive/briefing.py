"""The briefing: a note in `Briefings/` on the week behind (or any period a schedule gives it), from
the vault and the ledger: what was done, what waits and for how long, decisions, failures, tokens and
cost, and progress against `Business_Goals.md`. Tables and counts, no filler. Its suggestions become
actions, planned and approved like everything else.

When Claude is available it writes the opening ("In short") from the tables, within the `proactive`
budget; the tables are the record either way, and a briefing Claude could not write for says so.

The note is the engine's report, like the dashboard: written once per run (a free name, never over a
file), not a plan.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import structlog

from ai_employee.clock import local_time, now_stamp
from ai_employee.dashboard import plain, wikilink
from ai_employee.ledger import Ledger
from ai_employee.status import group_plans, human_age
from ai_employee.vault.fsops import create_file
from ai_employee.vault.layout import BRIEFINGS, GOALS, Vault

log = structlog.get_logger(__name__)

# Writes the opening from the briefing's text: (the note's id, its text) -> prose, or an exception.
Writer = Callable[[str, str], str]
TASK = """You write the opening of the owner's weekly briefing, from the briefing itself (below). In 3 to \
6 plain sentences, say what matters: what was done, what has waited longest for a decision, what failed \
and needs them, what the monitors saw change, how the token spending went, and the progress on their \
goals. State only what the briefing says: every number and name you use must appear in it. No headings, \
lists, links, greetings or sign-off."""
PROSE_PARAGRAPHS, PROSE_CHARS = 4, 900
STALE_AFTER = timedelta(days=3)  # a plan waiting longer is a bottleneck worth a suggestion
MAX_ROWS = 30
_CHECKBOX = re.compile(r"^\s*[-*] \[( |x|X)\] (.+)$", re.MULTILINE)


@dataclass
class Week:
    """What the ledger says happened in the period."""

    done: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    decisions: Counter[str] = field(default_factory=Counter)
    channels: Counter[str] = field(default_factory=Counter)
    alerts: list[dict[str, Any]] = field(default_factory=list)


def _events(ledger: Ledger, since: str, until: str, names: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """The period's events of some names, oldest first: from `since` up to (not including) `until`, so a
    briefing written late (recovered, or run for a past slot) tells its own period, not what came after."""
    found = []
    for row in reversed(ledger.recent_events(100_000, since, names)):
        if not since <= str(row["ts"]) < until:
            continue
        try:
            data = json.loads(row["payload"])
        except ValueError:
            continue
        if isinstance(data, dict):
            found.append((str(row["name"]), {**data, "_ts": str(row["ts"])}))
    return found


def read_week(ledger: Ledger, since: datetime, until: datetime) -> Week:
    week = Week()
    stamp, end = (when.astimezone(UTC).isoformat(timespec="milliseconds") for when in (since, until))
    names = (
        "plan.execution_completed",
        "action.failed",
        "plan.interrupted",
        "action.approved",
        "action.denied",
        "action.deferred",
        "action.expired",
        "monitor.alert",
    )
    for name, data in _events(ledger, stamp, end, names):
        if name == "plan.execution_completed":
            week.done.append(data)
        elif name == "monitor.alert":
            week.alerts.append(data)
        elif name in ("action.failed", "plan.interrupted") and "status" in data:
            week.failed.append(data)
        elif name.startswith("action."):
            week.decisions[name.removeprefix("action.")] += 1
            if name == "action.approved":
                week.channels[str(data.get("channel") or "?")] += 1
    return week


def goals_progress(vault: Vault) -> tuple[int, int, list[str]] | None:
    """Checklist items in `Business_Goals.md`: (done, all, the first open ones); None without the file."""
    path = vault.root / GOALS
    try:
        text = path.read_text("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    items = _CHECKBOX.findall(text)
    open_items = [plain(item, 120) for mark, item in items if mark == " "]
    return sum(1 for mark, _ in items if mark != " "), len(items), open_items[:5]


@dataclass(frozen=True)
class Suggestion:
    number: int  # its kind: 1 follow up on stale plans, 2 look into failures (its action id ends in it)
    title: str
    task: str  # what to do, in the engine's own words (the planner follows it)
    details: str  # what it is about: titles from emails among them (the planner reads them as data)


def suggestions(waiting: list[Any], week: Week) -> list[Suggestion]:
    """What the template sees worth doing (each becomes an action the person approves or not)."""
    found = []
    stale = [p for p in waiting if p.age_s > STALE_AFTER.total_seconds()]
    if stale:
        names = "; ".join(f"{p.title} ({human_age(p.age_s)})" for p in stale[:10])
        found.append(
            Suggestion(
                1,
                f"Follow up on {len(stale)} plan(s) waiting over {STALE_AFTER.days} days",
                f"Help the owner decide on the plans that have waited more than {STALE_AFTER.days} days (listed"
                " below): for each, what is missing to decide it.",
                f"Plans waiting over {STALE_AFTER.days} days: {names}.",
            )
        )
    if len(week.failed) >= 2:
        found.append(
            Suggestion(
                2,
                f"Look into {len(week.failed)} failures this week",
                "Several plans failed this week (listed below): find what they have in common and what to change.",
                "Failed this week: "
                + "; ".join(str(f.get("title") or f.get("plan_id")) for f in week.failed[:10])
                + ".",
            )
        )
    return found


def render(
    vault: Vault, ledger: Ledger, since: datetime, until: datetime, title: str, zone: tzinfo | None = None
) -> tuple[str, list[Suggestion]]:
    """The briefing's text for the period (times in `zone`, the job's: else the machine's), and its
    suggestions."""
    week = read_week(ledger, since, until)
    groups = group_plans(vault, ledger)
    waiting = sorted(groups.waiting, key=lambda p: -p.age_s)
    start, end = since.astimezone(UTC).isoformat(), until.astimezone(UTC).isoformat()
    tokens = {scope: ledger.tokens_used(scope, start, end) for scope in ("reactive", "proactive")}
    approved = week.decisions["approved"]
    lines = [
        f"# {title}",
        "",
        f"*Written by the AI Employee engine at {local_time(now_stamp(), zone)}, for {local_time(start, zone)} to"
        f" {local_time(end, zone)}, from the vault and the ledger.*",
        "",
        "| Done | Waiting | Approved | Declined | Failed | Tokens | Cost |",
        "|---|---|---|---|---|---|---|",
        f"| {len(week.done)} | {len(waiting)} | {approved} | {week.decisions['denied']} | {len(week.failed)} |"
        f" {sum(t for t, _ in tokens.values()):,} | ${sum(c for _, c in tokens.values()):.2f} |",
        "",
        f"## Done ({len(week.done)})",
        "",
    ]
    lines += [
        f"- {wikilink(str(d.get('path') or ''), str(d.get('title') or ''))}"
        + (" (dry run)" if d.get("dry_run") else "")
        for d in week.done[-MAX_ROWS:]
    ] or ["Nothing was done this week."]
    lines += ["", f"## Waiting for you ({len(waiting)})", ""]
    if waiting:
        lines += ["| Plan | Risk | Waiting |", "|---|---|---|"]
        lines += [
            f"| {wikilink(p.file, p.title, in_table=True)} | {p.criticality.upper()} | {human_age(p.age_s)} |"
            for p in waiting[:MAX_ROWS]
        ]
    else:
        lines.append("Nothing waits for you.")
    how = ", ".join(f"{n} {channel}" for channel, n in week.channels.most_common())
    lines += [
        "",
        "## Decisions",
        "",
        f"- Approved: {approved}" + (f" ({how})" if how else ""),
        f"- Declined: {week.decisions['denied']}",
        f"- Deferred: {week.decisions['deferred']}",
        f"- Expired without a decision: {week.decisions['expired']}",
        "",
        f"## Failures ({len(week.failed)})",
        "",
    ]
    lines += [_failure_line(f) for f in week.failed[-MAX_ROWS:]] or ["No plan failed."]
    lines += ["", "## Tokens and cost", "", "| Scope | Tokens | Cost |", "|---|---|---|"]
    lines += [f"| {scope} | {used:,} | ${cost:.2f} |" for scope, (used, cost) in tokens.items()]
    if week.alerts:
        lines += ["", f"## Monitor changes ({len(week.alerts)})", ""]
        lines += [
            f"- {local_time(str(a.get('_ts') or ''), zone)}: {plain(str(a.get('monitor')), 40)}"
            f" {plain(str(a.get('reason') or ''), 160)}"
            for a in week.alerts[-MAX_ROWS:]
        ]
    progress = goals_progress(vault)
    if progress is not None:
        done, total, open_items = progress
        lines += ["", f"## Goals ({GOALS})", "", f"{done} of {total} checklist items done."]
        lines += [f"- [ ] {item}" for item in open_items]
    found = suggestions(waiting, week)
    lines += ["", "## Suggestions", ""]
    lines += [f"- {plain(s.title, 160)}" for s in found] or ["None this week."]
    if found:
        lines += [
            "",
            "Each is an action in Needs_Action/ whose plan waits for your approval, unless the same"
            " suggestion from an earlier briefing still waits for you.",
        ]
    return "\n".join(lines) + "\n", found


def _failure_line(failure: dict[str, Any]) -> str:
    link = wikilink(str(failure.get("path") or ""), str(failure.get("title") or ""))
    return f"- {link} — {plain(str(failure.get('detail') or failure.get('status')), 160)}"


def opening(note_id: str, text: str, prose: Writer) -> list[str]:
    """The "In short" section: Claude's paragraphs as literal text (nothing in them is a link, an embed
    or markup: the briefing quotes titles from emails), or a line saying why there are none."""
    try:
        written = prose(note_id, text)
    except concurrent.futures.CancelledError:
        raise  # the engine is stopping: the slot stays claimed, and is written whole when it starts again
    except Exception as exc:  # the budget, the API, the engine stopping: the tables are complete anyway
        from ai_employee.vault.actions import clean_text

        reason = clean_text(str(exc), 160) or type(exc).__name__
        log.warning("claude did not write the briefing's opening", reason=reason)
        return [f"*Claude could not write this summary ({plain(reason, 160)}); the tables below are complete.*"]
    paragraphs = [plain(p, PROSE_CHARS) for p in re.split(r"\n\s*\n", written) if p.strip()]
    return [*("\n\n".join(paragraphs[:PROSE_PARAGRAPHS]).split("\n")), "", "*Written by Claude from the tables below.*"]


def with_opening(text: str, lines: list[str]) -> str:
    """The briefing with its opening after the title and the line saying what wrote it."""
    title, said, rest = text.split("\n\n", 2)
    return "\n\n".join([title, said, "\n".join(["## In short", "", *lines]), rest])


def write_briefing(
    vault: Vault,
    ledger: Ledger,
    slot: datetime,
    period: timedelta,
    note_id: str,
    prose: Writer | None = None,
    zone: tzinfo | None = None,
) -> tuple[Path, list[Suggestion]]:
    """The briefing note for the period ending at `slot` (a free name: never over a note); its `id` is
    the slot's, so recovery after a crash finds it instead of writing a second one. With `prose`,
    Claude's opening first (`opening`). Its date and times are in `zone` (the job's)."""
    local = slot.astimezone(zone)
    title = f"{local:%Y-%m-%d} {local:%A} Briefing"
    text, found = render(vault, ledger, slot - period, slot, title, zone)
    if prose is not None:
        text = with_opening(text, opening(note_id, text, prose))
    front = f"---\nid: {note_id}\ntype: briefing\ncreated: '{now_stamp()}'\ntags:\n- ai-employee/briefing\n---\n"
    folder = vault.folder(BRIEFINGS)
    folder.mkdir(exist_ok=True)
    return create_file(folder, f"{title}.md", (front + text).encode("utf-8"), vault.tmp_dir), found


def since_previous(slot: datetime, previous: datetime | None, default: timedelta = timedelta(days=7)) -> timedelta:
    """The period a briefing covers: since the previous slot of its job (a week for a weekly job)."""
    return slot - previous if previous is not None and previous < slot else default
