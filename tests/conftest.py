"""Shared fixtures: real temp vaults, the real `vault` CLI and engine as subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from ai_employee.vault.layout import init_vault
from tests.smtp_server import Collector, start_smtp

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"  # realistic inputs shipped with the repo


def wait_for(predicate: Callable[[], object], timeout_s: float = 20.0, interval_s: float = 0.02) -> object:
    """Poll until `predicate()` is truthy; fail the test with a clear message on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s: {predicate}")


def files(folder: Path, suffix: str = "") -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.name.endswith(suffix))


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    init_vault(root)
    return root


def engine_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VAULT_PATH", "AI_EMPLOYEE_", "ANTHROPIC", "CLAUDE"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real `vault` CLI (as `python -m ai_employee`) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "ai_employee", *args],
        cwd=cwd,
        env=env or engine_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class EngineProcess:
    """A real engine (`vault start`) running in a subprocess for the length of a test."""

    def __init__(
        self,
        vault: Path,
        *extra: str,
        config: Path | None = None,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        args = [sys.executable, "-m", "ai_employee", "--vault", str(vault)]
        if config is not None:
            args += ["--config", str(config)]
        self.log = log or vault.parent / "engine-test.log"
        self._out = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*prefix, *args, "start", *extra],
            stdout=self._out,
            stderr=self._out,
            env=env or engine_env(),
            cwd=vault.parent,
        )
        self.vault = vault
        # Started means watching: a file created before the watcher runs is found by the sweep instead,
        # which a test of what the watcher sees must not race with.
        wait_for(lambda: self._watching() or self.proc.poll() is not None)
        if self.proc.poll() is not None:
            raise AssertionError(f"engine exited at start:\n{self.output()}")

    def _watching(self) -> bool:
        try:
            beat = json.loads((self.vault / ".ai_employee" / "heartbeat.json").read_text("utf-8"))
        except (OSError, ValueError):
            return False
        services = beat.get("services") or {}
        return "watcher" not in services or bool(services["watcher"].get("healthy"))

    def output(self) -> str:
        return self.log.read_text("utf-8", errors="replace")

    def stop(self, timeout_s: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"engine did not stop on SIGTERM:\n{self.output()}") from None
        self._out.close()
        return self.proc.returncode


@pytest.fixture
def engine(vault: Path) -> Iterator[Callable[..., EngineProcess]]:
    started: list[EngineProcess] = []

    def start(*extra: str, config: Path | None = None, env: dict[str, str] | None = None) -> EngineProcess:
        proc = EngineProcess(vault, *extra, config=config, env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def smtp() -> Iterator[tuple[Collector, int]]:
    handler = Collector()
    controller = start_smtp(handler)
    try:
        yield handler, controller.port
    finally:
        controller.stop()


def live_config(tmp_path: Path, port: int) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "app": {"owner_name": "Sam Owner"},
                "watcher": {"settle_s": 0.2},
                "mcp_servers": {
                    "vault": {"command": "python", "args": ["-m", "ai_employee.mcp_servers.vault_server"]},
                    "email": {
                        "command": "python",
                        "args": ["-m", "ai_employee.mcp_servers.email_server"],
                        "env": {
                            "SMTP_HOST": "127.0.0.1",
                            "SMTP_PORT": str(port),
                            "SMTP_FROM": "Sam Owner <sam@example-studio.com>",
                            "SMTP_STARTTLS": "false",
                        },
                    },
                },
            }
        )
    )
    return config
