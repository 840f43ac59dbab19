"""Setting an input aside in `Quarantine/` with a note beside it that says why and how to retry."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from ai_employee.clock import now_stamp
from ai_employee.errors import NotFoundError, UserError
from ai_employee.events import EventName, FilePayload
from ai_employee.vault.actions import clean_text
from ai_employee.vault.fsops import move_file, replace_file
from ai_employee.vault.layout import INBOX, QUARANTINE, Vault

if TYPE_CHECKING:
    from ai_employee.pipeline.context import EngineContext

log = structlog.get_logger(__name__)


def quarantine(ctx: EngineContext, path: Path, reason: str, retry: str) -> Path:
    """Move `path` (file, link or special file, never opened) to Quarantine/ and write the why-note."""
    folder = ctx.vault.folder(QUARANTINE)
    folder.mkdir(exist_ok=True)
    origin = ctx.vault.relative(path.parent)
    dest = move_file(path, folder)
    note = (
        f"# Quarantined: {clean_text(dest.name, 200)}\n\n"
        f"> [!warning] AI Employee: this input was set aside\n"
        f"> **Why:** {clean_text(reason, 2000)}\n"
        f">\n> **To retry:** {retry}\n\n"
        f"- Came from: `{origin}/`\n"
        f"- Set aside: {now_stamp()}\n"
        f"- File: `{ctx.vault.relative(dest)}`\n"
    )
    # `dest` was a free name, so a why-note already under its name is a stale one (its file was moved
    # out of Quarantine/ since): replaced, so each file has the one note that explains it.
    replace_file(folder / f"{dest.name}.why.md", note.encode("utf-8"), ctx.tmp_dir)
    log.warning("quarantined", path=ctx.vault.relative(dest), reason=reason)
    ctx.bus.publish(EventName.FILE_QUARANTINED, FilePayload(path=ctx.vault.relative(dest), reason=reason))
    return dest


@dataclass(frozen=True)
class WhyNote:
    """What a quarantine note says: why the file was set aside, how to retry, the folder it came from."""

    reason: str = ""
    retry: str = ""
    origin: str = ""


def read_why(path: Path) -> WhyNote:
    """The note beside a quarantined file (the format `quarantine` writes); empty fields if unreadable."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return WhyNote()

    def field(start: str) -> str:
        # Anchored at the start of a line: the title holds the file's name, which may say anything.
        return next((line.removeprefix(start).strip() for line in lines if line.startswith(start)), "")

    return WhyNote(field("> **Why:**"), field("> **To retry:**"), field("- Came from:").strip("`/ "))


def retryable(held: Path, why: WhyNote) -> bool:
    """Whether `release` puts this quarantined file back: a regular file its note says came from Inbox/."""
    return why.origin == INBOX and held.is_file() and not held.is_symlink()


def release(vault: Vault, name: str) -> str:
    """Put a file that was set aside on its way in back into `Inbox/` to be taken again (the web page's
    retry; the same as moving it back by hand), its why-note removed; its name in `Inbox/`. Files set
    aside from other folders (a plan note in `Approved/`, a broken action file) are refused: putting
    them back is a decision (approving) or needs a fix first, which the note explains."""
    folder = vault.folder(QUARANTINE)
    path = folder / name
    if "/" in name or "\\" in name or name in ("", ".", "..") or name.endswith(".why.md"):
        raise UserError(f"{name!r} is not a quarantined file's name")
    if not path.exists() and not path.is_symlink():
        raise NotFoundError(f"{QUARANTINE}/{name} is not there any more (moved or retried already)")
    note = folder / f"{name}.why.md"
    why = read_why(note)
    if why.origin != INBOX:
        came = f"came from {why.origin}/, not Inbox/" if why.origin else "has no note saying it came from Inbox/"
        raise UserError(f"{QUARANTINE}/{name} {came}: {why.retry or 'look at it and move it by hand'}")
    if path.is_symlink() or not path.is_file():
        raise UserError(f"{QUARANTINE}/{name} is not a regular file: it stays set aside; look at it by hand")
    # The note goes first: if the engine sets the file aside again at once, its new note is the one kept.
    kept = note.read_bytes()
    note.unlink()
    try:
        dest = move_file(path, vault.folder(INBOX))
    except BaseException:
        replace_file(note, kept, vault.tmp_dir)
        raise
    # The move is a hard link, which a watcher sees as a file just created and maybe still being written
    # (ingest then waits up to a minute); opening it for writing and closing it, writing nothing, tells
    # it the file is complete (inotify's close-after-write), so it is taken at once.
    with contextlib.suppress(OSError):  # never created anew: if the engine has taken it already, nothing
        os.close(os.open(dest, os.O_WRONLY | os.O_APPEND))
    log.info("quarantined input released", path=vault.relative(dest))
    return dest.name
