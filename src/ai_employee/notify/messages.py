"""What a notification says: from a ledger event to a message a person can decide on from a phone
(title, criticality, the summary, the steps in short, the plan id, how to approve), and digests.

Everything taken from a plan or an email is untrusted: flattened to plain text, control characters
removed, cut to length; messages are sent as plain text (no markup to inject).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ai_employee.errors import FormatError
from ai_employee.notify.config import KINDS
from ai_employee.vault.actions import clean_text
from ai_employee.vault.layout import PLANS, Vault, entries
from ai_employee.vault.notes import read_frontmatter, read_id, split_note
from ai_employee.vault.plans import Step, parse_steps, plan_title, steps_hash

MAX_STEPS_SHOWN = 5
MAX_ARG_CHARS = 600  # per argument shown in full
MAX_BODY_CHARS = 3500  # a message that says more is cut (Telegram takes 4096 characters)
MAX_DIGEST_ITEMS = 15
DECIDING = ("approval.required", "approval.reminder")
_LEVELS = {"low": 1, "medium": 2, "high": 3}
_AMOUNT = re.compile(r"amount|total|price|value|sum|cost|fee|payment", re.IGNORECASE)


@dataclass(frozen=True)
class Message:
    kind: str
    criticality: str  # low | medium | high
    title: str
    body: str
    plan_id: str = ""
    plan_hash: str = ""  # for a decision: the hash of the steps shown
    complete: bool = True  # every step and argument is shown in full (else approve where you can read it all)

    @property
    def decides(self) -> bool:
        """Whether the person can decide on it (a reply channel offers buttons or a code)."""
        return self.kind in DECIDING and bool(self.plan_hash)


def at_least(level: str, minimum: str) -> bool:
    return _LEVELS.get(level, 2) >= _LEVELS.get(minimum, 1)


def kind_of(name: str, data: dict[str, Any]) -> str | None:
    """The notification kind of a ledger event, or None if it is not something people are told of. A
    step's `action.failed` is not (its plan's is)."""
    if name == "action.failed":
        return "action.failed" if "status" in data else None
    return {
        "approval.required": "approval.required",
        "approval.reminder": "approval.reminder",
        "plan.interrupted": "action.failed",
        "plan.execution_completed": "action.executed",
        "budget.warning": "budget.warning",
        "service.error": "service.error",
        "server.paused": "server.paused",
        "gmail.paused": "gmail.paused",
        "engine.crashed": "engine.crashed",
        "monitor.alert": "monitor.alert",
    }.get(name)


def criticality_of(kind: str, data: dict[str, Any], plan_level: str | None) -> str:
    """The event's own criticality, else its plan's, else the kind's (a budget 95% used is HIGH)."""
    if kind == "budget.warning":
        return "high" if int(data.get("percent") or 0) >= 95 else "medium"
    level = str(data.get("criticality") or plan_level or "")
    return level if level in _LEVELS else KINDS[kind][0]


def _find_note(vault: Vault, plan_id: str, path: str) -> Path | None:
    """The plan's note: where the event said it was, else by id in `Plans/`."""
    if path:
        candidate = vault.root / path
        if candidate.is_file() and read_id(candidate) == plan_id:
            return candidate
    for entry in entries(vault.folder(PLANS), ".md"):
        if read_id(Path(entry.path)) == plan_id:
            return Path(entry.path)
    return None


def section(body: str, heading: str) -> str:
    """The text under `## heading`, up to the next heading."""
    match = re.search(rf"^## {re.escape(heading)}\s*\n(.*?)(?=^#{{1,2}} |\Z)", body, re.MULTILINE | re.DOTALL)
    return match.group(1).strip() if match else ""


def step_line(number: int, step: Step) -> str:
    """One step in short: the tool and what matters in its arguments (recipients, subject, amounts,
    the note)."""
    return _step(number, step)[0]


def _step(number: int, step: Step) -> tuple[str, set[str]]:
    args = step.args
    shown: list[str] = []
    used: set[str] = set()
    recipients = [str(v) for key in ("to", "cc", "bcc") for v in _as_list(args.get(key))]
    if recipients:
        used |= {"to", "cc", "bcc"}
        shown.append("to " + ", ".join(recipients[:4]) + (f" +{len(recipients) - 4}" if len(recipients) > 4 else ""))
    if args.get("subject"):
        used.add("subject")
        shown.append(f"“{args['subject']}”")
    for key, value in args.items():
        if _AMOUNT.search(key) and isinstance(value, int | float | str):
            used.add(key)
            shown.append(f"{key} {value}")
    for key in ("path", "title", "folder", "start"):
        if args.get(key) and len(shown) < 3:
            used.add(key)
            shown.append(f"{key} {args[key]}")
    if len(recipients) > 4:
        used -= {"to", "cc", "bcc"}  # the short line does not show them all
    return clean_text(f"{number}. {step.tool}" + (" → " + " · ".join(shown) if shown else ""), 200), used


def step_in_full(number: int, step: Step) -> tuple[str, bool]:
    """A step with every argument the short line leaves out (an email's body, say), for a person who
    decides on what they read; and whether all of it fits (nothing cut)."""
    line, used = _step(number, step)
    complete = len(line) < 200
    lines = [line]
    for key, value in step.args.items():
        if key in used:
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        flat = clean_text(str(text), MAX_ARG_CHARS)
        complete = complete and len(flat) == len(" ".join(str(text).split()))
        lines.append(f"   {clean_text(key, 40)}: {flat}")
    return "\n".join(lines), complete


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def render(kind: str, level: str, data: dict[str, Any], vault: Vault) -> Message | None:
    """The message for one event; None when it no longer matters (a plan decided before it was sent)."""
    title = clean_text(str(data.get("title") or ""), 100)
    plan_id = str(data.get("plan_id") or "")
    if kind in DECIDING:
        return _approval(kind, level, plan_id, str(data.get("path") or ""), vault, data)
    detail = clean_text(str(data.get("detail") or data.get("problem") or ""), 400)
    short_id = plan_id[:10]
    if kind == "action.failed":
        status = str(data.get("status") or "failed")
        what = "Interrupted (may or may not have happened)" if status == "interrupted" else "Failed"
        body = [detail, f"Plan {short_id}: it is back in Plans/ with what happened.", _how_to_resume(short_id)]
        return Message(kind, level, f"{what}: {title or 'a plan'}", _join(body), plan_id)
    if kind == "action.executed":
        dry = " (dry run)" if data.get("dry_run") else ""
        return Message(
            kind, level, f"Done{dry}: {title or 'a plan'}", _join([f"Plan {short_id} ran; see Done/."]), plan_id
        )
    if kind == "budget.warning":
        scope, used, limit = data.get("scope"), data.get("used"), data.get("limit")
        said = f"The {scope} token budget for {data.get('day')} is {data.get('percent')}% used ({used} of {limit})."
        return Message(kind, level, f"Budget {data.get('percent')}% used", said)
    if kind == "server.paused":
        server = clean_text(str(data.get("server") or ""), 40)
        why = "refuses its credentials" if data.get("kind") == "auth" else "is not available"
        body = [detail, "Plans that need it wait in Approved/; it is tried again by itself (vault interventions)."]
        return Message(kind, level, f"The {server} server {why}", _join(body))
    if kind == "service.error":
        service = clean_text(str(data.get("service") or ""), 40)
        return Message(kind, level, f"The {service} service failed", _join([detail, "It was restarted."]))
    if kind == "gmail.paused":
        return Message(kind, level, "Gmail sync paused", _join([detail, "Run `vault gmail auth` if access expired."]))
    if kind == "monitor.alert":
        said = f"{clean_text(str(data.get('monitor') or ''), 40)} {clean_text(str(data.get('reason') or ''), 300)}."
        return Message(kind, level, f"{title or 'A monitor'}: {clean_text(str(data.get('value') or ''), 60)}", said)
    if kind == "engine.crashed":
        return Message(kind, level, "The engine stopped unexpectedly", _join([detail, "See logs/app.log."]))
    return None


def _approval(kind: str, level: str, plan_id: str, path: str, vault: Vault, data: dict[str, Any]) -> Message | None:
    note = _find_note(vault, plan_id, path)
    if note is None or note.parent.name != PLANS:
        return None  # decided (or gone) before it was sent: nothing to ask
    try:
        parts = split_note(note.read_text("utf-8", errors="replace"))
        fm = read_frontmatter(parts, note.name)
        steps = parse_steps(parts.body)
    except (OSError, FormatError, ValueError):
        return None  # unreadable now: the dashboard and `vault status` show it
    if fm.get("status") != "pending_approval" or _deferred(fm.get("deferred_until")):
        return None
    noted = str(fm.get("criticality") or "")
    level = noted if noted in _LEVELS else level  # as it is now (a revision may have raised it)
    title = clean_text(plan_title(parts.body, fm) or note.stem, 100)
    summary = clean_text(section(parts.body, "Summary"), 400)
    reasons = [clean_text(line.lstrip("- "), 160) for line in section(parts.body, "Why this criticality").splitlines()]
    shown = [step_in_full(n, s) for n, s in enumerate(steps[:MAX_STEPS_SHOWN], 1)]
    lines = [text for text, _ in shown]
    complete = len(steps) <= MAX_STEPS_SHOWN and all(ok for _, ok in shown)
    if len(steps) > MAX_STEPS_SHOWN:
        lines.append(f"… and {len(steps) - MAX_STEPS_SHOWN} more steps")
    still = "Still waiting" if kind == "approval.reminder" else "Approve?"
    short = plan_id[:10]
    body = [
        summary,
        "Steps:\n" + "\n".join(lines or ["(no steps)"]),
        f"Why {level.upper()}: {reasons[0]}" if reasons and reasons[0] else "",
        f"Plan {short}" + (f" · expires {data['expires'][:16]}" if data.get("expires") else ""),
        f"Approve: vault approve {short} (or move the note into Approved/). Decline: vault deny {short}.",
    ]
    text = _join(body)
    complete = complete and len(text) <= MAX_BODY_CHARS
    return Message(kind, level, f"{still} {title} ({level.upper()})", text, plan_id, steps_hash(steps), complete)


def _deferred(until: object) -> bool:
    try:
        when = datetime.fromisoformat(str(until)) if until else None
    except ValueError:
        return False
    return when is not None and (when if when.tzinfo else when.astimezone()) > datetime.now(UTC)


def approval_request(vault: Vault, plan_id: str) -> Message | None:
    """The request for a decision on a plan as it is now (for `/pending`, `/show`, or after an edit);
    None if it does not wait for one."""
    note = _find_note(vault, plan_id, "")
    if note is None:
        return None
    try:
        fm = read_frontmatter(split_note(note.read_text("utf-8", errors="replace")), note.name)
    except (OSError, FormatError, ValueError):
        return None
    level = str(fm.get("criticality") or "high")
    return _approval("approval.required", level if level in _LEVELS else "high", plan_id, "", vault, {})


def pending_plan_ids(vault: Vault) -> list[str]:
    """The plans waiting for a decision, oldest first (deferred ones left out until their time)."""
    from ai_employee.clock import local_now
    from ai_employee.status import plans_in

    now = local_now()
    return [plan.id for plan in plans_in(vault) if plan.waiting and not plan.deferred(now) and plan.id]


def _how_to_resume(short_id: str) -> str:
    return f"Fix what it says, then: vault resume {short_id} (or move the note back into Approved/)."


def _join(parts: list[str]) -> str:
    return "\n\n".join(part for part in parts if part)


def digest(messages: list[Message]) -> Message:
    """Several messages for one channel folded into one: the most critical first, then by age."""
    ordered = sorted(messages, key=lambda m: -_LEVELS.get(m.criticality, 2))
    lines = [f"• [{m.criticality.upper()}] {m.title}" for m in ordered[:MAX_DIGEST_ITEMS]]
    if len(ordered) > MAX_DIGEST_ITEMS:
        lines.append(f"… and {len(ordered) - MAX_DIGEST_ITEMS} more (vault status)")
    deciding = [m for m in ordered if m.decides]
    if deciding:
        lines += ["", "Decide with vault approve ID / vault deny ID, or move the notes in Obsidian:"]
        lines += [f"  {m.plan_id[:10]}  {m.title}" for m in deciding[:MAX_DIGEST_ITEMS]]
    top = max((m.criticality for m in messages), key=lambda c: _LEVELS.get(c, 2))
    return Message("digest", top, f"AI Employee: {len(messages)} updates", "\n".join(lines))
