"""Plans being drafted: one asyncio task per action, side by side within the planner's bound.

A draft writes nothing; planning commits finished drafts (`take_finished`) durably, in batches. A stop
drops the drafts in flight (`cancel`): their actions are still `new` and are planned after the restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ai_employee.planner import PlanDraft, Planner, PlanningContext, Revision
from ai_employee.vault.actions import Action


@dataclass
class Draft:
    """A plan being drafted (or drafted, not yet committed) for an action."""

    path: Path
    action: Action
    existing: str | None  # the plan id the ledger already holds for the action (a crash before its note)
    task: asyncio.Task[PlanDraft]
    key: str  # what it is tracked by: the action's id, or for a new version the plan's


class Drafts:
    def __init__(self, planner: Planner, context: PlanningContext, share: Drafts | None = None) -> None:
        """With `share`, drafts here and there count together against the planner's bound."""
        self.planner = planner
        self.context = context
        self._slots: asyncio.Semaphore | None
        if share is not None:
            self._slots = share._slots
        else:
            self._slots = asyncio.Semaphore(planner.concurrency) if planner.concurrency else None
        self._drafts: dict[str, Draft] = {}  # by key, in the order they started
        self.wake: Callable[[], None] = lambda: None  # called when a draft finishes after its pass

    def __len__(self) -> int:
        """Drafts in flight, or finished and not yet taken."""
        return len(self._drafts)

    def __contains__(self, action_id: object) -> bool:
        return action_id in self._drafts

    def start(
        self, path: Path, action: Action, existing: str | None, revision: Revision | None = None, key: str = ""
    ) -> None:
        key = key or action.id
        task = asyncio.create_task(self._draft(action, revision), name=f"draft {key}")
        task.add_done_callback(self._finished)
        self._drafts[key] = Draft(path, action, existing, task, key)

    async def _draft(self, action: Action, revision: Revision | None) -> PlanDraft:
        if self._slots is None:
            return await self._ask(action, revision)
        async with self._slots:
            return await self._ask(action, revision)

    async def _ask(self, action: Action, revision: Revision | None) -> PlanDraft:
        if revision is None:
            return await self.planner.draft(action, self.context)
        return await self.planner.draft(action, self.context, revision)

    def _finished(self, task: asyncio.Task[PlanDraft]) -> None:
        if not task.cancelled():
            self.wake()

    def take_finished(self) -> list[Draft]:
        """The finished drafts (a failed one raises its planner's error from `task.result()`), in the
        order they started; they are no longer tracked."""
        finished = [draft for draft in self._drafts.values() if draft.task.done()]
        for draft in finished:
            del self._drafts[draft.key]
        return finished

    async def wait(self) -> None:
        """Until at least one draft in flight has finished (at once if one has already)."""
        tasks = [draft.task for draft in self._drafts.values()]
        if tasks and not any(task.done() for task in tasks):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)

    def cancel(self) -> None:
        for draft in self._drafts.values():
            draft.task.cancel()
        self._drafts.clear()

    async def aclose(self) -> None:
        """Cancel the drafts in flight and wait until they have let go (a draft cut off in flight records
        its model call in the ledger, which must still be open then)."""
        tasks = [draft.task for draft in self._drafts.values()]
        self.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
