"""What the executor may do with each tool: its settings (`mcp_servers.<server>.tools.<tool>`) and the
rate limits, counted from the ledger's outbox so that they hold across restarts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ai_employee.config_sections import ExecutionConfig, McpServerConfig, ToolSettings
from ai_employee.ledger import Ledger


@dataclass(frozen=True)
class ToolRules:
    """Per-tool settings of every configured server, with the global execution settings as fallback."""

    servers: dict[str, McpServerConfig]
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)

    def settings(self, tool: str) -> ToolSettings:
        server, _, name = tool.partition(".")
        config = self.servers.get(server)
        return config.tool(name) if config is not None else ToolSettings()

    def idempotent(self, tool: str) -> bool:
        return self.settings(tool).idempotent

    def timeout_s(self, tool: str) -> float:
        return self.settings(tool).timeout_s or self.execution.step_timeout_s

    def dry_run(self, tool: str, global_dry_run: bool) -> bool:
        """The mode a step of `tool` runs in: the tool's own `dry_run` if it has one, else the global."""
        own = self.settings(tool).dry_run
        return global_dry_run if own is None else own


class RateLimiter:
    """`rate_limit: 10/hour`: at most 10 live calls of the tool started in any hour. A call over the
    limit is not dropped: `wait_s` says how long until a slot frees."""

    def __init__(self, ledger: Ledger, rules: ToolRules, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.ledger = ledger
        self.rules = rules
        self.now = now

    def wait_s(self, tool: str) -> float:
        """Seconds until a call of `tool` may start (0: now)."""
        limit = self.rules.settings(tool).rate_limit
        if limit is None:
            return 0.0
        count, window_s = limit
        now = self.now()
        window = timedelta(seconds=window_s)
        calls = self.ledger.live_calls_since(tool, (now - window).isoformat(timespec="milliseconds"))
        if len(calls) < count:
            return 0.0
        # The call that must leave the window before another may start.
        frees = datetime.fromisoformat(calls[len(calls) - count]) + window
        return max(0.0, (frees - now).total_seconds())
