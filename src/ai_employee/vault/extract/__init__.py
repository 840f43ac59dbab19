"""Content extraction: what a dropped file is, plus a size-capped text preview for the planner.

Everything here reads untrusted files. `extract` never raises on bad content: it degrades to the best
description it can give and says what went wrong in `problems`. It only raises for files it must not
or cannot read at all (OSError, or ValueError for anything that is not a regular file).

The package's modules: `sniff` opens, hashes and types the file; `text` decodes and cleans untrusted
text; `note`, `mail` (with `html_text`) and `pdf` handle one kind each; `result` holds what they return.
"""

from __future__ import annotations

from pathlib import Path

from ai_employee.vault.extract.mail import from_email
from ai_employee.vault.extract.note import from_note
from ai_employee.vault.extract.pdf import from_pdf
from ai_employee.vault.extract.result import Common, EmailInfo, Extracted
from ai_employee.vault.extract.sniff import (
    OCTET,
    hash_with_head,
    looks_binary,
    looks_like_email,
    media_type,
    open_regular,
)
from ai_employee.vault.extract.text import cap, clean_text, decode, human_size

__all__ = ["EmailInfo", "Extracted", "describe", "extract"]

_MIN_HEAD_BYTES = 128 << 10  # always enough for the binary sniff and a whole capped frontmatter
_LABELS = {
    "image/png": "PNG image",
    "image/jpeg": "JPEG image",
    "image/gif": "GIF image",
    "application/zip": "ZIP archive",
    "text/plain": "text file",
    "text/csv": "CSV file",
    "text/markdown": "Markdown note",
    "text/html": "HTML file",
    OCTET: "binary file",
}
_NOTE_SUFFIXES = frozenset({".md", ".markdown"})


def extract(path: Path, max_preview_bytes: int = 65536) -> Extracted:
    """Describe the regular file at `path` and extract a preview of at most `max_preview_bytes` UTF-8."""
    if max_preview_bytes < 0:
        raise ValueError("max_preview_bytes must not be negative")
    suffix = path.suffix.lower()
    with open_regular(path) as fh:
        size, digest, head = hash_with_head(fh, max(4 * max_preview_bytes, _MIN_HEAD_BYTES))
        problems: list[str] = []
        binary = size > 0 and looks_binary(head)
        c = Common(size, digest, media_type(suffix, head, binary, problems), max_preview_bytes, problems)
        if size == 0:
            return c.make("empty")
        if c.media_type == "application/pdf":
            return from_pdf(fh, c)
        if c.media_type == "message/rfc822" or (not binary and not suffix and looks_like_email(head)):
            return from_email(fh, c)
    if binary:
        return c.make("binary")
    text, problem = decode(head, complete=len(head) == size)
    problems += [problem] if problem else []
    if suffix in _NOTE_SUFFIXES:
        return from_note(clean_text(text), len(head) < size, c)
    preview, cut = cap(clean_text(text), max_preview_bytes)
    return c.make("text", preview, cut or len(head) < size)


def describe(ex: Extracted) -> str:
    """One human line for logs and notes, e.g. "PDF, 2 pages, 12.1 KiB" or "email from A <a@b>"."""
    size = human_size(ex.size_bytes)
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
