"""Setting an input aside in `Quarantine/` with a note beside it that says why and how to retry."""

from __future__ import annotations

from pathlib import Path

import structlog

from ai_employee.clock import now_stamp
from ai_employee.events import EventName, FilePayload
from ai_employee.pipeline.context import EngineContext
from ai_employee.vault.actions import clean_text
from ai_employee.vault.fsops import move_file, replace_file
from ai_employee.vault.layout import QUARANTINE

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
