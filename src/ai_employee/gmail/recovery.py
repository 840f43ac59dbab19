"""After a crash in the middle of a Gmail sync: which of the notes recorded as intents reached the vault.

A note that did (found by its hash: ingest records the same sha256 when it takes the note; or in
`Inbox/` under any free variant of its name) is marked stored; the others are forgotten, and the next
sync takes their messages again. So each message ends up with exactly one note.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os

import structlog

from ai_employee.ledger.mail import MailIntent
from ai_employee.pipeline.context import EngineContext
from ai_employee.vault.fsops import candidate_names
from ai_employee.vault.layout import INBOX

log = structlog.get_logger(__name__)


def recover(ctx: EngineContext) -> int:
    """Sort out the intents a crash left; returns how many notes were found written."""
    ledger = ctx.ledger
    intents = ledger.mail_writing()
    if not intents:
        return 0
    ingesting = {intent.get("sha256") for intent in ledger.intents()}
    written: dict[str, str] = {}
    forget: list[str] = []
    for intent in intents:
        name = _written_as(ctx, intent, ingesting)
        if name is None:
            forget.append(intent.gmail_id)
        else:
            written[intent.gmail_id] = name
    ledger.mail_stored(written)
    ledger.forget_mail(forget)
    log.info("gmail intents recovered", written=len(written), forgotten=len(forget))
    return len(written)


def _written_as(ctx: EngineContext, intent: MailIntent, ingesting: set[str | None]) -> str | None:
    if ctx.ledger.source(f"sha256:{intent.sha256}") or intent.sha256 in ingesting:
        return intent.note  # ingest has taken it (or is taking it) already
    inbox = ctx.vault.folder(INBOX)
    # Every free variant of the name it may have been given (an earlier one may have gone since).
    for candidate in itertools.islice(candidate_names(intent.note), len(os.listdir(inbox)) + 1):
        path = inbox / candidate
        with contextlib.suppress(OSError):
            if hashlib.sha256(path.read_bytes()).hexdigest() == intent.sha256:
                return candidate
    return None
