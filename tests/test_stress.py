"""Random kills during bursts: a live engine is killed (SIGKILL) at a random moment while it ingests,
plans and sends approved replies; `vault start --once --live` then finishes the work, and the vault and
the SMTP server are checked. `make stress` runs many iterations (STRESS_ITERATIONS); the normal test run
does a few, with fixed seeds.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from ai_employee.vault.layout import init_vault
from tests.conftest import EngineProcess, files, live_config
from tests.invariants import check_vault, fields, start_once
from tests.smtp_server import Collector

ITERATIONS = int(os.environ.get("STRESS_ITERATIONS", "2"))
pytestmark = [pytest.mark.timeout(120 + 60 * ITERATIONS), pytest.mark.integration]

EMAIL = """From: Client {n} <client{n}@example.org>
To: me@example.com
Subject: Stress question {n}
Message-ID: <stress-{n}@example.org>

Hello, this is question {n}.
"""


def burst(vault: Path, rng: random.Random, first: int, count: int) -> dict[str, bytes]:
    """`count` new inputs, numbered from `first` (unique names and contents across bursts)."""
    inputs = {}
    for n in range(first, first + count):
        if rng.random() < 0.3:
            name, data = f"mail-{n:03d}.eml", EMAIL.format(n=n).encode()
        else:
            name, data = f"note-{n:03d}.md", f"# Note {n}\n\n{rng.random()}\n".encode()
        (vault / "Inbox" / name).write_bytes(data)
        inputs[name] = data
    return inputs


@pytest.mark.parametrize("seed", range(ITERATIONS))
def test_random_kills_during_a_burst_lose_nothing_and_send_nothing_twice(
    tmp_path: Path, smtp: tuple[Collector, int], seed: int
) -> None:
    rng = random.Random(seed)
    collector, port = smtp
    config = live_config(tmp_path, port)
    vault = tmp_path / "vault"
    init_vault(vault)
    inputs: dict[str, bytes] = {}
    for _ in range(3):  # three bursts, each cut short by a kill at a random moment
        engine = EngineProcess(vault, "--live", config=config)
        inputs.update(burst(vault, rng, len(inputs), rng.randint(20, 80)))
        deadline = time.monotonic() + rng.uniform(0.05, 2.0)
        while time.monotonic() < deadline:
            for plan in files(vault / "Plans", ".md"):  # approve replies as they appear
                if fields(plan).get("status") == "pending_approval":
                    with contextlib.suppress(FileNotFoundError):
                        plan.rename(vault / "Approved" / plan.name)
            time.sleep(0.01)
        engine.proc.kill()
        engine.proc.wait()
        engine.stop()
    finished = start_once(vault, "--live", config=config)
    assert finished.returncode == 0, finished.stderr[-2000:]
    check_vault(vault, inputs)
    sent = Counter(str(message["Subject"]) for message in collector.messages())
    assert all(count == 1 for count in sent.values()), f"a reply was sent twice: {sent.most_common(3)}"
    done_replies = [
        p
        for p in files(vault / "Done", ".md")
        if "email.send_email" in p.read_text("utf-8") and fields(p)["dry_run"] is False
    ]
    assert len(sent) >= len(done_replies), "a plan says done but its reply was never sent"
    assert files(vault / "Quarantine") == []
