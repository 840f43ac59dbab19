"""One Gmail message as a note for `Inbox/`: Obsidian properties (written with a YAML library: subjects
hold quotes and colons), the body as plain text, and the attachments saved under
`Attachments/Gmail/<message id>/` and linked.

The body is the sender's words, so it is shown as text, inside a fence: a hostile or merely chatty email
cannot make Obsidian load a remote image (a tracking pixel), embed another note of the vault, or render
markup that poses as the engine's own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import yaml

from ai_employee.config_sections import NoiseRule
from ai_employee.gmail.noise import matching_rule
from ai_employee.vault.actions import clean_text, file_title
from ai_employee.vault.extract.mail import attachment_name, body_text, email_info, split_parts
from ai_employee.vault.extract.text import clean_line
from ai_employee.vault.layout import ATTACHMENTS
from ai_employee.vault.notes import FAST_DUMPER

MAX_BODY_BYTES = 1 << 20  # the note keeps this much of a body; the rest is cut, and the note says so
MAX_ATTACHMENTS = 50
GMAIL_ATTACHMENTS = f"{ATTACHMENTS}/Gmail"
_GMAIL_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


class BadMessage(ValueError):
    """What Gmail returned is not a message the engine can read (no raw body, a malformed id)."""


@dataclass(frozen=True)
class MailNote:
    """What one message becomes: a note (its preferred name and bytes) and files to save first."""

    gmail_id: str
    thread_id: str
    name: str
    text: bytes
    attachments: list[tuple[str, bytes]] = field(default_factory=list)  # (vault path, bytes)
    rule: str | None = None  # the noise rule that filed it without a reply

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text).hexdigest()


@dataclass(frozen=True)
class Skipped:
    """A message a noise rule keeps out of the vault."""

    gmail_id: str
    thread_id: str
    rule: str


def parse_raw(message: dict[str, Any]) -> bytes:
    """The message as sent (RFC 5322 bytes), from the `raw` field of a `format=raw` answer."""
    raw = message.get("raw")
    if not isinstance(raw, str):
        raise BadMessage("Gmail returned the message without its raw body")
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadMessage(f"the raw body is not base64url ({exc})") from None


def parse(message: dict[str, Any]) -> EmailMessage:
    parsed: EmailMessage = BytesParser(policy=policy.default).parsebytes(parse_raw(message))
    return parsed


def ids(message: dict[str, Any]) -> tuple[str, str]:
    """The message's and its thread's Gmail ids, checked: they become folder names and API paths."""
    gmail_id, thread_id = str(message.get("id") or ""), str(message.get("threadId") or "")
    if not _GMAIL_ID.fullmatch(gmail_id) or not _GMAIL_ID.fullmatch(thread_id):
        raise BadMessage(f"Gmail returned malformed ids ({gmail_id[:70]!r}, {thread_id[:70]!r})")
    return gmail_id, thread_id


def received(message: dict[str, Any]) -> datetime:
    """When Gmail received the message (its internalDate), in local time."""
    try:
        return datetime.fromtimestamp(int(message.get("internalDate") or 0) / 1000, UTC).astimezone()
    except (ValueError, OverflowError, OSError):
        return datetime.now().astimezone()


def render(message: dict[str, Any], rules: list[NoiseRule]) -> MailNote | Skipped:
    """The note for one `format=raw` message from Gmail, or why a noise rule skips it."""
    gmail_id, thread_id = ids(message)
    labels = [clean_line(str(label), 100) for label in message.get("labelIds") or []][:50]
    msg = parse(message)
    problems: list[str] = []
    info = email_info(msg, problems)
    rule = matching_rule(rules, info.from_addr, info.subject, msg, labels)
    if rule is not None and rule.action == "skip":
        return Skipped(gmail_id, thread_id, rule.name)
    texts, parts = split_parts(msg)
    body = body_text(texts, MAX_BODY_BYTES, problems)
    encoded = body.encode("utf-8")
    if len(encoded) > MAX_BODY_BYTES:
        body = encoded[:MAX_BODY_BYTES].decode("utf-8", "ignore") + "\n[… the rest of the message was cut]"
    folder = f"{GMAIL_ATTACHMENTS}/{gmail_id}"
    saved: list[tuple[str, bytes]] = []
    taken: set[str] = set()
    for part in parts[:MAX_ATTACHMENTS]:
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        name = _attachment_file(attachment_name(part), taken)
        saved.append((f"{folder}/{name}", payload))
    if len(parts) > MAX_ATTACHMENTS:
        problems.append(f"{len(parts)} attachments: only the first {MAX_ATTACHMENTS} were saved")
    bulk = info.bulk or (f"your noise rule “{rule.name}” files it without a reply" if rule else None)
    props: dict[str, Any] = {
        "type": "email",
        "from": display_address(info.from_name, info.from_addr),
        "to": info.to,
        "cc": info.cc,
        "subject": info.subject,
        "date": info.date or received(message).isoformat(timespec="seconds"),
        "message_id": info.message_id,
        "in_reply_to": info.in_reply_to,
        "thread_id": thread_id,
        "gmail_id": gmail_id,
        "labels": labels,
        "has_attachments": bool(saved),
    }
    if saved:
        props["attachments"] = [f"[[{path}]]" for path, _ in saved]
    if bulk:
        props["bulk"] = bulk
    if rule is not None:
        props["noise"] = rule.name
    if info.sender_warning:
        props["sender_warning"] = info.sender_warning
    if problems:
        props["problems"] = problems[:10]
    front = yaml.dump(  # libyaml's safe dumper when there is one: several times faster
        {k: v for k, v in props.items() if v is not None},
        Dumper=FAST_DUMPER,
        sort_keys=False,
        allow_unicode=True,
        width=10_000,
    )
    fence = "`" * max(3, _longest_run(body, "`") + 1)
    lines = [f"---\n{front}---", "", f"{fence}text", body.rstrip("\n"), fence]
    if saved:
        lines += ["", "## Attachments", "", *(f"- [[{path}]]" for path, _ in saved)]
    text = "\n".join(lines) + "\n"
    title = file_title(info.subject or f"Email from {info.from_addr or 'unknown sender'}", 100)
    name = f"{received(message):%Y-%m-%d} {title}.md"
    return MailNote(gmail_id, thread_id, name, text.encode("utf-8"), saved, rule.name if rule else None)


def display_address(name: str, address: str) -> str:
    """`Name <address>` as a person reads it (no MIME encoded words, so a display name that poses as
    another address stays visible, to the reader and to ingest's check); quoted where it must be."""
    if not address:
        return name
    if not name:
        return address
    if re.search(r'[()<>@,;:\\".\[\]]', name):
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{address}>"


def _longest_run(text: str, char: str) -> int:
    runs = re.findall(re.escape(char) + "+", text)
    return max((len(run) for run in runs), default=0)


def _attachment_file(name: str, taken: set[str]) -> str:
    """A safe, unique file name for an attachment: no path, no characters links choke on."""
    stem, dot, suffix = clean_text(name, 200).rpartition(".")
    if not dot or not re.fullmatch(r"[A-Za-z0-9_-]{1,15}", suffix):
        stem, suffix = clean_text(name, 200), ""
    base = file_title(stem, 100) + (f".{suffix}" if suffix else "")
    candidate, n = base, 2
    while candidate.lower() in taken:
        candidate = f"{file_title(stem, 100)} ({n})" + (f".{suffix}" if suffix else "")
        n += 1
    taken.add(candidate.lower())
    return candidate
