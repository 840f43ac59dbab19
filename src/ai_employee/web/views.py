"""What each page shows, read from the vault and the ledger: plain data for the templates (which escape
everything: titles, bodies and reasons come from emails).

The waiting list is built from `status.VaultView` (a plan note is parsed again only when it changed), and
a plan's details are kept by the note's size and modification time, so a page of 1,000 waiting plans
costs little once it has been read (benchmarks/web_bench.py).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ai_employee.clock import day_bounds, local_time
from ai_employee.errors import FormatError
from ai_employee.ledger import Ledger
from ai_employee.status import PlanSummary, VaultView, group_plans, human_age
from ai_employee.vault.layout import Vault
from ai_employee.vault.notes import read_frontmatter, split_note
from ai_employee.vault.plans import Step, dump_steps, parse_steps, steps_hash

FULL_CARDS = 50  # the oldest waiting plans shown in full; the rest as rows that open on a click


@dataclass(frozen=True)
class StepView:
    number: int
    tool: str
    why: str
    headline: str  # the tool and what matters: recipients, subject, amounts
    fields: list[tuple[str, str]]  # every argument, as text (an email's body in full)


@dataclass(frozen=True)
class PlanView:
    summary: PlanSummary
    age: str
    summary_text: str = ""
    reasons: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    steps: list[StepView] = field(default_factory=list)
    steps_yaml: str = ""
    seen: str = ""  # the hash of the steps shown: a decision on them is refused if they changed since
    problem: str = ""  # why the steps cannot be read (the plan can be denied, not approved)


def step_views(steps: list[Step]) -> list[StepView]:
    from ai_employee.notify.messages import step_line

    found = []
    for n, step in enumerate(steps, 1):
        fields = [(key, _text(value)) for key, value in step.args.items()]
        headline = step_line(n, step).partition(" → ")[2]
        found.append(StepView(n, step.tool, step.why, headline, fields))
    return found


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    return json.dumps(value, ensure_ascii=False, default=str)


class Details:
    """Plan notes read in full (summary, reasons, steps), kept by the note's size and mtime."""

    def __init__(self) -> None:
        self._memo: dict[str, tuple[tuple[int, int], PlanView]] = {}

    def of(self, vault: Vault, summary: PlanSummary) -> PlanView:
        path = vault.root / summary.file
        try:
            st = path.stat()
        except FileNotFoundError:
            return PlanView(summary, human_age(summary.age_s), problem="the note is gone (decided elsewhere?)")
        key = (st.st_size, st.st_mtime_ns)
        known = self._memo.get(summary.file)
        if known is not None and known[0] == key:
            return PlanView(**{**known[1].__dict__, "summary": summary, "age": human_age(summary.age_s)})
        view = read_plan(path, summary)
        self._memo[summary.file] = (key, view)
        return view

    def forget(self, present: set[str]) -> None:
        for name in set(self._memo) - present:
            del self._memo[name]


def read_plan(path: Path, summary: PlanSummary) -> PlanView:
    from ai_employee.vault.revisions import section_text

    try:
        parts = split_note(path.read_text("utf-8"))
        read_frontmatter(parts, path.name)
    except (OSError, UnicodeDecodeError, FormatError) as exc:
        return PlanView(summary, human_age(summary.age_s), problem=f"the note cannot be read: {exc}")
    body = parts.body

    def lines(name: str) -> list[str]:
        return [
            line.strip().removeprefix("- ").strip() for line in section_text(body, name).splitlines() if line.strip()
        ]

    try:
        steps = parse_steps(body)
    except FormatError as exc:
        return PlanView(
            summary, human_age(summary.age_s), section_text(body, "Summary"), lines("Why this criticality"),
            problem=str(exc),
        )  # fmt: skip
    return PlanView(
        summary,
        human_age(summary.age_s),
        section_text(body, "Summary"),
        lines("Why this criticality"),
        lines("Questions"),
        step_views(steps),
        dump_steps(steps),
        steps_hash(steps),
    )


@dataclass(frozen=True)
class Waiting:
    full: list[PlanView]
    rest: list[PlanSummary]
    deferred: list[PlanSummary]
    count: int
    opened: dict[str, PlanView] = field(default_factory=dict)  # rows of `rest` the person has open


def waiting(
    vault: Vault, ledger: Ledger, view: VaultView, details: Details, opened: frozenset[str] = frozenset()
) -> Waiting:
    """The pending plans oldest first: the first FULL_CARDS as cards, the rest as rows, of which those
    in `opened` (the page says which it has open, so a live refresh keeps them open) as cards too."""
    groups = group_plans(vault, ledger, view)
    oldest = sorted(groups.waiting, key=lambda p: p.created)
    details.forget({p.file for p in groups.waiting + groups.attention + groups.deferred})
    full = [details.of(vault, p) for p in oldest[:FULL_CARDS]]
    rest = oldest[FULL_CARDS:]
    shown = {p.id: details.of(vault, p) for p in rest if p.id in opened}
    return Waiting(full, rest, groups.deferred, len(oldest), shown)


def find_summary(vault: Vault, ledger: Ledger, view: VaultView, plan_id: str) -> PlanSummary | None:
    groups = group_plans(vault, ledger, view)
    return next((p for p in groups.waiting + groups.deferred + groups.attention if p.id == plan_id), None)


def planned_diff(ledger: Ledger, plan_id: str, now_yaml: str) -> list[tuple[str, str]]:
    """The steps as they are (or as edited) against what the planner wrote: (kind, line) pairs, kind one
    of `add`, `del`, `same`, `head`; empty when the ledger does not know what was planned."""
    row = ledger.db.execute("SELECT steps FROM plans WHERE plan_id = ?", (plan_id,)).fetchone()
    if row is None or not row[0]:
        return []
    try:
        planned = dump_steps([Step(**item) for item in json.loads(row[0])])
    except (ValueError, TypeError):
        return []
    found = []
    for line in difflib.unified_diff(planned.splitlines(), now_yaml.splitlines(), "planned", "now", lineterm="", n=2):
        if line.startswith(("---", "+++")):
            continue
        kind = "head" if line.startswith("@@") else "add" if line[:1] == "+" else "del" if line[:1] == "-" else "same"
        found.append((kind, line))
    return found


@dataclass(frozen=True)
class Attention:
    kind: str
    ref: str
    title: str
    blocker: str
    file: str
    attempts: int
    last_error: str
    what_to_do: str
    steps_done: list[str]
    can_retry: bool = False  # a regular file set aside on its way in: the page can put it back


def attention(vault: Vault, ledger: Ledger) -> list[Attention]:
    """Failed and interrupted plans (with which steps ran), quarantined inputs, paused servers."""
    from ai_employee.interventions import collect

    found = []
    from ai_employee.status import engine_state

    for item in collect(vault, ledger, engine_state(vault).get("paused_servers")):
        ran: list[str] = []
        if item.kind in ("failed", "interrupted") and item.ref:
            for run in ledger.runs(item.ref)[-1:]:
                for step in ledger.db.execute(
                    "SELECT step_index, tool, state FROM executions WHERE plan_id = ? AND attempt = ?"
                    " ORDER BY step_index",
                    (item.ref, run.attempt),
                ):
                    ran.append(f"{step['step_index']}. {step['tool']}: {step['state']}")
        found.append(
            Attention(
                item.kind, item.ref, item.title, item.blocker, item.file, item.attempts, item.last_error,
                item.what_to_do, ran, item.can_retry,
            )
        )  # fmt: skip
    return found


@dataclass(frozen=True)
class HistoryRow:
    when: str
    what: str
    title: str
    who: str
    channel: str
    detail: str


_DECISIONS_SQL = (
    "SELECT d.ts AS ts, d.decision AS what, COALESCE(p.title, d.plan_id) AS title, d.actor AS who,"
    " d.channel AS channel, COALESCE(d.feedback, '') AS detail FROM decisions d"
    " LEFT JOIN plans p ON p.plan_id = d.plan_id"
    " WHERE ? = '' OR COALESCE(p.title, d.plan_id) LIKE ? ESCAPE '\\' OR d.actor LIKE ? ESCAPE '\\'"
    " OR d.channel LIKE ? ESCAPE '\\' OR d.decision LIKE ? ESCAPE '\\'"
    " ORDER BY d.id DESC LIMIT ?"
)
# What the executor did, from its events (a payload that is not JSON is shown, untitled, not an error).
_RUNS_SQL = (
    "SELECT ts, what, title, detail FROM (SELECT id, ts,"
    " CASE WHEN name = 'action.failed' THEN 'failed' WHEN json_extract(j, '$.dry_run') THEN 'ran (dry run)'"
    " ELSE 'ran' END AS what,"
    " COALESCE(NULLIF(json_extract(j, '$.title'), ''), json_extract(j, '$.plan_id'), '') AS title,"
    " COALESCE(NULLIF(json_extract(j, '$.detail'), ''), json_extract(j, '$.status'), '') AS detail"
    " FROM (SELECT id, ts, name, CASE WHEN json_valid(payload) THEN payload ELSE '{}' END AS j FROM events"
    " WHERE name IN ('plan.execution_completed', 'action.failed')))"
    " WHERE ? = '' OR title LIKE ? ESCAPE '\\' OR what LIKE ? ESCAPE '\\' OR 'engine executor' LIKE ? ESCAPE '\\'"
    " ORDER BY id DESC LIMIT ?"
)


def history(ledger: Ledger, query: str = "", limit: int = 200) -> list[HistoryRow]:
    """Decisions and executions, newest first; `query` matches (as plain text, any case) the title,
    who, channel or what was done. Each side is filtered and limited in SQL, then the two are merged."""
    text = query.strip()
    like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    decided = ledger.db.execute(_DECISIONS_SQL, (text, like, like, like, like, limit))
    found = [(r["ts"], HistoryRow("", r["what"], r["title"], r["who"], r["channel"], r["detail"])) for r in decided]
    for r in ledger.db.execute(_RUNS_SQL, (text, like, like, like, limit)):
        found.append((r["ts"], HistoryRow("", r["what"], str(r["title"]), "engine", "executor", str(r["detail"]))))
    found.sort(key=lambda pair: str(pair[0]), reverse=True)
    return [replace(row, when=local_time(ts)) for ts, row in found[:limit]]


ACTIVITY_NAMES = {
    "file.created": "Received",
    "file.quarantined": "Set aside",
    "approval.required": "Waiting for you",
    "action.approved": "Approved",
    "action.denied": "Declined",
    "action.deferred": "Deferred",
    "action.expired": "Expired",
    "plan.execution_completed": "Done",
    "action.failed": "Failed",
    "plan.interrupted": "Interrupted",
    "monitor.alert": "Monitor",
    "engine.started": "Engine started",
    "engine.stopped": "Engine stopped",
    "pipeline.paused": "Paused",
    "service.error": "Service failed",
}


@dataclass(frozen=True)
class ActivityRow:
    id: int
    when: str
    label: str
    text: str


def activity(ledger: Ledger, limit: int = 100, after: int = 0) -> list[ActivityRow]:
    rows = ledger.db.execute(
        f"SELECT * FROM events WHERE id > ? AND name IN ({', '.join('?' * len(ACTIVITY_NAMES))})"
        " ORDER BY id DESC LIMIT ?",
        (after, *ACTIVITY_NAMES, limit),
    )
    found = []
    for row in rows:
        data = _payload(row)
        parts = [str(data.get(k) or "") for k in ("title", "monitor", "reason", "actor", "detail", "problem")]
        found.append(
            ActivityRow(
                row["id"], local_time(row["ts"]), ACTIVITY_NAMES[row["name"]], " · ".join(p for p in parts if p)
            )
        )
    return found


def _payload(row: Any) -> dict[str, Any]:
    try:
        data = json.loads(row["payload"])
    except (ValueError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    height: float  # 0..100, of the chart's height
    title: str


@dataclass(frozen=True)
class BudgetView:
    today: dict[str, dict[str, Any]]
    days: list[Bar]


def budget(ledger: Ledger, limits: dict[str, int | None], zone: Any, now: datetime | None = None) -> BudgetView:
    """Today's tokens per scope against the limits, and each of the last 30 days (both scopes)."""
    now = now or datetime.now(UTC)
    today: dict[str, dict[str, Any]] = {}
    _, start, end = day_bounds(now, zone)
    for scope in ("reactive", "proactive"):
        used, cost = ledger.tokens_used(scope, start, end)
        limit = limits.get(scope)
        share = min(100.0, used / limit * 100) if limit else 0.0
        today[scope] = {"used": used, "limit": limit, "cost": round(cost, 4), "share": round(share, 1)}
    totals = []
    for back in range(29, -1, -1):
        day, start, end = day_bounds(now - timedelta(days=back), zone)
        used = sum(ledger.tokens_used(scope, start, end)[0] for scope in ("reactive", "proactive"))
        totals.append((day.strftime("%m-%d"), used))
    top = max((v for _, v in totals), default=0) or 1
    days = [Bar(label, v, round(v / top * 100, 1), f"{label}: {v:,} tokens") for label, v in totals]
    return BudgetView(today, days)


@dataclass(frozen=True)
class MonitorView:
    name: str
    value: str
    trend: str
    points: str  # an SVG polyline's points (0..300 x 0..60), "" for text values
    low: str
    high: str
    alerts: list[tuple[str, str]]


def monitors(ledger: Ledger, names: list[str]) -> list[MonitorView]:
    from ai_employee.proactive.detect import number, trend

    since = (datetime.now(UTC) - timedelta(hours=24)).isoformat()
    found = []
    for name in names:
        rows = ledger.monitor_values(name, since)
        values = [r["value"] for r in rows if r["value"] is not None]
        numbers = [n for n in (number(v) for v in values) if n is not None]
        points, low, high = "", "", ""
        if len(numbers) >= 2:
            lo, hi = min(numbers), max(numbers)
            span = (hi - lo) or 1.0
            step = 300 / (len(numbers) - 1)
            points = " ".join(f"{i * step:.1f},{60 - (v - lo) / span * 56 - 2:.1f}" for i, v in enumerate(numbers))
            low, high = f"{lo:g}", f"{hi:g}"
        alerts = [(local_time(str(a["ts"])), str(a["reason"])) for a in ledger.monitor_alerts(name, 5)]
        found.append(
            MonitorView(
                name, str(values[-1]) if values else "no value yet", trend(numbers) if numbers else "—", points,
                low, high, alerts,
            )
        )  # fmt: skip
    return found
