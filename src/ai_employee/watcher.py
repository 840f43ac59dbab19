"""The vault watcher: turns file-system events into hints that wake the pipeline.

Events are only hints (DESIGN principle 2): the pipeline's sweeps find everything anyway. A close
after writing, or a rename into `Inbox/`, additionally tells ingest that a file is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable

import structlog
from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyObserver
from watchdog.observers.polling import PollingObserver

from ai_employee.vault.layout import APPROVED, INBOX, NEEDS_ACTION, PLANS, REJECTED, Vault

log = structlog.get_logger(__name__)
# The folders a stage reads (in Plans/, the owner's feedback under a waiting plan's `## Feedback`).
WATCHED = (INBOX, NEEDS_ACTION, PLANS, APPROVED, REJECTED)
# (folder, file name, state): True = complete (closed after writing, or moved in); False = just
# created, a close event will follow; None = something happened.
Hint = Callable[[str, str, bool | None], None]
# The only events that can mean new work. Asking inotify for nothing else matters: the engine's own
# reads (open, close-without-write) and writes (modify) would otherwise each wake watchdog's threads,
# which then compete with the pipeline for the GIL during a burst.
HINT_EVENTS = (FileCreatedEvent, FileMovedEvent, FileClosedEvent)


class _Handler(FileSystemEventHandler):
    """Runs on watchdog's threads. Hints are queued and handed to the loop in batches: one
    `call_soon_threadsafe` per batch, not per event. (A burst of events each writing to the loop's
    self-pipe fills it, and a signal's wake-up byte can then be lost: SIGTERM would go unnoticed.)"""

    def __init__(self, loop: asyncio.AbstractEventLoop, hint: Hint, reports_close: bool) -> None:
        self.loop = loop
        self.hint = hint
        self.reports_close = reports_close  # inotify does; FSEvents and polling do not
        self._lock = threading.Lock()
        self._queued: list[tuple[str, str, bool | None]] = []
        self._scheduled = False

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        complete: bool | None = None
        if isinstance(event, FileMovedEvent):
            # A rename is complete by nature: a sync tool's or browser's rename on completion, `mv`, a
            # file manager's move. From outside the watched folders the source is "" (full events).
            if not event.dest_path:
                return  # moved out of the watched folders: nothing new to do (like a deletion)
            self._send(os.fsdecode(event.dest_path), complete=True)
            if not event.src_path:
                return
        elif isinstance(event, FileClosedEvent):
            complete = True
        elif isinstance(event, FileCreatedEvent) and self.reports_close:
            complete = False
        self._send(os.fsdecode(event.src_path), complete)

    def _send(self, path: str, complete: bool | None) -> None:
        folder, name = os.path.split(path)
        with self._lock:
            self._queued.append((os.path.basename(folder), name, complete))
            if self._scheduled:
                return
            self._scheduled = True
        # RuntimeError: the loop is closing because the engine is stopping.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        """On the loop's thread: pass every queued hint on."""
        with self._lock:
            queued, self._queued = self._queued, []
            self._scheduled = False
        for folder, name, complete in queued:
            self.hint(folder, name, complete)


def _observer(polling: bool, poll_interval_s: float) -> BaseObserver:
    """inotify where there is one, with full move events: a file moved in from outside the watched
    folders arrives as a move (complete), not as a creation (a close would be waited for in vain)."""
    if polling:
        return PollingObserver(timeout=min(poll_interval_s, 1.0))
    if Observer is InotifyObserver:
        return InotifyObserver(generate_full_events=True)
    return Observer()


class VaultWatcher:
    """A service running a watchdog observer on the pipeline's folders for as long as it runs."""

    name = "watcher"

    def __init__(self, vault: Vault, hint: Hint, polling: bool, poll_interval_s: float) -> None:
        self.vault = vault
        self.hint = hint
        self.polling = polling
        self.poll_interval_s = poll_interval_s
        self.observer: BaseObserver | None = None

    def healthy(self) -> bool:
        return self.observer is not None and self.observer.is_alive()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        observer = _observer(self.polling, self.poll_interval_s)
        handler = _Handler(loop, self.hint, reports_close=isinstance(observer, InotifyObserver))
        for name in WATCHED:
            folder = self.vault.folder(name)
            folder.mkdir(exist_ok=True)
            observer.schedule(handler, str(folder), recursive=False, event_filter=list(HINT_EVENTS))
        observer.start()
        self.observer = observer
        log.info("watching vault", vault=str(self.vault.root), polling=self.polling)
        try:
            while observer.is_alive():
                await asyncio.sleep(1.0)
            raise RuntimeError("the file-system observer stopped")
        finally:
            observer.stop()
            await asyncio.to_thread(observer.join, 5.0)
            self.observer = None
