"""Reading and surgically editing YAML: frontmatter of notes and whole YAML files (vault/notes.py)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from ai_employee.errors import ConcurrentEditError, FormatError
from ai_employee.vault.notes import (
    EDIT_RETRIES,
    MAX_YAML_BYTES,
    _line_update,
    edit_file,
    find_by_id,
    has_id,
    load_yaml,
    read_frontmatter,
    split_note,
    update_frontmatter,
    update_yaml_text,
)

# split_note / read_frontmatter -----------------------------------------------------------------


def test_split_note_without_frontmatter_keeps_everything_as_body() -> None:
    text = "# Title\n\nSome text\n---\nmore\n"
    parts = split_note(text)
    assert not parts.has_frontmatter
    assert parts.frontmatter == ""
    assert parts.body == text
    assert parts.prefix == ""
    assert parts.newline == "\n"


def test_split_note_with_frontmatter() -> None:
    parts = split_note("---\ntitle: x\ntags:\n  - a\n---\n# Body\n\ntext")
    assert parts.has_frontmatter
    assert parts.frontmatter == "title: x\ntags:\n  - a\n"
    assert parts.body == "# Body\n\ntext"


def test_split_note_bom_and_crlf() -> None:
    parts = split_note("\ufeff---\r\ntitle: x\r\n---\r\nBody\r\n")
    assert parts.prefix == "\ufeff"
    assert parts.newline == "\r\n"
    assert parts.frontmatter == "title: x\r\n"
    assert parts.body == "Body\r\n"


def test_split_note_accepts_dots_as_closing_fence_and_trailing_spaces_on_fences() -> None:
    assert split_note("---\nid: 1\n...\nBody\n").body == "Body\n"
    parts = split_note("---  \nid: 1\n--- \nBody\n")
    assert parts.has_frontmatter
    assert parts.frontmatter == "id: 1\n"


@pytest.mark.parametrize(
    "text",
    [
        "---\ntitle: x\nno closing fence\n",  # unclosed: not frontmatter
        "\n---\ntitle: x\n---\nBody\n",  # not on the first line
        "Intro\n\n---\ntitle: x\n---\n",  # a horizontal rule later in the note
        "----\ntitle: x\n----\n",
    ],
)
def test_split_note_only_a_closed_fence_on_the_first_line_is_frontmatter(text: str) -> None:
    parts = split_note(text)
    assert not parts.has_frontmatter
    assert parts.body == text


def test_read_frontmatter_values_and_types() -> None:
    text = "---\ntitle: 'Hello'\ncount: 3\ndone: false\ntags:\n  - a\n  - b\n1: numeric key\n---\nBody\n"
    fm = read_frontmatter(split_note(text), "note.md")
    assert fm == {"title": "Hello", "count": 3, "done": False, "tags": ["a", "b"], "1": "numeric key"}


@pytest.mark.parametrize("text", ["No frontmatter\n", "---\n---\nBody\n", "---\n   \n---\n"])
def test_read_frontmatter_empty_is_empty_mapping(text: str) -> None:
    assert read_frontmatter(split_note(text), "n.md") == {}


def test_read_frontmatter_comment_only_is_empty_mapping() -> None:
    assert read_frontmatter(split_note("---\n# my own comment\n---\nBody\n"), "n.md") == {}


@pytest.mark.parametrize("fm", ["- a\n- b\n", "just a string\n", "42\n"])
def test_read_frontmatter_not_a_mapping(fm: str) -> None:
    with pytest.raises(FormatError, match=r"frontmatter of n\.md is not a mapping"):
        read_frontmatter(split_note(f"---\n{fm}---\nBody\n"), "n.md")


def test_read_frontmatter_invalid_yaml_names_the_note_and_line() -> None:
    with pytest.raises(FormatError, match=r"frontmatter of n\.md is not valid YAML at line 2"):
        read_frontmatter(split_note("---\ntitle: x\n  bad: indent\n---\n"), "n.md")


# update_frontmatter: the engine's keys change, nothing else does ---------------------------------

BODY = "# Heading\n\nText with trailing spaces   \n\n```yaml\nkey: value\n```\n\n---\nnot: frontmatter\n"

PRESERVED_FRONTMATTER = {
    "comments": "# a leading comment\ntitle: Hello  # trailing comment\n\n# a comment between keys\nowner: me\n",
    "quotes": 'single: \'quoted\'\ndouble: "quoted"\nplain: plain\n"quoted key": 1\n',
    "order": "zeta: 1\nalpha: 2\nmiddle: 3\n",
    "list indented": "tags:\n  - one\n  - two\naliases:\n  - x\n",
    "list flush": "tags:\n- one\n- two\naliases:\n- x\n",
    "flow collections": "tags: [one, two]\nmeta: {a: 1, b: two}\n",
    "nested 4 spaces": "meta:\n    a: 1\n    b:\n        - x\n        - y\n",
    "list of mappings": "people:\n  - name: Ann\n    role: boss\n  - name: Bob\n    role: dev\n",
    "literal block": "text: |\n  line one\n  line two\ntitle: x\n",
    "literal block 4": "text: |\n    four-space block\nm:\n  a: 1\n",
    "block text like a list": "notes: |\n  Agenda:\n      - item in the text\ntags:\n  - a\n",
    "folded block": "text: >-\n  folded\n  text\ntitle: x\n",
    "yaml 1.1 scalars": "created: 2024-01-05\ntime: 12:30\nflag: no\nother: on\noctal: 017\n",
    "unicode": "title: Ünïcødé ✓ 日本語\nemoji: 🎉\n",
    "anchors": "base: &b hello\ncopy: *b\n",
    "blank lines": "a: 1\n\nb: 2\n\n\n",
    "empty values": "empty:\nlist: []\nmap: {}\n",
    "null spellings": "a: ~\nb: null\nc: Null\n",
    "odd spacing": "k:   extra spaces\nk2 : v\ntags: [a,  b]\n",
}


@pytest.mark.parametrize("fm", list(PRESERVED_FRONTMATTER.values()), ids=list(PRESERVED_FRONTMATTER))
def test_update_frontmatter_adds_a_key_and_keeps_every_other_byte(fm: str) -> None:
    text = f"---\n{fm}---\n{BODY}"
    out = update_frontmatter(text, {"status": "done"})
    assert out == f"---\n{fm}status: done\n---\n{BODY}"
    assert read_frontmatter(split_note(out), "n")["status"] == "done"


@pytest.mark.parametrize("fm", list(PRESERVED_FRONTMATTER.values()), ids=list(PRESERVED_FRONTMATTER))
def test_update_frontmatter_replaces_a_key_and_keeps_every_other_byte(fm: str) -> None:
    text = f"---\nstatus: new\n{fm}---\n{BODY}"
    out = update_frontmatter(text, {"status": "planned"})
    assert out == f"---\nstatus: planned\n{fm}---\n{BODY}"


@pytest.mark.parametrize("fm", list(PRESERVED_FRONTMATTER.values()), ids=list(PRESERVED_FRONTMATTER))
def test_update_frontmatter_with_crlf_and_bom(fm: str) -> None:
    crlf_fm = fm.replace("\n", "\r\n")
    crlf_body = BODY.replace("\n", "\r\n")
    text = f"\ufeff---\r\n{crlf_fm}---\r\n{crlf_body}"
    out = update_frontmatter(text, {"status": "done"})
    assert out == f"\ufeff---\r\n{crlf_fm}status: done\r\n---\r\n{crlf_body}"


# What the fast line edit cannot do (the engine's key has a comment, or a value spans lines) goes
# through the ruamel round-trip; the same promise holds there.
ROUND_TRIP_BREAKS = {
    key: PRESERVED_FRONTMATTER[key]
    for key in ("literal block 4", "block text like a list", "null spellings", "odd spacing")
}


@pytest.mark.parametrize("fm", list(PRESERVED_FRONTMATTER.values()), ids=list(PRESERVED_FRONTMATTER))
def test_update_frontmatter_engine_key_with_a_comment(fm: str, request: pytest.FixtureRequest) -> None:
    if request.node.callspec.id in ROUND_TRIP_BREAKS:
        request.applymarker(
            pytest.mark.xfail(strict=True, reason="BUG: the ruamel fallback re-serialises untouched keys")
        )
    text = f"---\n{fm}status: old  # set by the engine\n---\n{BODY}"
    out = update_frontmatter(text, {"status": "new"})
    assert out == f"---\n{fm}status: new  # set by the engine\n---\n{BODY}"


def test_update_frontmatter_replaces_a_commented_key_keeping_its_comment() -> None:
    text = "---\nid: X\nstatus: new         # set by the engine\ntitle: 'Hi'\n---\nBody\n"
    out = update_frontmatter(text, {"status": "planned"})
    assert out == "---\nid: X\nstatus: planned     # set by the engine\ntitle: 'Hi'\n---\nBody\n"


def test_update_frontmatter_replaces_a_multiline_value() -> None:
    text = "---\ntitle: t\ntags:\n  - old\n  - older\nnext: 1\n---\nBody\n"
    out = update_frontmatter(text, {"tags": ["new"]})
    assert read_frontmatter(split_note(out), "n") == {"title": "t", "tags": ["new"], "next": 1}
    assert out.startswith("---\ntitle: t\ntags:\n  - new\n")
    assert out.endswith("next: 1\n---\nBody\n")


def test_update_frontmatter_removes_keys_and_ignores_absent_ones() -> None:
    text = "---\nid: X\nerror: boom\ntitle: t\n---\nBody\n"
    out = update_frontmatter(text, {"status": "done"}, remove=("error", "not_there"))
    assert out == "---\nid: X\ntitle: t\nstatus: done\n---\nBody\n"


def test_update_frontmatter_removes_a_commented_or_multiline_key() -> None:
    text = "---\nid: X\nerror: |\n  line one\n  line two\nnote: keep  # mine\ndeferred_until: x  # c\n---\nB\n"
    out = update_frontmatter(text, {}, remove=("error", "deferred_until"))
    assert out == "---\nid: X\nnote: keep  # mine\n---\nB\n"


def test_update_frontmatter_sets_several_keys_in_the_given_order() -> None:
    out = update_frontmatter("---\ntitle: t\n---\nB\n", {"status": "done", "executed": "now", "dry_run": True})
    assert out == "---\ntitle: t\nstatus: done\nexecuted: now\ndry_run: true\n---\nB\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Just a body\n", "---\nid: X\n---\nJust a body\n"),
        ("", "---\nid: X\n---\n"),
        ("\ufeffBOM body\n", "\ufeff---\nid: X\n---\nBOM body\n"),
        ("---\n---\nEmpty frontmatter", "---\nid: X\n---\nEmpty frontmatter"),
        ("---\ntitle: x\n---", "---\ntitle: x\nid: X\n---\n"),
        ("# T\n\n---\nrule: not frontmatter\n---\n", "---\nid: X\n---\n# T\n\n---\nrule: not frontmatter\n---\n"),
    ],
)
def test_update_frontmatter_note_without_frontmatter_gets_one(text: str, expected: str) -> None:
    assert update_frontmatter(text, {"id": "X"}) == expected


VALUES: list[object] = [
    "a: b",
    "x #not a comment",
    "it's",
    'say "hi"',
    "",
    "line one\nline two",
    "2024-01-05T10:00:00+02:00",
    "y",
    "True",
    "010",
    "1_000",
    "2024-01-05",
    "12:30",
    "1:20:30",
    "no",
    "yes",
    "on",
    "off",
    "NO",
    "null",
    "~",
    "123",
    "Ünïcødé ✓ 日本語 🎉",
    "- looks like a list",
    "[not, a, list]",
    "---",
    "trailing space ",
    True,
    7,
    2.5,
    None,
    ["a", "b: c"],
]


@pytest.mark.parametrize("value", VALUES)
def test_update_frontmatter_values_read_back_exactly(value: object) -> None:
    out = update_frontmatter("---\ntitle: t\n---\nBody\n", {"value": value})
    fm = read_frontmatter(split_note(out), "n")
    assert fm["value"] == value
    assert fm["title"] == "t"
    assert split_note(out).body == "Body\n"


@pytest.mark.parametrize("value", VALUES)
def test_update_frontmatter_values_read_back_exactly_through_the_round_trip(
    value: object, request: pytest.FixtureRequest
) -> None:
    out = update_frontmatter("---\ntitle: t\nvalue: old  # feedback\n---\nBody\n", {"value": value})
    fm = read_frontmatter(split_note(out), "n")
    assert fm["value"] == value
    assert fm["title"] == "t"


def test_update_frontmatter_unicode_body_and_keys() -> None:
    text = "---\nnom: café\n---\n日本語のテキスト ✓\n"
    out = update_frontmatter(text, {"état": "fini"})
    assert out == "---\nnom: café\nétat: fini\n---\n日本語のテキスト ✓\n"


def test_update_frontmatter_long_value_is_not_wrapped() -> None:
    long = " ".join(["word"] * 500)
    out = update_frontmatter(f"---\nlong: {long}\n---\nB\n", {"status": "x"})
    assert out == f"---\nlong: {long}\nstatus: x\n---\nB\n"
    out = update_frontmatter(f"---\nlong: {long}\n---\nB\n", {"status": long})
    assert out == f"---\nlong: {long}\nstatus: {long}\n---\nB\n"


def test_update_frontmatter_tolerates_duplicate_keys_like_the_reader() -> None:
    text = "---\ntitle: a\ntitle: b\n---\nB\n"
    assert read_frontmatter(split_note(text), "n") == {"title": "b"}
    out = update_frontmatter(text, {"status": "done"})
    assert read_frontmatter(split_note(out), "n") == {"title": "b", "status": "done"}


@pytest.mark.parametrize("text", ["Line\r\nTwo\r\n", "---\r\n---\r\nLine\r\n"])
def test_update_frontmatter_crlf_note_without_frontmatter_gets_crlf_frontmatter(text: str) -> None:
    body = "Line\r\nTwo\r\n" if text.startswith("Line") else "Line\r\n"
    assert update_frontmatter(text, {"id": "X"}) == f"---\r\nid: X\r\n---\r\n{body}"


def test_update_frontmatter_keeps_comments_when_there_are_no_keys_yet() -> None:
    out = update_frontmatter("---\n# my notes about this note\n---\nBody\n", {"status": "x"})
    assert out == "---\n# my notes about this note\nstatus: x\n---\nBody\n"


@pytest.mark.parametrize(
    ("fm", "updates"),
    [
        ("id: [1\n", {"status": "failed"}),
        ("a: 1\n  b: 2\n", {"status": "failed"}),
        ("status: new\nstatus: old\n", {"status": "failed"}),  # the reader accepts this one
    ],
    ids=["flow", "indent", "duplicate-engine-key"],
)
def test_update_frontmatter_on_broken_yaml_raises_format_error(fm: str, updates: dict[str, str]) -> None:
    try:
        out = update_frontmatter(f"---\n{fm}---\nBody\n", updates)
    except FormatError:
        return
    assert read_frontmatter(split_note(out), "n")["status"] == "failed"


# update_yaml_text: whole YAML files (action files) -------------------------------------------------

ACTION = (
    "# Hand-written action\n"
    "title: 'Call the plumber'  # urgent\n"
    "type: manual\n"
    "content:\n"
    "  preview: |\n"
    "    The sink leaks.\n"
    "    Call before 12:30.\n"
    "source:\n"
    "  ids:\n"
    "  - a\n"
    "  - b\n"
)


def test_update_yaml_text_keeps_comments_quotes_and_layout() -> None:
    out = update_yaml_text(ACTION, {"id": "01ABC", "status": "new"})
    assert out == ACTION + "id: 01ABC\nstatus: new\n"


def test_update_yaml_text_replaces_in_place() -> None:
    out = update_yaml_text("id: 1\nstatus: new      # c\nplan_id:\n", {"status": "planned", "plan_id": "P"})
    assert out == "id: 1\nstatus: planned  # c\nplan_id: P\n"


def test_update_yaml_text_crlf() -> None:
    text = ACTION.replace("\n", "\r\n")
    assert update_yaml_text(text, {"status": "new"}) == text + "status: new\r\n"


@pytest.mark.parametrize("text", ["", "\n", "   \n"])
def test_update_yaml_text_empty_document_becomes_a_mapping(text: str) -> None:
    out = update_yaml_text(text, {"id": "X"})
    assert out.endswith("id: X\n")
    assert load_yaml(out, "t") == {"id": "X"}


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n"])
def test_update_yaml_text_not_a_mapping(text: str) -> None:
    with pytest.raises(FormatError, match="not a mapping"):
        update_yaml_text(text, {"id": "X"})


def test_update_yaml_text_no_final_newline() -> None:
    assert update_yaml_text("key: value", {"status": "x"}) == "key: value\nstatus: x\n"


@pytest.mark.parametrize("prefix", ["\ufeff", "---\n", "\ufeff---\n"], ids=["bom", "doc-start", "both"])
def test_update_yaml_text_keeps_bom_and_document_start(prefix: str) -> None:
    assert update_yaml_text(f"{prefix}id: 1\n", {"status": "x"}) == f"{prefix}id: 1\nstatus: x\n"


@pytest.mark.xfail(strict=True, reason="BUG: the ruamel fallback drops a BOM and an explicit `---`")
@pytest.mark.parametrize("prefix", ["\ufeff", "---\n"], ids=["bom", "doc-start"])
def test_update_yaml_text_keeps_bom_and_document_start_through_the_round_trip(prefix: str) -> None:
    text = f"{prefix}id: 1\nstatus: old  # engine\n"
    assert update_yaml_text(text, {"status": "new"}) == f"{prefix}id: 1\nstatus: new  # engine\n"


def test_update_yaml_text_keeps_comments_of_a_keyless_file() -> None:
    assert update_yaml_text("# to do: describe this\n", {"id": "X"}) == "# to do: describe this\nid: X\n"
    assert update_yaml_text("# no line break at the end", {"id": "X"}) == "# no line break at the end\nid: X\n"


def test_update_yaml_text_duplicate_engine_key() -> None:
    text = "status: new\nstatus: planned  # hand-edited twice\n"
    assert load_yaml(text, "x") == {"status": "planned"}  # the reader accepts it...
    try:  # ...so the writer must cope, or fail in the engine's own vocabulary
        out = update_yaml_text(text, {"status": "done"})
    except FormatError:
        return
    assert load_yaml(out, "x") == {"status": "done"}


# edit_file -----------------------------------------------------------------------------------------


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Path:
    return tmp_path / "state" / "tmp"


def test_edit_file_applies_the_change_atomically(tmp_path: Path, tmp_dir: Path) -> None:
    path = tmp_path / "note.md"
    path.write_bytes(b"---\ntitle: t\n---\nBody\n")
    inode = path.stat().st_ino
    new = edit_file(path, lambda t: update_frontmatter(t, {"status": "done"}), tmp_dir)
    assert new == "---\ntitle: t\nstatus: done\n---\nBody\n"
    assert path.read_bytes() == new.encode()
    assert path.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert list(tmp_dir.iterdir()) == []


def test_edit_file_keeps_crlf_and_bom_bytes(tmp_path: Path, tmp_dir: Path) -> None:
    path = tmp_path / "note.md"
    path.write_bytes("\ufeff---\r\ntitle: t\r\n---\r\nBody ✓\r\n".encode())
    edit_file(path, lambda t: update_frontmatter(t, {"status": "done"}), tmp_dir)
    assert path.read_bytes() == "\ufeff---\r\ntitle: t\r\nstatus: done\r\n---\r\nBody ✓\r\n".encode()


def test_edit_file_no_change_does_not_write(tmp_path: Path, tmp_dir: Path) -> None:
    path = tmp_path / "note.md"
    path.write_bytes(b"---\nstatus: done\n---\n")
    before = path.stat()
    assert edit_file(path, lambda t: t, tmp_dir) == "---\nstatus: done\n---\n"
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_edit_file_reapplies_the_change_on_top_of_a_concurrent_edit(tmp_path: Path, tmp_dir: Path) -> None:
    path = tmp_path / "note.md"
    path.write_bytes(b"---\ntitle: t\n---\nBody\n")
    calls: list[str] = []

    def change(text: str) -> str:
        calls.append(text)
        if len(calls) == 1:  # the user saves between our read and our replace
            path.write_bytes(b"---\ntitle: t\n---\nBody edited by the user\n")
        return update_frontmatter(text, {"status": "done"})

    new = edit_file(path, change, tmp_dir)
    assert len(calls) == 2
    assert new == "---\ntitle: t\nstatus: done\n---\nBody edited by the user\n"
    assert path.read_text() == new
    assert list(tmp_dir.iterdir()) == []


def test_edit_file_gives_up_when_the_file_keeps_changing(tmp_path: Path, tmp_dir: Path) -> None:
    path = tmp_path / "note.md"
    path.write_bytes(b"---\nn: 0\n---\n")
    calls = 0

    def change(text: str) -> str:
        nonlocal calls
        calls += 1
        path.write_bytes(f"---\nn: {calls}\n---\nuser edit {calls}\n".encode())
        return update_frontmatter(text, {"status": "done"})

    with pytest.raises(ConcurrentEditError, match="kept changing"):
        edit_file(path, change, tmp_dir)
    assert calls == EDIT_RETRIES
    assert path.read_text() == f"---\nn: {calls}\n---\nuser edit {calls}\n"  # the user's last edit wins
    assert list(tmp_dir.iterdir()) == []


def test_edit_file_refuses_non_utf8(tmp_path: Path, tmp_dir: Path) -> None:
    path = tmp_path / "note.md"
    path.write_bytes(b"---\ntitle: caf\xe9\n---\n")
    with pytest.raises(FormatError, match=r"note\.md is not UTF-8"):
        edit_file(path, lambda t: t + "x", tmp_dir)
    assert path.read_bytes() == b"---\ntitle: caf\xe9\n---\n"


def test_edit_file_change_error_leaves_file_alone(tmp_path: Path, tmp_dir: Path) -> None:
    path = tmp_path / "note.md"
    path.write_bytes(b"---\n- not a mapping\n---\n")
    with pytest.raises(FormatError):
        edit_file(path, lambda t: update_frontmatter(t, {"status": "x"}), tmp_dir)
    assert path.read_bytes() == b"---\n- not a mapping\n---\n"


# has_id / find_by_id ---------------------------------------------------------------------------------

ID = "01J9ZQX5V4K3M2N1P0R9S8T7U6"


@pytest.mark.parametrize(
    "text",
    [
        f"---\nid: {ID}\ntitle: x\n---\nBody\n",
        f"---\ntitle: x\nid: '{ID}'\n---\n",
        f'id: "{ID}"\ntype: manual\n',
        f"id: {ID}   \n",
        f"---\r\nid: {ID}\r\n---\r\n",
    ],
)
def test_has_id_true(tmp_path: Path, text: str) -> None:
    path = tmp_path / "f.md"
    path.write_text(text, newline="")
    assert has_id(path, ID)


@pytest.mark.parametrize(
    "text",
    [
        f"---\nid: {ID}X\n---\n",  # a longer id
        f"---\nid: {ID[:-1]}\n---\n",  # a prefix: not this id
        f"---\nmeta:\n  id: {ID}\n---\n",  # nested, not top-level
        f"---\naction_id: {ID}\n---\n",
        f"Body mentions id {ID}\n",
    ],
)
def test_has_id_false(tmp_path: Path, text: str) -> None:
    path = tmp_path / "f.md"
    path.write_text(text)
    assert not has_id(path, ID)


def test_has_id_missing_file_and_regex_characters(tmp_path: Path) -> None:
    assert not has_id(tmp_path / "gone.md", ID)
    path = tmp_path / "f.md"
    path.write_text("id: a.b\n")
    assert has_id(path, "a.b")
    assert not has_id(path, "a+b")
    path.write_text("id: axb\n")
    assert not has_id(path, "a.b")  # the id is escaped, not a pattern


def test_has_id_after_bom(tmp_path: Path) -> None:
    path = tmp_path / "x.action.yaml"
    path.write_text(f"\ufeffid: {ID}\ntype: manual\n")
    assert load_yaml(path.read_text("utf-8-sig"), "x")["id"] == ID
    assert has_id(path, ID)


def test_has_id_with_trailing_comment(tmp_path: Path) -> None:
    path = tmp_path / "x.md"
    path.write_text(f"---\nid: {ID}  # do not edit\n---\n")
    assert read_frontmatter(split_note(path.read_text()), "x")["id"] == ID
    assert has_id(path, ID)


def test_find_by_id_scans_folders_in_order_with_suffix(tmp_path: Path) -> None:
    a, b, missing = tmp_path / "A", tmp_path / "B", tmp_path / "Missing"
    a.mkdir()
    b.mkdir()
    (a / "other.md").write_text("---\nid: OTHER\n---\n")
    (a / "wrong-suffix.txt").write_text(f"id: {ID}\n")
    (a / ".hidden.md").write_text(f"---\nid: {ID}\n---\n")
    (b / "z.md").write_text(f"---\nid: {ID}\n---\n")
    (b / "a.md").write_text(f"---\nid: {ID}\n---\n")
    assert find_by_id([missing, a, b], ".md", ID) == b / "a.md"
    assert find_by_id([missing, a], ".md", ID) is None
    assert find_by_id([a], ".txt", ID) == a / "wrong-suffix.txt"
    assert find_by_id([b, a], ".md", "OTHER") == a / "other.md"


# load_yaml -------------------------------------------------------------------------------------------


def test_load_yaml_basic_and_empty() -> None:
    assert load_yaml("a: 1\nb: [x, y]\n", "t") == {"a": 1, "b": ["x", "y"]}
    assert load_yaml("", "t") is None
    assert load_yaml("# only a comment\n", "t") is None


def test_load_yaml_yaml_1_1_coercions() -> None:
    data = load_yaml("t: 12:30\nf: no\ny: yes\no: on\nd: 2024-01-05\noct: 010\nhex: 0x1f\nsep: 1_000\n", "t")
    assert data == {
        "t": 750,
        "f": False,
        "y": True,
        "o": True,
        "d": dt.date(2024, 1, 5),
        "oct": 8,
        "hex": 31,
        "sep": 1000,
    }
    assert load_yaml("t: '12:30'\nf: 'no'\n", "t") == {"t": "12:30", "f": "no"}


def test_load_yaml_size_cap() -> None:
    assert load_yaml("a: " + "x" * (MAX_YAML_BYTES - 10), "t")["a"].startswith("x")
    with pytest.raises(FormatError, match=rf"big\.yaml is larger than {MAX_YAML_BYTES // 1024} KiB"):
        load_yaml("a: " + "x" * MAX_YAML_BYTES, "big.yaml")


def test_load_yaml_size_cap_counts_bytes() -> None:
    text = "a: " + "é" * (MAX_YAML_BYTES // 2 + 1000)  # fewer chars than the cap, more bytes
    assert len(text.encode()) > MAX_YAML_BYTES
    with pytest.raises(FormatError, match="larger than"):
        load_yaml(text, "t")


def test_load_yaml_refuses_alias_bomb() -> None:
    levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(FormatError, match=r"bomb\.yaml expands to more than"):
        load_yaml("\n".join(levels) + "\n", "bomb.yaml")


def test_load_yaml_accepts_a_few_aliases() -> None:
    assert load_yaml("a: &a [1, 2]\nb: *a\n", "t") == {"a": [1, 2], "b": [1, 2]}


def test_load_yaml_refuses_exponential_alias_expansion_below_the_alias_count() -> None:
    lines = ["l0: &l0 " + "x" * 1000]
    lines += [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, 25)]
    text = "\n".join(lines) + "\n"
    # Loading shares objects, but json.dumps (parse_steps) or any copy expands it to ~16 GB.
    with pytest.raises(FormatError):
        load_yaml(text, "bomb")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: 1\nb: 2\n  c: 3\n", 3),
        ("a: 1\nb: [1, 2\n", 3),
        ("a: 'unclosed\n", 2),
        ("a: 1\n\tb: 2\n", 2),
        ("a: 1\nb: @x\n", 2),
    ],
)
def test_load_yaml_invalid_names_line(text: str, line: int) -> None:
    with pytest.raises(FormatError, match=rf"^thing is not valid YAML at line {line}: "):
        load_yaml(text, "thing")


@pytest.mark.parametrize(
    "text", ["!!python/object/apply:os.system ['echo hi']\n", "a: !!python/name:os.system\n", "a: !custom x\n"]
)
def test_load_yaml_refuses_unsafe_tags(text: str) -> None:
    with pytest.raises(FormatError, match="not valid YAML"):
        load_yaml(text, "evil")


def test_load_yaml_moderate_nesting() -> None:
    assert load_yaml("a: " + "[" * 100 + "]" * 100, "t") is not None


DEEP_YAML_SCRIPT = """
from ai_employee.errors import FormatError
from ai_employee.vault.notes import load_yaml
try:
    load_yaml("- " * 40000 + "x", "deep.action.yaml")
except FormatError as exc:
    print(exc)
"""


def test_load_yaml_deep_nesting_is_refused_without_crashing() -> None:
    # 80 KB, under the size cap: run in a child so a crash cannot take the test run down with it.
    proc = subprocess.run([sys.executable, "-c", DEEP_YAML_SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-500:]}"
    assert "nested too deeply" in proc.stdout


LINE_UPDATE_TRAPS = {
    "key text inside a quoted scalar": 'title: "a\nstatus: new"\nother: 1\n',
    "key text inside a block scalar": "notes: |\n  status: new\nid: 1\n",
    "multi-line plain value": "status: new\n  continued\nid: 1\n",
    "flow mapping value": "status: {a: 1}\nid: 1\n",
    "anchored value": "status: &s new\nid: 1\n",
    "tagged value": "status: !!str 5\nid: 1\n",
    "comment after the value": "status: new  # mine\nid: 1\n",
    "explicit document end": "status: new\n...\n",
    "lone carriage returns": "status: new\rid: 1\r",
    "bom before the key": "\ufeffstatus: new\nid: 1\n",
    "crlf": "status: new\r\nid: 1\r\n",
    "no final line break": "id: 1\nstatus: new",
    "quoted key": '"status": new\nid: 1\n',
    "empty value": "status:\nid: 1\n",
}


@pytest.mark.parametrize("text", LINE_UPDATE_TRAPS.values(), ids=LINE_UPDATE_TRAPS.keys())
def test_line_update_is_exact_or_declines(text: str) -> None:
    """The line-level fast path either declines (None) or gives exactly the document a full parse expects,
    with every line it did not own unchanged."""
    before = load_yaml(text, "x") or {}
    fast = _line_update(text, {"status": "done", "plan_id": "P"}, ())
    if fast is not None:
        assert load_yaml(fast, "x") == {**before, "status": "done", "plan_id": "P"}
        kept = [line for line in text.replace("\ufeff", "").splitlines() if not line.startswith("status")]
        assert all(line in fast.splitlines() for line in kept)
    out = update_yaml_text(text, {"status": "done", "plan_id": "P"})
    assert load_yaml(out, "x") == {**before, "status": "done", "plan_id": "P"}
