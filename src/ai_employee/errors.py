"""The project's errors: `UserError` is anything a user can fix, and its message says how."""

from __future__ import annotations

import errno
import sqlite3


class AIEmployeeError(Exception):
    """Base of every error the engine raises on purpose."""


class UserError(AIEmployeeError):
    """A problem the user can fix; the message is one line that says how."""


class ConfigError(UserError):
    """The configuration is invalid; the message names the key and the fix."""


class VaultError(UserError):
    """The vault is missing, malformed or not writable."""


class EngineRunningError(UserError):
    """Another engine holds this vault's lock."""


class NotFoundError(UserError):
    """A plan or action named on the command line does not exist."""


class FormatError(AIEmployeeError):
    """A note or action file cannot be parsed; the message says what is wrong with it."""


class ConcurrentEditError(AIEmployeeError):
    """A file changed under us between reading and replacing it."""


# Faults of the machine rather than of one item: every write fails until a person fixes the cause.
_MACHINE_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the vault's file system is read-only",
    errno.EIO: "the disk reports input/output errors",
}
_SQLITE_FAULTS = {"disk is full": errno.ENOSPC, "readonly database": errno.EROFS, "disk i/o error": errno.EIO}


def machine_fault(exc: BaseException) -> str | None:
    """In plain words, what is wrong with the machine if `exc` (or what caused it) is a full disk, a
    read-only or failing file system, or the ledger failing for one of those reasons; else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _MACHINE_ERRNOS:
            return _MACHINE_ERRNOS[current.errno]
        if isinstance(current, sqlite3.OperationalError):
            message = str(current).lower()
            for needle, code in _SQLITE_FAULTS.items():
                if needle in message:
                    return f"{_MACHINE_ERRNOS[code]} (the ledger cannot be written)"
        current = current.__cause__ or current.__context__
    return None
