"""Bad input, end to end: a corpus of hostile and odd files dropped into `Inbox/` at once, one real
engine run (`vault start --once`), and a clear outcome for each: an action, a quarantine note with a
reason, a reported problem, or (editor and sync debris) left alone. Nothing is lost, nothing is read
that should not be (a symlink's target, a FIFO), and memory stays small on a 2 GB file.

The extractors' handling of each kind is unit-tested in tests/test_extract.py; this is the pipeline.
"""

from __future__ import annotations

import os
import resource
import socket
import sqlite3
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, files
from tests.invariants import fields, start_once

pytestmark = [pytest.mark.timeout(180), pytest.mark.integration]

SECRET = b"outside-the-vault secret 7f3a\n"
TWO_GB = 2 << 30
NFC = unicodedata.normalize("NFC", "résumé.txt")
NFD = unicodedata.normalize("NFD", "résumé.txt")

# name -> bytes: each must end with exactly one action whose source.original_name is the name.
REGULAR: dict[str, bytes] = {
    "empty.txt": b"",
    "empty too.md": b"",  # empty files are not duplicates of each other: their names are their content
    "junk.md": bytes(range(256)) * 8,
    "long " + "x" * 230 + ".txt": b"a very long name\n",
    NFC: b"composed\n",
    NFD: b"decomposed\n",
    "bom-crlf.md": "\ufeff---\r\ntitle: BOM and CRLF\r\n---\r\n# Hello\r\n".encode(),
    "tabs.md": b"---\n\ttitle: tabbed\nkey:\t value\n---\nbody\n",
    "dup-keys.md": b"---\ntitle: one\ntitle: two\n---\nbody\n",
    "yaml11.md": b"---\nanswer: no\ntime: 12:30\ncountry: NO\n---\nbody\n",
    "alias-bomb.md": (
        b"---\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        b"e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n---\nbody\n"
    ),
    "unclosed.md": b"---\ntitle: never closed\nbody without an end\n",
    "broken-mime.eml": (
        b"From: Someone <a@example.org>\nSubject: =?utf-8?b?broken?=\nContent-Type: multipart/mixed;"
        b' boundary="never"\n\n--other\nContent-Type: text/plain; charset=x-unknown\n\n\xff\xfe body\n'
    ),
    "koi8.eml": "From: Иван <ivan@example.ru>\nSubject: Привет\nContent-Type: text/plain; charset=koi8-r\n\n"
    "Добрый день\n".encode("koi8-r", errors="replace").replace(b"\xd0\x98", b"I"),
    "invoice.pdf": (SAMPLES / "invoice-northwind-NW-7731.pdf").read_bytes(),
}
DEBRIS = [".x.md.swp", "notes.md~", ".#notes.md", "~$report.docx", ".syncthing.big.bin.tmp", ".DS_Store"]


def drop_corpus(vault: Path, outside: Path) -> tuple[Path, Path]:
    inbox = vault / "Inbox"
    for name, data in REGULAR.items():
        (inbox / name).write_bytes(data)
    (inbox / "invoice copy.pdf").write_bytes(REGULAR["invoice.pdf"])  # the same content, another name
    os.close(os.open(os.fsencode(inbox) + b"/caf\xe9 latin-1.txt", os.O_WRONLY | os.O_CREAT, 0o644))
    big = inbox / "huge.log"
    with open(big, "wb") as fh:  # sparse: 2 GB to read, almost nothing on disk
        fh.truncate(TWO_GB)
        fh.seek(TWO_GB - 6)
        fh.write(b"\nend.\n")
    for name in DEBRIS:
        (inbox / name).write_bytes(b"debris\n")
    folder = inbox / "a folder"
    folder.mkdir()
    (folder / "inside.txt").write_text("in a folder\n")
    secret = outside / "secret.txt"
    secret.write_bytes(SECRET)
    (inbox / "link-out.txt").symlink_to(secret)
    (inbox / "loop-a").symlink_to(inbox / "loop-b")
    (inbox / "loop-b").symlink_to(inbox / "loop-a")
    os.mkfifo(inbox / "pipe.txt")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(inbox / "socket.sock"))
    sock.close()
    return secret, folder


def test_bad_input_corpus_gets_a_clear_outcome_each(vault: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret, folder = drop_corpus(vault, outside)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    run = start_once(vault)
    assert run.returncode == 0, run.stderr[-3000:]
    peak_mib = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print(f"peak RSS of the engine run: {peak_mib:.0f} MiB")
    assert peak_mib < 400, f"the engine used {peak_mib:.0f} MiB on a 2 GB input"

    # Every regular file has exactly one action, named after it (names are recorded NFC-normalised:
    # the NFC and NFD spellings are two files, and two actions with the same name).
    actions: dict[str, dict[str, object]] = {}
    names: list[str] = []
    for folder_name in ("Needs_Action", "Done"):
        for path in files(vault / folder_name, ".action.yaml"):
            action = fields(path)
            source = action["source"]
            assert isinstance(source, dict)
            names.append(str(source["original_name"]))
            actions[names[-1]] = action
    expected = [unicodedata.normalize("NFC", n) for n in [*REGULAR, "invoice copy.pdf", "huge.log"]]
    expected.append("caf\ufffd latin-1.txt")
    assert Counter(names) == Counter(expected), Counter(names) - Counter(expected) or Counter(expected) - Counter(names)
    attachments = sorted(p.read_bytes() for p in files(vault / "Attachments") if p.name != "huge.log")
    assert attachments == sorted([*REGULAR.values(), REGULAR["invoice.pdf"], b""]), "an original lost or doubled"

    # The same content twice: processed once, the second linked to the first.
    # (Within one batch "first" is in name order: `invoice copy.pdf` comes before `invoice.pdf`.)
    first, copy = actions["invoice copy.pdf"], actions["invoice.pdf"]
    assert "duplicate_of" not in first
    assert copy["status"] == "done" and copy["duplicate_of"] == first["id"]
    plans = [fields(p) for f in ("Plans", "Done") for p in files(vault / f, ".md")]
    assert [p for p in plans if p["action_id"] == copy["id"]] == [], "a duplicate was planned"
    assert [p for p in plans if p["action_id"] == first["id"]] != []
    assert "duplicate_of" not in actions["empty too.md"]  # empty files are never duplicates

    # The 2 GB file (zeros, so binary; hashed as a stream): its size, no big preview, and the original
    # moved (not copied) to Attachments/.
    huge = actions["huge.log"]["content"]
    assert isinstance(huge, dict) and huge["size_bytes"] == TWO_GB and huge["kind"] == "binary"
    assert len(str(huge["preview"])) <= 64 * 1024
    assert os.stat(vault / "Attachments" / "huge.log").st_blocks * 512 < 1 << 20

    # Links, a FIFO and a socket are quarantined with a reason; the link's target was never read.
    quarantined = {p.name for p in files(vault / "Quarantine")}
    for name in ("link-out.txt", "loop-a", "loop-b", "pipe.txt", "socket.sock"):
        assert name in quarantined, f"{name} not quarantined: {sorted(quarantined)}"
        assert f"{name}.why.md" in quarantined or any(q.startswith(name) and q.endswith(".why.md") for q in quarantined)
    assert secret.read_bytes() == SECRET
    for path in [*files(vault / "Needs_Action"), *files(vault / "Done"), *files(vault / "Plans")]:
        assert SECRET.strip() not in path.read_bytes(), f"the symlink's target leaked into {path}"
    db = sqlite3.connect(vault / ".ai_employee" / "ledger.sqlite3")
    try:
        payloads = " ".join(row[0] for row in db.execute("SELECT payload FROM events"))
    finally:
        db.close()
    assert SECRET.strip().decode() not in payloads

    # Debris is left alone; a folder is left in place and reported, its contents untouched.
    left = sorted(p.name for p in (vault / "Inbox").iterdir())
    assert left == sorted([*DEBRIS, "a folder"]), left
    assert (folder / "inside.txt").read_text() == "in a folder\n"
    assert "a folder" in run.stderr and "is a folder" in run.stderr


def plan(steps: str) -> str:
    return f"# P\n\n## Steps\n\n```yaml\n{steps}```\n"


BAD_PLANS: dict[str, tuple[str, str]] = {
    # name: (note text, what the callout must say)
    "broken steps yaml": (plan("- tool: vault.create_note\n  args: {path: [1\n"), "not valid YAML"),
    "unknown tool": (plan("- tool: vault.delete_everything\n  args: {}\n"), "has no tool"),
    "unknown server": (plan("- tool: bank.wire\n  args: {amount: 9000}\n"), "no MCP server"),
    "bad arguments": (plan("- tool: vault.create_note\n  args: {path: 5}\n"), "do not fit"),
    "no steps": ("# P\n\nJust text.\n", "no `## Steps` section"),
    "broken frontmatter": ('---\nid: "unclosed\n---\n' + plan("[]\n"), "not valid YAML"),
}
BAD_ACTIONS = {
    "broken.action.yaml": b"title: [unclosed\n",
    "list.action.yaml": b"- a\n- b\n",
    "bomb.action.yaml": b"a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
    b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
    b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e]\n",
    "binary.action.yaml": b"\x00\xff\xfe" * 100,
}


def test_bad_plans_and_action_files_are_sent_back_or_set_aside_with_the_reason(vault: Path) -> None:
    for name, (text, _) in BAD_PLANS.items():
        (vault / "Approved" / f"{name}.md").write_text(text, "utf-8")
    for name, data in BAD_ACTIONS.items():
        (vault / "Needs_Action" / name).write_bytes(data)
    run = start_once(vault)
    assert run.returncode == 0, run.stderr[-3000:]
    for name, (_, said) in BAD_PLANS.items():
        back = vault / "Plans" / f"{name}.md"
        assert back.exists(), f"{name}: not sent back to Plans/"
        text = back.read_text("utf-8")
        assert "[!failure]" in text and said in text, f"{name}: the callout does not say why:\n{text}"
        if name != "broken frontmatter":  # its properties cannot be written; the callout says so
            assert "status: failed" in text
    assert files(vault / "Approved") == [] and files(vault / "Done") == []
    quarantined = {p.name for p in files(vault / "Quarantine")}
    for name in BAD_ACTIONS:
        assert name in quarantined and f"{name}.why.md" in quarantined, name
    assert files(vault / "Needs_Action") == [] and files(vault / "Plans", ".md") == sorted(
        vault / "Plans" / f"{n}.md" for n in BAD_PLANS
    )
