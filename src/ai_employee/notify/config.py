"""The `notify:` config section: named channels (Apprise URLs, secrets from the environment), routes
from notification kinds to channels with a minimum criticality, the rate limit, quiet hours and the
Telegram bot. Validated with the rest of the config; the URLs themselves are checked by Apprise when
the engine starts (`vault doctor` and `vault notify test` too), so a command that sends nothing never
imports it."""

from __future__ import annotations

import re
from datetime import time
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from ai_employee.config_sections import Section, known_zone, url_tokens

Level = Literal["low", "medium", "high"]

# What can be notified, and how much it matters when the event itself does not say (a plan's
# criticality does, for approvals and plan outcomes).
KINDS: dict[str, tuple[Level, str]] = {
    "approval.required": ("medium", "a plan waits for your decision"),
    "approval.reminder": ("medium", "a plan still waits for your decision"),
    "action.failed": ("medium", "a plan failed, or was interrupted (a step may or may not have happened)"),
    "action.executed": ("low", "a plan ran (route it with `min_criticality: high` for the important ones)"),
    "budget.warning": ("medium", "the day's token budget is 80% used (95%: high)"),
    "service.error": ("high", "a part of the engine failed and was restarted"),
    "server.paused": ("high", "an MCP server refused its credentials or is down: its plans wait"),
    "gmail.paused": ("high", "Gmail sync stopped (expired access, quota)"),
    "engine.crashed": ("high", "the engine stopped unexpectedly (told when it starts again, or as it fails)"),
    "monitor.alert": ("medium", "a monitor's value changed as its rule says (its own criticality)"),
}
TELEGRAM = "telegram"  # the channel name of the Telegram bot, when `notify.telegram.enabled`
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def default_routes() -> list[Route]:
    """Without `routes:`, everything that needs you goes to every channel; plans that ran only when
    they were HIGH."""
    kinds = [kind for kind in KINDS if kind != "action.executed"]
    return [
        Route(events=kinds, channels=["*"]),
        Route(events=["action.executed"], channels=["*"], min_criticality="high"),
    ]


class Route(Section):
    events: list[str] = Field(description="Notification kinds, e.g. approval.required (see docs/notifications.md).")
    channels: list[str] = Field(description="Channel names from `notify.channels` (or `telegram`); `*`: all of them.")
    min_criticality: Level = Field("low", description="Only what is at least this critical.")

    @field_validator("events")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        unknown = [kind for kind in value if kind not in KINDS]
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r}: use one of {', '.join(KINDS)}")
        return value


class QuietHours(Section):
    """Hours when only HIGH is sent at once; the rest is held and sent as one digest when they end."""

    start: time = Field(description="When quiet hours start, e.g. 22:00 (local time, or `timezone`).")
    end: time = Field(description="When they end, e.g. 07:00; may be on the next day.")
    timezone: str | None = Field(None, description="IANA name; default: the machine's.")

    _known_zone = field_validator("timezone")(known_zone)


class TelegramConfig(Section):
    enabled: bool = False
    token: SecretStr | None = Field(None, description="The bot's token from @BotFather: ${TELEGRAM_BOT_TOKEN}.")
    allowed_chats: list[int] = Field(
        default_factory=list, description="Chat ids that are told and may decide; nobody else can."
    )
    api_base: str = Field("https://api.telegram.org", description="The Bot API endpoint (another one for tests).")
    poll_timeout_s: float = Field(25.0, ge=0, le=50, description="Long polling: how long one getUpdates waits.")
    defer_minutes: int = Field(60, gt=0, description="How long the Defer button puts a plan off.")

    @model_validator(mode="after")
    def _complete(self) -> TelegramConfig:
        if self.enabled and (self.token is None or not self.token.get_secret_value()):
            raise ValueError("telegram is enabled without a token: set token: ${TELEGRAM_BOT_TOKEN}")
        if self.enabled and not self.allowed_chats:
            raise ValueError("telegram is enabled with no allowed_chats: add your chat id (the bot tells it on /start)")
        if not re.match(r"^https?://[^/\s]+", self.api_base):
            raise ValueError(f"api_base {self.api_base!r} is not an http:// or https:// URL")
        return self


class NotifyConfig(Section):
    channels: dict[str, list[str]] = Field(
        default_factory=dict, description="Named channels, each an Apprise URL (or a list of them)."
    )
    routes: list[Route] | None = Field(None, description="Which kinds go where; default: everything that needs you.")
    min_interval_s: float = Field(300.0, ge=0, description="At most one message per channel this often; the rest wait.")
    quiet_hours: QuietHours | None = None
    max_age_s: float = Field(86400.0, gt=0, description="Events older than this when first seen are not sent.")
    telegram: TelegramConfig = TelegramConfig()

    @field_validator("channels", mode="before")
    @classmethod
    def _as_lists(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> NotifyConfig:
        for name, urls in self.channels.items():
            if not _NAME.match(name) or name == TELEGRAM:
                raise ValueError(f"channel name {name!r}: use lowercase letters, digits, - and _ (not `telegram`)")
            if not urls or any(not url.strip() for url in urls):
                raise ValueError(f"channel {name!r} has an empty URL (is its environment variable set?)")
        known = self.channel_names()
        for route in self.routes or []:
            for channel in route.channels:
                if channel != "*" and channel not in known:
                    raise ValueError(f"a route names channel {channel!r}, which is not configured ({', '.join(known)})")
        return self

    def channel_names(self) -> list[str]:
        return [*self.channels, *([TELEGRAM] if self.telegram.enabled else [])]

    def active_routes(self) -> list[Route]:
        return self.routes if self.routes is not None else default_routes()

    def secrets(self) -> list[str]:
        """What the channel URLs and the bot carry that authenticates: redacted everywhere."""
        found = [url for urls in self.channels.values() for url in urls]
        found += [part for urls in self.channels.values() for url in urls for part in url_tokens(url)]
        token = self.telegram.token
        if token is not None and token.get_secret_value():
            found.append(token.get_secret_value())
        return [value for value in found if len(value) >= 6]
