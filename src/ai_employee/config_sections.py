"""The config sections with rules of their own: Gmail, the policy, learning, MCP servers and execution
(`gmail:`, `policy:`, `learning:`, `mcp_servers:`, `execution:`), and the base every section of
`config.py` shares: unknown keys are errors, values are frozen."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def known_zone(cls: Any, value: str | None) -> str | None:
    """A validator: the value is an IANA time zone name (or None)."""
    if value is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as Europe/Lisbon") from None
    return value


def user_config_dir() -> Path:
    """Where the engine keeps what must stay out of the vault (the Gmail token): $XDG_CONFIG_HOME or
    ~/.config, then `ai-employee`."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "ai-employee"


class WebConfig(Section):
    """The local web page (`vault web`, `vault start --web`)."""

    serve: bool = Field(False, description="Serve it with the engine (as `vault start --web` does).")
    host: str = Field("127.0.0.1", description="Where it listens; anything but loopback needs `public`.")
    public: bool = Field(False, description="Allow a non-loopback `host` (as `--public` does); a warning is printed.")
    port: int = Field(8765, ge=0, le=65535, description="Its port (0: any free one).")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the page may be reached by besides localhost (a tunnel's name); any other"
        " Host header is refused (DNS rebinding).",
    )


class NoiseRule(Section):
    """Mail that is skipped (never enters the vault) or filed without a reply. Every condition given
    must match; a rule with none matches nothing."""

    name: str = Field(description="What the rule is for, shown in the ledger and the note.")
    action: Literal["skip", "file"] = Field(
        description="skip: never enters the vault (left as it is in Gmail); file: a note, no reply planned."
    )
    sender: list[str] = Field(
        default_factory=list, description="Globs on the sender's address, e.g. `*@news.example.com`, `no-reply@*`."
    )
    subject: str | None = Field(None, description="A regular expression searched in the subject (case-insensitive).")
    header: str | None = Field(None, description="A header the message has, e.g. `List-Unsubscribe`.")
    label: str | None = Field(None, description="A Gmail label id the message carries, e.g. `CATEGORY_UPDATES`.")

    @field_validator("subject")
    @classmethod
    def _valid_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value


def _default_noise() -> list[NoiseRule]:
    return [
        NoiseRule(
            name="verification codes",
            action="skip",
            subject=r"\b(verification|security|login|sign-in|one-time|confirmation) code\b|\bOTP\b|\b2FA\b",
        ),
        NoiseRule(
            name="no-reply senders",
            action="file",
            sender=["no-reply@*", "noreply@*", "no_reply@*", "donotreply@*", "do-not-reply@*", "mailer-daemon@*"],
        ),
        NoiseRule(name="newsletters", action="file", header="List-Unsubscribe"),
    ]


class GmailConfig(Section):
    enabled: bool = Field(False, description="Sync Gmail into Inbox/ (run `vault gmail auth` once first).")
    client_secret_file: Path | None = Field(
        None, description="The OAuth client JSON from Google Cloud; default <config dir>/gmail-client.json."
    )
    token_file: Path | None = Field(
        None,
        description="Where the token is kept (mode 0600, never in the vault); default <config dir>/gmail-token.json.",
    )
    query: str = Field(
        "is:unread in:inbox -category:promotions -category:social", description="Which mail becomes work."
    )
    poll_interval_s: float = Field(60.0, gt=0, description="Seconds between syncs (longer after errors).")
    first_sync_days: int = Field(
        14, ge=1, description="The first sync takes matching mail at most this old; older mail is never taken."
    )
    max_sync_messages: int = Field(
        2000, gt=0, le=100_000, description="The most new messages one sync takes; more come with the next syncs."
    )
    mark: Literal["remove_unread", "label", "none"] = Field(
        "remove_unread", description="What is done to a message once its note is in the vault."
    )
    label: str = Field("AI-Employee/Processed", description="The label `mark: label` adds (created if missing).")
    noise: list[NoiseRule] = Field(default_factory=_default_noise, description="Mail skipped or filed without reply.")
    api_endpoint: str | None = Field(None, description="Advanced: another Gmail API endpoint (a proxy, a test server).")
    token_uri: str | None = Field(None, description="Advanced: another OAuth token endpoint.")

    def token_path(self) -> Path:
        return (self.token_file or user_config_dir() / "gmail-token.json").expanduser()

    def client_secret_path(self) -> Path:
        return (self.client_secret_file or user_config_dir() / "gmail-client.json").expanduser()


Level = Literal["low", "medium", "high"]


class KnownContacts(Section):
    addresses: list[str] = Field(
        default_factory=list, description="Addresses or domains (`@ourteam.com`) you correspond with."
    )
    email: Literal["low", "medium"] = Field(
        "medium", description="How critical mail to known contacts only is (`low` lets it run by itself)."
    )
    tools: list[str] = Field(
        default_factory=lambda: ["email.send_email", "gmail.send_reply", "gmail.create_draft"],
        description="The mail tools `email: low` applies to (globs); no other tool is lowered by it.",
    )


class KeywordPatterns(Section):
    high: list[str] = Field(
        default_factory=lambda: [
            r"\bwire (transfer|the money)\b",
            r"\bbank (details|account)\b",
            r"\bpassword\b",
            r"\bgift cards?\b",
            r"\bIBAN\b",
        ],
        description="Regular expressions (case-insensitive) that make a plan HIGH when its item or steps hold one.",
    )
    medium: list[str] = Field(
        default_factory=lambda: [r"\burgent\b", r"\bpayment\b", r"\binvoice\b", r"\bcontract\b", r"\blegal\b"],
        description="Regular expressions that make a plan at least MEDIUM.",
    )

    @field_validator("high", "medium")
    @classmethod
    def _valid_patterns(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return values


class AmountThresholds(Section):
    high: float | None = Field(100.0, ge=0, description="An amount above this (any currency) in a step: HIGH.")
    medium: float | None = Field(None, ge=0, description="An amount above this in a step: at least MEDIUM.")


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _workdays() -> list[Weekday]:
    return ["mon", "tue", "wed", "thu", "fri"]


class BusinessHours(Section):
    days: list[Weekday] = Field(default_factory=_workdays)
    start: str = Field("08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field("18:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
    timezone: str | None = Field(None, description="IANA name; default: this machine's.")
    outside: Level = Field(
        "medium", description="The least criticality of a step that reaches outside (sends, posts) out of hours."
    )

    _known_zone = field_validator("timezone")(known_zone)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> Any:
    """`90s`, `30m`, `2h`, `3d` (or a number of seconds) as seconds; other values are left to fail."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration: write it like 90s, 30m, 2h or 3d")
        return float(match.group(1)) * _UNIT_S[match.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class Timeout(Section):
    remind_after: Duration | None = Field(None, description="Remind you once when a plan waits this long.")
    expire_after: Duration | None = Field(None, description="Decline the plan (`expired`) when it waits this long.")


class Timeouts(Section):
    low: Timeout = Timeout()
    medium: Timeout = Timeout()
    high: Timeout = Timeout()


class PolicyConfig(Section):
    auto_approve: Literal["low", "none"] = Field("low", description="Which plans run without asking.")
    tool_defaults: dict[str, Level] = Field(
        default_factory=dict,
        description="`server.tool` (or a glob: `payment.*`) -> criticality, checked before the built-in ones.",
    )
    rules: dict[str, Level] = Field(default_factory=dict, description="Older name of tool_defaults (merged into it).")
    vip_contacts: list[str] = Field(
        default_factory=list,
        description="Names, addresses or domains (`@bigclient.com`): a plan that involves one is HIGH.",
    )
    known_contacts: KnownContacts = KnownContacts()
    keyword_patterns: KeywordPatterns = KeywordPatterns()
    amount_thresholds: AmountThresholds = AmountThresholds()
    business_hours: BusinessHours | None = Field(None, description="Working hours; none: no rule by time of day.")
    timeouts: Timeouts = Field(
        Timeouts(),
        description="Per criticality: when a waiting plan is reminded of, and when it expires (never approves).",
    )

    @property
    def tool_levels(self) -> dict[str, str]:
        return {**self.rules, **self.tool_defaults}


class LearningConfig(Section):
    file: Path | None = Field(
        None, description="Where `vault insights accept` writes the rules you accept; default: beside the config."
    )
    auto_promote: bool = Field(
        False, description="Apply a proposal to make a pattern LOW by itself once it has `min_samples` approvals."
    )
    min_samples: int = Field(10, ge=3, description="Decisions on a pattern before a proposal is made.")


# MCP servers and execution ------------------------------------------------------------------------
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+(?:\.\d+)?)?\s*(second|minute|hour|day|sec|min|[smhd])s?\s*$", re.I)
_RATE_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(value: Any) -> Any:
    """`10/hour`, `10 per hour`, `3/15m`, `100/day` as (calls, window in seconds)."""
    if isinstance(value, str):
        match = _RATE.match(value)
        if match is None or int(match.group(1)) <= 0:
            raise ValueError(f"{value!r} is not a rate limit: write it like 10/hour, 3/15m or 100/day")
        window = float(match.group(2) or 1) * _RATE_UNIT_S[match.group(3)[0].lower()]
        if window <= 0:
            raise ValueError(f"{value!r}: the window must be longer than zero")
        return (int(match.group(1)), window)
    return value


RateLimit = Annotated[tuple[int, float], BeforeValidator(parse_rate)]


class ToolSettings(Section):
    """What the executor may do with one tool (`mcp_servers.<server>.tools.<tool>`)."""

    idempotent: bool = Field(
        False, description="Safe to call again after an unknown outcome (a timeout, a crash mid-call)."
    )
    rate_limit: RateLimit | None = Field(
        None, description="At most this many live calls per window, e.g. `10/hour`; a call over it waits."
    )
    timeout_s: float | None = Field(None, gt=0, description="The longest one call may take (else execution's).")
    dry_run: bool | None = Field(
        None, description="Overrides the global mode for this tool: true keeps it dry in live mode, false runs it."
    )


class McpServerConfig(Section):
    """One server, in Claude Desktop's `mcpServers` shape: a `command` run over stdio, or the `url` of a
    remote server (streamable HTTP)."""

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: Path | None = None
    url: str | None = Field(None, description="A remote server's endpoint (http:// or https://).")
    headers: dict[str, str] = Field(
        default_factory=dict, description="HTTP headers sent to a remote server, e.g. Authorization: Bearer ${TOKEN}."
    )
    idempotent_tools: list[str] = Field(
        default_factory=list, description="Tools safe to call again after an unknown outcome (older spelling)."
    )
    tools: dict[str, ToolSettings] = Field(default_factory=dict, description="Settings per tool, by its bare name.")

    @field_validator("env", "headers", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        """`SMTP_PORT: 587` and `SMTP_STARTTLS: true` mean the strings a process environment holds."""
        if not isinstance(value, dict):
            return value
        return {
            k: (str(v).lower() if isinstance(v, bool) else str(v)) if isinstance(v, int | float) else v
            for k, v in value.items()
        }

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give a server either `command` (run over stdio) or `url` (a remote server), not both")
        if self.url is not None and (self.args or self.env or self.cwd):
            raise ValueError("`args`, `env` and `cwd` are for a `command` server; a `url` server takes `headers`")
        if self.command is not None and self.headers:
            raise ValueError("`headers` are for a `url` server; a `command` server takes `env`")
        return self

    def tool(self, name: str) -> ToolSettings:
        """The settings of one of this server's tools (`idempotent_tools` counts as `idempotent: true`)."""
        settings = self.tools.get(name, ToolSettings())
        if name in self.idempotent_tools and not settings.idempotent:
            settings = settings.model_copy(update={"idempotent": True})
        return settings

    def remote_secrets(self) -> list[str]:
        """What may authenticate a remote server, redacted everywhere: header values (bar short plain
        words), the token alone of an `Authorization: Bearer …` header, and what its `url` carries
        (a password, query values, a long token in the path, as some services hand out)."""
        found = []
        for value in self.headers.values():
            found.append(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.isalpha():
                found.append(token)
        if self.url is not None:
            found.extend(url_tokens(self.url))
        return [v for v in found if len(v) >= 6]


_HOSTLIKE = re.compile(r"^[a-z0-9.-]+\.[a-z]{2,}$|^\d{1,3}(\.\d{1,3}){3}$|^localhost$", re.IGNORECASE)


def is_hostlike(text: str) -> bool:
    """A host name or an IP address (not a token in the host part of a URL)."""
    return bool(_HOSTLIKE.match(text))


def url_tokens(url: str) -> list[str]:
    """The parts of a service URL that may be secret: Apprise puts tokens in the host part
    (`tgram://TOKEN/CHAT`, `discord://ID/TOKEN`), the user info, the path (an ntfy topic is its secret)
    and the query; host names, numbers and short words are left out (redacting them would only blur
    the logs)."""
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    userinfo, _, host = parts.netloc.rpartition("@")
    found = re.split(r"[:@]", userinfo) if userinfo else []
    if not _HOSTLIKE.match(re.sub(r":\d+$", "", host)):
        found += [host, *host.split(":")]
    found += parts.path.split("/")
    found += [value for _, value in parse_qsl(parts.query)]
    return [v for v in found if len(v) >= 6 and not _HOSTLIKE.match(v) and not v.isdigit()]


class RetryConfig(Section):
    attempts: int = Field(4, ge=1, le=20, description="Tries of a step whose failure is transient, the first included.")
    base_delay_s: float = Field(1.0, gt=0, description="The first wait between tries; it doubles, with jitter.")
    max_delay_s: float = Field(30.0, gt=0, description="The longest wait between two tries.")
    rate_limit_delay_s: float = Field(
        20.0, gt=0, description="The first wait after a server says it is rate limited and not for how long."
    )
    max_wait_in_step_s: float = Field(
        60.0,
        ge=0,
        description="A wait longer than this (a rate limit, a server's retry-after) is not slept through:"
        " the plan waits in Approved/ and the executor goes on with other plans.",
    )


class ExecutionConfig(Section):
    dry_run: bool = True
    step_timeout_s: float = Field(120.0, gt=0)
    retry: RetryConfig = RetryConfig()
    probe_interval_s: float = Field(
        60.0, gt=0, description="A paused server is tried again after this long, doubling up to 15 minutes."
    )


class McpConfig(Section):
    idle_stop_s: float = Field(
        300.0, gt=0, description="MCP servers unused this long are stopped; the next step starts them again."
    )
    start_timeout_s: float = Field(
        30.0, gt=0, description="A server not ready this long after it was started is given up (for a minute)."
    )
