"""MCP server "vault": lets approved plans create, extend, move and tag the user's notes and add tasks,
never touching the engine's files (its folders, `.ai_employee/`, `.obsidian/`, Dashboard, Handbook).

Serve it over stdio with `python -m ai_employee.mcp_servers.vault_server`; the vault folder comes from
the AI_EMPLOYEE_VAULT environment variable. Tool arguments can be shaped by hostile email content, so
every path is checked (`check_note_path`, `note_target`) before anything touches the disk.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import re
import sys
import unicodedata
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal, TypedDict

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from ai_employee import __version__
from ai_employee.errors import ConcurrentEditError, FormatError
from ai_employee.mcp_servers.email_server import check_header_value
from ai_employee.vault import layout
from ai_employee.vault.fsops import FileOpError, create_file, move_file, os_reason, replace_file
from ai_employee.vault.notes import edit_file, split_note, update_frontmatter

log = logging.getLogger(__name__)

VAULT_ENV = "AI_EMPLOYEE_VAULT"
NOTE_SUFFIX = ".md"
MAX_CONTENT_BYTES = 1024 * 1024
MAX_PATH_CHARS = 400
# The per-name limit of ext4, APFS and NTFS alike; checked here so the refusal is a clear message.
MAX_NAME_BYTES = 255

_ENGINE_FOLDERS = frozenset(name.casefold() for name in layout.ENGINE_FOLDERS)
_PROTECTED_FILES = frozenset(name.casefold() for name in (layout.DASHBOARD, layout.HANDBOOK, layout.GOALS))

NotePath = Annotated[
    str,
    Field(
        description=(
            "Vault-relative path of the note with '/' between folders, ending in .md, "
            "e.g. 'Notes/Clients/Acme.md'. Engine folders (Inbox, Needs_Action, Plans, Approved, "
            "Rejected, Done, Attachments, Quarantine), Dashboard.md, Company_Handbook.md and "
            "hidden names are refused."
        )
    ),
]
NoteContent = Annotated[str, Field(description="Markdown text, at most 1 MiB once UTF-8 encoded.")]
Folder = Annotated[
    str,
    Field(description="Vault-relative folder to move the note into, e.g. 'Notes/Archive' (created if missing)."),
]
PropertyName = Annotated[str, Field(description="The property (frontmatter key), e.g. 'status' or 'due date'.")]
PropertyValue = Annotated[
    str | int | float | bool | list[str] | None,
    Field(description="Text, a number, true/false, a list of texts, or null to remove the property."),
]
TaskText = Annotated[str, Field(description="What is to be done: one line, e.g. 'Send Acme the signed quote'.")]
TaskDate = Annotated[str | None, Field(description="A date as YYYY-MM-DD, or leave it out.")]
Priority = Annotated[
    Literal["highest", "high", "medium", "low", "lowest"] | None, Field(description="Leave it out for normal.")
]
TasksNote = Annotated[str, Field(description="The note the task is added to (created if missing).")]
IdempotencyKey = Annotated[str | None, Field(description="Filled in by the engine (the step's key); leave it out.")]
_PROPERTY = re.compile(r"^[A-Za-z][\w -]{0,63}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Obsidian Tasks' emoji format: https://publish.obsidian.md/tasks/Reference/Task+Formats/Tasks+Emoji+Format
_PRIORITY_SIGNS = {"highest": "🔺", "high": "⏫", "medium": "🔼", "low": "🔽", "lowest": "⏬"}


class NoteWritten(TypedDict):
    """Which note a vault tool wrote."""

    path: str


def _fold(name: str) -> str:
    # Case-insensitive filesystems (macOS, Windows) and Windows' dropping of trailing dots and
    # spaces would otherwise let "inbox" or "Plans." land in an engine folder.
    return name.rstrip(" .").casefold()


def _check_component(part: str) -> None:
    if not part:
        raise ToolError("refused: the path has an empty name in it ('//', or a leading or trailing '/')")
    if part in (".", ".."):
        raise ToolError("refused: '.' and '..' may not appear in the path")
    if part.startswith("."):
        raise ToolError("refused: hidden names (starting with '.') are off limits")
    if len(part.encode("utf-8")) > MAX_NAME_BYTES:
        raise ToolError(f"refused: a name in the path is longer than {MAX_NAME_BYTES} bytes")


def check_note_path(path: str, suffix: str = NOTE_SUFFIX) -> PurePosixPath:
    """Validate a vault-relative note path (of a file ending in `suffix`) from a tool call; raise
    ToolError saying why it is refused."""
    if not path:
        raise ToolError("refused: the path is empty")
    if len(path) > MAX_PATH_CHARS:
        raise ToolError(f"refused: the path is longer than {MAX_PATH_CHARS} characters")
    # Cf covers bidi overrides and zero-width characters, which make a name read as something else.
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in path):
        raise ToolError("refused: the path contains control or invisible formatting characters")
    if "\\" in path:
        raise ToolError("refused: separate folders with '/', not '\\'")
    if path.startswith("/"):
        raise ToolError("refused: the path must be relative to the vault, not absolute")
    parts = path.split("/")
    for part in parts:
        _check_component(part)
    if _fold(parts[0]) in _ENGINE_FOLDERS:
        raise ToolError(f"refused: {parts[0]}/ belongs to the engine; write notes elsewhere, e.g. Notes/")
    if len(parts) == 1 and _fold(parts[0]) in _PROTECTED_FILES:
        raise ToolError(f"refused: {parts[0]} is maintained by you or the engine, not by tools")
    if not path.endswith(suffix) or len(parts[-1]) == len(suffix):
        raise ToolError(f"refused: the path must end with a name and '{suffix}'")
    return PurePosixPath(*parts)


def note_target(root: Path, rel: PurePosixPath) -> Path:
    """Map a checked relative path into the vault `root` (already resolved), refusing any symlink.

    A symlink planted inside the vault could point anywhere, so none is followed. The check and the
    write are not one atomic step; racing it needs local write access to the vault, which is beyond
    what this guards against (hostile tool arguments).
    """
    current = root
    for depth, part in enumerate(rel.parts, start=1):
        current = current / part
        if current.is_symlink():
            raise ToolError(f"refused: {PurePosixPath(*rel.parts[:depth])} is a symbolic link")
    if not current.resolve().is_relative_to(root):
        raise ToolError("refused: the path leads outside the vault")
    return current


def _encode(content: str) -> bytes:
    data = content.encode("utf-8")
    if len(data) > MAX_CONTENT_BYTES:
        raise ToolError(f"refused: the content is larger than {MAX_CONTENT_BYTES} bytes")
    return data


class VaultTools:
    """The tools, on the vault at `root` (resolved)."""

    def __init__(self, vault_root: Path) -> None:
        self.root = vault_root.resolve()
        self.vault = layout.Vault(self.root)

    def create_note(self, path: NotePath, content: NoteContent) -> NoteWritten:
        """Create a new markdown note in the vault; never overwrites an existing one.

        Missing parent folders are created. Fails if a note already exists at `path`: use
        append_to_note to add to it. Returns the vault-relative path written.
        """
        rel = check_note_path(path)
        data = _encode(content)
        target = note_target(self.root, rel)
        if os.path.lexists(target):
            raise ToolError(f"refused: {rel} already exists (notes are never overwritten); use append_to_note")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # create_file links under a free variant name if another writer won the race for
            # this one, so nothing is clobbered; the variant is what gets reported.
            written = create_file(target.parent, target.name, data, self.vault.tmp_dir)
        except (OSError, FileOpError) as exc:
            raise ToolError(f"could not create {rel}: {os_reason(exc)}") from exc
        written_rel = self.vault.relative(written)
        log.info("note created path=%r bytes=%d", written_rel, len(data))
        return {"path": written_rel}

    def append_to_note(self, path: NotePath, content: NoteContent) -> NoteWritten:
        """Append text to the end of an existing markdown note in the vault.

        A line break is added first if the note does not end with one. Fails if the note does not
        exist (use create_note) or if it changes while being appended to (try again).
        """
        rel = check_note_path(path)
        data = _encode(content)
        if not data:
            raise ToolError("refused: there is nothing to append")
        target = note_target(self.root, rel)
        if not target.exists():
            raise ToolError(f"refused: {rel} does not exist; use create_note")
        if not target.is_file():
            raise ToolError(f"refused: {rel} is not a regular file")
        try:
            old = target.read_bytes()
            separator = b"\n" if old and not old.endswith(b"\n") else b""
            # `expected` makes the replace fail instead of losing an edit the user saved meanwhile.
            replace_file(target, old + separator + data, self.vault.tmp_dir, expected=old)
        except ConcurrentEditError as exc:
            raise ToolError(f"{rel} changed while appending; nothing was written, try again") from exc
        except (OSError, FileOpError) as exc:
            raise ToolError(f"could not append to {rel}: {os_reason(exc)}") from exc
        log.info("note appended path=%r bytes=%d", str(rel), len(data))
        return {"path": rel.as_posix()}

    def move_note(self, path: NotePath, folder: Folder) -> NoteWritten:
        """Move a note into another folder of the vault; never overwrites (a free name is taken).

        Engine folders and hidden folders are refused on both ends. Returns the note's new path.
        """
        rel = check_note_path(path)
        dest_rel = check_note_path(f"{folder.strip('/')}/{rel.name}")
        source = note_target(self.root, rel)
        if not source.is_file():
            raise ToolError(f"refused: {rel} does not exist (or is not a note)")
        dest_folder = note_target(self.root, dest_rel).parent
        try:
            dest_folder.mkdir(parents=True, exist_ok=True)
            moved = move_file(source, dest_folder)
        except (OSError, FileOpError) as exc:
            raise ToolError(f"could not move {rel}: {os_reason(exc)}") from exc
        log.info("note moved from=%r to=%r", str(rel), self.vault.relative(moved))
        return {"path": self.vault.relative(moved)}

    def set_property(self, path: NotePath, name: PropertyName, value: PropertyValue) -> NoteWritten:
        """Set one property (frontmatter key) of an existing note, or remove it with null.

        Only that property changes; the rest of the note stays as it is, byte for byte.
        """
        rel = check_note_path(path)
        if not _PROPERTY.match(name):
            raise ToolError("refused: a property name is letters, digits, spaces, '-' and '_', starting with a letter")
        target = note_target(self.root, rel)
        if not target.is_file():
            raise ToolError(f"refused: {rel} does not exist; use create_note")

        def change(text: str) -> str:
            if not split_note(text).frontmatter and not text.startswith("---"):
                text = "---\n---\n" + text  # a note without properties gets them
            if value is None:
                return update_frontmatter(text, {}, remove=(name,))
            return update_frontmatter(text, {name: value})

        try:
            edit_file(target, change, self.vault.tmp_dir)
        except FormatError as exc:
            raise ToolError(f"refused: the properties of {rel} cannot be read: {exc}") from exc
        except (OSError, FileOpError, ConcurrentEditError) as exc:
            raise ToolError(f"could not update {rel}: {os_reason(exc)}") from exc
        log.info("property set path=%r name=%r", str(rel), name)
        return {"path": rel.as_posix()}

    def create_task(
        self,
        description: TaskText,
        due: TaskDate = None,
        scheduled: TaskDate = None,
        priority: Priority = None,
        note: TasksNote = "Tasks.md",
        idempotency_key: IdempotencyKey = None,
    ) -> NoteWritten:
        """Add a task in Obsidian Tasks format (`- [ ] ... ⏫ 📅 2026-12-05`) to a note, by default Tasks.md.

        The Tasks plugin (or any markdown checklist) shows it; the same step run again adds nothing.
        """
        text = " ".join(description.split())
        check_header_value(description, "the description")
        if not text:
            raise ToolError("refused: the task says nothing")
        for what, day in (("due", due), ("scheduled", scheduled)):
            if day is not None and not _DATE.match(day):
                raise ToolError(f"refused: {what} must be a date like 2026-12-05")
        parts = [f"- [ ] {text}"]
        if priority:
            parts.append(_PRIORITY_SIGNS[priority])
        if scheduled:
            parts.append(f"⏳ {scheduled}")
        if due:
            parts.append(f"📅 {due}")
        parts.append(f"➕ {date.today().isoformat()}")
        marker = f"🆔 {hashlib.sha256(idempotency_key.encode()).hexdigest()[:8]}" if idempotency_key else ""
        rel = check_note_path(note)
        target = note_target(self.root, rel)
        if marker and target.is_file() and marker in target.read_text("utf-8", errors="replace"):
            return {"path": rel.as_posix()}  # this step added it already
        line = " ".join(parts + ([marker] if marker else [])) + "\n"
        if not target.exists():
            return self.create_note(note, f"# Tasks\n\n{line}")
        return self.append_to_note(note, line)


def build_server(vault_root: Path) -> MCPServer:
    """The "vault" MCP server, writing into the vault at `vault_root`."""
    tools = VaultTools(vault_root)
    server: MCPServer = MCPServer("vault", version=__version__)
    additive = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
    changing = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
    for tool, hints in (
        (tools.create_note, additive),
        (tools.append_to_note, additive),
        (tools.create_task, additive),
        (tools.move_note, changing),
        (tools.set_property, changing),
    ):
        # inspect.getdoc dedents: Python 3.11 keeps a docstring's indentation, which the SDK sends as is.
        server.add_tool(tool, description=inspect.getdoc(tool), annotations=hints)
    return server


def main() -> None:
    """Serve the vault tools over stdio; the vault folder comes from AI_EMPLOYEE_VAULT."""
    # Configured before the SDK's own basicConfig so that nothing can log to stdout, the transport.
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    raw = os.environ.get(VAULT_ENV, "")
    if not raw:
        sys.exit(f"vault MCP server: set {VAULT_ENV} to the vault folder")
    root = Path(raw).expanduser()
    if not root.is_dir():
        sys.exit(f"vault MCP server: {VAULT_ENV}={raw} is not a folder; set it to the vault folder")
    build_server(root).run()


if __name__ == "__main__":
    main()
