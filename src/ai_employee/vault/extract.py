"""Content extraction: what a dropped file is, plus a size-capped text preview for the planner.

Everything here reads untrusted files. `extract` never raises on bad content: it degrades to the best
description it can give and says what went wrong in `problems`. It only raises for files it must not
or cannot read at all (OSError, or ValueError for anything that is not a regular file).
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import logging
import mimetypes
import os
import re
import stat
import threading
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any, NamedTuple

import yaml

_CHUNK_BYTES = 1 << 20
_MIN_HEAD_BYTES = 128 << 10  # always enough for the binary sniff and a whole capped frontmatter
_SNIFF_BYTES = 8 << 10
_MAX_PDF_BYTES = 50 << 20
_MAX_EMAIL_BYTES = 32 << 20  # above common provider limits; a bigger .eml is parsed from this prefix
_MAX_FRONTMATTER_CHARS = 64 << 10
_MAX_FRONTMATTER_KEYS = 100
_MAX_VALUE_CHARS = 1000
_MAX_LINE_CHARS = 998  # RFC 5322's line limit: no sane header value is longer
_MAX_PROBLEM_CHARS = 300
_MAX_PDF_LOG_PROBLEMS = 5
_OCTET = "application/octet-stream"

_MAGIC = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),
)
_MAGIC_TYPES = frozenset(media for _, media in _MAGIC)
_TEXTUAL = frozenset({"application/json", "application/xml", "application/yaml", "message/rfc822"})
_COMPRESSION = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz"}
_LABELS = {
    "image/png": "PNG image",
    "image/jpeg": "JPEG image",
    "image/gif": "GIF image",
    "application/zip": "ZIP archive",
    "text/plain": "text file",
    "text/csv": "CSV file",
    "text/markdown": "Markdown note",
    "text/html": "HTML file",
    _OCTET: "binary file",
}
_NOTE_SUFFIXES = frozenset({".md", ".markdown"})

# A private table built from Python's defaults only, so results do not depend on the host's
# /etc/mime.types (which differs between distributions).
_MIME = mimetypes.MimeTypes()
_OFFICE = "application/vnd.openxmlformats-officedocument."
for _suffix, _media in {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".ics": "text/calendar",
    ".docx": _OFFICE + "wordprocessingml.document",
    ".xlsx": _OFFICE + "spreadsheetml.sheet",
    ".pptx": _OFFICE + "presentationml.presentation",
    ".odt": "application/vnd.oasis.opendocument.text",
}.items():
    _MIME.add_type(_media, _suffix)

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_JUNK_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")
_FRONTMATTER_RE = re.compile(r"\A---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_HEADING_RE = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.M)
_HEADER_LINE_RE = re.compile(rb"^([A-Za-z][A-Za-z0-9-]*):", re.M)
_EMAIL_MARKERS = frozenset({b"date", b"subject", b"message-id", b"received"})

# pypdf reports the repairs it makes to malformed files through its loggers; they become problems.
# The lock keeps two extractions from swapping that shared logger's handlers under each other.
_PYPDF_LOCK = threading.Lock()


@dataclass(frozen=True)
class EmailInfo:
    """Sender, recipients and threading headers of an email (or of a note that quotes one)."""

    from_name: str
    from_addr: str
    to: list[str]
    cc: list[str]
    subject: str
    date: str | None  # ISO 8601 if parseable, else the raw (cleaned) value
    message_id: str | None
    in_reply_to: str | None


@dataclass(frozen=True)
class Extracted:
    """What one dropped file is, with a size-capped text preview for planning."""

    kind: str  # "text" | "note" | "email" | "pdf" | "binary" | "empty"
    media_type: str
    size_bytes: int
    sha256: str
    preview: str
    truncated: bool
    title: str | None
    email: EmailInfo | None
    frontmatter: dict[str, str]
    problems: list[str]
    pages: int | None = None  # PDF page count when known


class _Common(NamedTuple):
    """What every result shares, gathered before the per-kind extraction."""

    size_bytes: int
    sha256: str
    media_type: str
    max_preview_bytes: int
    problems: list[str]

    def make(self, kind: str, preview: str = "", truncated: bool = False, **more: Any) -> Extracted:
        """Build the result; `more` may set title, email, frontmatter and pages."""
        more = {"title": None, "email": None, "frontmatter": {}, "problems": self.problems, **more}
        return Extracted(kind, self.media_type, self.size_bytes, self.sha256, preview, truncated, **more)


def extract(path: Path, max_preview_bytes: int = 65536) -> Extracted:
    """Describe the regular file at `path` and extract a preview of at most `max_preview_bytes` UTF-8."""
    if max_preview_bytes < 0:
        raise ValueError("max_preview_bytes must not be negative")
    suffix = path.suffix.lower()
    with _open_regular(path) as fh:
        size, digest, head = _hash_with_head(fh, max(4 * max_preview_bytes, _MIN_HEAD_BYTES))
        problems: list[str] = []
        binary = size > 0 and _looks_binary(head)
        c = _Common(size, digest, _media_type(suffix, head, binary, problems), max_preview_bytes, problems)
        if size == 0:
            return c.make("empty")
        if c.media_type == "application/pdf":
            return _from_pdf(fh, c)
        if c.media_type == "message/rfc822" or (not binary and not suffix and _looks_like_email(head)):
            fh.seek(0)
            data = fh.read(_MAX_EMAIL_BYTES)
            if size > len(data):
                problems.append(f"email larger than {_human_size(_MAX_EMAIL_BYTES)}: parsed only its start")
            return _from_email(data, c._replace(media_type="message/rfc822"))
    if binary:
        return c.make("binary")
    text, problem = _decode(head, complete=len(head) == size)
    problems += [problem] if problem else []
    if suffix in _NOTE_SUFFIXES:
        return _from_note(_clean_text(text), len(head) < size, c)
    preview, cut = _cap(_clean_text(text), max_preview_bytes)
    return c.make("text", preview, cut or len(head) < size)


def describe(ex: Extracted) -> str:
    """One human line for logs and notes, e.g. "PDF, 2 pages, 12.1 KiB" or "email from A <a@b>"."""
    size = _human_size(ex.size_bytes)
    who = ""
    if ex.email is not None:
        name, addr = ex.email.from_name, ex.email.from_addr
        who = f"{name} <{addr}>" if name and addr else name or addr
    if ex.kind == "empty":
        return "empty file"
    if ex.kind == "email":
        return f"email from {who}" if who else "email with no sender"
    if ex.kind == "note" and who:
        return f"note from {who}, {size}"
    if ex.kind == "pdf" and ex.pages is not None:
        return f"PDF, {ex.pages} page{'' if ex.pages == 1 else 's'}, {size}"
    if ex.kind == "pdf":
        return f"PDF, {size}"
    return f"{_LABELS.get(ex.media_type, ex.media_type + ' file')}, {size}"


def _open_regular(path: Path) -> IO[bytes]:
    # lstat first: opening a FIFO would block, and opening a device can have side effects.
    before = os.lstat(path)
    if not stat.S_ISREG(before.st_mode):
        raise ValueError(f"refusing to read {path}: not a regular file")
    # O_NONBLOCK covers a FIFO swapped in after the lstat; O_NOFOLLOW a symlink swapped in.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(now.st_mode):
            raise ValueError(f"refusing to read {path}: it was replaced while being opened")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _hash_with_head(fh: IO[bytes], head_bytes: int) -> tuple[int, str, bytes]:
    """Hash the whole file in chunks, keeping only its first `head_bytes`: (size, sha256, head)."""
    digest = hashlib.sha256()
    head = bytearray()
    size = 0
    while chunk := fh.read(_CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
        if len(head) < head_bytes:
            head += chunk[: head_bytes - len(head)]
    return size, digest.hexdigest(), bytes(head)


def _media_type(suffix: str, head: bytes, binary: bool, problems: list[str]) -> str:
    """The media type from magic numbers first, then the suffix, then whether the content is text."""
    # Only the suffix is looked up: guess_type would read a name like "data:..." as a URL.
    guessed, encoding = _MIME.guess_type("x" + suffix, strict=False)
    guessed = _COMPRESSION.get(encoding or "", guessed)
    sniffed = next((media for magic, media in _MAGIC if head.startswith(magic)), None)
    # .docx, .odt, .jar and friends are ZIPs too: the suffix gives the more specific type.
    if sniffed == "application/zip" and guessed is not None and not _is_textual(guessed):
        return guessed
    if sniffed is not None and guessed not in (None, _OCTET, sniffed):
        problems.append(f"content is {sniffed}, not what the {suffix} suffix says")
    if sniffed is not None:
        return sniffed
    if guessed in _MAGIC_TYPES or (guessed is not None and binary and _is_textual(guessed)):
        problems.append(f"content does not match the {suffix} suffix")
        guessed = None
    return guessed or (_OCTET if binary else "text/plain")


def _is_textual(media: str) -> bool:
    return media.startswith("text/") or media in _TEXTUAL


def _looks_binary(head: bytes) -> bool:
    """True for content not worth showing as text: NULs, or more than 10% control characters."""
    sample = head[:_SNIFF_BYTES]
    if b"\0" in sample:
        return True
    text, _ = _decode(sample, complete=False)
    odd = sum(1 for c in text if c not in "\t\n\r\f\b\x1b" and unicodedata.category(c) == "Cc")
    return odd > len(text) // 10


def _looks_like_email(head: bytes) -> bool:
    """True when the content starts with an RFC 5322 header block (for files with no suffix)."""
    block = head[:_SNIFF_BYTES].replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    names = {m.group(1).lower() for m in _HEADER_LINE_RE.finditer(block)}
    return _HEADER_LINE_RE.match(block) is not None and b"from" in names and bool(names & _EMAIL_MARKERS)


def _decode(data: bytes, complete: bool) -> tuple[str, str | None]:
    """Decode as UTF-8 (BOM stripped), else cp1252 or latin-1: (text, problem or None).

    When `complete` is false the data is a prefix, so a character cut at its end is dropped rather
    than reported as an error.
    """
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=complete), None
    except UnicodeDecodeError:
        pass
    lenient = codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=complete)
    bad = lenient.count("\ufffd")
    # Mostly valid multi-byte UTF-8 with a few bad bytes: decoding it as cp1252 would garble it all.
    if sum(1 for c in lenient if c > "\x7f") - bad > bad:
        return lenient, "undecodable bytes replaced (invalid UTF-8)"
    try:
        return data.decode("cp1252"), "not UTF-8: decoded as cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "not UTF-8: decoded as latin-1"


def _clean_text(text: str) -> str:
    # Control characters mean nothing in a preview and break the YAML and Markdown it ends up in.
    return _CONTROL_RE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _clean_line(value: str, limit: int = _MAX_LINE_CHARS) -> str:
    """Make an untrusted value safe for one line of YAML or Markdown: no CR/LF or controls, capped."""
    value = _SURROGATE_RE.sub("\ufffd", _LINE_JUNK_RE.sub(" ", value))
    return " ".join(value.split())[:limit]


def _cap(text: str, max_bytes: int) -> tuple[str, bool]:
    """Cut `text` to at most `max_bytes` of UTF-8 on a character boundary: (text, was_cut)."""
    data = text.encode("utf-8", "replace")  # stray surrogates (from PDFs, say) become "?"
    return data[:max_bytes].decode("utf-8", "ignore"), len(data) > max_bytes


def _problem(what: str, exc: BaseException) -> str:
    return _clean_line(f"{what}: {type(exc).__name__}: {exc}", _MAX_PROBLEM_CHARS)


def _human_size(size_bytes: int) -> str:
    if size_bytes < 1024:
        return f"{size_bytes} B"
    units = ("KiB", "MiB", "GiB", "TiB")
    value, index = size_bytes / 1024, 0
    while value >= 1024 and index < len(units) - 1:
        value, index = value / 1024, index + 1
    return f"{value:.1f} {units[index]}"


def _from_note(text: str, cut_early: bool, c: _Common) -> Extracted:
    frontmatter: dict[str, str] = {}
    body = text
    match = _FRONTMATTER_RE.match(text[: _MAX_FRONTMATTER_CHARS + 8])
    if match is None and text.startswith("---\n"):
        c.problems.append("frontmatter not closed within 64 KiB: read as body text")
    elif match is not None:
        try:
            frontmatter = _parse_frontmatter(match.group(1) or "")
            body = text[match.end() :]
        except Exception as exc:  # bad YAML, a non-mapping, aliases, deep nesting: all just text
            c.problems.append(_problem("frontmatter ignored, read as body text", exc))
    preview, cut = _cap(body, c.max_preview_bytes)
    fields = {key.lower(): value for key, value in frontmatter.items()}
    heading = _HEADING_RE.search(body, 0, 4 * c.max_preview_bytes)
    title = _clean_line(fields.get("title") or fields.get("subject") or (heading and heading[1]) or "")
    email = _note_email(fields) if "from" in fields or "subject" in fields else None
    truncated = cut or cut_early
    return c.make("note", preview, truncated, title=title or None, email=email, frontmatter=frontmatter)


class _FrontmatterLoader(yaml.BaseLoader):
    """Safe YAML loading that resolves no implicit types and refuses aliases.

    Without implicit types YAML 1.1's surprises cannot happen: `no` stays "no", `12:30` stays
    "12:30", dates stay as written. Without aliases an "alias bomb" cannot expand a few lines into
    billions of items once stringified.
    """

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases are not allowed in frontmatter")
        return super().compose_node(parent, index)


def _parse_frontmatter(span: str) -> dict[str, str]:
    """Parse a frontmatter span into capped string values; raise if it is not a YAML mapping."""
    data = yaml.load(span, Loader=_FrontmatterLoader)  # safe: builds only str, list and dict
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"frontmatter is a {type(data).__name__}, not a mapping")
    result: dict[str, str] = {}
    for key, value in list(data.items())[:_MAX_FRONTMATTER_KEYS]:
        flat = isinstance(value, list) and all(isinstance(item, str) for item in value)
        text = ", ".join(value) if flat else value if isinstance(value, str) else json.dumps(value)
        result[_clean_line(str(key), 100)] = _CONTROL_RE.sub("", text).strip()[:_MAX_VALUE_CHARS]
    return result


def _note_email(fields: dict[str, str]) -> EmailInfo:
    """Email headers quoted in a note's frontmatter (`from`, `to`, `cc`, `subject`, `date`)."""
    raw = {key: _clean_line(value) for key, value in fields.items()}
    name, addr = parseaddr(raw.get("from", ""))
    if "@" not in addr:
        name, addr = raw.get("from", ""), ""
    return EmailInfo(
        from_name=_clean_line(name),
        from_addr=_clean_line(addr),
        to=[_clean_line(a or n) for n, a in getaddresses([raw.get("to", "")]) if a or n],
        cc=[_clean_line(a or n) for n, a in getaddresses([raw.get("cc", "")]) if a or n],
        subject=raw.get("subject", ""),
        date=_iso_date(raw.get("date", "")),
        message_id=raw.get("message_id") or raw.get("message-id") or None,
        in_reply_to=raw.get("in_reply_to") or raw.get("in-reply-to") or None,
    )


def _iso_date(raw: str) -> str | None:
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


def _from_email(data: bytes, c: _Common) -> Extracted:
    try:
        msg = BytesParser(policy=policy.default).parsebytes(data)
        info = _email_info(msg, c.problems)
        body, attachments = _email_body(msg, c.max_preview_bytes, c.problems)
        defects = sorted({type(d).__name__ for part in msg.walk() for d in part.defects})
    except Exception as exc:  # the email package still has parser bugs on hostile input
        c.problems.append(_problem("broken MIME", exc))
        text, _ = _decode(data[: 4 * c.max_preview_bytes], complete=False)
        preview, cut = _cap(_clean_text(text), c.max_preview_bytes)
        return c.make("email", preview, cut, email=EmailInfo("", "", [], [], "", None, None, None))
    if defects:
        c.problems.append(_clean_line("broken MIME: " + ", ".join(defects), _MAX_PROBLEM_CHARS))
    tail = f"\n\nAttachments: {', '.join(attachments)}" if attachments else ""
    # The attachment list goes last but must survive truncation of a long body.
    budget = max(0, c.max_preview_bytes - len(tail.encode()))
    preview, cut = _cap(body.rstrip() if tail else body, budget)
    preview, cut_tail = _cap(preview + tail, c.max_preview_bytes)
    return c.make("email", preview, cut or cut_tail, title=info.subject or None, email=info)


def _header(msg: EmailMessage, name: str, problems: list[str]) -> Any:
    """The parsed header `name` (or None); a header the default policy cannot parse comes back raw."""
    try:
        value = msg.get(name)
        str(value)  # some parsing is lazy: make it fail here rather than later
    except Exception as exc:
        problems.append(_problem(f"broken MIME: {name} header", exc))
        raw = next((v for k, v in msg.raw_items() if k.lower() == name), None)
        with contextlib.suppress(Exception):  # unknown charsets, bad encoded words: keep it raw
            return str(make_header(decode_header(raw))) if raw is not None else None
        return raw
    for defect in getattr(value, "defects", ())[:1]:
        problems.append(_clean_line(f"broken MIME: {name} header: {defect}", _MAX_PROBLEM_CHARS))
    return value


def _addresses(msg: EmailMessage, name: str, problems: list[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header, cleaned."""
    value = _header(msg, name, problems)
    if value is None:
        return []
    parsed = getattr(value, "addresses", None)
    pairs = [(a.display_name, a.addr_spec) for a in parsed] if parsed is not None else None
    return [(_clean_line(n), _clean_line(a)) for n, a in pairs or getaddresses([str(value)])]


def _email_info(msg: EmailMessage, problems: list[str]) -> EmailInfo:
    sender = next(iter(_addresses(msg, "from", problems)), ("", ""))
    text = {
        name: _clean_line(str(_header(msg, name, problems) or ""))
        for name in ("subject", "date", "message-id", "in-reply-to")
    }
    return EmailInfo(
        from_name=sender[0],
        from_addr=sender[1],
        to=[addr or name for name, addr in _addresses(msg, "to", problems)],
        cc=[addr or name for name, addr in _addresses(msg, "cc", problems)],
        subject=text["subject"],
        date=_iso_date(text["date"]),
        message_id=text["message-id"] or None,
        in_reply_to=text["in-reply-to"] or None,
    )


def _email_body(msg: EmailMessage, max_preview_bytes: int, problems: list[str]) -> tuple[str, list[str]]:
    """The body as plain text (text/plain preferred over converted HTML) and the attachment list."""
    texts: dict[str, EmailMessage] = {}
    attachments: list[str] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        filename = part.get_filename()
        ctype = part.get_content_type()
        if filename or part.get_content_disposition() == "attachment" or not ctype.startswith("text/"):
            payload = part.get_payload(decode=True)
            size = _human_size(len(payload) if isinstance(payload, bytes) else 0)
            attachments.append(f"{_clean_line(filename or 'unnamed ' + ctype, 200)} ({size})")
        else:
            texts.setdefault(ctype, part)
    if "text/plain" in texts:
        body = _part_text(texts["text/plain"], problems)
    elif "text/html" in texts:
        # Markup is mostly overhead, and this much HTML gives more text than a preview can hold.
        body = _html_to_text(_part_text(texts["text/html"], problems)[: max(16 * max_preview_bytes, 1 << 20)])
    else:
        body = ""
    return _clean_text(body), attachments[:50]


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
        problems.append(_clean_line(f"unknown charset {charset!r}", 200))
    text, problem = _decode(payload, complete=True)
    problems += [problem] if problem else []
    return text


class _HtmlText(HTMLParser):
    """Collects the visible text of an HTML document, a line per block element."""

    _SKIP = frozenset({"script", "style", "title", "template", "noscript"})
    _BLOCKS = frozenset({"br", "p", "div", "li", "tr", "table", "blockquote", "hr", "pre", "section"})
    _BLOCKS |= {"ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skipping += tag in self._SKIP
        self.parts.append("\n" if tag in self._BLOCKS else "")

    def handle_endtag(self, tag: str) -> None:
        self._skipping = max(0, self._skipping - (tag in self._SKIP))
        self.parts.append("\n" if tag in self._BLOCKS else "")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(" ".join(data.split()) or " ")


def _html_to_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = (line.strip() for line in "".join(parser.parts).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _from_pdf(fh: IO[bytes], c: _Common) -> Extracted:
    if c.size_bytes > _MAX_PDF_BYTES:
        c.problems.append(f"PDF larger than {_human_size(_MAX_PDF_BYTES)}: text not extracted")
        return c.make("pdf")
    fh.seek(0)
    text, title, pages = _pdf_text(fh, c.max_preview_bytes, c.problems)
    preview, cut = _cap(_clean_text(text), c.max_preview_bytes)
    return c.make("pdf", preview, cut, title=title, pages=pages)


def _pdf_text(fh: IO[bytes], max_bytes: int, problems: list[str]) -> tuple[str, str | None, int | None]:
    """The PDF's text, page by page until `max_bytes` are collected: (text, title, page count)."""
    from pypdf import PdfReader  # imported here: only PDFs pay for loading pypdf

    texts: list[str] = []
    title: str | None = None
    pages: int | None = None
    with _PypdfLogCapture(problems):
        try:
            reader = PdfReader(fh, strict=False)
            if reader.is_encrypted:
                reader.decrypt("")  # many "protected" PDFs only have an owner password
            pages = len(reader.pages)
            title = _clean_line(str(reader.metadata.title or "")) if reader.metadata else None
            used = 0
            for page in reader.pages:
                if used > max_bytes:
                    break
                texts.append(page.extract_text())
                used += len(texts[-1].encode("utf-8", "replace")) + 2
        except Exception as exc:  # pypdf raises all kinds of errors on broken files
            problems.append(_problem("PDF text extraction failed", exc))
    return "\n\n".join(texts), title or None, pages


class _PypdfLogCapture(logging.Handler):
    """While active, turns pypdf's warnings about repaired files into (a few) `problems` entries."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.problems = problems
        self.seen = 0
        self.logger = logging.getLogger("pypdf")
        self.saved_propagate = True

    def emit(self, record: logging.LogRecord) -> None:
        self.seen += 1
        if self.seen <= _MAX_PDF_LOG_PROBLEMS:
            with contextlib.suppress(Exception):  # a malformed log call must not break extraction
                self.problems.append(_clean_line(f"PDF: {record.getMessage()}", _MAX_PROBLEM_CHARS))

    def __enter__(self) -> None:
        _PYPDF_LOCK.acquire()
        self.saved_propagate = self.logger.propagate
        self.logger.addHandler(self)
        self.logger.propagate = False

    def __exit__(self, *exc_info: object) -> None:
        self.logger.removeHandler(self)
        self.logger.propagate = self.saved_propagate
        _PYPDF_LOCK.release()
