"""Plan notes (`Plans/*.md`): frontmatter properties, a body for the human, and one `## Steps` block.

The fenced ```yaml block under `## Steps` is the only part of the body the engine reads; everything
else is for the human. The engine's later edits (callout, execution log, checklist ticks) touch only
the parts it wrote.
"""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ai_employee.errors import FormatError, UserError
from ai_employee.vault.actions import clean_text, file_title
from ai_employee.vault.callouts import runs_by_itself, waiting
from ai_employee.vault.notes import FAST_DUMPER, edit_file, load_yaml, read_frontmatter, split_note, update_frontmatter

PLAN_STATUSES = ("pending_approval", "approved", "executing", "done", "failed", "rejected", "expired")
CALLOUT_TITLE = "AI Employee:"
MAX_STEPS = 50
_TOOL = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_.-]+$")
_STEPS_HEADING = re.compile(r"^##[ \t]+Steps[ \t]*$", re.MULTILINE)
_NEXT_HEADING = re.compile(r"^#{1,2}[ \t]+\S", re.MULTILINE)
# Any fenced block (``` or ~~~, three or more, any info string), closed by the same fence or a longer one.
_FENCE_BLOCK = re.compile(
    r"^(?P<fence>(?P<ch>[`~])(?P=ch){2,})[ \t]*(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=fence)(?P=ch)*[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_STEP_KEYS = {"tool", "args", "why"}
_ENGINE_CALLOUT = re.compile(r"^> \[![^\]]+\][+-]? AI Employee:")


@dataclass(frozen=True)
class Step:
    """One tool call: `server.tool` with arguments, and an optional reason for the human."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    why: str = ""

    @property
    def server(self) -> str:
        return self.tool.split(".", 1)[0]

    @property
    def tool_name(self) -> str:
        return self.tool.split(".", 1)[1]

    def args_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.args).encode()).hexdigest()[:16]

    def to_mapping(self) -> dict[str, Any]:
        data: dict[str, Any] = {"tool": self.tool, "args": self.args}
        if self.why:
            data["why"] = self.why
        return data


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def steps_hash(steps: list[Step]) -> str:
    """The identity of exactly what would run: tools and arguments, in order."""
    payload = canonical_json([{"tool": s.tool, "args": s.args} for s in steps])
    return hashlib.sha256(payload.encode()).hexdigest()


class _BlockDumper(FAST_DUMPER):  # type: ignore[misc]
    """Dumps multi-line strings as literal blocks so the human can read and edit them."""


def _str_representer(dumper: Any, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    node: yaml.ScalarNode = dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)
    return node


_BlockDumper.add_representer(str, _str_representer)


READABLE_WIDTH = 76
# Arguments that hold prose a person reads (an email's body): the only ones wrapped. Note content,
# code, CSV and JSON keep their lines exactly as the planner wrote them.
PROSE_ARGS = frozenset({"body"})
_NO_WRAP = re.compile(r"^(\s|#|\||```|~~~|<|\[\^)")  # indented or code, headings, tables, fences, HTML
_FENCE_OPEN = re.compile(r"^(`{3,}|~{3,})")


def wrap_for_reading(text: str, width: int = READABLE_WIDTH) -> str:
    """Prose with its long lines wrapped at word boundaries, so the text the human approves reads well
    in the note; what they read is exactly what is sent. Quoted lines stay quoted; indented lines,
    headings, tables, HTML and fenced blocks are left as they are, and no break may start a line with
    Markdown syntax or leave a line that is a rule (`---`). Text with CR LF line ends is left alone."""
    if "\r" in text:
        return text
    out: list[str] = []
    fence = ""
    for line in text.split("\n"):
        opened = _FENCE_OPEN.match(line)
        if fence:
            if line.startswith(fence) and not line[len(fence) :].strip(fence[0] + " "):
                fence = ""
            out.append(line)
            continue
        if opened:
            fence = opened.group(1)
        if fence or len(line) <= width or _NO_WRAP.match(line) or line.endswith("  "):
            out.append(line)
            continue
        prefix = re.match(r"^(>[ >]*|(?:[-*+]|\d+[.)])\s+)?", line).group(0)  # type: ignore[union-attr]
        follow = prefix if prefix.startswith(">") else " " * len(prefix)
        wrapped = textwrap.wrap(
            line[len(prefix) :],
            width,
            initial_indent=prefix,
            subsequent_indent=follow,
            break_long_words=False,
            break_on_hyphens=False,
            expand_tabs=False,
            replace_whitespace=False,
        )
        out += _keep_meaning(wrapped, follow) or [line]
    return "\n".join(out)


# What a line must not start with after a wrap: it would become a heading, a list, a quote, a fence,
# a table, HTML, a footnote or a callout; nor be a rule or a setext underline.
_SIGNIFICANT_START = re.compile(r"^(#|>|[-*+] |\d+[.)] |```|~~~|\||<|\[\^|\[!|[-=*_]+\s*$)")


def _keep_meaning(lines: list[str], follow: str) -> list[str]:
    """Wrapped lines, with any break that would start a line with Markdown syntax taken back."""
    kept: list[str] = []
    for line in lines:
        if kept and _SIGNIFICANT_START.match(line[len(follow) :]):
            kept[-1] += " " + line[len(follow) :]
        else:
            kept.append(line)
    return kept


def readable_args(args: dict[str, Any]) -> dict[str, Any]:
    """A step's arguments with its prose (see PROSE_ARGS) wrapped for reading."""
    return {
        key: wrap_for_reading(value) if key in PROSE_ARGS and isinstance(value, str) and "\n" in value else value
        for key, value in args.items()
    }


def dump_steps(steps: list[Step]) -> str:
    return yaml.dump(
        [s.to_mapping() for s in steps],
        Dumper=_BlockDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )


def _step_from(item: Any, number: int) -> Step:
    if not isinstance(item, dict):
        raise FormatError(f"step {number} must be a mapping with `tool:` and `args:`")
    unknown = set(map(str, item)) - _STEP_KEYS
    if unknown:
        raise FormatError(f"step {number} has unknown key(s) {', '.join(sorted(unknown))}: use tool, args, why")
    tool = item.get("tool")
    if not isinstance(tool, str) or not _TOOL.match(tool):
        raise FormatError(f"step {number}: `tool` must look like server.tool_name, got {tool!r}")
    args = item.get("args") or {}
    if not isinstance(args, dict):
        raise FormatError(f"step {number}: `args` must be a mapping of argument names to values")
    why = item.get("why") or ""
    # Round-trip through JSON so YAML-only types (dates) become what a JSON tool call would carry.
    clean_args = json.loads(json.dumps({str(k): v for k, v in args.items()}, default=str))
    return Step(tool=tool, args=clean_args, why=str(why))


def mask_fences(text: str) -> str:
    """`text` with fenced blocks blanked out (same length), so headings inside them are not headings."""
    return _FENCE_BLOCK.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def steps_section(body: str) -> str:
    """The text of the `## Steps` section (up to the next heading); FormatError if there is none."""
    masked = mask_fences(body)
    matches = list(_STEPS_HEADING.finditer(masked))
    if not matches:
        raise FormatError("the note has no `## Steps` section")
    if len(matches) > 1:
        raise FormatError("the note has more than one `## Steps` section: keep exactly one")
    start = matches[0].end()
    nxt = _NEXT_HEADING.search(masked, start)
    return body[start : nxt.start()] if nxt else body[start:]


def parse_steps(body: str) -> list[Step]:
    """The steps of a plan body: exactly one fenced yaml block under `## Steps`."""
    section = steps_section(body.replace("\r\n", "\n"))
    blocks = list(_FENCE_BLOCK.finditer(section))
    if not blocks:
        raise FormatError("the `## Steps` section has no ```yaml block")
    if len(blocks) > 1:
        raise FormatError("the `## Steps` section must hold exactly one ```yaml block")
    if blocks[0].group("info").strip().lower() not in ("", "yaml", "yml"):
        raise FormatError("the block under `## Steps` must be a ```yaml block")
    return steps_from_yaml(blocks[0].group("body"))


def steps_from_yaml(text: str) -> list[Step]:
    """Steps written as YAML (the block under `## Steps`, or an edit from the web page)."""
    data = load_yaml(text, "the steps block")
    if data is None:
        return []
    if not isinstance(data, list):
        raise FormatError("the steps block must be a YAML list of steps (- tool: ...)")
    if len(data) > MAX_STEPS:
        raise FormatError(f"the plan has {len(data)} steps; at most {MAX_STEPS} are allowed")
    return [_step_from(item, n) for n, item in enumerate(data, start=1)]


def replace_steps(body: str, steps: list[Step]) -> str:
    """The body with the block under `## Steps` holding `steps` (an edit made outside the note: the web
    page); FormatError if the note has no single such block."""
    body = body.replace("\r\n", "\n")
    parse_steps(body)  # exactly one block where it belongs
    masked = mask_fences(body)
    start = _STEPS_HEADING.search(masked)
    assert start is not None
    block = _FENCE_BLOCK.search(body, start.end())
    assert block is not None
    return body[: block.start()] + "```yaml\n" + dump_steps(steps) + "```" + body[block.end() :]


@dataclass(frozen=True)
class ParsedPlan:
    frontmatter: dict[str, Any]
    steps: list[Step]
    title: str

    @property
    def id(self) -> str:
        return str(self.frontmatter.get("id") or "")

    @property
    def action_id(self) -> str:
        return str(self.frontmatter.get("action_id") or "")

    @property
    def status(self) -> str:
        return str(self.frontmatter.get("status") or "")

    @property
    def criticality(self) -> str:
        return str(self.frontmatter.get("criticality") or "")


def read_plan_text(text: str, what: str) -> ParsedPlan:
    """Parse a plan note; FormatError says what is wrong (frontmatter or steps)."""
    parts = split_note(text)
    fm = read_frontmatter(parts, what)
    steps = parse_steps(parts.body)
    return ParsedPlan(frontmatter=fm, steps=steps, title=plan_title(parts.body, fm))


def plan_title(body: str, fm: dict[str, Any]) -> str:
    for line in body.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return str(fm.get("title") or "")


# Body edits ------------------------------------------------------------------------------------
def callout(kind: str, title: str, lines: list[str]) -> str:
    head = f"> [!{kind}] {CALLOUT_TITLE} {title}"
    return "\n".join([head, *(f"> {line}" if line else ">" for line in lines)]) + "\n"


def _newline(body: str) -> str:
    return "\r\n" if "\r\n" in body else "\n"


def set_callout(body: str, kind: str, title: str, lines: list[str]) -> str:
    """Replace the engine's callout (the one titled `AI Employee: ...`) or insert one under the title.
    Inserted lines use the note's own line ending."""
    nl = _newline(body)
    new = callout(kind, title, lines).replace("\n", nl)
    out = body.splitlines(keepends=True)
    for i, line in enumerate(out):
        if _ENGINE_CALLOUT.match(line):
            j = i + 1
            while j < len(out) and out[j].startswith(">"):
                j += 1
            return "".join([*out[:i], new, *out[j:]])
    for i, line in enumerate(out):
        if line.startswith("# "):
            return "".join([*out[: i + 1], nl, new, *out[i + 1 :]])
    return new + nl + body


def restate(
    path: Path,
    updates: dict[str, Any],
    callout: tuple[str, str, list[str]],
    tmp_dir: Path,
    remove: tuple[str, ...] = (),
    expect: str | None = None,
) -> None:
    """A plan note's state changed: set its properties and replace the engine's callout, in one surgical
    edit (see `vault/callouts.py` for the words); with `expect`, only if its steps still have that hash."""

    def change(text: str) -> str:
        parts = split_note(text)
        if expect is not None and steps_hash(parse_steps(parts.body)) != expect:
            # A decision on steps the note no longer holds (a new version was written meanwhile).
            raise UserError(f"{path.name} changed while it was being decided: look at it again")
        head = text[: len(text) - len(parts.body)]
        return update_frontmatter(head + set_callout(parts.body, *callout), updates, remove=remove)

    edit_file(path, change, tmp_dir)


def append_section(body: str, heading: str, lines: list[str]) -> str:
    """Append a `## heading` section with `lines` at the end of the body, in the note's line ending."""
    nl = _newline(body)
    text = body if body.endswith("\n") else body + nl
    return text + f"{nl}## {heading}{nl}{nl}" + "".join(f"{line}{nl}" for line in lines)


def tick_checklist(body: str, numbers: set[int]) -> str:
    """Tick `- [ ] N.` items of the engine's `## Checklist` section for the given step numbers."""
    match = re.search(r"^## Checklist[ \t]*$", body, flags=re.MULTILINE)
    if match is None:
        return body
    end = _NEXT_HEADING.search(body, match.end())
    stop = end.start() if end else len(body)

    def tick(item: re.Match[str]) -> str:
        return f"- [x] {item.group(1)}." if int(item.group(1)) in numbers else item.group(0)

    section = re.sub(r"^- \[ \] (\d+)\.", tick, body[match.end() : stop], flags=re.MULTILINE)
    return body[: match.end()] + section + body[stop:]


@dataclass(frozen=True)
class PlanNote:
    """Everything needed to write a new plan note."""

    id: str
    action_id: str
    title: str
    summary: str
    steps: list[Step]
    criticality: str
    reasons: list[str]
    planner: str
    planner_note: str
    created: str
    status: str
    source_links: list[str]
    questions: list[str] = field(default_factory=list)
    # Whether the note offers a `## Feedback` section (the planner can write a new version from it).
    feedback: bool = False


def render_plan(note: PlanNote) -> str:
    """The full text of a new plan note."""
    fm = yaml.dump(
        {
            "id": note.id,
            "action_id": note.action_id,
            "status": note.status,
            "criticality": note.criticality,
            "created": note.created,
            "planner": note.planner,
            "tags": ["ai-employee/plan"],
        },
        Dumper=FAST_DUMPER,
        sort_keys=False,
        allow_unicode=True,
    )
    waits = note.status != "approved"
    box = callout(*(waiting(note.criticality, note.id, note.feedback) if waits else runs_by_itself(note.criticality)))
    checklist = [
        f"- [ ] {n}. `{step.tool}`" + (f" — {clean_text(step.why, 200)}" if step.why else "")
        for n, step in enumerate(note.steps, 1)
    ]
    parts = [
        f"---\n{fm}---\n",
        f"# {note.title}\n\n",
        box,
        _questions(note.questions, note.feedback),
        "\n## Summary\n\n",
        # Defence in depth: planners' prose never starts a heading (a `## Feedback` would pose as the owner).
        re.sub(r"^(\s*)#", r"\1\\#", note.summary.rstrip(), flags=re.MULTILINE) + "\n",
        "\n## Why this criticality\n\n",
        "".join(f"- {reason}\n" for reason in note.reasons),
        "\n## Steps\n\n",
        "```yaml\n" + dump_steps(note.steps) + "```\n",
        "\n## Checklist\n\n",
        "".join(f"{line}\n" for line in checklist) or "- (no steps)\n",
        "\n## Feedback\n\n" if note.feedback and waits else "",
        "\n## Source\n\n",
        "".join(f"- {link}\n" for link in note.source_links),
        f"\n*{note.planner_note}*\n",
    ]
    return "".join(parts)


def _questions(questions: list[str], feedback: bool) -> str:
    if not questions:
        return ""
    lines = "".join(f"> - {clean_text(question, 500)}\n" for question in questions)
    answer = (
        "Answer them under **Feedback** below and the planner writes a new version, or edit the steps"
        " yourself before you approve."
        if feedback
        else "Check them before you approve, and edit the steps if they need it."
    )
    return f"\n> [!question] Questions for you\n> The planner was not sure about these. {answer}\n" + lines


def plan_file_name(created_date: str, title: str) -> str:
    return f"{created_date} {file_title(title)}.md"
