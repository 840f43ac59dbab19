"""Learning from decisions: it proposes, you decide; a learned rule lowers only MEDIUM to LOW, raising
rules still apply, and one denial after acceptance demotes it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ai_employee.cli import cli
from ai_employee.composition import make_policy
from ai_employee.config import Config
from ai_employee.ledger import Ledger
from ai_employee.policy import Criticality, Facts, learning
from ai_employee.vault.layout import Vault
from ai_employee.vault.plans import Step

NOON = datetime(2026, 11, 30, 12, 0).astimezone()


def reply(to: str, body: str = "Thanks, see you then.") -> Step:
    return Step(tool="email.send_email", args={"to": [to], "subject": "Re: hi", "body": body})


def decide(ledger: Ledger, n: int, to: str, verdict: str, channel: str = "cli", edited: bool = False) -> None:
    """A recorded history: plans to write to `to`, decided `verdict` by a person."""
    for i in range(n):
        plan_id = f"P-{to}-{verdict}-{i}-{time.monotonic_ns()}"
        planned = [reply(to).to_mapping()]
        ledger.register_plan(plan_id, "A", "medium", "template", "t", steps=json.dumps(planned))
        seen = [reply(to, "Edited by me.").to_mapping()] if edited else planned
        ledger.record_decision(plan_id, verdict, channel, "ann", "h", steps=json.dumps(seen))


@pytest.fixture
def ledger(vault: Path) -> Iterator[Ledger]:
    opened = Ledger(Vault(vault).ledger_path)
    yield opened
    opened.close()


def test_proposals_from_a_recorded_history(ledger: Ledger) -> None:
    decide(ledger, 10, "ann@ourteam.example", "approve")
    decide(ledger, 2, "ann@ourteam.example", "approve", edited=True)
    decide(ledger, 3, "x@pushy.example", "deny")
    decide(ledger, 1, "x@pushy.example", "approve")
    decide(ledger, 20, "bot@auto.example", "auto_approve", channel="policy")  # the policy's: not evidence
    found = learning.tally(ledger)
    team = found[learning.Pattern("email.send_email", "ourteam.example")]
    assert (team.approved, team.denied, team.edited) == (12, 0, 2)
    assert learning.Pattern("email.send_email", "auto.example") not in found
    current = {p: "medium" for p in found}
    texts = [p.text for p in learning.proposals(found, current, min_samples=10)]
    assert texts == [
        "email.send_email to @ourteam.example: approved 12 of 12 — make it LOW?",
        "email.send_email to @pushy.example: denied 3 of 4 — make it HIGH?",
    ]
    assert learning.proposals(found, current, min_samples=13)[0].level == "high"  # too few for LOW yet


def test_nothing_changes_until_accepted_then_a_denial_demotes(vault: Path, tmp_path: Path, ledger: Ledger) -> None:
    config = Config.model_validate({"learning": {"file": str(tmp_path / "learned.yaml"), "min_samples": 5}})
    decide(ledger, 6, "ann@ourteam.example", "approve")
    facts = Facts(when=NOON)
    before = make_policy(config, ledger).assess([reply("ann@ourteam.example")], facts=facts)
    assert before.criticality == Criticality.MEDIUM  # learning proposes; nothing changed

    runner = CliRunner()
    shown = runner.invoke(cli, ["--vault", str(vault), "--config", str(write(tmp_path, config)), "insights"])
    assert "Proposal 1: email.send_email to @ourteam.example: approved 6 of 6 — make it LOW?" in shown.output
    accepted = runner.invoke(
        cli, ["--vault", str(vault), "--config", str(write(tmp_path, config)), "insights", "accept", "1"]
    )
    assert accepted.exit_code == 0, accepted.output
    text = (tmp_path / "learned.yaml").read_text()
    assert "# email.send_email to @ourteam.example: approved 6 of 6" in text and "vault insights on" in text

    after = make_policy(config, ledger)
    low = after.assess([reply("ann@ourteam.example")], facts=facts)
    assert low.criticality == Criticality.LOW and any(m.rule == "learned" for m in low.matches)
    # Raising rules still apply on top; other domains and HIGH tools are untouched.
    assert (
        after.assess([reply("ann@ourteam.example", "wire transfer today")], facts=facts).criticality == Criticality.HIGH
    )
    assert after.assess([reply("bob@else.example")], facts=facts).criticality == Criticality.MEDIUM
    pay = Step(tool="payment.send", args={"to": ["ann@ourteam.example"]})
    assert after.assess([pay], facts=facts).criticality == Criticality.HIGH

    # One denial of a plan of that pattern after acceptance demotes the rule.
    time.sleep(1.1)  # the decision comes after the acceptance's second
    decide(ledger, 1, "ann@ourteam.example", "deny")
    demoted = make_policy(config, ledger)
    assert demoted.assess([reply("ann@ourteam.example")], facts=facts).criticality == Criticality.MEDIUM
    out = runner.invoke(cli, ["--vault", str(vault), "--config", str(write(tmp_path, config)), "insights"]).output
    assert "DEMOTED" in out


def test_auto_promote_applies_only_when_opted_in_and_ends_at_a_denial(tmp_path: Path, ledger: Ledger) -> None:
    config = Config.model_validate(
        {"learning": {"file": str(tmp_path / "none.yaml"), "auto_promote": True, "min_samples": 5}}
    )
    decide(ledger, 5, "ann@ourteam.example", "approve")
    facts = Facts(when=NOON)
    assert (
        make_policy(config, ledger).assess([reply("ann@ourteam.example")], facts=facts).criticality == Criticality.LOW
    )
    decide(ledger, 1, "ann@ourteam.example", "deny")
    assert make_policy(config, ledger).assess([reply("ann@ourteam.example")], facts=facts).criticality == (
        Criticality.MEDIUM
    )
    assert not (tmp_path / "none.yaml").exists()  # auto-promotion writes nothing


def write(tmp_path: Path, config: Config) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"learning": config.learning.model_dump(mode="json", exclude_none=True)}))
    return path


def test_a_broken_learned_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "learned.yaml"
    path.write_text("- tool: email.send_email\n  level: low\n")
    with pytest.raises(Exception, match="lacks 'domain'"):
        learning.load(path)


def test_a_learned_low_never_covers_someone_new_and_demotion_sticks(tmp_path: Path, ledger: Ledger) -> None:
    """A LOW rule for a domain lowers mail to the people you approved mail to, not to a stranger at the
    same domain; and a denial demotes it even if that plan is approved again later."""
    config = Config.model_validate({"learning": {"file": str(tmp_path / "learned.yaml"), "min_samples": 5}})
    decide(ledger, 6, "ann@freemail.example", "approve")
    (proposal,) = learning.proposals(
        learning.tally(ledger), {learning.Pattern("email.send_email", "freemail.example"): "medium"}, 5
    )
    learning.accept(tmp_path / "learned.yaml", proposal)
    policy = make_policy(config, ledger)
    facts = Facts(when=NOON)
    assert policy.assess([reply("ann@freemail.example")], facts=facts).criticality == Criticality.LOW
    assert policy.assess([reply("attacker@freemail.example")], facts=facts).criticality == Criticality.MEDIUM
    time.sleep(1.1)
    plan_id = "P-denied-then-approved"
    planned = json.dumps([reply("ann@freemail.example").to_mapping()])
    ledger.register_plan(plan_id, "A", "medium", "template", "t", steps=planned)
    ledger.record_decision(plan_id, "deny", "cli", "ann", "h", steps=planned)
    ledger.record_decision(plan_id, "approve", "cli", "ann", "h", steps=planned)
    assert make_policy(config, ledger).assess([reply("ann@freemail.example")], facts=facts).criticality == (
        Criticality.MEDIUM
    )
