"""Email files (.eml and suffix-less RFC 5322 messages): headers, a plain-text body, attachments."""

from __future__ import annotations

import codecs
import contextlib
import re
import unicodedata
from datetime import date, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import IO, Any

from ai_employee.vault.extract.html_text import html_to_text
from ai_employee.vault.extract.result import Common, EmailInfo, Extracted
from ai_employee.vault.extract.text import (
    MAX_PROBLEM_CHARS,
    cap,
    clean_line,
    clean_text,
    decode,
    human_size,
    problem,
)

_MAX_EMAIL_BYTES = 32 << 20  # above common provider limits; a bigger .eml is parsed from this prefix


def from_email(fh: IO[bytes], c: Common) -> Extracted:
    """The result for the email in `fh`, parsed from at most its first 32 MiB."""
    fh.seek(0)
    data = fh.read(_MAX_EMAIL_BYTES)
    if c.size_bytes > len(data):
        c.problems.append(f"email larger than {human_size(_MAX_EMAIL_BYTES)}: parsed only its start")
    return _from_bytes(data, c._replace(media_type="message/rfc822"))


def iso_date(raw: str) -> str | None:
    """ISO 8601 for an RFC 5322 or ISO date; the raw value if neither parses; None if empty."""
    if not raw:
        return None
    try:
        return parsedate_to_datetime(raw).isoformat()
    except (TypeError, ValueError, IndexError, OverflowError):
        pass
    with contextlib.suppress(ValueError):
        parsed = date.fromisoformat(raw) if len(raw) <= 10 else datetime.fromisoformat(raw)
        return parsed.isoformat()
    return raw


def _from_bytes(data: bytes, c: Common) -> Extracted:
    try:
        msg = BytesParser(policy=policy.default).parsebytes(data)
        info = email_info(msg, c.problems)
        body, attachments = _email_body(msg, c.max_preview_bytes, c.problems)
        defects = sorted({type(d).__name__ for part in msg.walk() for d in part.defects})
    except Exception as exc:  # the email package still has parser bugs on hostile input
        c.problems.append(problem("broken MIME", exc))
        text, _ = decode(data[: 4 * c.max_preview_bytes], complete=False)
        preview, cut = cap(clean_text(text), c.max_preview_bytes)
        return c.make("email", preview, cut, email=EmailInfo("", "", [], [], "", None, None, None))
    if defects:
        c.problems.append(clean_line("broken MIME: " + ", ".join(defects), MAX_PROBLEM_CHARS))
    tail = f"\n\nAttachments: {', '.join(attachments)}" if attachments else ""
    # The attachment list goes last but must survive truncation of a long body.
    budget = max(0, c.max_preview_bytes - len(tail.encode()))
    preview, cut = cap(body.rstrip() if tail else body, budget)
    preview, cut_tail = cap(preview + tail, c.max_preview_bytes)
    return c.make("email", preview, cut or cut_tail, title=info.subject or None, email=info)


def _header(msg: EmailMessage, name: str, problems: list[str]) -> Any:
    """The parsed header `name` (or None); a header the default policy cannot parse comes back raw."""
    try:
        value = msg.get(name)
        str(value)  # some parsing is lazy: make it fail here rather than later
    except Exception as exc:
        problems.append(problem(f"broken MIME: {name} header", exc))
        raw = next((v for k, v in msg.raw_items() if k.lower() == name), None)
        with contextlib.suppress(Exception):  # unknown charsets, bad encoded words: keep it raw
            return str(make_header(decode_header(raw))) if raw is not None else None
        return raw
    for defect in getattr(value, "defects", ())[:1]:
        problems.append(clean_line(f"broken MIME: {name} header: {defect}", MAX_PROBLEM_CHARS))
    return value


def _address_pairs(msg: EmailMessage, name: str, problems: list[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header; names decoded but not yet cleaned.

    An address only ever comes from the header's own structure. A header the parser refuses (an encoded
    display name holding a line break, say) is split as it was sent, before its encoded words are
    decoded: decoding first would let a name like `=?utf-8?q?Dana_=3Cdana=40own.example=3E?=` pose as
    an address."""
    try:
        value = msg.get(name)
        parsed = getattr(value, "addresses", None)
        if value is not None and parsed is None:
            str(value)
    except Exception as exc:
        problems.append(problem(f"broken MIME: {name} header", exc))
        value, parsed = None, None
    if parsed is not None:
        for defect in getattr(value, "defects", ())[:1]:
            problems.append(clean_line(f"broken MIME: {name} header: {defect}", MAX_PROBLEM_CHARS))
        return [(a.display_name, a.addr_spec) for a in parsed]
    raw = next((str(v) for k, v in msg.raw_items() if k.lower() == name), None)
    if raw is None:
        return []
    return [(_decoded(n), a) for n, a in getaddresses([raw])]


def _decoded(words: str) -> str:
    with contextlib.suppress(Exception):  # unknown charsets, bad encoded words: keep it as sent
        return str(make_header(decode_header(words)))
    return words


def _addresses(msg: EmailMessage, name: str, problems: list[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header, cleaned."""
    return [(clean_line(n), clean_line(a)) for n, a in _address_pairs(msg, name, problems)]


_ADDRESS_LIKE = re.compile(r"[^\s<>@\"',;:()]+@[^\s<>@\"',;:()]+\.[^\s<>@\"',;:()]+")


_ADDR_SPEC = re.compile(r"[^\s<>@\"',;:()]+@[^\s<>@\"',;:()]+")


def sender_warning(display_name: str, address: str) -> str | None:
    """Why a sender's display name is not to be believed, or None: it shows an address other than the
    one the mail came from, or holds control characters or (encoded) line breaks."""
    shown = sorted({m.rstrip(".").lower() for m in _ADDRESS_LIKE.findall(display_name)} - {address.lower()})
    real = clean_line(address) or "an unknown address"
    if shown:
        return clean_line(f"the name shows {', '.join(shown)}, the mail came from {real}", MAX_PROBLEM_CHARS)
    if any(unicodedata.category(ch) == "Cc" for ch in display_name):
        return clean_line(
            f"the name holds control characters or line breaks, the mail came from {real}", MAX_PROBLEM_CHARS
        )
    return None


def email_info(msg: EmailMessage, problems: list[str]) -> EmailInfo:
    raw_name, raw_addr = next(iter(_address_pairs(msg, "from", problems)), ("", ""))
    if not _ADDR_SPEC.fullmatch(raw_addr.strip()):
        raw_addr = ""  # no usable address (an encoded word, a bare name): never guessed from anything else
    sender = (clean_line(raw_name), clean_line(raw_addr))
    text = {
        name: clean_line(str(_header(msg, name, problems) or ""))
        for name in ("subject", "date", "message-id", "in-reply-to")
    }
    return EmailInfo(
        from_name=sender[0],
        from_addr=sender[1],
        to=[addr or name for name, addr in _addresses(msg, "to", problems)],
        cc=[addr or name for name, addr in _addresses(msg, "cc", problems)],
        subject=text["subject"],
        date=iso_date(text["date"]),
        message_id=text["message-id"] or None,
        in_reply_to=text["in-reply-to"] or None,
        sender_warning=sender_warning(raw_name, raw_addr),
        bulk=bulk_reason(msg, problems),
    )


def bulk_reason(msg: EmailMessage, problems: list[str]) -> str | None:
    """Which header marks this as bulk or automated mail, if one does (RFC 2369, RFC 3834)."""
    for name in ("list-unsubscribe", "list-id"):
        if _header(msg, name, problems):
            return f"it has a {name.title()} header"
    precedence = str(_header(msg, "precedence", problems) or "").strip().lower()
    if precedence in ("bulk", "list", "junk"):
        return f"it is marked Precedence: {precedence}"
    submitted = str(_header(msg, "auto-submitted", problems) or "").strip().lower()
    if submitted and submitted != "no":
        return f"it is marked Auto-Submitted: {clean_line(submitted)[:40]}"
    return None


def split_parts(msg: EmailMessage) -> tuple[dict[str, EmailMessage], list[EmailMessage]]:
    """The message's text parts (the first of each type) and its attachments (named parts, parts marked
    as attachments, and anything not text)."""
    texts: dict[str, EmailMessage] = {}
    attachments: list[EmailMessage] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if part.get_filename() or part.get_content_disposition() == "attachment" or not ctype.startswith("text/"):
            attachments.append(part)
        else:
            texts.setdefault(ctype, part)
    return texts, attachments


def body_text(texts: dict[str, EmailMessage], max_bytes: int, problems: list[str]) -> str:
    """The body as clean plain text: text/plain preferred over converted HTML."""
    if "text/plain" in texts:
        return clean_text(_part_text(texts["text/plain"], problems))
    if "text/html" in texts:
        # Markup is mostly overhead, and this much HTML gives more text than a preview can hold.
        return clean_text(html_to_text(_part_text(texts["text/html"], problems)[: max(16 * max_bytes, 1 << 20)]))
    return ""


def attachment_name(part: EmailMessage) -> str:
    return clean_line(part.get_filename() or "unnamed " + part.get_content_type(), 200)


def _email_body(msg: EmailMessage, max_preview_bytes: int, problems: list[str]) -> tuple[str, list[str]]:
    """The body as plain text (text/plain preferred over converted HTML) and the attachment list."""
    texts, parts = split_parts(msg)
    attachments = []
    for part in parts:
        payload = part.get_payload(decode=True)
        size = human_size(len(payload) if isinstance(payload, bytes) else 0)
        attachments.append(f"{attachment_name(part)} ({size})")
    return body_text(texts, max_preview_bytes, problems), attachments[:50]


def _part_text(part: EmailMessage, problems: list[str]) -> str:
    """Decode one text part with its declared charset, falling back the way plain files do."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "us-ascii"
    try:
        # Bodies declared (or defaulting to) ASCII or UTF-8 are often really UTF-8 or cp1252: sniff.
        if codecs.lookup(charset).name not in ("ascii", "utf-8"):
            return payload.decode(charset, "replace")
    except (LookupError, ValueError, UnicodeError):  # unknown names, or codecs like "rot13"
        problems.append(clean_line(f"unknown charset {charset!r}", 200))
    text, found = decode(payload, complete=True)
    problems += [found] if found else []
    return text
