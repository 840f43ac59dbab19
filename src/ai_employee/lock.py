"""One engine per vault: an exclusive `flock` on `.ai_employee/engine.lock`, released by the kernel
when the process dies, so a crashed engine's lock is never stale."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ai_employee.errors import EngineRunningError


@dataclass(frozen=True)
class LockInfo:
    pid: int
    host: str
    started: str


def read_lock_info(path: Path) -> LockInfo | None:
    try:
        data: Any = json.loads(path.read_text("utf-8") or "{}")
        return LockInfo(int(data["pid"]), str(data.get("host", "")), str(data.get("started", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def holder(path: Path) -> LockInfo | None:
    """Who holds the lock now, or None if no live engine does (tries the lock without keeping it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_lock_info(path) or LockInfo(0, "", "")
    finally:
        os.close(fd)
    return None


def refuse_if_held(path: Path) -> None:
    """Raise EngineRunningError naming the engine that holds the lock, if one does: checked before a
    command prints or starts anything."""
    info = holder(path)
    if info is not None:
        raise _running(info)


def _running(info: LockInfo | None) -> EngineRunningError:
    who = f"pid {info.pid} on {info.host}, since {info.started}" if info and info.pid else "another process"
    return EngineRunningError(f"an engine is already running on this vault ({who}): stop it with `vault stop` first")


class EngineLock:
    """Held for the engine's lifetime; `acquire` raises EngineRunningError naming the holder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise _running(read_lock_info(self.path)) from None
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": datetime.now(UTC).isoformat()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
