"""The result of extracting a dropped file, and the fields every kind of extraction shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple


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
    # Set when the display name poses as someone else (holds another address, control characters or
    # line breaks): says what the name shows and where the mail really came from.
    sender_warning: str | None = None
    # Set for bulk or automated mail (a mailing list, a newsletter, an auto-reply): which header says so.
    bulk: str | None = None
    # Set for mail from Gmail (a note the Gmail source wrote): Gmail's ids of the message and its thread.
    gmail_id: str | None = None
    thread_id: str | None = None


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


class Common(NamedTuple):
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
