"""Decisions answered from a phone, whatever the channel: a short code bound to one plan and to the
hash of the steps that were shown, single-use, expiring with the plan; and `decide`, which turns a code
and a verb into a call of the one decision API (`pipeline.decisions`), with the channel and the person.

Telegram's buttons and typed replies (`YES 7F3K`) come through here; an SMS reply (a Twilio webhook)
or an ntfy action button would too, with nothing changed below: the channel only has to deliver
(code, verb, who) from a sender it trusts.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from ai_employee.clock import local_time
from ai_employee.errors import FormatError, UserError
from ai_employee.ledger import Ledger
from ai_employee.ledger.notifications import ReplyCode
from ai_employee.pipeline import decisions
from ai_employee.pipeline.lookup import resolve_plan
from ai_employee.vault.actions import clean_text
from ai_employee.vault.layout import PLANS, Vault
from ai_employee.vault.notes import split_note
from ai_employee.vault.plans import parse_steps, plan_title, steps_hash

Verb = Literal["approve", "deny", "defer"]
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read off a phone, typed back
CODE_LENGTH = 4
CODE_LIFETIME = timedelta(days=7)  # at most; a plan's own expiry comes first
_WORDS: dict[str, Verb] = {
    "yes": "approve",
    "approve": "approve",
    "ok": "approve",
    "no": "deny",
    "deny": "deny",
    "reject": "deny",
    "later": "defer",
    "defer": "defer",
}
_REPLY = re.compile(r"^\s*/?([a-z]+)\s+([a-z0-9]{4})\s*$", re.IGNORECASE)
_OUTCOME = {"approve": "Approved", "deny": "Declined", "defer": "Deferred"}


def issue_code(
    ledger: Ledger, plan_id: str, plan_hash: str, channel: str, may_approve: bool = True, expires: str | None = None
) -> str:
    """A fresh code for a plan as shown (its steps' hash), unique among all codes ever issued; one that
    may not approve when the person could not read every step in full."""
    until = (datetime.now(UTC) + CODE_LIFETIME).isoformat(timespec="seconds")
    if expires:
        until = min(until, datetime.fromisoformat(expires).astimezone(UTC).isoformat(timespec="seconds"))
    while True:
        code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        if ledger.add_reply_code(code, plan_id, plan_hash, channel, until, may_approve):
            return code


def parse_reply(text: str) -> tuple[Verb, str] | None:
    """A typed reply (`YES 7F3K`, `no 7f3k`, `later 7F3K`) as (verb, code); None if it is not one."""
    match = _REPLY.match(text)
    if match is None or match.group(1).lower() not in _WORDS:
        return None
    return _WORDS[match.group(1).lower()], match.group(2).upper()


@dataclass(frozen=True)
class Answer:
    """What to tell the person who replied; `decided` if their decision took effect, `changed` if the
    plan changed since it was shown (they are shown it again)."""

    text: str
    decided: bool = False
    changed: bool = False
    plan_id: str = ""


def decide(
    vault: Vault, ledger: Ledger, code_text: str, verb: Verb, actor: str, channel: str, defer_minutes: int = 60
) -> Answer:
    """Take a decision by code: through the same API as the CLI and the folders (the first decision
    wins; a later one is told who decided). A code is spent by its first use, whatever came of it."""
    code = ledger.reply_code(code_text)
    if code is None or code.channel != channel:
        return Answer(f"There is no code {code_text.upper()}: look at the latest message about the plan.")
    if code.used is not None:
        return Answer(f"Code {code.code} was already used ({code.outcome or 'decided'}).", plan_id=code.plan_id)
    if datetime.fromisoformat(code.expires) < datetime.now(UTC):
        ledger.use_code(code.code, "expired")
        return Answer(f"Code {code.code} has expired: ask for /pending to see what waits.", plan_id=code.plan_id)
    if verb == "approve" and not code.may_approve:
        return Answer(
            f"Code {code.code} cannot approve: the plan was too long to show here in full. Read it in Obsidian"
            f" or with `vault show {code.plan_id[:10]}` and approve it there.",
            plan_id=code.plan_id,
        )
    try:
        plan = resolve_plan(vault, code.plan_id)
        body = split_note(plan.path.read_text("utf-8", errors="replace")).body
        title = clean_text(plan_title(body, plan.frontmatter), 60)
        if plan.folder == PLANS and steps_hash(parse_steps(body)) != code.plan_hash:
            raise decisions.StepsChanged("changed")  # whatever the verb: it is not what they saw
        said = _apply(vault, ledger, code, verb, actor, channel, defer_minutes)
    except decisions.StepsChanged:
        ledger.use_code(code.code, "the plan changed after it was shown")
        return Answer(
            "The plan changed after it was shown to you: nothing was decided. Here it is as it is now.",
            changed=True,
            plan_id=code.plan_id,
        )
    except (UserError, FormatError, OSError) as exc:  # decided elsewhere first, or the note is gone or broken
        ledger.use_code(code.code, str(exc)[:300])
        return Answer(str(exc), plan_id=code.plan_id)
    ledger.use_code(code.code, f"{_OUTCOME[verb].lower()} by {actor}")
    return Answer(f"“{title}”: {said}", decided=True, plan_id=code.plan_id)


def _apply(
    vault: Vault, ledger: Ledger, code: ReplyCode, verb: Verb, actor: str, channel: str, defer_minutes: int
) -> str:
    if verb == "approve":
        decisions.approve(vault, ledger, code.plan_id, actor=actor, channel=channel, seen=code.plan_hash)
        return "approved, it runs now."
    if verb == "deny":
        decisions.deny(vault, ledger, code.plan_id, actor=actor, channel=channel)
        return "declined."
    until = decisions.defer(vault, ledger, code.plan_id, defer_minutes, actor=actor, channel=channel)
    return f"deferred until {local_time(until)}."


def outcome_words(decision: str, actor: str, channel: str, when: str) -> str:
    """A decision in words, to replace a message's buttons with."""
    what = {
        "approve": "✅ Approved",
        "auto_approve": "✅ Approved",
        "deny": "❌ Declined",
        "defer": "⏰ Deferred",
        "expire": "⌛ Expired",
        "resume": "▶ Resumed",
    }.get(decision, decision)
    return f"{what} by {actor} via {channel} at {local_time(when)}"
