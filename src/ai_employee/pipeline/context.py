"""What every stage shares: the vault, config, ledger, event bus, policy and planner."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from ai_employee.config import Config
from ai_employee.errors import machine_fault
from ai_employee.events import EventBus, EventName, StageErrorPayload
from ai_employee.ledger import Ledger
from ai_employee.planner import Planner
from ai_employee.policy import Policy
from ai_employee.vault.layout import Vault

if TYPE_CHECKING:
    from ai_employee.executor.mcp_pool import McpPool

log = structlog.get_logger(__name__)


@dataclass
class EngineContext:
    vault: Vault
    config: Config
    ledger: Ledger
    bus: EventBus
    policy: Policy
    planner: Planner
    pool: McpPool  # the MCP servers' connections: execution calls their tools, planners read their list
    # Problems already reported, so a sweep every few seconds does not repeat the same error.
    reported: dict[str, str] = field(default_factory=dict)

    @property
    def tmp_dir(self) -> Path:
        return self.vault.tmp_dir

    def report_problem(self, stage: str, path: Path, error: str) -> None:
        """Log and publish a stage error once per (path, error) until it changes or clears."""
        key = f"{stage}:{path}"
        if self.reported.get(key) == error:
            return
        self.reported[key] = error
        log.warning("stage problem", stage=stage, path=str(path), error=error)
        self.bus.publish(EventName.STAGE_ERROR, StageErrorPayload(stage=stage, path=str(path), error=error))

    def item_failed(self, stage: str, path: Path, exc: Exception, what: str) -> None:
        """One item failed: log and report it so the stage can go on with the next. A fault of the
        machine (a full disk, a read-only file system) is re-raised instead: every item would fail the
        same way, so the pipeline pauses until it is fixed (see `Pipeline.run`)."""
        if machine_fault(exc):
            raise exc
        log.exception(what, stage=stage, path=path.name)
        self.report_problem(stage, path, f"{type(exc).__name__}: {exc}")

    def clear_problem(self, stage: str, path: Path) -> None:
        self.reported.pop(f"{stage}:{path}", None)
