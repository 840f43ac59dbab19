"""PDF files: page count, title and the text of the first pages, via pypdf (loaded only when needed)."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import IO

from ai_employee.vault.extract.result import Common, Extracted
from ai_employee.vault.extract.text import MAX_PROBLEM_CHARS, cap, clean_line, clean_text, human_size, problem

_MAX_PDF_BYTES = 50 << 20
_MAX_PDF_LOG_PROBLEMS = 5

# pypdf reports the repairs it makes to malformed files through its loggers; they become problems.
# The lock keeps two extractions from swapping that shared logger's handlers under each other.
_PYPDF_LOCK = threading.Lock()


def from_pdf(fh: IO[bytes], c: Common) -> Extracted:
    """The result for the PDF in `fh`; files over 50 MiB are described without their text."""
    if c.size_bytes > _MAX_PDF_BYTES:
        c.problems.append(f"PDF larger than {human_size(_MAX_PDF_BYTES)}: text not extracted")
        return c.make("pdf")
    fh.seek(0)
    text, title, pages = _pdf_text(fh, c.max_preview_bytes, c.problems)
    preview, cut = cap(clean_text(text), c.max_preview_bytes)
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
            title = clean_line(str(reader.metadata.title or "")) if reader.metadata else None
            used = 0
            for page in reader.pages:
                if used > max_bytes:
                    break
                texts.append(page.extract_text())
                used += len(texts[-1].encode("utf-8", "replace")) + 2
        except Exception as exc:  # pypdf raises all kinds of errors on broken files
            problems.append(problem("PDF text extraction failed", exc))
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
                self.problems.append(clean_line(f"PDF: {record.getMessage()}", MAX_PROBLEM_CHARS))

    def __enter__(self) -> None:
        _PYPDF_LOCK.acquire()
        self.saved_propagate = self.logger.propagate
        self.logger.addHandler(self)
        self.logger.propagate = False

    def __exit__(self, *exc_info: object) -> None:
        self.logger.removeHandler(self)
        self.logger.propagate = self.saved_propagate
        _PYPDF_LOCK.release()
