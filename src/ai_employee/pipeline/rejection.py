"""The rejection stage: closes the items whose plan notes are in `Rejected/` (moved there by a person,
by `vault deny`, or by expiry): status `rejected`, a callout that says so, the action moved beside it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import structlog

from ai_employee.clock import now_stamp
from ai_employee.errors import FormatError
from ai_employee.pipeline.closing import close_action
from ai_employee.pipeline.context import EngineContext
from ai_employee.pipeline.decisions import VERDICTS, current_user, record
from ai_employee.pipeline.state import PipelineState
from ai_employee.vault import callouts
from ai_employee.vault.layout import NEEDS_ACTION, REJECTED, FileKey, entries, file_key
from ai_employee.vault.notes import read_frontmatter, split_note
from ai_employee.vault.plans import plan_title, restate

log = structlog.get_logger(__name__)


class RejectionStage:
    """Closes the items whose plan notes are in `Rejected/`: status `rejected`, action moved beside it."""

    def __init__(self, ctx: EngineContext, state: PipelineState) -> None:
        self.ctx = ctx
        self.folder = ctx.vault.folder(REJECTED)
        self.settled: dict[str, FileKey] = {}
        self.state = state
        self.hinted: set[str] = set()
        self._swept_at = float("-inf")

    def hint(self, name: str) -> None:
        """The watcher saw a note arrive in (or change in) `Rejected/`."""
        self.hinted.add(name)

    def run_once(self, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Close what arrived. Every note is looked at (a stat) only on a sweep, every `watcher.poll_interval`
        (years of declined plans pile up here); in between, only the notes the watcher reported."""
        now = time.monotonic()
        sweep = now - self._swept_at >= self.ctx.config.watcher.poll_interval
        if sweep:
            self._swept_at = now
            names = [entry.name for entry in entries(self.folder, ".md")]
        else:
            names = sorted(name for name in self.hinted if name.endswith(".md"))
        self.hinted.clear()
        handled = 0
        for name in names:
            if should_stop():
                break
            path = self.folder / name
            try:
                key = file_key(path)
            except FileNotFoundError:
                continue
            if self.settled.get(name) == key:
                continue
            try:
                handled += self._close(path)
            except Exception as exc:  # one bad item must not stop the stage: report it and go on
                self.ctx.item_failed("reject", path, exc, "closing rejected plan failed")
                continue
            try:
                self.settled[name] = file_key(path)
            except FileNotFoundError:
                continue
        return handled

    def _close(self, path: Path) -> int:
        ctx = self.ctx
        try:
            fm = read_frontmatter(split_note(path.read_text("utf-8")), path.name)
        except (OSError, UnicodeDecodeError, FormatError):
            return 0
        plan_id = str(fm.get("id") or "")
        if not plan_id:
            return 0
        last = ctx.ledger.last_decision(plan_id, VERDICTS)
        expired = last is not None and last["decision"] == "expire" and fm.get("status") == "expired"
        moved_by_hand = last is None or last["decision"] not in ("deny", "expire")
        if fm.get("status") != "rejected" and not expired:
            at = now_stamp()
            restate(path, {"status": "rejected", "decided": at}, callouts.rejected(current_user(), at), ctx.tmp_dir)
        if moved_by_hand:
            # `vault deny` records its own decision and event; a move in the file manager does not.
            title = plan_title(split_note(path.read_text("utf-8")).body, fm) or path.stem
            record(ctx.ledger, ctx.bus.publish, plan_id, "deny", "file", current_user(), title=title)
        action_id = str(fm.get("action_id") or "")
        closed = close_action(
            ctx, action_id, plan_id, "rejected", REJECTED, self.state.action_file(action_id), (NEEDS_ACTION,)
        )
        if closed is None and not moved_by_hand:
            return 0
        log.info("plan rejected", plan_id=plan_id)
        return 1
