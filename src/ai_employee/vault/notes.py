"""Reading and surgically editing YAML: frontmatter of markdown notes and whole YAML files.

Reading uses PyYAML's safe loader with a size cap and an alias limit (alias bombs). Writing the
engine's keys into a user's file round-trips only the YAML part with ruamel.yaml and keeps every other
byte as it was; the replacement is atomic and refused if the file changed since it was read.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ai_employee.errors import ConcurrentEditError, FormatError
from ai_employee.vault.fsops import replace_file

if TYPE_CHECKING:
    from ruamel.yaml import YAML

# libyaml's C loader and dumper when PyYAML has them: several times faster on every file the engine reads.
FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
FAST_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
MAX_YAML_BYTES = 1024 * 1024
MAX_DEPTH = 200
MAX_EXPANDED_NODES = 100_000
EDIT_RETRIES = 5
_FENCE = re.compile(r"^---[ \t]*\r?$")


def _check_events(text: str, what: str) -> None:
    """Refuse alias bombs and deep nesting from the event stream, before anything is constructed.

    Counts the nodes the document would have with every alias expanded (an alias costs the size of
    what it names), and caps nesting because libyaml's composer recurses in C and would crash.
    """
    sizes: dict[str, int] = {}
    open_collections: list[tuple[str | None, int]] = []  # (anchor, nodes expanded so far)
    expanded = 0
    for event in yaml.parse(text, Loader=FAST_LOADER):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_collections) >= MAX_DEPTH:
                raise FormatError(f"{what} is nested too deeply (more than {MAX_DEPTH} levels)")
            open_collections.append((event.anchor, expanded))
            nodes = 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, start = open_collections.pop()
            if anchor:
                sizes[anchor] = expanded - start
            continue
        elif isinstance(event, yaml.ScalarEvent):
            nodes = 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            nodes = sizes.get(event.anchor or "", 1)
        else:
            continue
        expanded += nodes
        if expanded > MAX_EXPANDED_NODES:
            raise FormatError(f"{what} expands to more than {MAX_EXPANDED_NODES} values (YAML aliases)")


_INDENT = re.compile(r"^[ \t]*", re.MULTILINE)


def _plainly_shallow(text: str) -> bool:
    """True when the text cannot hold an alias or nest deeply, so the event pre-pass can be skipped:
    no `*`, and too few indentation columns, brackets and `- `/`? ` markers to reach MAX_DEPTH."""
    if "*" in text:
        return False
    markers = text.count("- ") + text.count("? ") + text.count("[") + text.count("{")
    deepest = max((len(m) for m in _INDENT.findall(text)), default=0)
    return markers + deepest < MAX_DEPTH


def load_yaml(text: str, what: str) -> Any:
    """Parse untrusted YAML safely: size-capped, no alias bombs, bounded nesting, a clear FormatError."""
    if len(text.encode("utf-8", errors="surrogatepass")) > MAX_YAML_BYTES:
        raise FormatError(f"{what} is larger than {MAX_YAML_BYTES // 1024} KiB")
    try:
        if not _plainly_shallow(text):
            _check_events(text, what)
        return yaml.load(text, Loader=FAST_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid syntax"
        raise FormatError(f"{what} is not valid YAML{where}: {problem}") from exc
    except RecursionError as exc:
        raise FormatError(f"{what} is nested too deeply") from exc


@dataclass(frozen=True)
class NoteParts:
    """A markdown note split into its frontmatter span and body, with positions into the text."""

    prefix: str  # a BOM, if any
    frontmatter: str  # YAML text between the fences ("" if the note has none)
    body: str
    newline: str  # the note's line ending
    has_frontmatter: bool


def split_note(text: str) -> NoteParts:
    """Split a note into BOM, frontmatter and body without changing a byte of either."""
    prefix = "\ufeff" if text.startswith("\ufeff") else ""
    rest = text[len(prefix) :]
    newline = "\r\n" if "\r\n" in rest[:2000] else "\n"
    lines = rest.splitlines(keepends=True)
    if lines and _FENCE.match(lines[0].rstrip("\n")):
        for i in range(1, len(lines)):
            if _FENCE.match(lines[i].rstrip("\n")) or lines[i].rstrip("\r\n") == "...":
                return NoteParts(
                    prefix=prefix,
                    frontmatter="".join(lines[1:i]),
                    body="".join(lines[i + 1 :]),
                    newline=newline,
                    has_frontmatter=True,
                )
    return NoteParts(prefix=prefix, frontmatter="", body=rest, newline=newline, has_frontmatter=False)


def read_frontmatter(parts: NoteParts, what: str) -> dict[str, Any]:
    if not parts.has_frontmatter or not parts.frontmatter.strip():
        return {}
    data = load_yaml(parts.frontmatter, f"the frontmatter of {what}")
    if data is None:  # only comments
        return {}
    if not isinstance(data, dict):
        raise FormatError(f"the frontmatter of {what} is not a mapping of properties")
    return {str(k): v for k, v in data.items()}


_KEY_LINE = re.compile(r"^(\s*)[^\s#-][^:]*:\s*$")
_DASH_LINE = re.compile(r"^(\s*)- ")


def _detect_indent(text: str) -> tuple[int, int]:
    """(mapping indent, sequence dash offset) the document already uses, so a round-trip keeps them."""
    mapping, offset = 2, 0
    found_mapping = found_offset = False
    prev: str | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parent = _KEY_LINE.match(prev) if prev is not None else None
        if parent is not None:
            dash = _DASH_LINE.match(line)
            indent = len(line) - len(line.lstrip(" "))
            if dash is not None and not found_offset:
                offset, found_offset = len(dash.group(1)) - len(parent.group(1)), True
            elif dash is None and not found_mapping and indent > len(parent.group(1)):
                mapping, found_mapping = indent - len(parent.group(1)), True
        prev = line
    return mapping, max(offset, 0)


def _roundtrip_yaml(text: str) -> YAML:
    # ruamel.yaml is imported here, for the slow path only: reading notes never needs it.
    from ruamel.yaml import YAML

    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.allow_duplicate_keys = True
    rt.width = 4096
    mapping, offset = _detect_indent(text)
    rt.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return rt


@dataclass(frozen=True)
class _Pair:
    """Where a top-level `key: value` pair is: the key's line, and whether the pair is that one line
    alone (a scalar value with nothing after it but spaces), so the line can be replaced or dropped."""

    line: int
    single: bool


# Line breaks libyaml counts that `str.split("\n")` does not: documents with them take the slow path.
_ODD_BREAKS = re.compile("\r(?!\n)|[\x85\u2028\u2029]")


def _top_level_pairs(text: str) -> dict[str, list[_Pair]] | None:
    """The top-level pairs of a block-mapping document, by key, from libyaml's event stream (nothing is
    constructed, so this is cheap and safe on untrusted text); None for any other kind of document."""
    pairs: dict[str, list[_Pair]] = {}
    depth = 0
    key: yaml.ScalarEvent | None = None  # the top-level key whose value comes next
    try:
        events = list(yaml.parse(text, Loader=FAST_LOADER))
    except yaml.YAMLError:
        return None
    if not _one_block_mapping(events):
        return None
    for event in events:
        if isinstance(event, yaml.CollectionStartEvent):
            if depth == 1 and key is None:
                return None  # a complex key
            depth += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            if depth == 1 and key is not None:
                pairs.setdefault(key.value, []).append(_Pair(_line(key), single=False))
                key = None
        elif isinstance(event, yaml.ScalarEvent | yaml.AliasEvent) and depth == 1:
            if key is not None:
                pairs.setdefault(key.value, []).append(_Pair(_line(key), _single_line_value(event, key, text)))
                key = None
            elif isinstance(event, yaml.ScalarEvent) and _plain(event) and _column(event) == 0:
                key = event
            else:
                return None
    return pairs


def _one_block_mapping(events: list[yaml.Event]) -> bool:
    """True if the stream is empty or one document holding a block mapping, with no `...` after it
    (new keys are appended at the end)."""
    documents = [e for e in events if isinstance(e, yaml.DocumentStartEvent | yaml.DocumentEndEvent)]
    if not documents:
        return True
    if len(documents) != 2 or documents[1].explicit:
        return False
    top = events[2]
    return isinstance(top, yaml.MappingStartEvent) and not top.flow_style and not top.anchor


def _plain(event: yaml.ScalarEvent) -> bool:
    return not event.style and not event.anchor and not event.tag  # libyaml says "" for plain, PyYAML None


def _line(event: yaml.Event) -> int:
    assert event.start_mark is not None
    return int(event.start_mark.line)


def _column(event: yaml.Event) -> int:
    assert event.start_mark is not None
    return int(event.start_mark.column)


def _single_line_value(value: yaml.Event, key: yaml.ScalarEvent, text: str) -> bool:
    """The value is a plain or quoted scalar that ends on the key's line, with nothing after it."""
    if not isinstance(value, yaml.ScalarEvent) or value.anchor or value.tag or value.style not in (None, "", "'", '"'):
        return False
    end = value.end_mark
    assert end is not None
    return int(end.line) == _line(key) and not text[end.index :].split("\n", 1)[0].strip()


def _line_update(text: str, updates: Mapping[str, Any], remove: tuple[str, ...]) -> str | None:
    """Set flat keys by rewriting only their own lines (fast, and exact for everything else).

    Returns None when the document is not simple enough to do that with certainty (not one block
    mapping, the key's pair spans lines or carries a comment, the key is duplicated, odd line breaks);
    the caller then does a full round-trip instead.
    """
    if len(text) > MAX_YAML_BYTES or _ODD_BREAKS.search(text):
        return None
    pairs = _top_level_pairs(text)
    if pairs is None:
        return None
    cr = "\r" if "\r\n" in text else ""
    lines = text.split("\n")  # libyaml's line numbers count "\n" (and "\r\n") breaks alike
    replaced: dict[int, str | None] = {}
    appended: list[str] = []
    for key in (*remove, *updates):
        found = pairs.get(key, [])
        if len(found) > 1 or (found and not found[0].single):
            return None
    for key in remove:
        if key in pairs:
            replaced[pairs[key][0].line] = None
    for key, value in updates.items():
        rendered = yaml.dump(
            {key: value}, Dumper=FAST_DUMPER, allow_unicode=True, width=1 << 20, default_flow_style=False
        )
        if rendered.count("\n") != 1:
            return None
        rendered = rendered[:-1] + cr
        if key in pairs:
            line = pairs[key][0].line
            bom = "\ufeff" if line == 0 and lines[0].startswith("\ufeff") else ""
            replaced[line] = bom + rendered
        else:
            appended.append(rendered)
    out = [new for i, line in enumerate(lines) if (new := replaced.get(i, line)) is not None]
    if appended:
        if out[-1] == "":  # the text ended with a line break (or was empty)
            out[-1:-1] = appended
        else:
            out[-1] += cr
            out.extend([*appended, ""])
    return "\n".join(out)


def update_yaml_text(text: str, updates: Mapping[str, Any], remove: tuple[str, ...] = ()) -> str:
    """Set `updates` and drop `remove` in a YAML mapping document, keeping comments, order and quotes."""
    fast = _line_update(text, updates, remove)
    if fast is not None:
        return fast
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError as RuamelError

    newline = "\r\n" if "\r\n" in text else "\n"
    if text.strip():
        load_yaml(text, "the YAML")  # the same limits as every read: no aliases, bounded nesting
    rt = _roundtrip_yaml(text)
    try:
        data = rt.load(text.replace("\r\n", "\n")) if text.strip() else None
    except RuamelError as exc:
        raise FormatError(f"the YAML cannot be updated: {exc}") from exc
    if data is None:
        data = CommentedMap()
    if not isinstance(data, dict):
        raise FormatError("the YAML is not a mapping")
    for key in remove:
        data.pop(key, None)
    for key, value in updates.items():
        data[key] = _unambiguous(value)
    out = io.StringIO()
    rt.dump(data, out)
    result = out.getvalue()
    return result.replace("\n", newline) if newline != "\n" else result


_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"


def _unambiguous(value: Any) -> Any:
    """A string that YAML 1.1 readers would take for something else (`no`, `12:30`) is quoted."""
    if isinstance(value, str) and _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) != _STR_TAG:  # type: ignore[no-untyped-call]
        from ruamel.yaml.scalarstring import DoubleQuotedScalarString

        return DoubleQuotedScalarString(value)
    return value


def update_frontmatter(text: str, updates: Mapping[str, Any], remove: tuple[str, ...] = ()) -> str:
    """Set/remove frontmatter keys of a note; the body and any BOM are kept byte for byte."""
    parts = split_note(text)
    nl = parts.newline
    new_fm = update_yaml_text(parts.frontmatter, updates, remove)
    if nl == "\r\n" and "\r\n" not in new_fm:
        new_fm = new_fm.replace("\n", "\r\n")
    if not new_fm.endswith(nl):
        new_fm += nl
    return f"{parts.prefix}---{nl}{new_fm}---{nl}{parts.body}"


def edit_file(path: Path, change: Callable[[str], str], tmp_dir: Path) -> str:
    """Apply `change` to a text file atomically, never over a concurrent edit; return the new text.

    If the file changes between our read and our rename, re-read and re-apply (a user's edit wins and
    our change is applied on top of it).
    """
    for _ in range(EDIT_RETRIES):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"{path.name} is not UTF-8 text") from exc
        new = change(text)
        if new == text:
            return text
        try:
            replace_file(path, new.encode("utf-8"), tmp_dir, expected=raw)
        except ConcurrentEditError:
            continue
        return new
    raise ConcurrentEditError(f"{path} kept changing while the engine tried to update it")


_ID_LINE = re.compile(r"^\ufeff?id:[ \t]*['\"]?([^'\"\s#]+)['\"]?[ \t]*(?:#.*)?\r?$", re.MULTILINE)


_STATUS_LINE = re.compile(r"^status:[ \t]*['\"]?([a-z_]+)['\"]?[ \t]*(?:#.*)?\r?$", re.MULTILINE)


def read_id_and_status(path: Path) -> tuple[str | None, str | None]:
    """The top-level `id:` and `status:` of a YAML file, read from its head without parsing it (the keys
    the engine writes first); (None, None) if it cannot be read. For skipping files already settled."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(8192)
    except OSError:
        return None, None
    found_id, found_status = _ID_LINE.search(head), _STATUS_LINE.search(head)
    return (found_id.group(1) if found_id else None, found_status.group(1) if found_status else None)


def read_id(path: Path) -> str | None:
    """The top-level `id:` of a note's frontmatter or a YAML file, read from the file's head; None if none."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(8192)
    except OSError:
        return None
    if head.lstrip("\ufeff").startswith("---"):
        end = head.find("\n---", 3)
        head = head[: end if end > 0 else len(head)]  # only the frontmatter: `id:` in the body is text
    match = _ID_LINE.search(head)
    return match.group(1) if match else None


def has_id(path: Path, wanted_id: str) -> bool:
    """True if the file's YAML (frontmatter or whole file) has `id: <wanted_id>` as a top-level key."""
    return read_id(path) == wanted_id


def find_by_id(folders: list[Path], suffix: str, wanted_id: str) -> Path | None:
    """The first file ending in `suffix` in `folders` whose YAML has `id: <wanted_id>`.

    A scan: for recovery and the CLI, not for hot paths.
    """
    for folder in folders:
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            continue
        for name in names:
            if name.endswith(suffix) and not name.startswith(".") and has_id(folder / name, wanted_id):
                return folder / name
    return None
