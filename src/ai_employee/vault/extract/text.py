"""Untrusted text made safe for previews: decoding bytes, stripping controls, capping by UTF-8 size."""

from __future__ import annotations

import codecs
import re

MAX_LINE_CHARS = 998  # RFC 5322's line limit: no sane header value is longer
MAX_PROBLEM_CHARS = 300

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_JUNK_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")


def decode(data: bytes, complete: bool) -> tuple[str, str | None]:
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


def strip_controls(text: str) -> str:
    """Drop control characters other than tab and newline."""
    return _CONTROL_RE.sub("", text)


def clean_text(text: str) -> str:
    """Normalise newlines and drop control characters from multi-line text."""
    # Control characters mean nothing in a preview and break the YAML and Markdown it ends up in.
    return strip_controls(text.replace("\r\n", "\n").replace("\r", "\n"))


def clean_line(value: str, limit: int = MAX_LINE_CHARS) -> str:
    """Make an untrusted value safe for one line of YAML or Markdown: no CR/LF or controls, capped."""
    value = _SURROGATE_RE.sub("\ufffd", _LINE_JUNK_RE.sub(" ", value))
    return " ".join(value.split())[:limit]


def cap(text: str, max_bytes: int) -> tuple[str, bool]:
    """Cut `text` to at most `max_bytes` of UTF-8 on a character boundary: (text, was_cut)."""
    data = text.encode("utf-8", "replace")  # stray surrogates (from PDFs, say) become "?"
    return data[:max_bytes].decode("utf-8", "ignore"), len(data) > max_bytes


def problem(what: str, exc: BaseException) -> str:
    """A one-line `problems` entry for an exception raised while doing `what`."""
    return clean_line(f"{what}: {type(exc).__name__}: {exc}", MAX_PROBLEM_CHARS)


def human_size(size_bytes: int) -> str:
    """A size for people, e.g. "512 B" or "12.1 KiB"."""
    if size_bytes < 1024:
        return f"{size_bytes} B"
    units = ("KiB", "MiB", "GiB", "TiB")
    value, index = size_bytes / 1024, 0
    while value >= 1024 and index < len(units) - 1:
        value, index = value / 1024, index + 1
    return f"{value:.1f} {units[index]}"
