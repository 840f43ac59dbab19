"""Ingest: every finished file in `Inbox/` becomes an action file; the original goes to `Attachments/`.

Crash safety: before touching the vault, an intent record (the finished action file and the planned
names) is written to the ledger, one durable transaction for a batch. The originals are then moved and
the actions published, and the intents removed. After a crash, `recover()` finishes or forgets each
intent depending on where the original is, so an input ends up with exactly one action.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from ai_employee.clock import local_now
from ai_employee.errors import machine_fault
from ai_employee.events import ActionPayload, EventName, FilePayload
from ai_employee.faults import crash_point
from ai_employee.pipeline.context import EngineContext
from ai_employee.pipeline.quarantine import quarantine
from ai_employee.vault.actions import Action, clean_text, file_name, file_title, new_id
from ai_employee.vault.extract import Extracted, describe, extract
from ai_employee.vault.fsops import (
    candidate_names,
    create_file,
    fsync_dir,
    group_commit,
    in_parallel,
    split_name,
)
from ai_employee.vault.layout import ACTION_SUFFIX, ATTACHMENTS, DONE, INBOX, NEEDS_ACTION, entries
from ai_employee.vault.notes import read_id

log = structlog.get_logger(__name__)
# Files ingested per group commit: bigger batches amortise directory fsyncs, smaller ones publish sooner.
BATCH_SIZE = 64
# A file the watcher saw created but not closed is waited for while its writer is quiet for less than
# this (a slow copy, a writer pausing): only then is it taken as it is (the close may have been missed).
WRITER_WAIT_S = 60.0
RETRY_HINT = "fix the problem, then move the file back into `Inbox/`."


@dataclass(frozen=True)
class Pass:
    """What one pass did: items handled, and seconds until an unsettled file should be looked at again."""

    handled: int
    recheck_s: float | None = None


class IngestStage:
    def __init__(self, ctx: EngineContext, announce: Callable[[str], None] = lambda name: None) -> None:
        self.ctx = ctx
        self.inbox = ctx.vault.folder(INBOX)
        # Told the name of each action file written into Needs_Action/ (planning's hint): it is planned
        # at once, with or without a watcher.
        self.announce = announce
        # Names the watcher saw closed after writing or renamed into Inbox/: complete, no need to wait.
        self.closed: set[str] = set()
        # Names the watcher saw created and not yet closed: still being written, however long the writer
        # pauses (up to WRITER_WAIT_S). Only watchers that report closes (inotify) tell us this.
        self.writing: set[str] = set()
        # Files the last scan found ready and no batch has taken yet.
        self.backlog: list[Path] = []

    def hint(self, name: str, complete: bool) -> None:
        if complete:
            self.closed.add(name)
            self.writing.discard(name)
        elif name not in self.closed:
            self.writing.add(name)

    def run_once(self, should_stop: Callable[[], bool] = lambda: False) -> Pass:
        """Ingest one batch. The files found ready by a scan are taken a batch per call until none is
        left, and only then is `Inbox/` scanned again: a burst of N files costs one scan per N files,
        not one per batch (a file gone or being rewritten meanwhile is skipped, and found again)."""
        if self.backlog:
            batch = [p for p in self.backlog[:BATCH_SIZE] if p.name not in self.writing]
            del self.backlog[:BATCH_SIZE]
            if should_stop():
                return Pass(0, 0.0)
            return Pass(self._ingest_batch(batch) if batch else 0, 0.0)
        handled = 0
        recheck: float | None = None
        settle = self.ctx.config.watcher.settle_s
        now = time.time()
        ready: list[Path] = []
        present: set[str] = set()
        for entry in entries(self.inbox):
            present.add(entry.name)
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                if entry.name not in self.closed:
                    quiet_s = WRITER_WAIT_S if entry.name in self.writing else settle
                    wait = quiet_s - (now - st.st_mtime)
                    if wait > 0:
                        recheck = wait if recheck is None else min(recheck, wait)
                        continue
                ready.append(Path(entry.path))
            elif stat.S_ISDIR(st.st_mode):
                # Left in place (a folder may still be being copied in) and shown until it is gone.
                self.ctx.report_problem(
                    "ingest",
                    Path(entry.path),
                    f"`{clean_text(entry.name)}` is a folder: the engine takes files only; move the files"
                    " themselves into Inbox/",
                )
            else:
                handled += self._guarded(self._set_aside_special, Path(entry.path))
            self.closed.discard(entry.name)
            self.writing.discard(entry.name)
        self.writing &= present  # forget files that went away before they were closed
        # One batch per call: the pipeline yields to the event loop (signals, heartbeat) between calls.
        if ready and not should_stop():
            self.backlog = ready[BATCH_SIZE:]
            handled += self._ingest_batch(ready[:BATCH_SIZE])
        return Pass(handled, 0.0 if self.backlog else recheck)

    def _guarded(self, handle: Callable[[Path], int], path: Path) -> int:
        try:
            return handle(path)
        except Exception as exc:  # one bad item must not stop the stage: report it and go on
            self.ctx.item_failed("ingest", path, exc, "ingest failed")
            return 0

    def _set_aside_special(self, path: Path) -> int:
        kind = "a symbolic link" if path.is_symlink() else "not a regular file (a pipe, socket or device)"
        quarantine(
            self.ctx,
            path,
            f"`{clean_text(path.name)}` is {kind}; the engine never follows links or reads special files.",
            "put a regular copy of the file itself into `Inbox/`.",
        )
        return 1

    def _ingest_batch(self, paths: list[Path]) -> int:
        """Ingest files in three steps: the batch's intents durable in the ledger (one fsync), the
        originals moved, the actions published (each step's directory fsyncs done once per batch)."""
        vault = self.ctx.vault
        attachments = vault.folder(ATTACHMENTS)
        intents: list[tuple[Path, dict[str, str]]] = []
        handled = 0
        reserved: set[str] = set()
        batch_sources: dict[str, str] = {}
        for path in paths:
            try:
                prepared = self._prepare(path, reserved, batch_sources)
            except Exception as exc:  # one bad item must not stop the stage
                self.ctx.item_failed("ingest", path, exc, "ingest failed")
                continue
            if isinstance(prepared, int):
                handled += prepared
            else:
                intents.append((path, prepared))
        if not intents:
            return handled
        self.ctx.ledger.add_intents([intent for _, intent in intents])
        crash_point("ingest.after_intents")
        moved: list[dict[str, str]] = []
        forget: list[str] = []
        with group_commit():
            for path, intent in intents:
                target = attachments / intent["attachment"]
                try:
                    os.link(path, target)
                    try:
                        os.unlink(path)
                    except OSError:
                        target.unlink()  # undo: the original stays the only copy, in Inbox/
                        raise
                except OSError as exc:
                    if machine_fault(exc):
                        raise  # the batch's intents stay; recovery finishes them once the fault is gone
                    forget.append(intent["action_id"])
                    self.ctx.report_problem("ingest", path, f"cannot move {path.name}: {exc.strerror or exc}")
                    continue
                fsync_dir(attachments)
                fsync_dir(self.inbox)
                moved.append(intent)
                crash_point("ingest.after_move")
        with group_commit():
            written = in_parallel(self._publish, moved)
        failed = [result for result in written if isinstance(result, Exception)]
        if failed:
            raise failed[0]  # like a crash: the batch's intents stay, and recovery finishes them
        for intent, dest in zip(moved, written, strict=True):
            assert isinstance(dest, Path)
            self._record(intent, dest)
        self.ctx.ledger.drop_intents(forget + [intent["action_id"] for intent in moved])
        return handled + len(moved)

    def _publish(self, intent: dict[str, str]) -> Path:
        dest = self._create_action(intent)
        crash_point("ingest.after_action")
        return dest

    def _prepare(self, path: Path, reserved: set[str], batch_sources: dict[str, str]) -> int | dict[str, str]:
        """Extract a file and build its intent; an int if it was dealt with otherwise (0 or 1 handled).

        A file with the same bytes as an earlier input (in the ledger's `sources`, or earlier in this
        batch) is not processed again: its action is filed straight into `Done/` with `status: done` and
        `duplicate_of` naming the first action. Empty files are exempt: their names are their content.
        """
        try:
            extracted = extract(path, self.ctx.config.ingest.max_preview_bytes)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            # Transient (permissions, disk): leave it where it is and say so; the next sweep retries.
            self.ctx.report_problem("ingest", path, f"cannot read {path.name}: {exc.strerror or exc}")
            return 0
        except Exception as exc:
            log.exception("extraction failed", path=str(path))
            quarantine(self.ctx, path, f"the engine could not read this file: {exc}", RETRY_HINT)
            return 1
        self.ctx.clear_problem("ingest", path)
        created = local_now()
        attachment = self._free_attachment_name(path.name, reserved)
        action = _build_action(path.name, attachment, extracted, created)
        source = f"sha256:{extracted.sha256}"
        first = (batch_sources.get(source) or self.ctx.ledger.source(source)) if extracted.size_bytes else None
        if first is None:
            batch_sources[source] = action.id
        else:
            action.status = "done"
            action.extra["duplicate_of"] = first
            action.content["description"] += (
                f" It has the same content as an earlier input (action {first}), so it was not processed again. To"
                " process it anyway, delete `duplicate_of`, set `status: new` and move this file to"
                " `Needs_Action/`."
            )
        intent = {
            "inbox": path.name,
            "attachment": attachment,
            "action_name": file_name(created, action.title),
            "action": action.to_yaml(),
            "action_id": action.id,
            "type": action.type,
            "sha256": extracted.sha256,
        }
        if first is not None:
            intent["duplicate_of"] = first
        return intent

    def _create_action(self, intent: dict[str, str]) -> Path:
        vault = self.ctx.vault
        return create_file(self._folder(intent), intent["action_name"], intent["action"].encode("utf-8"), vault.tmp_dir)

    def _folder(self, intent: dict[str, str]) -> Path:
        """Where the intent's action file goes: `Needs_Action/`, or `Done/` for a duplicate."""
        return self.ctx.vault.folder(DONE if "duplicate_of" in intent else NEEDS_ACTION)

    def _record(self, intent: dict[str, str], dest: Path) -> None:
        """The action is durable: record it and tell the bus (the caller drops the intents)."""
        vault = self.ctx.vault
        self.ctx.ledger.record_source(f"sha256:{intent['sha256']}", intent["action_id"])
        bus = self.ctx.bus
        attachment = f"{ATTACHMENTS}/{intent['attachment']}"
        if "duplicate_of" in intent:
            first = intent["duplicate_of"]
            log.info("duplicate input linked to the first", path=attachment, duplicate_of=first)
            bus.publish(
                EventName.FILE_DUPLICATE, FilePayload(path=attachment, reason=f"same content as action {first}")
            )
            return
        self.announce(dest.name)
        bus.publish(EventName.FILE_CREATED, FilePayload(path=attachment))
        bus.publish(
            EventName.ACTION_GENERATED,
            ActionPayload(
                action_id=intent["action_id"],
                type=intent["type"],
                title=dest.name,
                path=vault.relative(dest),
            ),
        )

    def _free_attachment_name(self, name: str, reserved: set[str]) -> str:
        stem, suffix = split_name(name)
        # The suffix goes into links in notes: letters and digits only (a line break would add structure).
        safe = file_title(stem, 120) + (suffix if re.fullmatch(r"\.[A-Za-z0-9_-]{1,15}", suffix) else "")
        folder = self.ctx.vault.folder(ATTACHMENTS)
        for candidate in candidate_names(safe):
            if candidate not in reserved and not os.path.lexists(folder / candidate):
                reserved.add(candidate)
                return candidate
        raise AssertionError("unreachable")  # pragma: no cover

    def _published_in_done(self, intent: dict[str, str]) -> bool:
        """Whether a duplicate's action file is in `Done/` already (under its name or the first free
        variant of it, as `create_file` chose)."""
        folder = self._folder(intent)
        for candidate in candidate_names(intent["action_name"]):
            path = folder / candidate
            if not path.exists():
                return False
            if read_id(path) == intent["action_id"]:
                return True
        return False

    def recover(self) -> int:
        """Finish or forget the intents a crash left behind; return how many were finished."""
        finished = 0
        done: list[str] = []
        intents = self.ctx.ledger.intents()
        if not intents:
            return 0
        open_ids = {read_id(Path(e.path)) for e in entries(self.ctx.vault.folder(NEEDS_ACTION), ACTION_SUFFIX)}
        for intent in intents:
            if "duplicate_of" in intent and self._published_in_done(intent):
                open_ids.add(intent["action_id"])
            done.append(intent["action_id"])
            original = self.inbox / intent["inbox"]
            attachment = self.ctx.vault.folder(ATTACHMENTS) / intent["attachment"]
            if not attachment.exists():
                continue  # never moved: the original is still in Inbox/
            if original.exists() and os.path.samefile(original, attachment):
                original.unlink()  # crashed between link and unlink
                fsync_dir(self.inbox)
            if intent["action_id"] not in open_ids:
                self._record(intent, self._create_action(intent))
                finished += 1
        self.ctx.ledger.drop_intents(done)
        return finished


def _build_action(original_name: str, attachment: str, ex: Extracted, created: datetime) -> Action:
    title = clean_text(ex.title or "") or clean_text(split_name(original_name)[0]) or "untitled"
    content = {
        "kind": ex.kind,
        "media_type": ex.media_type,
        "description": describe(ex),
        "size_bytes": ex.size_bytes,
        "truncated": ex.truncated,
        "preview": ex.preview,
    }
    if ex.problems:
        content["problems"] = list(ex.problems)
    if ex.frontmatter:
        content["frontmatter"] = dict(ex.frontmatter)
    email = None
    if ex.email is not None and ex.email.from_addr:
        email = {
            "from_name": ex.email.from_name,
            "from_addr": ex.email.from_addr,
            "to": list(ex.email.to),
            "cc": list(ex.email.cc),
            "subject": ex.email.subject,
            "date": ex.email.date,
            "message_id": ex.email.message_id,
            "in_reply_to": ex.email.in_reply_to,
        }
        if ex.email.sender_warning:
            email["sender_warning"] = ex.email.sender_warning
        if ex.email.bulk:
            email["bulk"] = ex.email.bulk
        if ex.email.gmail_id and ex.email.thread_id:
            email["gmail_id"] = ex.email.gmail_id
            email["thread_id"] = ex.email.thread_id
    return Action(
        id=new_id(),
        type="email" if email else "file_drop",
        title=title,
        created=created.isoformat(timespec="seconds"),
        source={
            "path": f"{ATTACHMENTS}/{attachment}",
            "original_name": clean_text(original_name, 255),
            "sha256": ex.sha256,
        },
        content=content,
        email=email,
    )
