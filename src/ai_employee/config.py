"""Configuration: `config.yaml` with `${VAR}` interpolation, validated at start-up.

Every error names the key and says how to fix it. Unknown keys are errors: a typo must not silently
fall back to a default (least of all `dry_run`).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from ai_employee.config_file import read_config_file
from ai_employee.config_sections import (
    ExecutionConfig,
    GmailConfig,
    LearningConfig,
    McpConfig,
    McpServerConfig,
    PolicyConfig,
    ToolSettings,
    WebConfig,
    known_zone,
    user_config_dir,
)
from ai_employee.config_sections import Section as _Section
from ai_employee.errors import ConfigError
from ai_employee.notify.config import NotifyConfig
from ai_employee.proactive.monitors import MonitorsConfig
from ai_employee.proactive.schedules import ScheduleConfig, check_names
from ai_employee.vault.layout import DEFAULT_VAULT, explicit_vault_path, find_vault_upward


class AppConfig(_Section):
    vault_path: Path | None = Field(None, description="The vault to run on.")
    name: str = Field("AI Employee", description="How the assistant signs and names itself.")
    owner_name: str = Field("", description="Your name, used to sign replies.")
    owner_addresses: list[str] = Field(default_factory=list, description="Your own email addresses.")
    own_domains: list[str] = Field(
        default_factory=list, description="Your organisation's mail domains: mail from them is from a colleague."
    )


class ClaudeConfig(_Section):
    api_key: SecretStr | None = Field(None, description="Anthropic API key; empty means the template planner.")
    base_url: str | None = Field(None, description="Another endpoint (a gateway); else $ANTHROPIC_BASE_URL.")
    model: str = "claude-sonnet-5-5"
    max_tokens: int = Field(4096, gt=0)
    timeout_s: float = Field(120.0, gt=0, description="The longest a plan may take to draft, retries included.")
    max_concurrency: int = Field(4, gt=0, le=64, description="Plans drafted side by side at most.")
    max_retry_after_s: float = Field(
        30.0, ge=0, description="The longest `retry-after` of a 429/529 answer that is waited for."
    )
    prices: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {"claude-haiku": (1.0, 5.0), "claude-sonnet": (3.0, 15.0), "claude-opus": (5.0, 25.0)},
        description="Dollars per million tokens [input, output] by model name prefix, for cost estimates.",
    )


class PlannerConfig(_Section):
    min_confidence: float = Field(
        0.6, ge=0, le=1, description="A plan the model is less sure of waits for you, even if every step is LOW."
    )
    feedback_quiet_s: float = Field(
        20.0,
        ge=0,
        description="Feedback written in a note is planned once the note has been unchanged this long"
        " (an editor saves while you type); `vault replan` does not wait.",
    )


class BudgetConfig(_Section):
    reactive_daily_tokens: int | None = Field(
        None, gt=0, description="Tokens a day for planning what arrives; empty means no limit."
    )
    proactive_daily_tokens: int | None = Field(7_000_000, gt=0, description="Tokens a day for scheduled work.")
    timezone: str | None = Field(None, description="Where a day starts and ends (IANA name); default: local.")

    _known_zone = field_validator("timezone")(known_zone)


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: Path | None = Field(None, description="JSON log file; default <vault>/.ai_employee/logs/app.log.")
    max_bytes: int = Field(10 << 20, gt=0)
    backups: int = Field(5, ge=0)


class WatcherConfig(_Section):
    poll_interval: float = Field(5.0, gt=0, description="Seconds between full sweeps of every stage.")
    polling: bool = Field(False, description="Poll the file system instead of inotify (network drives, WSL).")
    settle_s: float = Field(
        1.0, ge=0, description="A file not confirmed closed is ingested once unchanged for this long."
    )


class ApprovalConfig(_Section):
    dry_run: bool | None = Field(None, description="Alias of execution.dry_run.")


class IngestConfig(_Section):
    max_preview_bytes: int = Field(64 * 1024, gt=0, le=256 * 1024)


def _builtin_servers() -> dict[str, McpServerConfig]:
    return {
        "vault": McpServerConfig(command=sys.executable, args=["-m", "ai_employee.mcp_servers.vault_server"]),
        "email": McpServerConfig(
            command=sys.executable,
            args=["-m", "ai_employee.mcp_servers.email_server"],
            tools={"draft_email": ToolSettings(idempotent=True)},
        ),
        "calendar": McpServerConfig(
            command=sys.executable,
            args=["-m", "ai_employee.mcp_servers.calendar_server"],
            tools={"list_events": ToolSettings(idempotent=True), "find_free_slots": ToolSettings(idempotent=True)},
        ),
    }


def _gmail_server() -> McpServerConfig:
    return McpServerConfig(
        command=sys.executable,
        args=["-m", GMAIL_SERVER_MODULE],
        tools={name: ToolSettings(idempotent=True) for name in GMAIL_IDEMPOTENT_TOOLS},
    )


GMAIL_SERVER_MODULE = "ai_employee.mcp_servers.gmail_server"
# The built-in gmail server's tools that may be called again after an unknown outcome.
GMAIL_IDEMPOTENT_TOOLS = ("add_label", "archive")


class Config(_Section):
    app: AppConfig = AppConfig()
    claude: ClaudeConfig = ClaudeConfig()
    planner: PlannerConfig = PlannerConfig()
    budget: BudgetConfig = BudgetConfig()
    logging: LoggingConfig = LoggingConfig()
    watcher: WatcherConfig = WatcherConfig()
    approval: ApprovalConfig = ApprovalConfig()
    execution: ExecutionConfig = ExecutionConfig()
    ingest: IngestConfig = IngestConfig()
    policy: PolicyConfig = PolicyConfig()
    learning: LearningConfig = LearningConfig()
    mcp: McpConfig = McpConfig()
    gmail: GmailConfig = GmailConfig()
    notify: NotifyConfig = NotifyConfig()
    schedules: dict[str, ScheduleConfig] = Field(default_factory=dict, description="Jobs run on a cron schedule.")
    monitors: MonitorsConfig = MonitorsConfig()
    web: WebConfig = WebConfig()
    mcp_servers: dict[str, McpServerConfig] = Field(default_factory=_builtin_servers)
    source: Path | None = Field(None, exclude=True, description="The file this was loaded from.")

    @field_validator("schedules")
    @classmethod
    def _schedule_names(cls, value: dict[str, ScheduleConfig]) -> dict[str, ScheduleConfig]:
        check_names(value)
        return value

    @model_validator(mode="after")
    def _dry_run_alias(self) -> Config:
        alias = self.approval.dry_run
        if alias is not None and alias != self.execution.dry_run:
            if "dry_run" in self.execution.model_fields_set:
                raise ValueError("approval.dry_run and execution.dry_run disagree: keep one of them")
            object.__setattr__(self, "execution", self.execution.model_copy(update={"dry_run": alias}))
        return self

    @model_validator(mode="after")
    def _monitor_servers(self) -> Config:
        """Tool monitors call configured servers, within what each tool's settings allow: not a tool kept
        dry (`dry_run: true`: nobody asked for it to be called), and no more often than its `rate_limit`."""
        servers = self.engine_servers()
        unknown = sorted(self.monitors.tool_servers() - set(servers))
        if unknown:
            raise ValueError(f"monitors call tools of servers not in mcp_servers: {', '.join(unknown)}")
        for name, monitor in self.monitors.watch.items():
            if not monitor.tool:
                continue
            server, _, tool = monitor.tool.partition(".")
            settings = servers[server].tool(tool)
            if settings.dry_run:
                raise ValueError(f"monitor {name!r} calls {monitor.tool}, which its settings keep dry (dry_run: true)")
            if settings.rate_limit is not None:
                count, window_s = settings.rate_limit
                if monitor.interval_s < window_s / count:
                    raise ValueError(
                        f"monitor {name!r} checks {monitor.tool} every {monitor.interval_s:g} s; its rate_limit"
                        f" allows one call per {window_s / count:g} s: set interval_s to at least {window_s / count:g}"
                    )
        return self

    @property
    def dry_run(self) -> bool:
        return self.execution.dry_run

    def mode(self) -> str:
        """The execution mode in words, with the tools whose own `dry_run` says otherwise."""
        base = "dry-run" if self.dry_run else "LIVE"
        flipped = sorted(
            f"{server}.{tool}"
            for server, cfg in self.engine_servers().items()
            for tool, settings in cfg.tools.items()
            if settings.dry_run is not None and settings.dry_run != self.dry_run
        )
        if not flipped:
            return base
        return f"{base}; " + ("run for real: " if self.dry_run else "kept dry: ") + ", ".join(flipped)

    def learned_path(self) -> Path:
        """The file of the rules accepted from `vault insights`: `learning.file`, else beside the config
        file, else in the user's config folder."""
        if self.learning.file is not None:
            return self.learning.file
        folder = self.source.absolute().parent if self.source is not None else user_config_dir()
        return folder / "learned-policy.yaml"

    def engine_servers(self) -> dict[str, McpServerConfig]:
        """The MCP servers as the engine starts them: with `gmail.enabled`, the built-in gmail server is
        added unless a server named `gmail` is configured; a server running its module is told the token
        file and endpoints of `gmail:`, unless its `env` says otherwise."""
        gmail = {
            "GMAIL_TOKEN_FILE": str(self.gmail.token_path()),
            "GMAIL_API_ENDPOINT": self.gmail.api_endpoint or "",
            "GMAIL_TOKEN_URI": self.gmail.token_uri or "",
        }
        servers = {}
        configured = dict(self.mcp_servers)
        if self.gmail.enabled:
            configured.setdefault("gmail", _gmail_server())
        for name, server in configured.items():
            if GMAIL_SERVER_MODULE in server.args:
                env = {**{k: v for k, v in gmail.items() if v}, **server.env}
                server = server.model_copy(update={"env": env})
            servers[name] = server
        return servers

    def secrets(self) -> list[str]:
        """Secret values this config holds, for redaction: the API key, and every value a server's
        environment holds, whatever its name (`SMTP_PASS` is as secret as `SMTP_PASSWORD`), except
        numbers, true/false words and the built-in email server's public settings."""
        found = []
        if self.claude.api_key is not None and self.claude.api_key.get_secret_value():
            found.append(self.claude.api_key.get_secret_value())
        for server in self.mcp_servers.values():
            found.extend(
                v for k, v in server.env.items() if v and k not in PUBLIC_SERVER_SETTINGS and not _PLAIN_VALUE.match(v)
            )
            found.extend(server.remote_secrets())
        found.extend(self.notify.secrets())
        found.extend(self.monitors.secrets())
        return found


# Settings of the built-in email server that say where to connect and who sends, not how to log in.
PUBLIC_SERVER_SETTINGS = frozenset(
    {
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_FROM",
        "SMTP_STARTTLS",
        "GMAIL_TOKEN_FILE",
        "GMAIL_API_ENDPOINT",
        "GMAIL_TOKEN_URI",
        "CALENDAR_FILE",
        "CALENDAR_TIMEZONE",
    }
)
_PLAIN_VALUE = re.compile(r"^\s*(\d+(\.\d+)?|true|false|yes|no|on|off)\s*$", re.IGNORECASE)


def _explain(exc: ValidationError, source: str) -> ConfigError:
    err = exc.errors()[0]
    key = ".".join(str(part) for part in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return ConfigError(
            f"{source}: unknown key `{key}`: remove it or check its spelling (see docs/configuration.md)"
        )
    return ConfigError(f"{source}: `{key}`: {err['msg']} (see docs/configuration.md)")


def load_config(path: Path | None, env: dict[str, str] | None = None) -> Config:
    """Load and validate a config file (None: built-in defaults)."""
    env = dict(os.environ if env is None else env)
    if path is None:
        return _with_env_key(Config(), env)
    data = read_config_file(path, env)
    try:
        config = Config.model_validate({**data, "source": path})
    except ValidationError as exc:
        raise _explain(exc, str(path)) from exc
    return _with_env_key(_resolve_relative(config, path.parent), env)


def _with_env_key(config: Config, env: dict[str, str]) -> Config:
    """Fill claude.api_key from CLAUDE_API_KEY / ANTHROPIC_API_KEY, and claude.base_url from
    ANTHROPIC_BASE_URL, when the config leaves them empty."""
    current = config.claude.api_key.get_secret_value() if config.claude.api_key else ""
    updates: dict[str, Any] = {}
    if not current:
        key = env.get("CLAUDE_API_KEY") or env.get("ANTHROPIC_API_KEY") or ""
        updates["api_key"] = SecretStr(key) if key else None
    if config.claude.base_url is None and env.get("ANTHROPIC_BASE_URL"):
        updates["base_url"] = env["ANTHROPIC_BASE_URL"]
    if not updates:
        return config
    return config.model_copy(update={"claude": config.claude.model_copy(update=updates)})


def _resolve_relative(config: Config, base: Path) -> Config:
    """Paths in a config file are relative to the file's folder, not to wherever `vault` was run."""
    updates: dict[str, Any] = {}
    if config.app.vault_path is not None:
        updates["app"] = config.app.model_copy(update={"vault_path": base / config.app.vault_path.expanduser()})
    if config.learning.file is not None:
        updates["learning"] = config.learning.model_copy(update={"file": base / config.learning.file.expanduser()})
    if config.logging.file is not None:
        updates["logging"] = config.logging.model_copy(update={"file": base / config.logging.file.expanduser()})
    gmail = {
        key: base / value.expanduser()
        for key in ("client_secret_file", "token_file")
        if (value := getattr(config.gmail, key)) is not None
    }
    if gmail:
        updates["gmail"] = config.gmail.model_copy(update=gmail)
    servers = {
        name: server.model_copy(update={"cwd": base / server.cwd.expanduser()}) if server.cwd else server
        for name, server in config.mcp_servers.items()
    }
    updates["mcp_servers"] = servers
    return config.model_copy(update=updates)


def resolve_vault_path(cli_value: Path | None, config: Config) -> Path:
    """--vault, else $VAULT_PATH, else app.vault_path, else the vault the current folder is in, else
    ./AI_Employee_Vault; made absolute."""
    explicit = explicit_vault_path(cli_value)
    if explicit is not None:
        return explicit
    if config.app.vault_path is not None:
        return config.app.vault_path.expanduser().absolute()
    return find_vault_upward(Path.cwd().absolute()) or DEFAULT_VAULT.absolute()
