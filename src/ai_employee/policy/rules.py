"""Deterministic criticality rules applied to the final steps (tool + arguments) of a plan.

The rating never comes from the planner alone: a planner's hint may raise it, never lower it.
A tool the rules do not know is HIGH. The full rules engine grows here; callers only use `Policy.assess`.
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass

from ai_employee.vault.plans import Step


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
    ("vault.*", Criticality.LOW, "only writes notes inside this vault"),
    ("email.draft_email", Criticality.LOW, "only saves a draft in the vault; nothing is sent"),
    ("email.send_email", Criticality.MEDIUM, "sends an email in your name"),
    ("gmail.send_reply", Criticality.MEDIUM, "sends an email in your name"),
    (
        "gmail.create_draft",
        Criticality.MEDIUM,
        "puts a draft into your Gmail, where it syncs to every device; nothing is sent"
        " (LOW only if your config says so: policy.rules)",
    ),
    ("gmail.add_label", Criticality.LOW, "only adds a label to a message in your Gmail"),
    ("gmail.archive", Criticality.MEDIUM, "takes a message out of your Gmail inbox"),
)


@dataclass(frozen=True)
class Assessment:
    criticality: Criticality
    reasons: list[str]


class Policy:
    """Rates steps with the user's rules (config `policy.rules`) first, then the built-in ones."""

    def __init__(self, user_rules: Mapping[str, str] | None = None) -> None:
        extra = [
            (pattern, Criticality.parse(level), "your rule in config (policy.rules)")
            for pattern, level in (user_rules or {}).items()
        ]
        self.rules = (*extra, *BUILTIN_RULES)

    def rate_step(self, step: Step) -> tuple[Criticality, str]:
        for pattern, level, why in self.rules:
            if fnmatch.fnmatchcase(step.tool, pattern):
                return level, why
        return Criticality.HIGH, "the policy does not know this tool"

    def assess(self, steps: list[Step], planner_hint: Criticality | None = None) -> Assessment:
        """The plan's criticality (the highest of its steps and the planner's hint) and the reasons."""
        if not steps:
            return Assessment(Criticality.LOW, ["The plan has no steps: nothing will run."])
        level = Criticality.LOW
        reasons = []
        for number, step in enumerate(steps, 1):
            step_level, why = self.rate_step(step)
            level = max(level, step_level)
            reasons.append(f"Step {number} `{step.tool}` is {step_level.name}: {why}.")
        if planner_hint is not None and planner_hint > level:
            level = planner_hint
            reasons.append(f"The planner raised the plan to {planner_hint.name}.")
        return Assessment(level, reasons)
