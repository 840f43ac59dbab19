"""Live mode against a real SMTP server that refuses, answers 4xx or 5xx, drops the connection or hangs,
and a test MCP server that fails: every failure is classified, the plan goes back with what happened,
`vault interventions` lists it, and `vault resume` goes on without running anything twice."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import files, run_cli, wait_for
from tests.invariants import start_once
from tests.smtp_server import Collector, free_port, start_smtp

pytestmark = [pytest.mark.timeout(180), pytest.mark.integration]
SEND = {
    "tool": "email.send_email",
    "args": {"to": ["ann@example.org"], "subject": "Invoice", "body": "Attached, as promised."},
}


def write_config(tmp_path: Path, port: int, **flaky_env: str) -> Path:
    config = tmp_path / "config.yaml"
    email = {
        "command": "python",
        "args": ["-m", "ai_employee.mcp_servers.email_server"],
        "env": {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "SMTP_FROM": "Sam <sam@example.com>",
            "SMTP_TIMEOUT_S": "2",
        },
    }
    data: dict[str, Any] = {
        "execution": {"retry": {"base_delay_s": 0.05, "max_delay_s": 0.1}},
        "mcp_servers": {"email": email},
    }
    if flaky_env:
        data["mcp_servers"]["flaky"] = {
            "command": sys.executable,
            "args": ["-m", "tests.flaky_server"],
            "env": flaky_env,
            "cwd": str(Path(__file__).resolve().parents[1]),  # where `tests` is importable
        }
    config.write_text(yaml.safe_dump(data))
    return config


def approved_plan(vault: Path, name: str, steps: list[dict[str, Any]]) -> Path:
    body = "# " + name + "\n\n## Steps\n\n```yaml\n" + yaml.safe_dump(steps, sort_keys=False) + "```\n"
    path = vault / "Approved" / f"{name}.md"
    path.write_text(body, "utf-8")
    return path


def vault_cli(vault: Path, config: Path, *args: str) -> str:
    result = run_cli("--vault", str(vault), "--config", str(config), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def front(path: Path) -> dict[str, Any]:
    parts = path.read_text("utf-8").split("---\n")
    return yaml.safe_load(parts[1]) if len(parts) > 2 else {}


def run_live(vault: Path, config: Path) -> None:
    result = start_once(vault, "--live", config=config)
    assert result.returncode == 0, result.stderr


def test_a_4xx_is_tried_again_and_the_message_goes_once(vault: Path, tmp_path: Path) -> None:
    handler = Collector()
    handler.script = ["4xx"]
    controller = start_smtp(handler)
    try:
        config = write_config(tmp_path, controller.port)
        approved_plan(vault, "Send the invoice", [SEND])
        run_live(vault, config)
    finally:
        controller.stop()
    [done] = files(vault / "Done", ".md")
    assert handler.data_commands == 2 and len(handler.envelopes) == 1
    assert "`email.send_email` · OK" in done.read_text()


def test_a_5xx_stops_at_once_and_says_what_to_do(vault: Path, tmp_path: Path) -> None:
    handler = Collector()
    handler.script = ["5xx"]
    controller = start_smtp(handler)
    try:
        config = write_config(tmp_path, controller.port)
        approved_plan(vault, "Send the invoice", [SEND])
        run_live(vault, config)
    finally:
        controller.stop()
    [back] = files(vault / "Plans", ".md")
    text = back.read_text()
    assert handler.data_commands == 1 and handler.envelopes == []  # a refusal is not retried
    assert front(back)["status"] == "failed" and "554 5.7.1" in text
    assert "The tool refused the step as it is" in text and "vault resume" in text


@pytest.mark.parametrize("move", ["drop", "hang"])
def test_a_connection_lost_mid_message_is_interrupted_and_never_sent_again(
    vault: Path, tmp_path: Path, move: str
) -> None:
    handler = Collector()
    handler.script = [move]
    controller = start_smtp(handler)
    try:
        config = write_config(tmp_path, controller.port)
        approved_plan(vault, "Send the invoice", [SEND])
        run_live(vault, config)
        [back] = files(vault / "Plans", ".md")
        fm = front(back)
        assert fm["status"] == "failed" and fm["interrupted"] is True
        assert "may or may not have happened" in back.read_text()
        listed = json.loads(vault_cli(vault, config, "interventions", "--json"))
        assert [(i["kind"], i["ref"]) for i in listed] == [("interrupted", fm["id"])]
        run_live(vault, config)  # another pass of the engine: nothing is sent by itself
    finally:
        controller.stop()
    assert handler.data_commands == 1 and len(handler.envelopes) == 1


def test_smtp_down_then_back_resumes_from_the_first_step_not_done(vault: Path, tmp_path: Path) -> None:
    port = free_port()
    calls = tmp_path / "calls.jsonl"
    config = write_config(tmp_path, port, FLAKY_CALLS=str(calls))
    note = {"tool": "flaky.act", "args": {"what": "file the invoice"}}
    approved_plan(vault, "File and send", [note, SEND])
    run_live(vault, config)  # nothing listens: connection refused, twice the same → back to the human
    [back] = files(vault / "Plans", ".md")
    fm = front(back)
    assert fm["status"] == "failed" and not fm.get("interrupted")
    assert "1. `flaky.act` · OK" in back.read_text()  # step 1 ran
    [item] = json.loads(vault_cli(vault, config, "interventions", "--json"))
    assert item["kind"] == "failed" and item["attempts"] == 1 and item["tries"] == 2
    assert "Connection refused" in item["last_error"]
    handler = Collector()
    controller = start_smtp(handler, port=port)
    try:
        out = vault_cli(vault, config, "resume", fm["id"][:10], "--note", "the mail server is back")
        assert "Resumed: Approved/" in out
        run_live(vault, config)
    finally:
        controller.stop()
    [done] = files(vault / "Done", ".md")
    assert len(handler.envelopes) == 1
    assert [json.loads(line)["what"] for line in calls.read_text().splitlines()] == ["file the invoice"]  # once
    text = done.read_text()
    assert "Execution log (attempt 2)" in text and "SKIPPED" in text
    history = vault_cli(vault, config, "history")
    assert "resumed by" in history and "the mail server is back" in history
    assert json.loads(vault_cli(vault, config, "interventions", "--json")) == []


def test_resume_refuses_a_plan_that_did_not_fail(vault: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, free_port())
    approved_plan(vault, "Send the invoice", [SEND])
    result = start_once(vault, config=config)  # dry-run: done
    assert result.returncode == 0
    [done] = files(vault / "Done", ".md")
    refused = run_cli("--vault", str(vault), "--config", str(config), "resume", done.stem)
    assert refused.returncode == 1 and "only a failed or interrupted plan" in refused.stderr


def test_refused_credentials_make_the_plan_wait_then_it_goes_on_by_itself(
    vault: Path, tmp_path: Path, engine: Any
) -> None:
    script, calls = tmp_path / "script.json", tmp_path / "calls.jsonl"
    script.write_text(json.dumps(["auth"]))
    config = write_config(tmp_path, free_port(), FLAKY_SCRIPT=str(script), FLAKY_CALLS=str(calls))
    data = yaml.safe_load(config.read_text())
    data["execution"]["probe_interval_s"] = 4
    config.write_text(yaml.safe_dump(data))
    proc = engine("--live", config=config)
    note = approved_plan(vault, "File it", [{"tool": "flaky.act", "args": {"what": "file"}}])
    wait_for(lambda: note.exists() and front(note).get("status") == "waiting")
    fm = front(note)
    assert "credentials" in fm["waiting_for"] and "[!warning] AI Employee: waiting" in note.read_text()
    paused = lambda: json.loads(vault_cli(vault, config, "status", "--json"))["engine"]["paused_servers"]  # noqa: E731
    assert "flaky" in wait_for(paused, timeout_s=3)  # the heartbeat says so within a second or two
    listed = {i["kind"] for i in json.loads(vault_cli(vault, config, "interventions", "--json"))}
    assert {"waiting", "server"} <= listed
    # The probe is due after 4 s: the server works now, the plan goes on by itself, once.
    [done] = wait_for(lambda: files(vault / "Done", ".md"))
    proc.stop()
    assert [json.loads(line)["what"] for line in calls.read_text().splitlines()] == ["file", "file"]
    assert "waiting_for" not in front(done)
    db = sqlite3.connect(vault / ".ai_employee" / "ledger.sqlite3")
    names = [row[0] for row in db.execute("SELECT name FROM events WHERE name LIKE 'server.%' ORDER BY id")]
    db.close()
    assert names == ["server.paused", "server.resumed"]


def test_a_rate_limit_keeps_the_excess_waiting_in_approved(vault: Path, tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    config = write_config(tmp_path, free_port(), FLAKY_CALLS=str(calls))
    data = yaml.safe_load(config.read_text())
    data["mcp_servers"]["flaky"]["tools"] = {"act": {"rate_limit": "1/hour"}}
    config.write_text(yaml.safe_dump(data))
    approved_plan(vault, "First", [{"tool": "flaky.act", "args": {"what": "one"}}])
    approved_plan(vault, "Second", [{"tool": "flaky.act", "args": {"what": "two"}}])
    result = start_once(vault, "--live", config=config)
    assert "1 approved plan(s) wait for a server or a rate limit" in result.stdout
    [waiting] = files(vault / "Approved", ".md")
    assert "rate limit (1 calls per hour)" in front(waiting)["waiting_for"]
    assert len(calls.read_text().splitlines()) == 1 and len(files(vault / "Done", ".md")) == 1


def test_a_waiting_plan_tried_again_still_says_it_waits(vault: Path, tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    config = write_config(tmp_path, free_port(), FLAKY_CALLS=str(calls))
    data = yaml.safe_load(config.read_text())
    data["mcp_servers"]["flaky"]["tools"] = {"act": {"rate_limit": "1/hour"}}
    config.write_text(yaml.safe_dump(data))
    approved_plan(vault, "First", [{"tool": "flaky.act", "args": {"what": "one"}}])
    run_live(vault, config)
    second = approved_plan(vault, "Second", [{"tool": "flaky.act", "args": {"what": "two"}}])
    for _ in range(2):  # a restart tries it again at once: it waits again, and says so
        run_live(vault, config)
        fm = front(second)
        assert fm["status"] == "waiting" and "rate limit" in fm["waiting_for"]
        assert "AI Employee: waiting" in second.read_text() and "running since" not in second.read_text()
    assert len(calls.read_text().splitlines()) == 1


def test_a_copy_of_an_approved_note_never_runs_a_step_in_doubt_again(vault: Path, tmp_path: Path) -> None:
    script, calls = tmp_path / "script.json", tmp_path / "calls.jsonl"
    script.write_text(json.dumps(["unknown"]))
    config = write_config(tmp_path, free_port(), FLAKY_SCRIPT=str(script), FLAKY_CALLS=str(calls))
    approved_plan(vault, "Pay", [{"tool": "flaky.act", "args": {"what": "pay"}}])
    run_live(vault, config)
    [back] = files(vault / "Plans", ".md")
    assert front(back)["interrupted"] is True
    vault_cli(vault, config, "resume", back.stem, "--note", "it did not go through")
    # The resumed note is duplicated in Approved/ (Finder's "Duplicate", a sync tool restoring it).
    [resumed] = files(vault / "Approved", ".md")
    (vault / "Approved" / "Pay copy.md").write_bytes(resumed.read_bytes())
    script.write_text(json.dumps(["unknown"]))
    run_live(vault, config)
    assert [json.loads(line)["what"] for line in calls.read_text().splitlines()] == ["pay", "pay"]
    [again] = files(vault / "Plans", ".md")
    assert front(again)["interrupted"] is True and files(vault / "Approved", ".md") == []
    [note] = [q for q in files(vault / "Quarantine", ".md") if "was not run" in q.read_text()]
    assert "ended interrupted" in note.read_text() or "another copy" in note.read_text()
