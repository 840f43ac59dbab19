"""What every planner takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ai_employee.policy import Assessment, Criticality
from ai_employee.vault.actions import Action
from ai_employee.vault.plans import PlanNote, Step, readable_args


@dataclass
class PlanningContext:
    """What a planner may know besides the action: the vault, the human's rules, who to sign as."""

    vault_root: Path
    handbook: str
    signature: str
    reserved_paths: set[str] = field(default_factory=set)
    goals: str = ""  # Business_Goals.md, if the vault has one
    owner_name: str = ""
    own_addresses: frozenset[str] = frozenset()  # lower case
    own_domains: frozenset[str] = frozenset()  # lower case, without `@`

    def is_colleague(self, address: str) -> bool:
        """Mail from one of the owner's own addresses or domains (not from outside)."""
        address = address.strip().lower()
        return address in self.own_addresses or address.rpartition("@")[2] in self.own_domains


@dataclass(frozen=True)
class Revision:
    """The owner asked for a new version of a waiting plan: what they saw, and what they said."""

    version: int  # of the plan they saw
    title: str
    steps: list[Step]  # as the note held them (with the owner's edits, if any)
    feedback: str  # the owner's words
    earlier: tuple[str, ...] = ()  # their feedback on the versions before, oldest first


@dataclass(frozen=True)
class PlanDraft:
    title: str
    summary: str
    steps: list[Step]
    planner: str
    planner_note: str
    criticality_hint: Criticality | None = None
    # Why the plan must wait for the human even if every step is LOW (open questions, low confidence).
    holds: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()
    # Why the configured planner could not write it and a fallback did ("" when it wrote it itself).
    fell_back: str = ""

    def __post_init__(self) -> None:
        # Multi-line text in the steps is wrapped for reading, whichever planner wrote it: what the human
        # reads and approves in the note is exactly what runs.
        readable = [Step(s.tool, readable_args(s.args), s.why) for s in self.steps]
        object.__setattr__(self, "steps", readable)

    def to_note(
        self,
        plan_id: str,
        action_id: str,
        assessment: Assessment,
        created: str,
        status: str,
        links: list[str],
        feedback: bool = False,
    ) -> PlanNote:
        """The plan note for this draft, rated by the policy's `assessment`; with `feedback`, it offers a
        `## Feedback` section for a new version."""
        return PlanNote(
            feedback=feedback,
            questions=list(self.questions),
            id=plan_id,
            action_id=action_id,
            title=self.title,
            summary=self.summary,
            steps=self.steps,
            criticality=assessment.criticality.label,
            reasons=[*assessment.reasons, *self.holds],
            planner=self.planner,
            planner_note=self.planner_note,
            created=created,
            status=status,
            source_links=links,
        )


class Planner(Protocol):
    """Drafts a plan for an action. Asynchronous: a model call takes seconds, and planning runs many
    drafts side by side (`claude.max_concurrency`) while every other stage goes on. A draft writes
    nothing: planning commits finished drafts durably, so a crash while drafts are in flight loses no
    input, and each action is planned once after the restart."""

    name: str
    # Drafts in flight at most (a model's rate limits), or None: it waits for nothing, so no bound.
    concurrency: int | None
    # Whether it can write a new version from the owner's feedback (`revision`); the template cannot.
    revises: bool

    async def draft(self, action: Action, context: PlanningContext, revision: Revision | None = None) -> PlanDraft: ...
