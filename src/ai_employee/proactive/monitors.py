"""Monitors: something checked on an interval (a command's output, a read-only MCP tool's answer, a
note's property, a URL on the allow-list), its value recorded with a timestamp in the ledger, and an
action raised when it changes in a way the monitor names (`detect.py`), never more than once per
cooldown. The action goes through the pipeline like any other; an event (`monitor.alert`) tells the
person.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog
from pydantic import Field, field_validator, model_validator

from ai_employee.config_sections import Section
from ai_employee.proactive.checks import CHECK_TIMEOUT_S, CheckFailed, read_tool, read_value, url_allowed
from ai_employee.proactive.detect import AlertRule, State, evaluate
from ai_employee.proactive.onloop import EngineLoop

if TYPE_CHECKING:
    from ai_employee.executor.mcp_pool import McpPool
    from ai_employee.ledger import Ledger
    from ai_employee.vault.layout import Vault

log = structlog.get_logger(__name__)


class MonitorConfig(Section):
    command: list[str] | str | None = Field(None, description="A command whose output (stripped) is the value.")
    tool: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$",
        description="An MCP tool (`server.tool`) its server declares read-only; its answer is the value.",
    )
    args: dict[str, Any] = Field(default_factory=dict, description="The tool's arguments.")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment a command gets besides PATH, HOME, LANG and TZ (the engine's own is not passed on).",
    )
    note: str | None = Field(None, description="A note in the vault (path) whose property is the value.")
    property: str | None = Field(None, description="The note's property (frontmatter key).")
    url: str | None = Field(
        None, description="A URL whose body (or `json_path` in it) is the value; on the allow-list."
    )
    json_path: str | None = Field(
        None, description="Dotted path into a JSON answer (a URL's or a tool's), e.g. `data.price`."
    )
    interval_s: float = Field(300.0, ge=5, description="How often it is checked.")
    alert: AlertRule
    cooldown_s: float = Field(3600.0, ge=0, description="At most one alert this often.")
    criticality: Literal["low", "medium", "high"] = "medium"
    title: str = Field("", description="The action's title (default: `<name> changed`).")
    instructions: str = Field("", description="What the planner is asked to do when it alerts.")
    enabled: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> MonitorConfig:
        given = [x for x in (self.command, self.tool, self.note, self.url) if x]
        if len(given) != 1:
            raise ValueError("a monitor reads exactly one of: command, tool, note (with property), url")
        if self.args and not self.tool:
            raise ValueError("`args` are a tool's arguments: this monitor calls no `tool`")
        if self.env and not self.command:
            raise ValueError("`env` is a command's environment: this monitor runs no `command`")
        if self.note and not self.property:
            raise ValueError("a `note` monitor needs the `property` to read")
        return self

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value


class MonitorsConfig(Section):
    allowed_urls: list[str] = Field(default_factory=list, description="URL prefixes monitors may read.")
    watch: dict[str, MonitorConfig] = Field(default_factory=dict, description="The monitors, by name.")

    def secrets(self) -> list[str]:
        """What may authenticate a monitor: its command's `env` values, and what its URL carries (query
        values, a long token in the path), redacted everywhere like a remote server's. Short path words
        (`/v1/prices`) stay readable."""
        from ai_employee.config_sections import url_tokens

        found = [value for m in self.watch.values() for value in m.env.values() if len(value) >= 6]
        return found + [
            token
            for m in self.watch.values()
            if m.url
            for token in url_tokens(m.url)
            if f"={token}" in m.url or len(token) >= 16
        ]

    def tool_servers(self) -> set[str]:
        return {m.tool.partition(".")[0] for m in self.watch.values() if m.tool}

    @field_validator("watch")
    @classmethod
    def _names(cls, value: dict[str, MonitorConfig]) -> dict[str, MonitorConfig]:
        from ai_employee.proactive.schedules import check_names

        check_names(value, "monitor")
        return value

    @model_validator(mode="after")
    def _urls_allowed(self) -> MonitorsConfig:
        for name, monitor in self.watch.items():
            if monitor.url and not any(url_allowed(monitor.url, prefix) for prefix in self.allowed_urls):
                raise ValueError(f"monitor {name!r} reads {monitor.url}, which is not in monitors.allowed_urls")
        return self


def load_state(text: str) -> State:
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        data = {}
    return State(**{k: v for k, v in data.items() if k in State.__dataclass_fields__})


class Monitors:
    """The service: checks each enabled monitor when due (on a worker thread), records the value, and
    raises an alert (`alert`: the action and the event) when detection says so."""

    name = "monitors"

    def __init__(
        self,
        vault: Vault,
        monitors: dict[str, MonitorConfig],
        ledger: Ledger,
        alert: Callable[[str, MonitorConfig, str, str, datetime, str], object],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        reader: Callable[[MonitorConfig, Path], str] = read_value,
        budget: Callable[[], float | None] = lambda: None,
        pool: McpPool | None = None,
        engine: EngineLoop | None = None,
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.vault = vault
        self.monitors = {name: m for name, m in monitors.items() if m.enabled}
        self.ledger = ledger
        self.alert = alert
        self.clock = clock
        self.reader = reader
        self.budget = budget  # the fraction of today's proactive budget used (None: no limit)
        self.pool = pool  # the engine's MCP servers, for tool monitors (called on the engine's loop)
        self.engine = engine or EngineLoop()
        self.redact = redact  # secrets out of values and errors before they reach the ledger and note
        self.fault: str | None = None
        self._shown: dict[str, tuple[object, ...]] = {}
        self._noted: dict[str, datetime] = {}

    def healthy(self) -> bool:
        return self.fault is None

    def check(self, name: str) -> str | None:
        """Check one monitor now: its alert reason, if it raised one.

        An alert is claimed before its action is written (its id and the monitor's new state saved
        together as `monitor_pending:<name>`), then written, then recorded: a write that fails or a crash
        in between is finished at the next check, and the alert is neither lost nor raised twice."""
        monitor = self.monitors[name]
        self.finish_pending(name)
        now = self.clock()
        try:
            value = self._read_tool(monitor) if monitor.tool else self.reader(monitor, self.vault.root)
        except CheckFailed as exc:
            problem = self.redact(str(exc))
            self.ledger.record_monitor_value(name, now.isoformat(), None, problem)
            log.warning("monitor check failed", monitor=name, problem=problem)
            self._note(name, now)
            return None
        value = self.redact(value)
        self.ledger.record_monitor_value(name, now.isoformat(), value, "")
        state = load_state(self.ledger.value(f"monitor_state:{name}"))
        reason, state = evaluate(monitor.alert, value, state, now, monitor.cooldown_s)
        saved = {f"monitor_state:{name}": json.dumps(asdict(state))}
        if reason is not None:
            from ai_employee.vault.actions import new_id

            claim = {"id": new_id(), "value": value, "reason": reason, "at": now.isoformat()}
            saved[f"monitor_pending:{name}"] = json.dumps(claim)
        self.ledger.set_values(saved)
        if reason is not None:
            self.finish_pending(name)
        self._note(name, now)
        return reason

    def finish_pending(self, name: str) -> None:
        """The claimed alert of a monitor (if any): its action written unless it was, then recorded."""
        text = self.ledger.value(f"monitor_pending:{name}")
        if not text:
            return
        claim = json.loads(text)
        at = datetime.fromisoformat(claim["at"])
        self.alert(name, self.monitors[name], claim["value"], claim["reason"], at, claim["id"])
        self.ledger.record_monitor_alert(name, claim["at"], claim["value"], claim["reason"], claim["id"])
        self.ledger.delete_value(f"monitor_pending:{name}")

    def _note(self, name: str, now: datetime) -> None:
        """The monitor's note, rewritten when what it shows changed (a value or an alert), or hourly."""
        shown = self.ledger.monitor_shown(name)
        if (
            shown != self._shown.get(name)
            or (now - self._noted.get(name, datetime.min.replace(tzinfo=UTC))) > NOTE_EVERY
        ):
            write_note(self.vault, self.ledger, name)
            self._shown[name], self._noted[name] = shown, now

    def _read_tool(self, monitor: MonitorConfig) -> str:
        """A tool monitor's value, from this worker thread: the call runs on the engine's loop, where the
        pool's sessions live (and its pauses are shared with the executor)."""
        if self.pool is None:
            raise CheckFailed("no MCP servers to call")
        try:
            return self.engine.run(read_tool(self.pool, monitor), CHECK_TIMEOUT_S * 3)
        except TimeoutError:
            raise CheckFailed(f"{monitor.tool} did not answer in time") from None
        except RuntimeError as exc:
            raise CheckFailed(str(exc)) from None

    def due(self) -> tuple[list[str], float]:
        """The monitors due now, and seconds until the next one is. Intervals stretch as the day's
        proactive budget is used, and nothing is due while it is spent (`cadence.py`)."""
        from ai_employee.proactive.cadence import PAUSED_RECHECK_S, stretch

        factor = stretch(self.budget())
        if factor is None:
            return [], PAUSED_RECHECK_S
        now = self.clock()
        due, waits = [], [60.0]
        for name, monitor in self.monitors.items():
            interval = monitor.interval_s * factor
            last = self.ledger.last_monitor_check(name)
            left = interval - ((now - datetime.fromisoformat(last)).total_seconds() if last else interval)
            if left <= 0:
                due.append(name)
            else:
                waits.append(left)
        return due, max(1.0, min(waits))

    def cycle(self) -> float:
        """Check the monitors due; a monitor whose check failed unexpectedly (its alert could not be
        written: a full disk) makes the service unhealthy until a cycle with no such failure."""
        due, wait_s = self.due()
        faults = []
        for name in due:
            try:
                self.check(name)
            except Exception as exc:  # one monitor's trouble is not the others'
                log.exception("monitor failed", monitor=name)
                faults.append(f"{name}: {type(exc).__name__}")
        if due:
            self.fault = "; ".join(faults) or None
        return min(wait_s, min((m.interval_s for m in self.monitors.values()), default=60.0)) if due else wait_s

    async def once(self) -> int:
        """One look, for `vault start --once` (cron): the monitors due now are checked; how many."""
        self.engine.attach()
        due, _ = await asyncio.to_thread(self.due)
        await asyncio.to_thread(self.cycle)
        return len(due)

    async def run(self) -> None:
        self.engine.attach()
        while True:
            wait_s = await asyncio.to_thread(self.cycle)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.sleep(wait_s)


def raise_alert(
    vault: Vault,
    ledger: Ledger,
    name: str,
    monitor: MonitorConfig,
    value: str,
    reason: str,
    at: datetime,
    action_id: str,
) -> None:
    """The alert's action in `Needs_Action/` (type `monitor`, id `action_id` from its claim), and its
    event (`monitor.alert`, at the check's time `at`, straight into the ledger: the notifier reads it
    there); nothing when that action was written already (a claim finished after a crash)."""
    from ai_employee.clock import local_now, now_stamp
    from ai_employee.events import Event, EventName, MonitorPayload
    from ai_employee.vault.actions import Action, file_name
    from ai_employee.vault.fsops import create_file
    from ai_employee.vault.layout import NEEDS_ACTION
    from ai_employee.vault.notes import find_by_id

    folder = vault.folder(NEEDS_ACTION)
    if find_by_id([folder], ".action.yaml", action_id) or ledger.plan_for_action(action_id):
        return
    title = monitor.title or f"{name.replace('_', ' ')} changed"
    task = monitor.instructions
    action = Action(
        id=action_id,
        type="monitor",
        title=title,
        created=now_stamp(),
        source={"monitor": name, "value": value, "reason": reason},
        content={"kind": "text", "preview": f"The monitor {name} {reason}.", **({"task": task} if task else {})},
    )
    path = create_file(folder, file_name(local_now(), title), action.to_yaml().encode(), vault.tmp_dir)
    payload = MonitorPayload(name, value, reason, monitor.criticality, title, action.id, vault.relative(path))
    ledger.record_event(Event(EventName.MONITOR_ALERT, payload, at))
    log.info("monitor alert", monitor=name, reason=reason, action_id=action.id)


MONITORS_FOLDER = "Monitors"
NOTE_ROWS = 20
NOTE_EVERY = timedelta(hours=1)  # the note is rewritten when what it shows changes, else this often


def write_note(vault: Vault, ledger: Ledger, name: str) -> None:
    """`Monitors/<name>.md`: the monitor's recent values as a table (the engine's note: rewritten)."""
    from ai_employee.clock import local_time
    from ai_employee.dashboard import plain
    from ai_employee.vault.fsops import replace_file

    rows = ledger.monitor_values(name, limit=NOTE_ROWS)
    alerts = ledger.monitor_alerts(name, 5)
    lines = [
        f"# Monitor: {name}",
        "",
        "*Written by the AI Employee engine at each check.*",
        "",
        "| When | Value |",
        "|---|---|",
    ]
    for row in reversed(rows):
        said = plain(str(row["value"]), 80) if row["value"] is not None else "no value: " + plain(str(row["error"]), 80)
        lines.append(f"| {local_time(str(row['ts']))} | {said} |")
    if alerts:
        lines += ["", "## Alerts", ""]
        lines += [f"- {local_time(str(a['ts']))}: {plain(str(a['reason']), 160)}" for a in alerts]
    folder = vault.root / MONITORS_FOLDER
    folder.mkdir(exist_ok=True)
    replace_file(folder / f"{name}.md", ("\n".join(lines) + "\n").encode("utf-8"), vault.tmp_dir)
