"""The orchestrator: a crashed service is restarted with backoff; `vault restart --services` restarts
one service inside a running engine; the heartbeat reports it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ai_employee.config import Config
from ai_employee.events import EventName
from ai_employee.orchestrator import Engine, ServiceState
from ai_employee.vault.layout import Vault
from tests.conftest import EngineProcess, run_cli, wait_for


class Flaky:
    """A service that crashes on its first two runs, then runs until cancelled."""

    name = "flaky"

    def __init__(self) -> None:
        self.runs = 0
        self.running = asyncio.Event()

    async def run(self) -> None:
        self.runs += 1
        if self.runs <= 2:
            raise RuntimeError(f"crash {self.runs}")
        self.running.set()
        await asyncio.Event().wait()

    def healthy(self) -> bool:
        return self.running.is_set()


async def test_a_crashed_service_is_restarted_with_backoff(vault: Path) -> None:
    engine = Engine(Vault(vault), Config())
    engine._stop_requested = asyncio.Event()
    service = Flaky()
    state = ServiceState(service)
    engine.services["flaky"] = state
    task = asyncio.create_task(engine._supervise(state))
    await asyncio.wait_for(service.running.wait(), timeout=10)  # backoff 1 s, then 2 s
    assert service.runs == 3 and state.restarts == 2 and state.last_error == "RuntimeError: crash 2"
    assert engine.health()["flaky"] == {
        "state": "running",
        "healthy": True,
        "restarts": 2,
        "last_error": "RuntimeError: crash 2",
        "problem": None,
    }
    errors = [e for e in engine.bus.history if e.name == EventName.SERVICE_ERROR]
    assert len(errors) == 2
    engine.stopping = True
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.integration
def test_restart_services_restarts_one_service_in_a_running_engine(
    vault: Path, engine: Callable[..., EngineProcess]
) -> None:
    proc = engine()

    def services() -> dict[str, dict[str, object]]:
        beat = json.loads((vault / ".ai_employee" / "heartbeat.json").read_text())
        return dict(beat["services"])

    wait_for(lambda: services().get("watcher", {}).get("healthy"))
    result = run_cli("--vault", str(vault), "restart", "--services", "watcher")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: services()["watcher"]["restarts"] == 1 and services()["watcher"]["healthy"])
    assert services()["pipeline"]["restarts"] == 0
    assert proc.proc.poll() is None
    (vault / "Inbox" / "after-restart.md").write_text("still watching\n")
    wait_for(lambda: any((vault / "Done").glob("*.action.yaml")))
