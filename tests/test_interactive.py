"""`vault interactive`, driven through a real pseudo-terminal: edit in $EDITOR, then approve (what runs is
the edit); deny with feedback; defer; skip; quit."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import SAMPLES, engine_env, files, run_cli

pytestmark = pytest.mark.integration


class Terminal:
    """A process on the slave side of a pty; we read and type on the master side."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout_s: float = 30) -> str:
        deadline = time.monotonic() + timeout_s
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"never saw {text!r}; the terminal shows:\n{self.seen}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.master, 4096).decode("utf-8", "replace")
                except OSError:  # the process closed the terminal
                    break
        return self.seen

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> int:
        code = self.proc.wait(timeout=30)
        os.close(self.master)
        return code


def vault_with_waiting_plans(vault: Path, count: int) -> None:
    email = (SAMPLES / "client-quote-request.eml").read_bytes()
    for n in range(count):
        (vault / "Inbox" / f"quote-{n}.eml").write_bytes(email.replace(b"Message-ID: <", f"Message-ID: <{n}".encode()))
    assert run_cli("--vault", str(vault), "start", "--once").returncode == 0
    assert len(files(vault / "Plans", ".md")) == count


def test_edit_then_approve_deny_defer_and_quit(vault: Path, tmp_path: Path) -> None:
    vault_with_waiting_plans(vault, 4)
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import sys, pathlib\np = pathlib.Path(sys.argv[-1])\n"
        "p.write_text(p.read_text().replace('Hello Maria', 'Dear Maria, edited in the terminal'))\n"
    )
    env = engine_env({"EDITOR": f"{sys.executable} {editor}", "TERM": "dumb"})
    term = Terminal([sys.executable, "-m", "ai_employee", "--vault", str(vault), "interactive"], env)
    term.expect("4 plan(s) waiting for you.")
    term.expect("[q]uit")
    term.type("e\n")  # the editor changes the reply; the plan is shown again as edited
    term.expect("Dear Maria, edited in the terminal")
    term.type("a\n")
    term.expect("Feedback (optional)")
    term.type("good\n")
    term.expect("Approved: Approved/")
    term.expect("[2/4]")
    term.type("d\n")
    term.expect("Why (optional")
    term.type("not this one\n")
    term.expect("Declined: Rejected/")
    term.expect("[3/4]")
    term.type("f\n")
    term.expect("how many minutes")
    term.type("30\n")
    term.expect("Deferred until")
    term.expect("[4/4]")
    term.type("q\n")
    assert term.close() == 0

    approved = files(vault / "Approved", ".md")
    assert len(approved) == 1 and "Dear Maria, edited in the terminal" in approved[0].read_text()
    assert len(files(vault / "Rejected", ".md")) == 1 and len(files(vault / "Plans", ".md")) == 2
    history = run_cli("--vault", str(vault), "history", "--json")
    rows = yaml.safe_load(history.stdout)
    assert [r["decision"] for r in rows][:3] == ["defer", "deny", "approve"]
    # What runs is the edit: the engine finds the approval bound to the edited steps.
    assert run_cli("--vault", str(vault), "start", "--once").returncode == 0
    (done,) = files(vault / "Done", ".md")
    assert "Dear Maria, edited in the terminal" in done.read_text() and "DRY RUN" in done.read_text()
