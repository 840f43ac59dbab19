"""What every planner takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ai_employee.policy import Criticality
from ai_employee.vault.actions import Action
from ai_employee.vault.plans import Step


@dataclass
class PlanningContext:
    """What a planner may know besides the action: the vault, the human's rules, who to sign as."""

    vault_root: Path
    handbook: str
    signature: str
    reserved_paths: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class PlanDraft:
    title: str
    summary: str
    steps: list[Step]
    planner: str
    planner_note: str
    criticality_hint: Criticality | None = None


class Planner(Protocol):
    name: str

    def plan(self, action: Action, context: PlanningContext) -> PlanDraft: ...
