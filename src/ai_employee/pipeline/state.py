"""What the stages of one pipeline know of each other's work, kept in memory (the vault stays the source
of truth: all of it can be lost at a restart and is found again).

Planning records where each action file is and which plan notes the policy approved; execution and
rejection ask, through named methods, instead of sharing bare dicts and sets.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PipelineState:
    # action id -> its file's name in `Needs_Action/`: for closing an action without a scan.
    _action_files: dict[str, str] = field(default_factory=dict)
    # Names of the notes in `Approved/` that the policy approved in this run (not a person).
    _policy_approved: set[str] = field(default_factory=set)

    def action_seen(self, action_id: str, name: str) -> None:
        self._action_files[action_id] = name

    def action_file(self, action_id: str) -> str | None:
        """The name the action file had when planning last saw it (a hint: it may have moved since)."""
        return self._action_files.get(action_id)

    def approved_by_policy(self, note_name: str) -> None:
        self._policy_approved.add(note_name)

    def is_policy_approved(self, note_name: str) -> bool:
        return note_name in self._policy_approved

    def taken_up(self, note_name: str) -> None:
        """Execution has picked the note up: it is no longer waiting."""
        self._policy_approved.discard(note_name)

    def still_in_approved(self, names: set[str]) -> None:
        """Forget the policy's approvals of notes no longer in `Approved/` (moved out meanwhile)."""
        self._policy_approved &= names
