"""One decision from any channel: the first valid one wins; every later one is told, in words, who
decided, how and when; nothing changes. And `vault stats`'s outcomes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ai_employee.config import Config
from ai_employee.ledger import Ledger
from ai_employee.orchestrator import Engine
from ai_employee.pipeline import decisions
from ai_employee.vault.layout import Vault
from tests.conftest import SAMPLES, engine_env, files


def waiting(vault: Path) -> str:
    (vault / "Inbox" / "quote.eml").write_bytes((SAMPLES / "client-quote-request.eml").read_bytes())
    Engine(Vault(vault), Config()).run_once()
    (plan,) = files(vault / "Plans", ".md")
    return plan.name


def test_a_later_decision_is_told_who_decided_first(vault: Path) -> None:
    name = waiting(vault)
    ledger = Ledger(Vault(vault).ledger_path)
    try:
        decisions.deny(Vault(vault), ledger, name, feedback="not now", actor="ann")
        for later in (decisions.approve, decisions.deny):
            with pytest.raises(decisions.AlreadyDecided, match="already denied by ann from the command line at"):
                later(Vault(vault), ledger, _id(vault), actor="bob")
        with pytest.raises(decisions.AlreadyDecided, match="can no longer be deferred"):
            decisions.defer(Vault(vault), ledger, _id(vault), minutes=10, actor="bob")
        assert [row["actor"] for row in ledger.decisions(10)] == ["ann"]
        stats = ledger.decision_stats()
        assert stats["denied"] == 1 and stats["approval_rate"] == 0.0 and stats["median_time_to_decide_s"] >= 0
    finally:
        ledger.close()


def _id(vault: Path) -> str:
    import yaml

    (note,) = files(vault / "Rejected", ".md") or files(vault / "Plans", ".md") or files(vault / "Approved", ".md")
    return str(yaml.safe_load(note.read_text().split("---\n")[1])["id"])


@pytest.mark.integration
def test_two_processes_deciding_at_once_exactly_one_wins(vault: Path) -> None:
    """`vault approve` and `vault deny` on the same plan, started together from separate processes:
    exactly one takes effect; the other says it was already decided, and by whom."""
    waiting(vault)
    plan_id = _id(vault)
    base = [sys.executable, "-m", "ai_employee", "--vault", str(vault)]
    for attempt in range(3):
        if attempt:
            # Put the plan back to waiting for another round (a declined plan's note back in Plans/).
            (note,) = files(vault / "Approved", ".md") or files(vault / "Rejected", ".md")
            note.rename(vault / "Plans" / note.name)
        procs = [
            subprocess.Popen(
                [*base, verb, plan_id], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=engine_env()
            )
            for verb in ("approve", "deny")
        ]
        outputs = [p.communicate(timeout=60) for p in procs]
        results = [(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]
        winners = [r for r in results if r[0] == 0]
        losers = [r for r in results if r[0] != 0]
        assert len(winners) == 1 and len(losers) == 1, results
        assert "already" in losers[0][2] and "nothing changed" in losers[0][2], losers[0][2]
        assert len(files(vault / "Approved", ".md")) + len(files(vault / "Rejected", ".md")) == 1


def test_the_api_binds_a_channel_and_the_steps_it_showed(vault: Path) -> None:
    """The package API other channels (the phone, the web page) use: channel and actor recorded, and the
    hash of the steps the person was shown must be the steps' hash now."""
    from ai_employee.vault.notes import split_note
    from ai_employee.vault.plans import parse_steps, steps_hash

    name = waiting(vault)
    plan_id = _id(vault)
    note = vault / "Plans" / name
    shown = steps_hash(parse_steps(split_note(note.read_text()).body))
    note.write_text(note.read_text().replace("Hello Maria", "Hello Maria (edited after it was shown)"))
    ledger = Ledger(Vault(vault).ledger_path)
    try:
        with pytest.raises(decisions.StepsChanged, match="changed after it was shown to you"):
            decisions.approve(Vault(vault), ledger, plan_id, actor="ann", channel="web", seen=shown)
        assert ledger.last_decision(plan_id, decisions.VERDICTS) is None and note.exists()
        now = steps_hash(parse_steps(split_note(note.read_text()).body))
        decisions.approve(Vault(vault), ledger, plan_id, actor="ann", channel="web", seen=now)
        last = ledger.last_decision(plan_id, decisions.VERDICTS)
        assert last is not None and (last["channel"], last["actor"], last["plan_hash"]) == ("web", "ann", now)
    finally:
        ledger.close()
