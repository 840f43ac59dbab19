"""The config sections of Gmail, the policy and learning (`gmail:`, `policy:`, `learning:`), and the
base every section of `config.py` shares: unknown keys are errors, values are frozen."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator


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
