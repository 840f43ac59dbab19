"""Learning from your decisions: it proposes, you decide.

A *pattern* is a tool and the domain it writes to (`email.send_email` to `@ourteam.com`). From the
ledger's record of your decisions (approvals and denials by a person; the policy's own are not evidence)
`tally` counts, per pattern, what you approved, denied and edited, and how long you took. `proposals`
turns a clear record into a suggestion: approved every time (at least `learning.min_samples`) → make it
LOW?; denied three times in four or more → make it HIGH?

Nothing changes the policy until you accept a proposal (`vault insights accept N`), which appends a rule
with where it came from to the learned-rules file (`Config.learned_path`); or unless you opted in
(`learning.auto_promote`). A learned rule can lower only a MEDIUM step to LOW (never a HIGH one), every
raising rule (VIP, keywords, amounts, hours) still applies on top, and one denial of a plan of its
pattern after it was accepted demotes it: it no longer applies, and `vault insights` says so.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ai_employee.errors import ConfigError

if TYPE_CHECKING:
    from ai_employee.ledger import Ledger

HEADER = (
    "# Rules you accepted from `vault insights` (AI Employee). Each says where it came from.\n"
    "# Delete an entry to undo it; a running engine reads the file again within seconds.\n"
)


@dataclass(frozen=True, order=True)
class Pattern:
    tool: str
    domain: str  # the recipients' domain, lower case

    def __str__(self) -> str:
        return f"{self.tool} to @{self.domain}"


@dataclass
class Tally:
    approved: int = 0
    denied: int = 0
    edited: int = 0  # approved after you changed the steps
    waits: list[float] = field(default_factory=list)  # seconds from the plan to your decision
    last_denied: str = ""  # when you last denied a plan of it, whatever you decided later (ISO 8601)
    addresses: set[str] = field(default_factory=set)  # recipients of the plans you approved

    @property
    def decided(self) -> int:
        return self.approved + self.denied

    @property
    def median_wait_s(self) -> float | None:
        return statistics.median(self.waits) if self.waits else None


@dataclass(frozen=True)
class LearnedRule:
    tool: str
    domain: str
    level: str  # low | high
    accepted: str  # ISO 8601: denials after this moment demote it
    why: str = ""
    # The addresses you approved plans of this pattern to: a LOW rule lowers mail to them only (to
    # someone new it stays at least MEDIUM). Filled in from the ledger when the rule is applied.
    addresses: frozenset[str] = frozenset()

    @property
    def pattern(self) -> Pattern:
        return Pattern(self.tool, self.domain)


@dataclass(frozen=True)
class Proposal:
    pattern: Pattern
    level: str
    tally: Tally
    text: str


def domains(step: dict[str, Any]) -> set[str]:
    """The domains a step (a mapping: tool, args) writes to."""
    from email.utils import getaddresses

    args = step.get("args") or {}
    raw: list[str] = []
    for key in ("to", "cc", "bcc"):
        value = args.get(key) if isinstance(args, dict) else None
        raw += [value] if isinstance(value, str) else [str(v) for v in value or [] if isinstance(value, list)]
    return {addr.rpartition("@")[2].lower() for _, addr in getaddresses(raw) if "@" in addr}


def patterns_of(steps_json: str | None) -> set[Pattern]:
    try:
        steps = json.loads(steps_json or "[]")
    except ValueError:
        return set()
    found = set()
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict) and isinstance(step.get("tool"), str):
            found |= {Pattern(step["tool"], domain) for domain in domains(step)}
    return found


def tally(ledger: Ledger) -> dict[Pattern, Tally]:
    """Per pattern, your latest verdict on each plan (approve or deny, by a person)."""
    rows = ledger.db.execute(
        "SELECT p.plan_id, p.steps AS planned, p.created, d.decision, d.ts, d.steps AS seen FROM decisions d"
        " JOIN plans p ON p.plan_id = d.plan_id WHERE d.decision IN ('approve', 'deny') AND d.channel != 'policy'"
        " ORDER BY d.id"
    )
    latest: dict[str, Any] = {}
    for row in rows:
        latest[row["plan_id"]] = row
    found: dict[Pattern, Tally] = {}
    denials = ledger.db.execute(
        "SELECT p.steps AS planned, d.steps AS seen, d.ts FROM decisions d JOIN plans p ON p.plan_id = d.plan_id"
        " WHERE d.decision = 'deny' AND d.channel != 'policy'"
    )
    for row in denials:  # every denial counts for demotion, even of a plan approved again later
        for pattern in patterns_of(row["seen"] or row["planned"]) | patterns_of(row["planned"]):
            entry = found.setdefault(pattern, Tally())
            entry.last_denied = max(entry.last_denied, str(row["ts"]), key=_when)
    for row in latest.values():
        wait = _seconds_between(row["created"], row["ts"])
        for pattern in patterns_of(row["seen"] or row["planned"]) or patterns_of(row["planned"]):
            entry = found.setdefault(pattern, Tally())
            if row["decision"] == "approve":
                entry.approved += 1
                entry.addresses |= _addresses(row["seen"] or row["planned"], pattern)
                entry.edited += bool(row["seen"] and row["planned"] and _steps(row["seen"]) != _steps(row["planned"]))
            else:
                entry.denied += 1
            if wait is not None:
                entry.waits.append(wait)
    return found


def proposals(found: dict[Pattern, Tally], current: dict[Pattern, str], min_samples: int) -> list[Proposal]:
    """What your record suggests, clearest first; `current` is each pattern's level now."""
    made = []
    for pattern, entry in sorted(found.items()):
        level = current.get(pattern, "high")
        if entry.denied == 0 and entry.approved >= min_samples and level == "medium":
            text = f"{pattern}: approved {entry.approved} of {entry.approved} — make it LOW?"
            made.append(Proposal(pattern, "low", entry, text))
        elif entry.denied >= 3 and entry.denied >= 3 * entry.approved and level != "high":
            text = f"{pattern}: denied {entry.denied} of {entry.decided} — make it HIGH?"
            made.append(Proposal(pattern, "high", entry, text))
    return sorted(made, key=lambda p: (-p.tally.decided, p.pattern))


def demoted(rule: LearnedRule, found: dict[Pattern, Tally]) -> bool:
    """A LOW rule you accepted no longer applies once you denied a plan of its pattern after accepting it."""
    entry = found.get(rule.pattern)
    return (
        rule.level == "low"
        and entry is not None
        and bool(entry.last_denied)
        and (_when(entry.last_denied) >= _when(rule.accepted))
    )


def load(path: Path) -> list[LearnedRule]:
    """The accepted rules in the learned-rules file (none if there is no file)."""
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or []
    except FileNotFoundError:
        return []
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the learned rules ({exc}); fix or delete the file") from exc
    rules = []
    for entry in data if isinstance(data, list) else []:
        try:
            rule = LearnedRule(
                str(entry["tool"]),
                str(entry["domain"]).lower().lstrip("@"),
                str(entry["level"]),
                str(entry["accepted"]),
                str(entry.get("why") or ""),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: a learned rule lacks {exc}; fix or delete the entry") from exc
        if rule.level not in ("low", "high"):
            raise ConfigError(f"{path}: a learned rule's level must be low or high, not {rule.level!r}")
        rules.append(rule)
    return rules


def accept(path: Path, proposal: Proposal) -> LearnedRule:
    """Append the proposal to the learned-rules file as a rule, with where it came from."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    entry = proposal.tally
    why = (
        f"vault insights on {now[:10]}: approved {entry.approved}, denied {entry.denied} of {entry.decided}"
        f" decisions ({entry.edited} edited first)"
    )
    rule = LearnedRule(proposal.pattern.tool, proposal.pattern.domain, proposal.level, now, why)
    existing = path.read_text("utf-8") if path.exists() else HEADER
    block = yaml.safe_dump(
        [{"tool": rule.tool, "domain": rule.domain, "level": rule.level, "accepted": rule.accepted, "why": rule.why}],
        sort_keys=False,
        allow_unicode=True,
        width=1000,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(existing.rstrip("\n") + f"\n# {proposal.text}\n{block}", "utf-8")
    tmp.replace(path)  # whole or not at all
    return rule


def _when(stamp: str) -> datetime:
    """An ISO 8601 stamp as an aware datetime (naive ones taken as UTC; unreadable ones as the epoch)."""
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return datetime.fromtimestamp(0, UTC)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _addresses(steps_json: str | None, pattern: Pattern) -> set[str]:
    from email.utils import getaddresses

    try:
        steps = json.loads(steps_json or "[]")
    except ValueError:
        return set()
    found: set[str] = set()
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, dict) or step.get("tool") != pattern.tool or not isinstance(step.get("args"), dict):
            continue
        for key in ("to", "cc", "bcc"):
            value = step["args"].get(key)
            raw = [value] if isinstance(value, str) else [str(v) for v in value or [] if isinstance(value, list)]
            found |= {a.lower() for _, a in getaddresses(raw) if a.lower().endswith("@" + pattern.domain)}
    return found


def _stamp(path: Path) -> tuple[float, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime, st.st_size)


def _steps(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _seconds_between(start: str, end: str) -> float | None:
    try:
        a, b = datetime.fromisoformat(start), datetime.fromisoformat(end)
    except (TypeError, ValueError):
        return None
    if a.tzinfo is None:
        a = a.replace(tzinfo=UTC)
    if b.tzinfo is None:
        b = b.replace(tzinfo=UTC)
    return max(0.0, (b - a).total_seconds())


def applicable(rules: Iterable[LearnedRule], found: dict[Pattern, Tally]) -> list[LearnedRule]:
    """The accepted rules that still apply (not demoted)."""
    return [rule for rule in rules if not demoted(rule, found)]


def auto_rules(found: dict[Pattern, Tally], current: dict[Pattern, str], min_samples: int) -> list[LearnedRule]:
    """With `learning.auto_promote`: the LOW proposals, applied as rules (a denial ends them at once)."""
    return [
        LearnedRule(p.pattern.tool, p.pattern.domain, "low", "", f"learned by itself: {p.text.split(': ', 1)[1]}")
        for p in proposals(found, current, min_samples)
        if p.level == "low"
    ]


class Learned:
    """The learned rules that apply now: those you accepted (not demoted) and, with auto-promotion,
    the LOW proposals; from the rules file and the ledger, re-read at most every `REFRESH_S`."""

    REFRESH_S = 5.0

    def __init__(
        self, path: Path, ledger: Ledger, level_of: Any, auto_promote: bool = False, min_samples: int = 10
    ) -> None:
        self.path = path
        self.ledger = ledger
        self.level_of = level_of  # tool -> its level now ("low" | "medium" | "high"), before learning
        self.auto_promote = auto_promote
        self.min_samples = min_samples
        self.rules = load(path)
        self._file_stamp = _stamp(path)
        self._cached: list[LearnedRule] = []
        self._at = float("-inf")

    def __call__(self) -> list[LearnedRule]:
        import time

        if time.monotonic() - self._at < self.REFRESH_S:
            return self._cached
        stamp = _stamp(self.path)
        if stamp != self._file_stamp:  # `vault insights accept` wrote to it: applies without a restart
            self.rules, self._file_stamp = load(self.path), stamp
        if not self.rules and not self.auto_promote:
            self._cached, self._at = [], time.monotonic()
            return self._cached
        found = tally(self.ledger)
        rules = [
            dataclasses.replace(
                rule, addresses=frozenset(found[rule.pattern].addresses if rule.pattern in found else ())
            )
            for rule in applicable(self.rules, found)
        ]
        if self.auto_promote:
            current = {pattern: self.level_of(pattern.tool) for pattern in found}
            accepted = {rule.pattern for rule in self.rules}
            rules += [
                dataclasses.replace(r, addresses=frozenset(found[r.pattern].addresses))
                for r in auto_rules(found, current, self.min_samples)
                if r.pattern not in accepted
            ]
        self._cached, self._at = rules, time.monotonic()
        return rules
