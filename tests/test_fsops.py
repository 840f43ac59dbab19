"""Atomic, never-clobbering file operations (vault/fsops.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ai_employee.errors import ConcurrentEditError
from ai_employee.vault.fsops import (
    FileOpError,
    candidate_names,
    clean_partials,
    create_file,
    move_file,
    replace_file,
    split_name,
)


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Path:
    return tmp_path / "state" / "tmp"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "Folder"
    path.mkdir()
    return path


def no_debris(tmp_dir: Path) -> bool:
    return not tmp_dir.exists() or not any(tmp_dir.iterdir())


# names --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("note.md", ("note", ".md")),
        ("x.action.yaml", ("x", ".action.yaml")),
        ("2024-01-05 Call Ann.action.yaml", ("2024-01-05 Call Ann", ".action.yaml")),
        (".action.yaml", (".action", ".yaml")),
        ("archive.tar.gz", ("archive.tar", ".gz")),
        ("noext", ("noext", "")),
        (".hidden", (".hidden", "")),
        ("trailing.", ("trailing", ".")),
    ],
)
def test_split_name(name: str, expected: tuple[str, str]) -> None:
    assert split_name(name) == expected


def test_candidate_names() -> None:
    names = candidate_names("x.action.yaml")
    assert [next(names) for _ in range(4)] == [
        "x.action.yaml",
        "x (2).action.yaml",
        "x (3).action.yaml",
        "x (4).action.yaml",
    ]


# create_file -----------------------------------------------------------------------------------------


def test_create_file_writes_exact_bytes(folder: Path, tmp_dir: Path) -> None:
    data = "\ufeff---\r\ntitle: ✓\r\n---\r\n".encode() + bytes(range(256))
    dest = create_file(folder, "note.md", data, tmp_dir)
    assert dest == folder / "note.md"
    assert dest.read_bytes() == data
    assert no_debris(tmp_dir)


def test_create_file_never_overwrites(folder: Path, tmp_dir: Path) -> None:
    (folder / "note.md").write_bytes(b"the user's note")
    (folder / "note (2).md").write_bytes(b"another")
    dest = create_file(folder, "note.md", b"new", tmp_dir)
    assert dest == folder / "note (3).md"
    assert dest.read_bytes() == b"new"
    assert (folder / "note.md").read_bytes() == b"the user's note"
    assert (folder / "note (2).md").read_bytes() == b"another"


def test_create_file_compound_suffix(folder: Path, tmp_dir: Path) -> None:
    first = create_file(folder, "x.action.yaml", b"1", tmp_dir)
    second = create_file(folder, "x.action.yaml", b"2", tmp_dir)
    third = create_file(folder, "x.action.yaml", b"3", tmp_dir)
    assert [p.name for p in (first, second, third)] == ["x.action.yaml", "x (2).action.yaml", "x (3).action.yaml"]
    assert [p.read_bytes() for p in (first, second, third)] == [b"1", b"2", b"3"]


@pytest.mark.parametrize("existing", ["noext", "a.tar.gz", "Ünïcødé ✓.md"])
def test_create_file_other_names(folder: Path, tmp_dir: Path, existing: str) -> None:
    create_file(folder, existing, b"1", tmp_dir)
    second = create_file(folder, existing, b"2", tmp_dir)
    stem, suffix = split_name(existing)
    assert second.name == f"{stem} (2){suffix}"


def test_create_file_does_not_follow_a_dangling_symlink(folder: Path, tmp_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    (folder / "note.md").symlink_to(outside)
    dest = create_file(folder, "note.md", b"data", tmp_dir)
    assert dest == folder / "note (2).md"
    assert not outside.exists()


def test_create_file_empty_data(folder: Path, tmp_dir: Path) -> None:
    assert create_file(folder, "empty.md", b"", tmp_dir).read_bytes() == b""


def test_create_file_missing_folder_fails_cleanly(tmp_path: Path, tmp_dir: Path) -> None:
    with pytest.raises(FileOpError, match=r"could not create .*Missing/note\.md: No such file or directory"):
        create_file(tmp_path / "Missing", "note.md", b"x", tmp_dir)
    assert no_debris(tmp_dir)
    assert not (tmp_path / "Missing").exists()


def test_create_file_folder_is_a_file_fails_cleanly(tmp_path: Path, tmp_dir: Path) -> None:
    not_a_dir = tmp_path / "Plans"
    not_a_dir.write_bytes(b"a file where a folder should be")
    with pytest.raises(FileOpError, match=r"could not create .*Plans/note\.md: Not a directory"):
        create_file(not_a_dir, "note.md", b"x", tmp_dir)
    assert no_debris(tmp_dir)
    assert not_a_dir.read_bytes() == b"a file where a folder should be"


@pytest.fixture
def other_fs() -> Path:
    """A folder on another file system than the test's temp folder (tmpfs), if there is one."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no /dev/shm")
    return shm


def test_create_file_across_file_systems_fails_cleanly(folder: Path, tmp_path: Path, other_fs: Path) -> None:
    if other_fs.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("/dev/shm is on the same file system")
    tmp_dir = other_fs / f"ai-employee-test-{os.getpid()}-{tmp_path.name}"
    try:
        with pytest.raises(FileOpError, match=r"could not create .*cross-device"):
            create_file(folder, "note.md", b"x", tmp_dir)
        assert no_debris(tmp_dir)
        assert list(folder.iterdir()) == []
    finally:
        if tmp_dir.exists():
            tmp_dir.rmdir()


def test_move_file_across_file_systems_says_so(folder: Path, tmp_path: Path, other_fs: Path) -> None:
    if other_fs.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("/dev/shm is on the same file system")
    dest_dir = other_fs / f"ai-employee-test-{os.getpid()}-{tmp_path.name}"
    dest_dir.mkdir()
    src = folder / "note.md"
    src.write_bytes(b"keep me")
    try:
        with pytest.raises(FileOpError, match="not on the same filesystem"):
            move_file(src, dest_dir)
        assert src.read_bytes() == b"keep me"
        assert list(dest_dir.iterdir()) == []
    finally:
        dest_dir.rmdir()


def test_create_file_many_at_once_are_all_unique(folder: Path, tmp_dir: Path) -> None:
    paths = [create_file(folder, "same.md", str(i).encode(), tmp_dir) for i in range(25)]
    assert len({p.name for p in paths}) == 25
    assert sorted(int(p.read_text()) for p in paths) == list(range(25))


# replace_file ------------------------------------------------------------------------------------------


def test_replace_file_atomically(folder: Path, tmp_dir: Path) -> None:
    path = folder / "note.md"
    path.write_bytes(b"old")
    inode = path.stat().st_ino
    replace_file(path, b"new", tmp_dir)
    assert path.read_bytes() == b"new"
    assert path.stat().st_ino != inode
    assert no_debris(tmp_dir)


def test_replace_file_creates_a_missing_file_without_expected(folder: Path, tmp_dir: Path) -> None:
    replace_file(folder / "new.md", b"x", tmp_dir)
    assert (folder / "new.md").read_bytes() == b"x"


def test_replace_file_with_matching_expected(folder: Path, tmp_dir: Path) -> None:
    path = folder / "note.md"
    path.write_bytes(b"as read")
    replace_file(path, b"updated", tmp_dir, expected=b"as read")
    assert path.read_bytes() == b"updated"


def test_replace_file_refuses_when_changed(folder: Path, tmp_dir: Path) -> None:
    path = folder / "note.md"
    path.write_bytes(b"the user's newer edit")
    with pytest.raises(ConcurrentEditError, match=r"note\.md changed while it was being updated"):
        replace_file(path, b"engine's version", tmp_dir, expected=b"what the engine read")
    assert path.read_bytes() == b"the user's newer edit"
    assert no_debris(tmp_dir)


def test_replace_file_expected_but_file_deleted(folder: Path, tmp_dir: Path) -> None:
    with pytest.raises(FileOpError, match="could not replace"):
        replace_file(folder / "gone.md", b"x", tmp_dir, expected=b"old")
    assert not (folder / "gone.md").exists()
    assert no_debris(tmp_dir)


def test_replace_file_missing_folder_leaves_no_debris(tmp_path: Path, tmp_dir: Path) -> None:
    with pytest.raises(FileOpError, match=r"could not replace .*Missing/note\.md"):
        replace_file(tmp_path / "Missing" / "note.md", b"x", tmp_dir)
    assert no_debris(tmp_dir)


def test_replace_file_keeps_the_files_permissions(folder: Path, tmp_dir: Path) -> None:
    path = folder / "private.md"
    path.write_bytes(b"secret")
    path.chmod(0o600)
    replace_file(path, b"still secret", tmp_dir, expected=b"secret")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# move_file --------------------------------------------------------------------------------------------------


def test_move_file(folder: Path, tmp_path: Path) -> None:
    dest_dir = tmp_path / "Dest"
    dest_dir.mkdir()
    src = folder / "note.md"
    src.write_bytes(b"content")
    inode = src.stat().st_ino
    dest = move_file(src, dest_dir)
    assert dest == dest_dir / "note.md"
    assert not src.exists()
    assert dest.read_bytes() == b"content"
    assert dest.stat().st_ino == inode
    assert dest.stat().st_nlink == 1


def test_move_file_never_clobbers(folder: Path, tmp_path: Path) -> None:
    dest_dir = tmp_path / "Dest"
    dest_dir.mkdir()
    (dest_dir / "x.action.yaml").write_bytes(b"already here")
    src = folder / "x.action.yaml"
    src.write_bytes(b"moving")
    dest = move_file(src, dest_dir)
    assert dest == dest_dir / "x (2).action.yaml"
    assert dest.read_bytes() == b"moving"
    assert (dest_dir / "x.action.yaml").read_bytes() == b"already here"


def test_move_file_with_a_new_name(folder: Path, tmp_path: Path) -> None:
    dest_dir = tmp_path / "Dest"
    dest_dir.mkdir()
    (dest_dir / "renamed.md").write_bytes(b"taken")
    src = folder / "note.md"
    src.write_bytes(b"x")
    assert move_file(src, dest_dir, "renamed.md") == dest_dir / "renamed (2).md"


@pytest.mark.parametrize("target_kind", ["file", "dir", "dangling"])
def test_move_file_moves_symlinks_without_following(folder: Path, tmp_path: Path, target_kind: str) -> None:
    target = tmp_path / "target"
    if target_kind == "file":
        target.write_bytes(b"target content")
    elif target_kind == "dir":
        target.mkdir()
        (target / "inside.md").write_bytes(b"inside")
    link = folder / "link.md"
    link.symlink_to(target)
    dest_dir = tmp_path / "Dest"
    dest_dir.mkdir()
    (dest_dir / "link.md").write_bytes(b"occupied")

    dest = move_file(link, dest_dir)

    assert dest == dest_dir / "link (2).md"
    assert dest.is_symlink()
    assert os.readlink(dest) == str(target)
    assert not os.path.lexists(link)
    assert (dest_dir / "link.md").read_bytes() == b"occupied"
    if target_kind == "file":
        assert target.read_bytes() == b"target content"
    elif target_kind == "dir":
        assert (target / "inside.md").read_bytes() == b"inside"
    else:
        assert not target.exists()


def test_move_file_directory(folder: Path, tmp_path: Path) -> None:
    sub = folder / "sub"
    sub.mkdir()
    (sub / "a.md").write_bytes(b"a")
    dest_dir = tmp_path / "Dest"
    (dest_dir / "sub").mkdir(parents=True)
    dest = move_file(sub, dest_dir)
    assert dest == dest_dir / "sub (2)"
    assert (dest / "a.md").read_bytes() == b"a"


def test_move_file_missing_source(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(FileOpError, match=r"could not move .*gone\.md to"):
        move_file(folder / "gone.md", tmp_path)


def test_move_file_missing_destination_keeps_the_source(folder: Path, tmp_path: Path) -> None:
    src = folder / "note.md"
    src.write_bytes(b"keep me")
    with pytest.raises(FileOpError, match="could not move"):
        move_file(src, tmp_path / "Missing")
    assert src.read_bytes() == b"keep me"


def test_move_file_into_its_own_folder_is_a_no_op(folder: Path) -> None:
    src = folder / "plan.md"
    src.write_bytes(b"x")
    assert move_file(src, folder) == src


# clean_partials ---------------------------------------------------------------------------------------------


def test_clean_partials(tmp_dir: Path) -> None:
    assert clean_partials(tmp_dir) == 0  # no folder yet
    tmp_dir.mkdir(parents=True)
    for name in (".partial-aaaa", ".partial-bbbb", ".partial-"):
        (tmp_dir / name).write_bytes(b"debris")
    (tmp_dir / "keep.txt").write_bytes(b"not ours")
    (tmp_dir / "partial-no-dot").write_bytes(b"not ours")
    assert clean_partials(tmp_dir) == 3
    assert sorted(p.name for p in tmp_dir.iterdir()) == ["keep.txt", "partial-no-dot"]
    assert clean_partials(tmp_dir) == 0


def test_successful_operations_leave_nothing_to_clean(folder: Path, tmp_dir: Path) -> None:
    path = create_file(folder, "n.md", b"1", tmp_dir)
    replace_file(path, b"2", tmp_dir, expected=b"1")
    with pytest.raises(ConcurrentEditError):
        replace_file(path, b"3", tmp_dir, expected=b"1")
    assert clean_partials(tmp_dir) == 0


def test_a_move_that_loses_a_race_leaves_no_second_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two movers link the same note into two folders; the one whose unlink finds the file gone takes
    its link back: the note ends up in one folder only (the winner's)."""
    import os as real_os

    from ai_employee.vault import fsops

    src_dir, mine, theirs = tmp_path / "Plans", tmp_path / "Approved", tmp_path / "Rejected"
    for folder in (src_dir, mine, theirs):
        folder.mkdir()
    note = src_dir / "plan.md"
    note.write_text("x")
    unlink = real_os.unlink

    def racing_unlink(path: object, *args: object, **kwargs: object) -> None:
        if str(path) == str(note) and note.exists():  # the other mover finishes first
            real_os.link(note, theirs / "plan.md")
            unlink(note)
        unlink(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fsops.os, "unlink", racing_unlink)
    with pytest.raises(fsops.FileOpError):
        fsops.move_file(note, mine)
    assert not (mine / "plan.md").exists() and (theirs / "plan.md").exists()
