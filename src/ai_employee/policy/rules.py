"""Deterministic criticality rules: what a plan's steps do, to whom, about what, and when.

A step's level starts from its tool (your `policy.tool_defaults`, then the built-in rules, then the tool's
MCP annotations; HIGH when nothing is known). Known contacts may lower mail to them to LOW, and only when
your config says so. Every other rule can only raise: a VIP involved (HIGH, the whole plan), keywords in
the item or the step (for steps that reach beyond the vault), amounts in a step's arguments, the time of
day. A plan is as critical as its most critical step; the planner's own rating may raise it, never lower
it. Content comes from outside and is never trusted: it can make a plan stricter, never looser.

Every rule that matched is recorded with why (`Assessment.matches`); the plan note shows the reasons,
`vault explain` and `vault policy test` print them. See docs/policy.md.
"""

from __future__ import annotations

import enum
import fnmatch
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from ai_employee.config_sections import PolicyConfig
from ai_employee.policy.learning import LearnedRule
from ai_employee.vault.extract.money import amounts
from ai_employee.vault.extract.money import value as money_value
from ai_employee.vault.plans import Step

if TYPE_CHECKING:
    from ai_employee.vault.actions import Action


class Criticality(enum.IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> Criticality:
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown criticality {value!r}: use low, medium or high") from None


# Built-in rules: (glob on `server.tool`, criticality, why). First match wins.
BUILTIN_RULES: tuple[tuple[str, Criticality, str], ...] = (
    ("vault.move_note", Criticality.MEDIUM, "moves one of your notes to another folder"),
    ("vault.set_property", Criticality.MEDIUM, "changes a property of one of your notes"),
    ("vault.*", Criticality.LOW, "only writes notes inside this vault"),
    ("email.draft_email", Criticality.LOW, "only saves a draft in the vault; nothing is sent"),
    ("email.send_email", Criticality.MEDIUM, "sends an email in your name"),
    ("gmail.send_reply", Criticality.MEDIUM, "sends an email in your name"),
    (
        "gmail.create_draft",
        Criticality.MEDIUM,
        "puts a draft into your Gmail, where it syncs to every device; nothing is sent"
        " (LOW only if your config says so: policy.tool_defaults)",
    ),
    ("gmail.add_label", Criticality.LOW, "only adds a label to a message in your Gmail"),
    ("gmail.archive", Criticality.MEDIUM, "takes a message out of your Gmail inbox"),
)
# Tools that stay inside the vault when their server's annotations are not known yet.
INSIDE_VAULT = ("vault.*", "email.draft_email")
RECIPIENT_ARGS = ("to", "cc", "bcc")
LOWERING = ("known_contacts", "learned")  # the only rules that may lower a step, and only as you configured
_AMOUNT_KEY = re.compile(r"amount|total|price|value|sum|cost|fee|payment", re.IGNORECASE)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Facts:
    """What the rules see besides the steps: who the item came from, what it says, and when."""

    sender: str = ""  # the address, lower case
    sender_name: str = ""
    text: str = ""  # subject and text of the item: untrusted, so it can only raise a rating
    when: datetime | None = None

    @classmethod
    def of(cls, action: Action | None, when: datetime | None = None) -> Facts:
        if action is None:
            return cls(when=when)
        email = action.email or {}
        text = f"{email.get('subject') or action.title}\n{action.preview}"
        return cls(action.sender, str(email.get("from_name") or ""), text, when)


@dataclass(frozen=True)
class Match:
    """One rule that applied: which, at what level, why, and to which step (None: the whole plan)."""

    rule: str
    level: Criticality
    why: str
    step: int | None = None


@dataclass(frozen=True)
class Assessment:
    criticality: Criticality
    reasons: list[str]
    matches: list[Match] = field(default_factory=list)

    def rules_json(self) -> str:
        """The rules that matched, for the ledger: [{rule, level, why, step}]."""
        return json.dumps(
            [{"rule": m.rule, "level": m.level.label, "why": m.why, "step": m.step} for m in self.matches],
            ensure_ascii=False,
        )


Annotations = Callable[[str], Any]  # `server.tool` -> its MCP ToolAnnotations, or None if not known


class Policy:
    """Rates plans with the rules of `policy:` in config (docs/policy.md)."""

    def __init__(
        self,
        config: PolicyConfig | Mapping[str, str] | None = None,
        colleagues: Iterable[str] = (),
        annotations: Annotations = lambda tool: None,
        learned: Callable[[], list[LearnedRule]] = list,
    ) -> None:
        if config is None or isinstance(config, Mapping):  # tool rules alone (tests, `vault policy test`)
            # Not validated: levels are parsed (loosely, with a clear error) below.
            config = PolicyConfig.model_construct(tool_defaults=cast(Any, dict(config or {})))
        self.config = config
        extra = [
            (pattern, Criticality.parse(level), "your rule in config (policy.tool_defaults)")
            for pattern, level in config.tool_levels.items()
        ]
        self.user_rules = tuple(extra)
        self.rules = (*extra, *BUILTIN_RULES)
        self.known = [entry.strip().lower() for entry in (*config.known_contacts.addresses, *colleagues) if entry]
        self.vips = [entry.strip().lower() for entry in config.vip_contacts if entry.strip()]
        words = config.keyword_patterns
        self.keywords = [
            *((re.compile(p, re.IGNORECASE), Criticality.HIGH, "high") for p in words.high),
            *((re.compile(p, re.IGNORECASE), Criticality.MEDIUM, "medium") for p in words.medium),
        ]
        self.annotations = annotations
        self.learned = learned  # the learned rules that apply now (accepted, not demoted; or auto)

    # the tool -------------------------------------------------------------------------------------
    def rate_step(self, step: Step) -> tuple[Criticality, str]:
        """The step's level from its tool alone: your rules (the strictest that matches), else the built-in
        ones (the first that matches), else its MCP annotations."""
        yours = [(level, why) for pattern, level, why in self.user_rules if fnmatch.fnmatchcase(step.tool, pattern)]
        if yours:
            return max(yours, key=lambda found: found[0])
        for pattern, level, why in BUILTIN_RULES:
            if fnmatch.fnmatchcase(step.tool, pattern):
                return level, why
        hints = self.annotations(step.tool)
        if hints is None:
            return Criticality.HIGH, "the policy does not know this tool"
        if getattr(hints, "destructive_hint", None) or getattr(hints, "open_world_hint", None):
            return Criticality.HIGH, "its server says it can destroy data or reach the outside world"
        if getattr(hints, "read_only_hint", None):
            return Criticality.LOW, "its server says it only reads"
        if getattr(hints, "destructive_hint", None) is False and getattr(hints, "open_world_hint", None) is False:
            return Criticality.MEDIUM, "its server says it changes things, locally and without destroying data"
        return Criticality.HIGH, "its server says nothing of what it does"

    def outward(self, step: Step) -> bool:
        """Whether the step reaches beyond the vault (sends, posts, pays): content rules apply to it.
        Only `vault.*` and `email.draft_email` stay inside; a tool no rule names is judged by its
        annotations (outward unless they say read-only or not open-world)."""
        if any(fnmatch.fnmatchcase(step.tool, pattern) for pattern in INSIDE_VAULT):
            return False
        named = any(fnmatch.fnmatchcase(step.tool, pattern) for pattern, _, _ in self.rules)
        hints = None if named else self.annotations(step.tool)
        if hints is not None:
            return not getattr(hints, "read_only_hint", False) and getattr(hints, "open_world_hint", None) is not False
        return True

    # the plan -------------------------------------------------------------------------------------
    def assess(
        self, steps: list[Step], planner_hint: Criticality | None = None, facts: Facts | None = None
    ) -> Assessment:
        """The plan's criticality (the highest of its steps, and of the planner's hint) and why."""
        facts = facts or Facts()
        if not steps:
            return Assessment(Criticality.LOW, ["The plan has no steps: nothing will run."])
        matches: list[Match] = []
        vip = self._vip(facts, steps)
        for number, step in enumerate(steps, 1):
            matches += self._step(number, step, facts)
            if vip is not None:
                matches.append(Match("vip_contacts", Criticality.HIGH, vip, number))
        level = max(m.level for m in matches if m.step is not None and _decides(m, matches))
        if planner_hint is not None and planner_hint > level:
            level = planner_hint
            matches.append(Match("planner", planner_hint, f"the planner rated the plan {planner_hint.name}"))
        return Assessment(level, _reasons(steps, matches), matches)

    def _step(self, number: int, step: Step, facts: Facts) -> list[Match]:
        base, why = self.rate_step(step)
        found = [Match("tool", base, why, number)]
        recipients = list(_recipients(step.args))
        learned = self._learned_rule(step, recipients)
        familiar: frozenset[str] = frozenset()  # people you approved mail to before, on this pattern
        if learned is not None:
            level = Criticality.parse(learned.level)
            if level == Criticality.HIGH or base == Criticality.MEDIUM:  # never lowers a HIGH tool
                kind = "a rule you accepted" if learned.accepted else "a pattern of your decisions"
                why = f"{kind}: {learned.tool} to @{learned.domain} is {level.name} ({learned.why})"
                found.append(Match("learned", level, why, number))
                familiar = learned.addresses
        if recipients:
            unknown = [r for r in recipients if not self._known(r) and r not in familiar]
            mail = any(fnmatch.fnmatchcase(step.tool, pattern) for pattern in self.config.known_contacts.tools)
            if not unknown and mail and base == Criticality.MEDIUM and self.config.known_contacts.email == "low":
                found.append(Match("known_contacts", Criticality.LOW, "every recipient is a known contact", number))
            elif unknown and self.outward(step):
                shown = ", ".join(unknown[:3]) + (" ..." if len(unknown) > 3 else "")
                found.append(Match("new_contact", Criticality.MEDIUM, f"it goes to someone new ({shown})", number))
        if not self.outward(step):
            return found
        text = _normal(f"{facts.text}\n{_text(step.args)}")
        for pattern, level, kind in self.keywords:
            hit = pattern.search(text)
            if hit is not None:
                said = " ".join(hit.group(0).split())[:40]
                found.append(
                    Match("keyword_patterns", level, f'it is about "{said}" (keyword_patterns.{kind})', number)
                )
                break  # the first (strictest) pattern that matches says enough
        found += self._amounts(number, step)
        hours = self._out_of_hours(facts.when)
        if hours is not None:
            found.append(Match("business_hours", Criticality.parse(self.config.business_hours.outside), hours, number))  # type: ignore[union-attr]
        return found

    def _amounts(self, number: int, step: Step) -> list[Match]:
        limits = self.config.amount_thresholds
        values = list(_amounts(step.args))
        if not values:
            return []
        value, written = max(values)
        for limit, level in ((limits.high, Criticality.HIGH), (limits.medium, Criticality.MEDIUM)):
            if limit is not None and value > limit:
                why = f"it names an amount of {written}, above {limit:g} (amount_thresholds.{level.label})"
                return [Match("amount_thresholds", level, why, number)]
        return []

    def _out_of_hours(self, when: datetime | None) -> str | None:
        hours = self.config.business_hours
        if hours is None:
            return None
        now = when or datetime.now().astimezone()
        if hours.timezone:
            now = now.astimezone(ZoneInfo(hours.timezone))
        start = time.fromisoformat(hours.start)
        end = time(23, 59, 59) if hours.end == "24:00" else time.fromisoformat(hours.end)
        inside = _WEEKDAYS[now.weekday()] in hours.days and start <= now.time().replace(tzinfo=None) < end
        if inside:
            return None
        return f"it is {now:%a %H:%M}, outside business hours ({', '.join(hours.days)} {hours.start}-{hours.end})"

    def _learned_rule(self, step: Step, recipients: list[str]) -> LearnedRule | None:
        """The learned rule for this step's pattern: its tool, every recipient in one domain."""
        found = {address.rpartition("@")[2] for address in recipients}
        if len(found) != 1:
            return None
        (domain,) = found
        return next((r for r in self.learned() if r.tool == step.tool and r.domain == domain), None)

    def _known(self, address: str) -> bool:
        address = address.lower()
        domain = address.rpartition("@")[2]
        return any(address == k or (k.startswith("@") and domain == k[1:]) or domain == k for k in self.known)

    def _vip(self, facts: Facts, steps: list[Step]) -> str | None:
        """Why the plan involves a VIP, or None: the sender, or anyone a step writes to."""
        people = [(facts.sender, facts.sender_name, "the item comes from")]
        for step in steps:
            people += [(addr, name, "a step writes to") for name, addr in _named_recipients(step.args)]
        for address, name, role in people:
            address, name = address.lower(), name.lower()
            domain = address.rpartition("@")[2]
            for vip in self.vips:
                if address and (address == vip or (vip.startswith("@") and domain == vip[1:]) or domain == vip):
                    return f"{role} {address}, one of your VIP contacts"
                if "@" not in vip and name and vip in name:
                    return f"{role} {name.title()}, one of your VIP contacts"
        return None


def _decides(match: Match, matches: list[Match]) -> bool:
    """Whether a step's match counts: a known-contact or learned LOW match replaces its step's tool level
    (lowering it, as your config allows); every other match counts as it is."""
    if match.rule != "tool":
        return True
    return not any(m.rule in LOWERING and m.level == Criticality.LOW and m.step == match.step for m in matches)


def _reasons(steps: list[Step], matches: list[Match]) -> list[str]:
    lines = []
    for number, step in enumerate(steps, 1):
        own = [m for m in matches if m.step == number]
        tool = next(m for m in own if m.rule == "tool")
        lines.append(f"Step {number} `{step.tool}` is {tool.level.name}: {tool.why}.")
        lines += [f"Step {number} is {m.level.name}: {m.why}." for m in own if m.rule != "tool"]
    for m in matches:
        if m.step is None:
            lines.append(
                f"The planner raised the plan to {m.level.name}."
                if m.rule == "planner"
                else f"The plan is {m.level.name}: {m.why}."
            )
    return lines


def _named_recipients(args: Mapping[str, Any]) -> list[tuple[str, str]]:
    raw: list[str] = []
    for key in RECIPIENT_ARGS:
        value = args.get(key)
        if isinstance(value, str):
            raw.append(value)
        elif isinstance(value, list | tuple):
            raw += [str(v) for v in value]
    return [(name, addr.lower()) for name, addr in getaddresses(raw) if addr]


def _recipients(args: Mapping[str, Any]) -> Iterator[str]:
    for _, address in _named_recipients(args):
        yield address


def _normal(text: str) -> str:
    """Text as keyword rules read it: compatibility forms folded (NFKC), invisible format characters
    (zero-width spaces and joiners) removed, so `pass\u200bword` is still "password"."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")


def _text(args: Mapping[str, Any]) -> str:
    return json.dumps(args, ensure_ascii=False, default=str)


def _amounts(value: Any, key: str = "") -> Iterator[tuple[float, str]]:
    """Amounts in a step's arguments: numbers under an amount-like key, and amounts with a currency
    written in any text."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _amounts(v, str(k).lower())
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _amounts(v, key)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int | float) and _AMOUNT_KEY.search(key):
        yield float(value), f"{value:g}"
    elif isinstance(value, str):
        found = amounts(value)
        if not found and _AMOUNT_KEY.search(key) and re.fullmatch(r"\s*[\d.,\s]+\s*", value):
            found = [(money_value(value), value.strip())]  # "5000" under `amount`
        yield from found
