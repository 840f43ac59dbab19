"""Markdown notes: YAML frontmatter read safely, a title, and email headers a note may quote."""

from __future__ import annotations

import json
import re
from email.utils import getaddresses, parseaddr

import yaml

from ai_employee.vault.extract.mail import iso_date, sender_warning
from ai_employee.vault.extract.result import Common, EmailInfo, Extracted
from ai_employee.vault.extract.text import cap, clean_line, problem, strip_controls

_MAX_FRONTMATTER_CHARS = 64 << 10
_MAX_FRONTMATTER_KEYS = 100
_MAX_VALUE_CHARS = 1000

_FRONTMATTER_RE = re.compile(r"\A---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_HEADING_RE = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.M)


def from_note(text: str, cut_early: bool, c: Common) -> Extracted:
    """The result for a note's cleaned `text`; `cut_early` says the text is only the file's start."""
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
            c.problems.append(problem("frontmatter ignored, read as body text", exc))
    preview, cut = cap(body, c.max_preview_bytes)
    fields = {key.lower(): value for key, value in frontmatter.items()}
    heading = _HEADING_RE.search(body, 0, 4 * c.max_preview_bytes)
    title = clean_line(fields.get("title") or fields.get("subject") or (heading and heading[1]) or "")
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
        result[clean_line(str(key), 100)] = strip_controls(text).strip()[:_MAX_VALUE_CHARS]
    return result


def _note_email(fields: dict[str, str]) -> EmailInfo:
    """Email headers quoted in a note's frontmatter (`from`, `to`, `cc`, `subject`, `date`, ...), as the
    Gmail source writes them. Whoever wrote the note, a display name that poses as another address is
    flagged, as it is for a dropped .eml."""
    raw = {key: clean_line(value) for key, value in fields.items()}
    name, addr = parseaddr(raw.get("from", ""))
    if "@" not in addr:
        name, addr = raw.get("from", ""), ""
    return EmailInfo(
        from_name=clean_line(name),
        from_addr=clean_line(addr),
        to=[clean_line(a or n) for n, a in getaddresses([raw.get("to", "")]) if a or n],
        cc=[clean_line(a or n) for n, a in getaddresses([raw.get("cc", "")]) if a or n],
        subject=raw.get("subject", ""),
        date=iso_date(raw.get("date", "")),
        message_id=raw.get("message_id") or raw.get("message-id") or None,
        in_reply_to=raw.get("in_reply_to") or raw.get("in-reply-to") or None,
        sender_warning=sender_warning(name, addr) if addr else None,
        bulk=raw.get("bulk") or None,
        gmail_id=raw.get("gmail_id") or None,
        thread_id=raw.get("thread_id") or None,
    )
