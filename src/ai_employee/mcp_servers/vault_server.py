"""MCP server "vault": lets approved plans create and extend the user's notes, never the engine's files.

Serve it over stdio with `python -m ai_employee.mcp_servers.vault_server`; the vault folder comes from
the AI_EMPLOYEE_VAULT environment variable. Tool arguments can be shaped by hostile email content, so
every path is checked (`check_note_path`, `note_target`) before anything touches the disk.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Annotated, TypedDict

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from ai_employee import __version__
from ai_employee.errors import ConcurrentEditError
from ai_employee.vault import layout
from ai_employee.vault.fsops import FileOpError, create_file, replace_file

log = logging.getLogger(__name__)

VAULT_ENV = "AI_EMPLOYEE_VAULT"
NOTE_SUFFIX = ".md"
MAX_CONTENT_BYTES = 1024 * 1024
MAX_PATH_CHARS = 400
# The per-name limit of ext4, APFS and NTFS alike; checked here so the refusal is a clear message.
MAX_NAME_BYTES = 255

_ENGINE_FOLDERS = frozenset(name.casefold() for name in layout.ENGINE_FOLDERS)
_PROTECTED_FILES = frozenset(name.casefold() for name in (layout.DASHBOARD, layout.HANDBOOK))

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


def check_note_path(path: str) -> PurePosixPath:
    """Validate a vault-relative note path from a tool call; raise ToolError saying why it is refused."""
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
    if not path.endswith(NOTE_SUFFIX) or len(parts[-1]) == len(NOTE_SUFFIX):
        raise ToolError(f"refused: a note's path must end with a name and '{NOTE_SUFFIX}'")
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


def _reason(exc: BaseException) -> str:
    """The OS's reason for a failure, without the absolute paths the exception text carries."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return type(exc).__name__


def build_server(vault_root: Path) -> MCPServer:
    """The "vault" MCP server, writing into the vault at `vault_root`."""
    root = vault_root.resolve()
    vault = layout.Vault(root)

    def create_note(path: NotePath, content: NoteContent) -> NoteWritten:
        """Create a new markdown note in the vault; never overwrites an existing one.

        Missing parent folders are created. Fails if a note already exists at `path`: use
        append_to_note to add to it. Returns the vault-relative path written.
        """
        rel = check_note_path(path)
        data = _encode(content)
        target = note_target(root, rel)
        if os.path.lexists(target):
            raise ToolError(f"refused: {rel} already exists (notes are never overwritten); use append_to_note")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # create_file links under a free variant name if another writer won the race for
            # this one, so nothing is clobbered; the variant is what gets reported.
            written = create_file(target.parent, target.name, data, vault.tmp_dir)
        except (OSError, FileOpError) as exc:
            raise ToolError(f"could not create {rel}: {_reason(exc)}") from exc
        written_rel = vault.relative(written)
        log.info("note created path=%r bytes=%d", written_rel, len(data))
        return {"path": written_rel}

    def append_to_note(path: NotePath, content: NoteContent) -> NoteWritten:
        """Append text to the end of an existing markdown note in the vault.

        A line break is added first if the note does not end with one. Fails if the note does not
        exist (use create_note) or if it changes while being appended to (try again).
        """
        rel = check_note_path(path)
        data = _encode(content)
        if not data:
            raise ToolError("refused: there is nothing to append")
        target = note_target(root, rel)
        if not target.exists():
            raise ToolError(f"refused: {rel} does not exist; use create_note")
        if not target.is_file():
            raise ToolError(f"refused: {rel} is not a regular file")
        try:
            old = target.read_bytes()
            separator = b"\n" if old and not old.endswith(b"\n") else b""
            # `expected` makes the replace fail instead of losing an edit the user saved meanwhile.
            replace_file(target, old + separator + data, vault.tmp_dir, expected=old)
        except ConcurrentEditError as exc:
            raise ToolError(f"{rel} changed while appending; nothing was written, try again") from exc
        except (OSError, FileOpError) as exc:
            raise ToolError(f"could not append to {rel}: {_reason(exc)}") from exc
        log.info("note appended path=%r bytes=%d", str(rel), len(data))
        return {"path": rel.as_posix()}

    server: MCPServer = MCPServer("vault", version=__version__)
    additive = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
    for tool in (create_note, append_to_note):
        # inspect.getdoc dedents: Python 3.11 keeps a docstring's indentation, which the SDK sends as is.
        server.add_tool(tool, description=inspect.getdoc(tool), annotations=additive)
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
