"""Where notifications go: the `Channel` protocol, and the Apprise channel behind every service Apprise
knows (Slack, Discord, email, Twilio and Vonage SMS, ntfy, Pushover, desktop, JSON webhooks, ...).

A channel's `send` runs on a worker thread (the notifier never sends on the event loop, let alone on
the bus's publishing path); it returns what happened, never raises for a failed delivery. The Telegram
bot (`telegram.py`) is a channel too, one that can also take decisions back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ai_employee.errors import ConfigError
from ai_employee.notify.messages import Message

SEND_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Delivery:
    ok: bool
    detail: str = ""


class Channel(Protocol):
    name: str

    def send(self, message: Message, folded: list[Message]) -> Delivery:
        """Deliver one message (`folded`: the messages a digest stands for, else empty)."""
        ...

    def observe(self, name: str, data: dict[str, Any]) -> None:
        """Every event routing reads (a decision made elsewhere, say), on the same worker thread."""
        ...

    def described(self) -> str:
        """The channel's target in words safe to show and log (no secrets)."""
        ...


def _scheme_and_host(url: str) -> str:
    from urllib.parse import urlsplit

    from ai_employee.config_sections import is_hostlike

    try:
        parts = urlsplit(url)
    except ValueError:
        return privacy_form(url)
    host = parts.hostname or ""
    shown = parts.netloc.rpartition("@")[2] if is_hostlike(host) else "…"
    return f"{parts.scheme}://{shown}" + ("/…" if parts.path.strip("/") else "")


def privacy_form(url: str) -> str:
    """Enough of a URL to recognise it, nothing that authenticates (for one Apprise could not read)."""
    scheme, sep, _ = url.partition("://")
    return f"{scheme}://…" if sep else "(not a URL)"


class AppriseChannel:
    """One named channel: one or more Apprise URLs, told together."""

    def __init__(self, name: str, urls: list[str], redact: Callable[[str], str], timeout_s: float = SEND_TIMEOUT_S):
        import apprise

        self.name = name
        self.redact = redact
        self.timeout_s = timeout_s
        self.apprise = apprise.Apprise()
        for url in urls:
            if not self.apprise.add(url):
                raise ConfigError(
                    f"notify.channels.{name}: {privacy_form(url)} is not a URL Apprise knows: check it against"
                    " https://github.com/caronc/apprise/wiki (see docs/notifications.md)"
                )

    def described(self) -> str:
        """Each URL as its scheme and host (a host that is a token is not shown), redacted."""
        return self.redact(", ".join(_scheme_and_host(str(url)) for url in self.apprise.urls(privacy=True)))

    def send(self, message: Message, folded: list[Message]) -> Delivery:
        import apprise

        kind = {"high": apprise.NotifyType.WARNING}.get(message.criticality, apprise.NotifyType.INFO)
        if message.kind == "action.failed":
            kind = apprise.NotifyType.FAILURE
        said: list[str] = []
        result = self.apprise.notify(
            body=message.body or message.title,
            title=message.title,
            notify_type=kind,
            body_format=apprise.NotifyFormat.TEXT,
            timeout=self.timeout_s,
            log_callback=lambda entry, _plugin: said.append(str(entry.message)),
            log_level=logging.WARNING,
        )
        detail = "; ".join(dict.fromkeys(said)) or str(getattr(result.status, "name", result.status)).lower()
        # Delivered if any of its URLs took it: sending again would repeat it to those (at most once);
        # the ones that failed are in the outcome.
        delivered = bool(result) or int(getattr(result, "success_count", 0) or 0) > 0
        return Delivery(delivered, self.redact(detail)[:500])

    def observe(self, name: str, data: dict[str, Any]) -> None:
        return None
