"""The CLI as a new user meets it: cheap commands stay cheap (no heavy imports), it finds the vault it
runs in, and it says plainly what happens next. Uses the real `vault` CLI, in-process or as a process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ai_employee.cli import cli
from ai_employee.lock import EngineLock
from tests.conftest import SAMPLES, engine_env, files, run_cli
from tests.invariants import fields, start_once

HEAVY = ("mcp", "anthropic", "googleapiclient")


def loaded_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has imported after running `code`."""
    probe = f"import sys\n{code}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=engine_env())
    return set(out.stdout.split())


def test_importing_the_cli_imports_no_heavy_library() -> None:
    assert not loaded_after("import ai_employee.cli") & set(HEAVY)


def test_status_list_and_history_import_no_heavy_library(vault: Path) -> None:
    for command in ("status", "list", "history"):
        code = f"from ai_employee.cli import main\nmain(['--vault', {str(vault)!r}, {command!r}])"
        heavy = loaded_after(code) & set(HEAVY)
        assert not heavy, f"`vault {command}` imports {heavy}"


def test_run_from_inside_the_vault_the_cli_finds_it(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_PATH", raising=False)
    monkeypatch.chdir(vault / "Plans")
    result = CliRunner().invoke(cli, ["status", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["vault"] == str(vault)


def test_a_second_start_says_who_runs_before_printing_anything(vault: Path) -> None:
    lock = EngineLock(vault / ".ai_employee" / "engine.lock")
    lock.acquire()
    try:
        result = run_cli("--vault", str(vault), "start")
    finally:
        lock.release()
    assert result.returncode == 1
    assert "already running" in result.stderr and "watching" not in (result.stdout + result.stderr).lower()


@pytest.mark.integration
def test_approve_with_no_engine_running_says_how_to_run_it(vault: Path) -> None:
    (vault / "Inbox" / "quote.eml").write_bytes((SAMPLES / "client-quote-request.eml").read_bytes())
    assert start_once(vault).returncode == 0
    [plan] = files(vault / "Plans", ".md")
    result = run_cli("--vault", str(vault), "approve", str(fields(plan)["id"]))
    assert result.returncode == 0, result.stderr
    assert "No engine is running" in result.stdout and "vault start" in result.stdout
    assert "The engine runs it next" not in result.stdout


@pytest.mark.integration
def test_a_deferred_plan_is_shown_as_deferred_not_waiting(vault: Path) -> None:
    (vault / "Inbox" / "quote.eml").write_bytes((SAMPLES / "client-quote-request.eml").read_bytes())
    assert start_once(vault).returncode == 0
    [plan] = files(vault / "Plans", ".md")
    plan_id = str(fields(plan)["id"])
    assert run_cli("--vault", str(vault), "defer", plan_id, "--minutes", "90").returncode == 0
    status = json.loads(run_cli("--vault", str(vault), "status", "--json").stdout)
    assert status["pending_approvals"] == [] and [p["id"] for p in status["deferred"]] == [plan_id]
    text = run_cli("--vault", str(vault), "status").stdout
    assert "Waiting for approval: 0" in text and "Deferred: 1" in text
    listed = run_cli("--vault", str(vault), "list").stdout
    assert plan_id in listed and "deferred until" in listed
    as_json = json.loads(run_cli("--vault", str(vault), "list", "--json").stdout)
    assert [(p["id"], p["state"]) for p in as_json] == [(plan_id, "deferred")]
