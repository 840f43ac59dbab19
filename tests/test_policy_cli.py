"""`vault explain` and `vault policy test`: the rules' verdict on a plan or an item, and why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ai_employee.cli import cli
from ai_employee.config import Config
from ai_employee.orchestrator import Engine
from ai_employee.vault.layout import Vault
from tests.conftest import SAMPLES, files


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def write_config(tmp_path: Path, policy: dict[str, object]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"policy": policy}))
    return path


def test_explain_and_policy_test(vault: Path, tmp_path: Path) -> None:
    (vault / "Inbox" / "quote.eml").write_bytes((SAMPLES / "client-quote-request.eml").read_bytes())
    engine = Engine(Vault(vault), Config())
    engine.run_once()
    (plan,) = files(vault / "Plans", ".md")
    out = run("--vault", str(vault), "explain", plan.name)
    assert "is MEDIUM" in out and "new_contact" in out and "sends an email in your name" in out
    data = json.loads(run("--vault", str(vault), "explain", plan.name, "--json"))
    assert data["criticality"] == "medium" and data["recorded"] == "medium"
    assert {r["rule"] for r in data["rules"]} == {"tool", "new_contact"}
    # The ledger keeps the rules that matched, with the plan (what learning and history read).
    from ai_employee.ledger import Ledger

    ledger = Ledger(Vault(vault).ledger_path)
    (rules,) = ledger.db.execute("SELECT rules FROM plans WHERE plan_id = ?", (data["plan_id"],)).fetchone()
    ledger.close()
    assert {r["rule"] for r in json.loads(rules)} == {"tool", "new_contact"}

    # Tuning: the sender's domain made a VIP; the same plan is HIGH now, and says it was MEDIUM.
    config = write_config(tmp_path, {"vip_contacts": ["@brightpath-design.co"]})
    out = run("--vault", str(vault), "--config", str(config), "explain", plan.name)
    assert "is HIGH (rated MEDIUM when it was written)" in out and "vip_contacts" in out
    out = run("--vault", str(vault), "--config", str(config), "policy", "test", str(plan))
    assert out.startswith(f"{plan.name}: HIGH") and "one of your VIP contacts" in out

    # An action file: the template planner's plan for it, rated; nothing runs or changes.
    (action,) = files(vault / "Needs_Action", ".action.yaml")
    before = {p: p.read_bytes() for p in vault.rglob("*") if p.is_file() and ".ai_employee" not in p.parts}
    data = json.loads(run("--vault", str(vault), "--config", str(config), "policy", "test", str(action), "--json"))
    assert data["criticality"] == "high" and data["steps"] == ["email.send_email"]
    after = {p: p.read_bytes() for p in vault.rglob("*") if p.is_file() and ".ai_employee" not in p.parts}
    assert before == after


def test_policy_test_refuses_what_is_not_a_plan(tmp_path: Path, vault: Path) -> None:
    bad = tmp_path / "notes.md"
    bad.write_text("# just a note\n\nno steps here\n")
    result = CliRunner().invoke(cli, ["--vault", str(vault), "policy", "test", str(bad)])
    assert result.exit_code != 0 and "not a plan note" in str(result.exception)


@pytest.mark.integration
def test_the_engine_applies_the_rules_end_to_end(vault: Path, tmp_path: Path) -> None:
    """Through the real engine: mail to a known contact runs by itself (configured LOW), mail from a VIP
    waits as HIGH, and each plan note says which rules decided."""
    from tests.conftest import run_cli

    config = write_config(
        tmp_path,
        {
            "known_contacts": {"addresses": ["@brightpath-design.co"], "email": "low"},
            "vip_contacts": ["@northwind.example", "@acme-cloud.example", "Priya Shah"],
        },
    )
    (vault / "Inbox" / "quote.eml").write_bytes((SAMPLES / "client-quote-request.eml").read_bytes())
    (vault / "Inbox" / "vip.eml").write_bytes(
        b"From: Priya Shah <priya@northwind.example>\r\nTo: me@example.com\r\nSubject: Quick question\r\n"
        b"Message-ID: <vip1@northwind.example>\r\n\r\nCan we talk about the renewal?\r\n"
    )
    result = run_cli("--vault", str(vault), "--config", str(config), "start", "--once")
    assert result.returncode == 0, result.stderr
    (done,) = files(vault / "Done", ".md")
    assert "Maria" in done.name and "known_contacts" not in done.read_text()  # rule names stay in the ledger
    assert "every recipient is a known contact" in done.read_text()
    (waiting,) = files(vault / "Plans", ".md")
    text = waiting.read_text()
    assert "criticality: high" in text and "one of your VIP contacts" in text
