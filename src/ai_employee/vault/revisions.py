"""A plan note's `## Feedback` section and its `## Earlier versions`.

The owner asks for a better plan by writing under `## Feedback` (or with `vault replan`); the engine
writes a new version of the note in place, keeps the version they saw (everything they wrote in it, too)
in a collapsed callout under `## Earlier versions`, and empties the feedback section. Text the engine
puts into the section itself (its notice callout, comments) is not feedback.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ai_employee.vault.notes import split_note
from ai_employee.vault.plans import CALLOUT_TITLE, callout, mask_fences

FEEDBACK = "Feedback"
EARLIER = "Earlier versions"
MAX_VERSIONS = 10  # a plan rewritten this often is better denied and started over
_HEADING = re.compile(r"^(#{1,2})[ \t]+(\S[^\n]*?)[ \t]*\r?$", re.MULTILINE)
_COMMENT = re.compile(r"<!--.*?-->|%%.*?%%", re.DOTALL)
_NOTICE = re.compile(r"^> \[![^\]]+\][+-]? " + re.escape(CALLOUT_TITLE) + r".*\n(?:>.*\n?)*", re.MULTILINE)


def in_body(text: str, change: Callable[[str], str]) -> str:
    """A note's text with `change` applied to its body (the frontmatter left byte for byte)."""
    body = split_note(text).body
    return text[: len(text) - len(body)] + change(body)


def _sections(body: str, name: str) -> list[tuple[int, int, int]]:
    """(heading start, content start, end) of every `## name` section, headings in fences not counted."""
    masked = mask_fences(body)
    headings = list(_HEADING.finditer(masked))
    found = []
    for index, match in enumerate(headings):
        if match.group(1) == "##" and match.group(2) == name:
            end = headings[index + 1].start() if index + 1 < len(headings) else len(body)
            content = match.end() + 1 if masked[match.end() : match.end() + 1] == "\n" else match.end()
            found.append((match.start(), content, end))
    return found


def feedback_text(body: str) -> str:
    """What the owner wrote under `## Feedback` ("" if nothing): the engine's notice and comments left
    out, line ends and trailing spaces normalised, so the same words always give the same text."""
    body = body.replace("\r\n", "\n")
    parts = [_NOTICE.sub("", _COMMENT.sub("", body[start:end])) for _, start, end in _sections(body, FEEDBACK)]
    lines = "\n\n".join(parts).split("\n")
    return "\n".join(line.rstrip() for line in lines).strip()


def set_notice(body: str, title: str, lines: list[str]) -> str:
    """The engine's notice (why the feedback is not planned yet) at the top of the feedback section,
    replacing an earlier one; the owner's words are left as they are."""
    found = _sections(body, FEEDBACK)
    if not found:
        return body
    _, start, end = found[0]
    section = _NOTICE.sub("", body[start:end]).lstrip("\n")
    nl = "\r\n" if "\r\n" in body else "\n"
    notice = callout("warning", title, lines).replace("\n", nl)
    return body[:start] + nl + notice + nl + section + body[end:]


def add_feedback(body: str, text: str) -> str:
    """`text` added to the end of the feedback section (made before `## Source`, or at the end, if the
    note has none), after what is there already."""
    nl = "\r\n" if "\r\n" in body else "\n"
    words = nl.join(line.rstrip() for line in text.strip().splitlines()) + nl
    found = _sections(body, FEEDBACK)
    if found:
        _, start, end = found[-1]
        section = body[start:end].rstrip()
        return body[:start] + (section + nl + nl if section else nl) + words + nl + body[end:].lstrip("\r\n")
    source = _sections(body, "Source")
    at = source[0][0] if source else len(body)
    head = body[:at].rstrip("\r\n") + nl + nl
    return head + f"## {FEEDBACK}{nl}{nl}" + words + nl + body[at:]


def version_count(body: str) -> int:
    """How many earlier versions the note keeps."""
    found = _sections(body, EARLIER)
    return sum(len(re.findall(r"^> \[!abstract\]- Version ", body[s:e], re.MULTILINE)) for _, s, e in found)


def new_version(old_body: str, new_text: str, version: int, feedback: str, at: str) -> str:
    """The text of a plan's new version: `new_text` (the freshly rendered note), then `## Earlier
    versions` with the version the owner saw (`old_body`, without its feedback and earlier versions, as
    they left it: their edits included) newest first, and the versions before it."""
    old_body = old_body.replace("\r\n", "\n")
    earlier = "".join(old_body[start:end].strip("\n") + "\n\n" for _, start, end in _sections(old_body, EARLIER))
    kept = old_body
    for head, _, end in sorted(_sections(old_body, FEEDBACK) + _sections(old_body, EARLIER), reverse=True):
        kept = kept[:head] + kept[end:]
    said = [f"> > {line}".rstrip() for line in feedback.splitlines()]
    entry = [
        f"> [!abstract]- Version {version}, replaced at {at} after your feedback",
        "> Your feedback:",
        *said,
        ">",
        *(f"> {line}".rstrip() for line in kept.strip("\n").splitlines()),
    ]
    versions = "\n".join(entry) + "\n" + (f"\n{earlier.rstrip()}\n" if earlier.strip() else "")
    return new_text.rstrip("\n") + f"\n\n## {EARLIER}\n\n" + versions
