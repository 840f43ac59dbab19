"""Atomic, never-clobbering file operations (DESIGN principle 3).

Every write goes to a temp file in the engine's own temp folder on the same filesystem, is fsynced,
and is then published with one `link` (which fails instead of overwriting) or `rename`; the directory
is fsynced after. A crash leaves at worst debris in the temp folder, never a half-written vault file.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TypeVar

from ai_employee.errors import AIEmployeeError, ConcurrentEditError


class FileOpError(AIEmployeeError):
    """A file operation failed; the message says what was being done and to which path."""


T = TypeVar("T")
R = TypeVar("R")
_deferred: ContextVar[set[Path] | None] = ContextVar("deferred_dir_syncs", default=None)


@contextmanager
def group_commit() -> Iterator[None]:
    """Defer directory fsyncs to the end of the block and do each directory once (group commit).

    For a batch of independent operations: N files created in one folder cost one directory fsync
    instead of N. Everything done in the block is durable when it exits, even by an exception.
    Nested blocks join the outermost one.
    """
    if _deferred.get() is not None:
        yield
        return
    pending: set[Path] = set()
    token = _deferred.set(pending)
    try:
        yield
    finally:
        _deferred.reset(token)
        for folder in sorted(pending):
            _fsync_dir_now(folder)


# A few threads for writing files whose fsyncs may overlap: the kernel's journal commits concurrent
# fsyncs together, and a thread waiting in fsync does not hold the GIL.
_WRITERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="writer")


def in_parallel(write: Callable[[T], R], items: Sequence[T]) -> list[R | Exception]:
    """`write(item)` for every item, on the writer threads and inside the caller's `group_commit()`
    if any; the results in order, an item's exception in its place (the caller decides what it means)."""
    if len(items) < 2:
        return [_outcome(write, item) for item in items]
    futures = [_WRITERS.submit(contextvars.copy_context().run, _outcome, write, item) for item in items]
    return [future.result() for future in futures]


def _outcome(write: Callable[[T], R], item: T) -> R | Exception:
    try:
        return write(item)
    except Exception as exc:
        return exc


def os_reason(exc: BaseException) -> str:
    """The OS's reason for a failure, without the absolute paths the exception text carries (for tool
    results, which must not tell a caller where the vault is)."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return type(exc).__name__


def fsync_dir(path: Path) -> None:
    """Flush a directory entry change (a create, rename or unlink) to disk, or at the end of the
    enclosing `group_commit()` block."""
    pending = _deferred.get()
    if pending is not None:
        pending.add(path)
        return
    _fsync_dir_now(path)


def _fsync_dir_now(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(tmp_dir: Path, data: bytes) -> Path:
    tmp = tmp_dir / f".partial-{secrets.token_hex(8)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileNotFoundError:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def split_name(name: str) -> tuple[str, str]:
    """Split a file name into stem and suffix, keeping compound suffixes like `.action.yaml` whole."""
    for compound in (".action.yaml",):
        if name.endswith(compound) and len(name) > len(compound):
            return name[: -len(compound)], compound
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, "." + ext


def candidate_names(name: str) -> Iterator[str]:
    """`name`, then `stem (2).ext`, `stem (3).ext`, ...: unique-name candidates in order."""
    yield name
    stem, suffix = split_name(name)
    n = 2
    while True:
        yield f"{stem} ({n}){suffix}"
        n += 1


def _link_unique(src: Path, folder: Path, name: str) -> Path:
    """Hard-link `src` into `folder` under `name` or the first free variant of it; return the path."""
    for candidate in candidate_names(name):
        dest = folder / candidate
        try:
            os.link(src, dest)
        except FileExistsError:
            continue
        return dest
    raise AssertionError("unreachable")  # pragma: no cover


def create_file(folder: Path, name: str, data: bytes, tmp_dir: Path) -> Path:
    """Atomically create a new file in `folder` named `name` (or a free variant); never overwrites."""
    try:
        tmp = _write_temp(tmp_dir, data)
        try:
            dest = _link_unique(tmp, folder, name)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(folder)
    except OSError as exc:
        raise FileOpError(f"could not create {folder / name}: {exc.strerror or exc}") from exc
    return dest


def replace_file(path: Path, data: bytes, tmp_dir: Path, expected: bytes | None = None) -> None:
    """Atomically replace `path` with `data`.

    With `expected`, the file is re-read just before the rename and left alone (ConcurrentEditError)
    if it no longer holds exactly those bytes: someone edited it since we read it.
    """
    try:
        tmp = _write_temp(tmp_dir, data)
        try:
            if expected is not None and path.read_bytes() != expected:
                raise ConcurrentEditError(f"{path} changed while it was being updated")
            with contextlib.suppress(FileNotFoundError):
                os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))  # keep the user's permissions
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # only when it was not renamed: after a rename it is gone
            raise
        fsync_dir(path.parent)
    except OSError as exc:
        raise FileOpError(f"could not replace {path}: {exc.strerror or exc}") from exc


def move_file(src: Path, folder: Path, name: str | None = None) -> Path:
    """Move `src` into `folder` (same filesystem) under its name or a free variant; never clobbers.

    Uses link + unlink, so a crash in between leaves the same inode under both names, which the
    callers' recovery recognises; it never leaves zero copies.
    """
    if src.parent == folder and (name is None or name == src.name):
        return src
    try:
        if src.is_symlink() or not src.is_file():
            # Links to directories and special files cannot be hard-linked portably: rename, checking
            # the destination first (only the engine writes the folders it moves into).
            for candidate in candidate_names(name or src.name):
                dest = folder / candidate
                if not os.path.lexists(dest):
                    os.rename(src, dest)
                    break
        else:
            dest = _link_unique(src, folder, name or src.name)
            try:
                os.unlink(src)
            except FileNotFoundError:
                # Another mover took the file between our link and our unlink: its move stands, ours
                # never happened (two links would leave the same note in two folders).
                with contextlib.suppress(OSError):
                    os.unlink(dest)
                raise
        fsync_dir(folder)
        if src.parent != folder:
            fsync_dir(src.parent)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise FileOpError(f"could not move {src} to {folder}: not on the same filesystem") from exc
        raise FileOpError(f"could not move {src} to {folder}: {exc.strerror or exc}") from exc
    return dest


def clean_partials(tmp_dir: Path) -> int:
    """Delete `.partial-*` files a crash left in the temp folder; return how many."""
    count = 0
    if tmp_dir.is_dir():
        for leftover in tmp_dir.glob(".partial-*"):
            leftover.unlink(missing_ok=True)
            count += 1
    return count
