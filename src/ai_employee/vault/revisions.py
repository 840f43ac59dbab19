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


# The headings the engine writes: the feedback section ends at the next of these (the owner may use
# headings of their own inside it).
ENGINE_SECTIONS = frozenset(
    {"Summary", "Why this criticality", "Steps", "Checklist", FEEDBACK, "Source", EARLIER, "Execution log"}
)


def _sections(body: str, name: str) -> list[tuple[int, int, int]]:
    """(heading start, content start, end) of every `## name` section, headings in fences not counted.
    A feedback section ends at the next heading the engine writes; any other at the next heading."""
    masked = mask_fences(body)
    headings = list(_HEADING.finditer(masked))
    found = []
    for index, match in enumerate(headings):
        if match.group(1) == "##" and match.group(2) == name:
            later = headings[index + 1 :]
            if name == FEEDBACK:
                later = [h for h in later if h.group(1) == "##" and h.group(2) in ENGINE_SECTIONS]
            end = later[0].start() if later else len(body)
            content = match.end() + 1 if masked[match.end() : match.end() + 1] == "\n" else match.end()
            found.append((match.start(), content, end))
    return found


def section_text(body: str, name: str) -> str:
    """The text of the note's first `## name` section ("" if it has none)."""
    found = _sections(body, name)
    return body[found[0][1] : found[0][2]].strip() if found else ""


def _feedback_section(body: str) -> tuple[int, int, int] | None:
    """The note's feedback section: the first `## Feedback` (the engine writes one, above `## Source`;
    anything after it, such as the links to the source, is not the owner's)."""
    found = _sections(body, FEEDBACK)
    return found[0] if found else None


def raw_feedback(body: str) -> str:
    """The feedback section as the owner left it (comments included), without the engine's notice."""
    section = _feedback_section(body.replace("\r\n", "\n"))
    if section is None:
        return ""
    _, start, end = section
    return _NOTICE.sub("", body.replace("\r\n", "\n")[start:end]).strip("\n")


def feedback_text(body: str) -> str:
    """What the owner wrote under `## Feedback` ("" if nothing): the engine's notice and comments left
    out, line ends and trailing spaces normalised, so the same words always give the same text."""
    lines = _COMMENT.sub("", raw_feedback(body)).split("\n")
    return "\n".join(line.rstrip() for line in lines).strip()


def set_notice(body: str, title: str, lines: list[str]) -> str:
    """The engine's notice (why the feedback is not planned yet) at the top of the feedback section,
    replacing an earlier one; the owner's words are left as they are."""
    found = _feedback_section(body)
    if found is None:
        return body
    _, start, end = found
    section = _NOTICE.sub("", body[start:end].replace("\r\n", "\n")).lstrip("\n")
    nl = "\r\n" if "\r\n" in body else "\n"
    notice = callout("warning", title, lines)
    return body[:start] + ("\n" + notice + "\n" + section).replace("\n", nl) + body[end:]


def add_feedback(body: str, text: str) -> str:
    """`text` added to the end of the feedback section (made before `## Source`, or at the end, if the
    note has none), after what is there already."""
    nl = "\r\n" if "\r\n" in body else "\n"
    words = nl.join(line.rstrip() for line in text.strip().splitlines()) + nl
    found = _feedback_section(body)
    if found:
        _, start, end = found
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


def new_version(old_body: str, new_text: str, version: int, at: str) -> str:
    """The body of a plan's new version: `new_text` (the freshly rendered body), then `## Earlier
    versions` with the version the owner saw (`old_body` as they left it: their edits and their feedback
    included, comments too) newest first, and the versions before it."""
    old_body = old_body.replace("\r\n", "\n")
    feedback = raw_feedback(old_body)
    earlier = "".join(old_body[start:end].strip("\n") + "\n\n" for _, start, end in _sections(old_body, EARLIER))
    kept = old_body
    first = _feedback_section(old_body)
    for head, _, end in sorted(([first] if first else []) + _sections(old_body, EARLIER), reverse=True):
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
