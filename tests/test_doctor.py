"""`vault doctor` on a broken installation names every problem and how to fix it; on a sound one it
says so. Real servers, a real SMTP server, a local stand-in for the Anthropic API."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import engine_env, run_cli
from tests.fake_claude import fake_claude
from tests.smtp_server import Collector, free_port, start_smtp

pytestmark = [pytest.mark.timeout(120), pytest.mark.integration]


def doctor(
    vault: Path, config: dict[str, Any], tmp_path: Path, env: dict[str, str]
) -> tuple[int, list[dict[str, str]]]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_cli("--vault", str(vault), "--config", str(path), "doctor", "--json", env=engine_env(env))
    return result.returncode, json.loads(result.stdout)


def test_doctor_names_each_problem_with_its_fix(vault: Path, tmp_path: Path) -> None:
    (vault / ".ai_employee").mkdir(exist_ok=True)
    (vault / ".ai_employee").chmod(0o777)
    with fake_claude() as fake:
        fake.refuse_keys = {"sk-ant-wrong"}
        config = {
            "execution": {"dry_run": False},
            "claude": {"base_url": fake.url, "api_key": "sk-ant-wrong"},
            "gmail": {"enabled": True, "token_file": str(tmp_path / "no-token.json")},
            "mcp_servers": {
                "email": {
                    "command": "python",
                    "args": ["-m", "ai_employee.mcp_servers.email_server"],
                    "env": {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(free_port()), "SMTP_FROM": "a@example.com"},
                },
                "ghost": {"command": "/no/such/server"},
                "crashing": {"command": sys.executable, "args": ["-c", "raise SystemExit('no config for me')"]},
            },
        }
        code, findings = doctor(vault, config, tmp_path, {})
    assert code == 1
    problems = {f["what"]: f for f in findings if f["level"] == "fail"}
    assert set(problems) >= {"state folder", "server ghost", "server crashing", "smtp (email)", "gmail", "claude"}
    assert "chmod o-w" in problems["state folder"]["fix"]
    assert "/no/such/server" in problems["server ghost"]["fix"]
    assert "mcp-crashing.log" in problems["server crashing"]["fix"]
    assert "cannot reach 127.0.0.1" in problems["smtp (email)"]["detail"]
    assert "vault gmail auth" in problems["gmail"]["fix"]
    assert "refused the API key" in problems["claude"]["detail"]
    assert all(f["fix"] for f in problems.values())
    assert "sk-ant-wrong" not in json.dumps(findings)


def test_doctor_on_a_sound_installation(vault: Path, tmp_path: Path) -> None:
    handler = Collector()
    controller = start_smtp(handler)
    try:
        with fake_claude() as fake:
            config = {
                "claude": {"base_url": fake.url, "api_key": "sk-ant-good"},
                "mcp_servers": {
                    "vault": {"command": "python", "args": ["-m", "ai_employee.mcp_servers.vault_server"]},
                    "email": {
                        "command": "python",
                        "args": ["-m", "ai_employee.mcp_servers.email_server"],
                        "env": {
                            "SMTP_HOST": "127.0.0.1",
                            "SMTP_PORT": str(controller.port),
                            "SMTP_FROM": "a@example.com",
                        },
                    },
                },
            }
            code, findings = doctor(vault, config, tmp_path, {})
    finally:
        controller.stop()
    assert code == 0, findings
    assert [f for f in findings if f["level"] != "ok"] == []
    assert handler.envelopes == []  # nothing was sent
    names = {f["what"] for f in findings}
    assert {"server vault", "server email", "smtp (email)", "claude", "file watching", "vault"} <= names
