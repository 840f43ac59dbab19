"""Reading a dropped file safely and telling what it is: regular-file checks, hashing, media type."""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import stat
import unicodedata
from pathlib import Path
from typing import IO

from ai_employee.vault.extract.text import decode

OCTET = "application/octet-stream"

_CHUNK_BYTES = 1 << 20
_SNIFF_BYTES = 8 << 10

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

_HEADER_LINE_RE = re.compile(rb"^([A-Za-z][A-Za-z0-9-]*):", re.M)
_EMAIL_MARKERS = frozenset({b"date", b"subject", b"message-id", b"received"})


def open_regular(path: Path) -> IO[bytes]:
    """Open `path` for reading if it is a regular file; raise ValueError for anything else."""
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


def hash_with_head(fh: IO[bytes], head_bytes: int) -> tuple[int, str, bytes]:
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


def media_type(suffix: str, head: bytes, binary: bool, problems: list[str]) -> str:
    """The media type from magic numbers first, then the suffix, then whether the content is text."""
    # Only the suffix is looked up: guess_type would read a name like "data:..." as a URL.
    guessed, encoding = _MIME.guess_type("x" + suffix, strict=False)
    guessed = _COMPRESSION.get(encoding or "", guessed)
    sniffed = next((media for magic, media in _MAGIC if head.startswith(magic)), None)
    # .docx, .odt, .jar and friends are ZIPs too: the suffix gives the more specific type.
    if sniffed == "application/zip" and guessed is not None and not _is_textual(guessed):
        return guessed
    if sniffed is not None and guessed not in (None, OCTET, sniffed):
        problems.append(f"content is {sniffed}, not what the {suffix} suffix says")
    if sniffed is not None:
        return sniffed
    if guessed in _MAGIC_TYPES or (guessed is not None and binary and _is_textual(guessed)):
        problems.append(f"content does not match the {suffix} suffix")
        guessed = None
    return guessed or (OCTET if binary else "text/plain")


def _is_textual(media: str) -> bool:
    return media.startswith("text/") or media in _TEXTUAL


def looks_binary(head: bytes) -> bool:
    """True for content not worth showing as text: NULs, or more than 10% control characters."""
    sample = head[:_SNIFF_BYTES]
    if b"\0" in sample:
        return True
    text, _ = decode(sample, complete=False)
    odd = sum(1 for c in text if c not in "\t\n\r\f\b\x1b" and unicodedata.category(c) == "Cc")
    return odd > len(text) // 10


def looks_like_email(head: bytes) -> bool:
    """True when the content starts with an RFC 5322 header block (for files with no suffix)."""
    block = head[:_SNIFF_BYTES].replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    names = {m.group(1).lower() for m in _HEADER_LINE_RE.finditer(block)}
    return _HEADER_LINE_RE.match(block) is not None and b"from" in names and bool(names & _EMAIL_MARKERS)
