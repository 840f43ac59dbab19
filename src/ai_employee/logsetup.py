"""Logging, configured once at the entry point: JSON lines to a rotating file, readable console output.

Secrets (API keys, passwords, tokens) are redacted from every record, by key name and by value.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any

import structlog

REDACTED = "[REDACTED]"
_SECRET_KEY = re.compile(r"(pass(word)?|secret|token|api[_-]?key|authorization|credential)", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+|sk-ant-[A-Za-z0-9_-]*)[A-Za-z0-9._~+/=-]{8,}")


class Redactor:
    """A structlog processor that hides secret values in every field of every record.

    A secret of 4 characters or more is hidden wherever it appears; a shorter one only where it stands
    alone (a 2-letter password must not cut every word that contains those letters)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if s and s.strip()}
        self.secrets = sorted((s for s in values if len(s) >= 4), key=len, reverse=True)
        short = sorted((s for s in values if len(s) < 4), key=len, reverse=True)
        self._short = (
            re.compile("(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, short)) + ")(?![A-Za-z0-9])") if short else None
        )

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        if self._short is not None:
            text = self._short.sub(REDACTED, text)
        return _BEARER.sub(REDACTED, text)

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in list(event.items()):
            if _SECRET_KEY.search(key) and value not in (None, ""):
                event[key] = REDACTED
            elif isinstance(value, str):
                event[key] = self.scrub(value)
        return event


class _LogFile(logging.handlers.RotatingFileHandler):
    """The log file; when it cannot be written (a full disk), say so once on stderr, not per record."""

    failing = False
    _failed_now = False

    def emit(self, record: logging.LogRecord) -> None:
        self._failed_now = False
        super().emit(record)
        if not self._failed_now:
            self.failing = False

    def handleError(self, record: logging.LogRecord) -> None:
        self._failed_now = True
        if not self.failing:
            self.failing = True
            sys.stderr.write(f"log file {self.baseFilename} cannot be written ({sys.exc_info()[1]})\n")


def configure_logging(
    level: str,
    log_file: Path | None,
    secrets: Iterable[str] = (),
    verbose: bool = False,
    max_bytes: int = 10 << 20,
    backups: int = 5,
    quiet: bool = False,
) -> None:
    """Route structlog and stdlib logging through one pipeline: console always (only warnings with
    `quiet`, for commands whose output is a listing), JSON file if given."""
    redactor = Redactor(secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG if verbose else getattr(logging, level))
    console = logging.StreamHandler(sys.stderr)
    if quiet and not verbose:
        console.setLevel(logging.WARNING)
    console.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                redactor,
                structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
            ],
        )
    )
    root.addHandler(console)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = _LogFile(log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        file_handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=shared,
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.dict_tracebacks,
                    redactor,
                    structlog.processors.JSONRenderer(),
                ],
            )
        )
        root.addHandler(file_handler)
    # Third-party chatter stays at WARNING unless asked for.
    for noisy in ("mcp", "httpx", "httpx2", "anthropic", "watchdog", "pypdf", "asyncio", "googleapiclient"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
    # OAuth libraries log request bodies at DEBUG, refresh tokens and client secrets included: never below
    # WARNING, even with -v.
    # Apprise's debug records print raw service URLs (tokens included): the same.
    for secretive in (
        "requests_oauthlib",
        "oauthlib",
        "google_auth_oauthlib",
        "google.auth",
        "google_auth_httplib2",
        "apprise",
    ):
        logging.getLogger(secretive).setLevel(logging.WARNING)
