"""The orchestrator: owns the lock, the services, signals and the heartbeat.

`Engine.run()` is the plain entry point and always cleans up in `finally`. Services are supervised:
one that crashes is restarted with exponential backoff. SIGTERM/SIGINT stop intake, let the pipeline
finish the step in progress (bounded by `SHUTDOWN_GRACE_S`), then stop everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from ai_employee.clock import local_time
from ai_employee.composition import build_services, make_context, make_notifier
from ai_employee.config import Config
from ai_employee.dashboard import DashboardWriter
from ai_employee.events import Event, EventBus, EventName, ServicePayload
from ai_employee.ledger import Ledger
from ai_employee.lock import EngineLock
from ai_employee.pipeline.context import EngineContext
from ai_employee.pipeline.runner import Pipeline
from ai_employee.vault.fsops import FileOpError, replace_file
from ai_employee.vault.layout import Vault

log = structlog.get_logger(__name__)
HEARTBEAT_INTERVAL_S = 1.0  # its age stays under 2 s even while the loop is busy
HEARTBEAT_BYTES = 8192
SHUTDOWN_GRACE_S = 30.0
MAX_BACKOFF_S = 60.0


class Service(Protocol):
    name: str

    async def run(self) -> object: ...

    def healthy(self) -> bool: ...


@dataclass
class ServiceState:
    service: Service
    task: asyncio.Task[None] | None = None
    restarts: int = 0
    last_error: str = ""
    state: str = "starting"
    started_at: float = field(default_factory=time.time)


class Engine:
    def __init__(self, vault: Vault, config: Config) -> None:
        self.vault = vault
        self.config = config
        self.bus = EventBus()
        self.lock = EngineLock(vault.lock_path)
        self.stopping = False
        self.started_ts = time.time()
        self.ledger: Ledger | None = None
        self.services: dict[str, ServiceState] = {}
        self._stop_requested: asyncio.Event | None = None
        self.ctx: EngineContext | None = None

    @property
    def mode(self) -> str:
        return self.config.mode()

    def _open(self) -> EngineContext:
        self.vault.check()
        self.vault.ensure_layout()
        self.lock.acquire()
        self.ledger = Ledger(self.vault.ledger_path)
        ledger = self.ledger

        def persist(event: Event) -> None:
            ledger.record_event(event)

        self.bus.subscribe(persist)
        return make_context(self.vault, self.config, ledger, self.bus)

    def _close(self) -> None:
        if self.ledger is not None:
            self.bus.publish(EventName.ENGINE_STOPPED, ServicePayload("engine", self.mode))
            self.ledger.close()
            self.ledger = None
        self.lock.release()

    def request_stop(self) -> None:
        if not self.stopping:
            log.info("stopping: finishing the work in progress")
        self.stopping = True
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def serve(self, once: bool = False) -> int:
        """Run every service until a stop is requested; with `once` (`vault start --once`), run the same
        pipeline loop in burst mode, until every stage is idle, then stop. Returns the items handled
        (counted with `once`)."""
        ctx = self._open()
        self.ctx = ctx
        self._stop_requested = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)  # finish the step in progress, then exit
        if not once:
            loop.add_signal_handler(signal.SIGHUP, self.restart_requested)
        handled = 0
        try:
            services = build_services(ctx, lambda: self.stopping, lambda: self.mode, once)
            pipeline = services[0]
            assert isinstance(pipeline, Pipeline)
            for service in services:
                self.services[service.name] = ServiceState(service)
            self._announce_unclean_stop()
            self.bus.publish(EventName.ENGINE_STARTED, ServicePayload("engine", self.mode))
            if not once:  # a burst says what it did when it ends
                log.info("engine started", vault=str(self.vault.root), mode=self.mode, pid=os.getpid())
            beat = asyncio.create_task(self._heartbeat(), name="heartbeat")
            if once:
                self.services[pipeline.name].state = "running"
                try:
                    for source in services[1:]:  # new mail first, then the burst plans it too
                        handled += await source.once()  # type: ignore[attr-defined]
                    handled += await pipeline.run(until_idle=True)
                finally:
                    beat.cancel()
                    await asyncio.gather(beat, return_exceptions=True)
                DashboardWriter(self.vault, self.bus, lambda: self.mode).write()
                notifier = make_notifier(ctx)
                if notifier is not None:  # a burst (cron) tells what it found, once
                    await notifier.cycle()
                    notifier.close()
                return handled
            for state in self.services.values():
                state.task = asyncio.create_task(self._supervise(state), name=state.service.name)
            await self._stop_requested.wait()
            await self._shutdown(pipeline, beat)
            return handled
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            with contextlib.suppress(OSError):
                self.vault.heartbeat_path.unlink()
            self._close()
            if not once:
                log.info("engine stopped")

    def _announce_unclean_stop(self) -> None:
        assert self.ledger is not None
        last_heard = self.ledger.unclean_stop()
        if last_heard is not None:
            detail = f"it was last heard of at {local_time(last_heard)} and did not stop cleanly; it runs again now"
            log.warning("the engine's last run did not stop cleanly", last_heard=last_heard)
            self.bus.publish(EventName.ENGINE_CRASHED, ServicePayload("engine", detail))

    def restart_requested(self) -> None:
        """SIGHUP from `vault restart --services`: restart the services named in the request file."""
        try:
            names = json.loads(self.vault.restart_request_path.read_text("utf-8")).get("services", [])
            self.vault.restart_request_path.unlink()
        except (OSError, ValueError, AttributeError):
            names = []
        for name in names:
            state = self.services.get(name)
            if state is None or state.task is None or self.stopping:
                continue
            log.info("restarting service on request", service=name)
            state.task.cancel()
            state.restarts += 1
            state.task = asyncio.create_task(self._restart_after(state.task, state), name=name)

    async def _restart_after(self, old: asyncio.Task[None], state: ServiceState) -> None:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await old
        await self._supervise(state)

    async def _shutdown(self, pipeline: Pipeline, beat: asyncio.Task[None]) -> None:
        pipeline.wake()
        others = [s.task for name, s in self.services.items() if name != pipeline.name and s.task]
        for task in others:
            task.cancel()
        main = self.services[pipeline.name].task
        if main is not None:
            try:
                await asyncio.wait_for(asyncio.shield(main), timeout=SHUTDOWN_GRACE_S)
            except TimeoutError:
                log.warning("pipeline did not finish in time; cancelling", grace_s=SHUTDOWN_GRACE_S)
                main.cancel()
            except Exception:
                log.exception("pipeline failed while stopping")
        beat.cancel()
        await asyncio.gather(*others, beat, *([main] if main else []), return_exceptions=True)

    async def _supervise(self, state: ServiceState) -> None:
        service = state.service
        while not self.stopping:
            state.state = "running"
            state.started_at = time.time()
            self.bus.publish(EventName.SERVICE_STARTED, ServicePayload(service.name, restarts=state.restarts))
            try:
                await service.run()
            except asyncio.CancelledError:
                state.state = "stopped"
                raise
            except Exception as exc:
                state.restarts += 1
                state.last_error = f"{type(exc).__name__}: {exc}"
                state.state = "restarting"
                log.exception("service crashed", service=service.name, restarts=state.restarts)
                self.bus.publish(
                    EventName.SERVICE_ERROR, ServicePayload(service.name, state.last_error, state.restarts)
                )
                backoff = min(MAX_BACKOFF_S, 2.0 ** min(state.restarts - 1, 6))
                with contextlib.suppress(TimeoutError):
                    assert self._stop_requested is not None
                    await asyncio.wait_for(self._stop_requested.wait(), timeout=backoff)
                continue
            break
        state.state = "stopped"
        self.bus.publish(EventName.SERVICE_STOPPED, ServicePayload(service.name))

    def health(self) -> dict[str, Any]:
        return {
            name: {
                "state": s.state,
                "healthy": s.state == "running" and s.service.healthy(),
                "restarts": s.restarts,
                "last_error": s.last_error,
                "problem": getattr(s.service, "fault", None),
            }
            for name, s in self.services.items()
        }

    async def _heartbeat(self) -> None:
        """Every HEARTBEAT_INTERVAL_S: the file is rewritten when what it says changed, else only touched
        (`vault status` reads its age from the modification time): an idle engine costs one syscall."""
        written = b""
        while True:
            beat = {
                "pid": os.getpid(),
                "started": datetime.fromtimestamp(self.started_ts, UTC).isoformat(timespec="seconds"),
                "started_ts": self.started_ts,
                "mode": self.mode,
                "services": self.health(),
                # Problems the stages are waiting on (an unreadable file, a full disk): shown by `vault status`.
                "problems": list(self.ctx.reported.values())[-20:] if self.ctx else [],
                # MCP servers set aside (credentials refused, not starting): plans that need them wait.
                "paused_servers": {
                    name: {"kind": p.kind, "reason": p.reason, "since": p.wall_since}
                    for name, p in (self.ctx.pool.paused.items() if self.ctx else ())
                },
                # The day's token budgets, for `vault status` (which reads no config).
                "budget": {
                    "reactive": self.config.budget.reactive_daily_tokens,
                    "proactive": self.config.budget.proactive_daily_tokens,
                    "timezone": self.config.budget.timezone,
                },
            }
            # Padded, so that on a full disk it can still be rewritten in place (see _write_heartbeat).
            data = json.dumps(beat).encode().ljust(HEARTBEAT_BYTES)
            if data == written:
                try:
                    os.utime(self.vault.heartbeat_path)
                except OSError:
                    written = b""  # gone, or not writable: write it whole
            if data != written:
                self._write_heartbeat(data)
                written = data
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)

    def _write_heartbeat(self, data: bytes) -> None:
        """Replace the heartbeat atomically; on a full disk, overwrite it in place, within the blocks
        it already has (padded with spaces, still valid JSON), so `vault status` can show the problem."""
        path = self.vault.heartbeat_path
        try:
            replace_file(path, data, self.vault.tmp_dir)
            return
        except FileOpError as exc:
            error = exc
        try:
            size = path.stat().st_size
            if len(data) <= size:
                with open(path, "r+b") as fh:
                    fh.write(data.ljust(size))
                return
        except OSError:
            pass
        log.warning("heartbeat not written", error=str(error))

    def run(self) -> None:
        """Serve in the foreground until SIGTERM/SIGINT."""
        asyncio.run(self.serve())

    def run_once(self) -> int:
        return asyncio.run(self.serve(once=True))
