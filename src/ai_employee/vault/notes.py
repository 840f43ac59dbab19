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
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError as RuamelError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from ai_employee.errors import ConcurrentEditError, FormatError
from ai_employee.vault.fsops import replace_file

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
    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.allow_duplicate_keys = True
    rt.width = 4096
    mapping, offset = _detect_indent(text)
    rt.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return rt


def _key_line(lines: list[str], key: str) -> int | None:
    """Index of the top-level `key:` line whose value is one plain line, or None."""
    pattern = re.compile(rf"^{re.escape(key)}[ \t]*:(?:[ \t]|\r?\n|$)")
    for i, line in enumerate(lines):
        if pattern.match(line):
            value = line.split(":", 1)[1].strip()
            follows = lines[i + 1] if i + 1 < len(lines) else ""
            single = value and value[0] not in "|>&*[{!" and "#" not in line
            if single and not follows.startswith((" ", "\t", "-")):
                return i
            return None
    return None


def _line_update(text: str, updates: Mapping[str, Any], remove: tuple[str, ...]) -> str | None:
    """Set flat keys by rewriting only their own lines (fast, and exact for everything else).

    Returns None when the document is not simple enough to do that with certainty; the caller then
    does a full round-trip instead. The result is checked by parsing it.
    """
    newline = "\r\n" if "\r\n" in text else "\n"
    try:
        before = load_yaml(text, "the YAML") if text.strip() else {}
    except FormatError:
        return None
    if not isinstance(before, dict):
        return None
    lines = text.splitlines(keepends=True)
    expected = dict(before)
    for key in remove:
        if key in before:
            index = _key_line(lines, key)
            if index is None:
                return None
            del lines[index]
            del expected[key]
    for key, value in updates.items():
        rendered = yaml.dump(
            {key: value}, Dumper=FAST_DUMPER, allow_unicode=True, width=1 << 20, default_flow_style=False
        )
        if rendered.count("\n") != 1:
            return None
        expected[key] = yaml.load(rendered, Loader=FAST_LOADER)[key]
        rendered = rendered.replace("\n", newline)
        index = _key_line(lines, key) if key in before else None
        if key in before and index is None:
            return None
        if index is not None:
            lines[index] = rendered
        else:
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += newline
            lines.append(rendered)
    result = "".join(lines)
    try:
        after = load_yaml(result, "the YAML") if result.strip() else {}
    except FormatError:
        return None
    return result if after == expected else None


def update_yaml_text(text: str, updates: Mapping[str, Any], remove: tuple[str, ...] = ()) -> str:
    """Set `updates` and drop `remove` in a YAML mapping document, keeping comments, order and quotes."""
    fast = _line_update(text, updates, remove)
    if fast is not None:
        return fast
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
