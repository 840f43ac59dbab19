"""Monitors with scripted values and an injected clock: values recorded, an alert raised once as an
action and an event, no storms, the monitor's note; real checks (a command, a note's property, a URL
on the allow-list from a local HTTP server); `vault monitors`."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ai_employee.cli import cli
from ai_employee.config import Config
from ai_employee.ledger import Ledger
from ai_employee.proactive.checks import CheckFailed, read_value
from ai_employee.proactive.monitors import MonitorConfig, Monitors, raise_alert
from ai_employee.vault.layout import Vault
from tests.conftest import files
from tests.http_sink import answer_json, serve


def monitor(**fields: Any) -> MonitorConfig:
    return MonitorConfig.model_validate({"command": "true", "interval_s": 60, "alert": {"on_change": True}, **fields})


class Rig:
    def __init__(self, root: Path, watch: dict[str, MonitorConfig], values: list[str]) -> None:
        self.used: float | None = None  # the day's proactive budget used, as the cadence sees it
        self.vault = Vault(root)
        self.ledger = Ledger(self.vault.ledger_path)
        self.now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
        self.values = list(values)
        vault, ledger = self.vault, self.ledger
        self.service = Monitors(
            vault,
            watch,
            ledger,
            functools.partial(raise_alert, vault, ledger),
            lambda: self.now,
            lambda m, root: self.values.pop(0),
            lambda: self.used,
        )

    def minutes(self, n: int) -> None:
        for _ in range(n):
            self.now += timedelta(minutes=1)
            self.service.cycle()


@pytest.fixture
def rig(vault: Path) -> Iterator[Any]:
    made: list[Rig] = []

    def make(watch: dict[str, MonitorConfig], values: list[str]) -> Rig:
        made.append(Rig(vault, watch, values))
        return made[-1]

    yield make
    for one in made:
        one.ledger.close()


def test_a_signal_change_raises_one_action_and_one_event(rig: Any) -> None:
    r = rig(
        {"btc": monitor(alert={"on_change": True}, criticality="high", title="BTC signal changed")},
        ["NEUTRAL", "NEUTRAL", "LONG", "LONG", "SHORT"],
    )
    r.minutes(5)
    [action] = [yaml.safe_load(p.read_text()) for p in files(r.vault.folder("Needs_Action"), ".action.yaml")]
    assert action["type"] == "monitor" and action["title"] == "BTC signal changed"
    assert action["source"] == {"monitor": "btc", "value": "LONG", "reason": "changed from NEUTRAL to LONG"}
    events = [json.loads(row["payload"]) for row in r.ledger.recent_events(50, None, ("monitor.alert",))]
    assert len(events) == 1 and events[0]["criticality"] == "high"  # SHORT came within the cooldown (1 h)
    assert [row["value"] for row in r.ledger.monitor_values("btc")] == ["NEUTRAL", "NEUTRAL", "LONG", "LONG", "SHORT"]
    note = (r.vault.root / "Monitors" / "btc.md").read_text()
    assert "| SHORT |" in note and "changed from NEUTRAL to LONG" in note


def test_checks_run_on_their_interval(rig: Any) -> None:
    r = rig({"price": monitor(interval_s=300, alert={"delta": 10})}, ["100"] * 10)
    r.minutes(16)
    assert len(r.ledger.monitor_values("price")) == 4  # 09:01, 09:06, 09:11, 09:16


def test_a_number_moving_by_a_percent_alerts_and_is_told_as_a_notification(rig: Any) -> None:
    from ai_employee.notify.messages import kind_of, render

    r = rig({"sales": monitor(alert={"delta_percent": 10})}, ["200", "205", "230"])
    r.minutes(3)
    [event] = [json.loads(row["payload"]) for row in r.ledger.recent_events(50, None, ("monitor.alert",))]
    kind = kind_of("monitor.alert", event)
    message = render(kind or "", "medium", event, r.vault)
    assert message is not None and "moved by +15.0% (from 200 to 230)" in message.body


def test_real_checks_a_command_and_a_notes_property(vault: Path) -> None:
    assert read_value(monitor(command=[sys.executable, "-c", "print(' 42 ')"]), vault) == "42"
    with pytest.raises(CheckFailed, match="exited 3"):
        read_value(monitor(command=[sys.executable, "-c", "import sys; sys.exit(3)"]), vault)
    (vault / "Notes" / "pipeline.md").write_text("---\nstage: proposal\n---\n# Deal\n")
    by_note = {"note": "Notes/pipeline.md", "property": "stage", "alert": {"on_change": True}}
    assert read_value(MonitorConfig.model_validate({**by_note, "command": None}), vault) == "proposal"
    outside = {**by_note, "note": "../../etc/passwd", "command": None}
    with pytest.raises(CheckFailed, match="outside the vault"):
        read_value(MonitorConfig.model_validate(outside), vault)


@pytest.fixture
def api() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer_json(self, 200 if self.path == "/price" else 404, {"data": {"price": 101.5}})

        def log_message(self, *_args: Any) -> None:
            pass

    server = serve(Handler)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_url_on_the_allow_list_is_read(api: str, vault: Path) -> None:
    config = Config.model_validate(
        {
            "monitors": {
                "allowed_urls": [f"{api}/"],
                "watch": {"price": {"url": f"{api}/price", "json_path": "data.price", "alert": {"above": 100}}},
            }
        }
    )
    assert read_value(config.monitors.watch["price"], vault) == "101.5"
    with pytest.raises(CheckFailed, match="HTTP 404"):
        read_value(config.monitors.watch["price"].model_copy(update={"url": f"{api}/nothing"}), vault)
    with pytest.raises(ValueError, match=r"not in monitors\.allowed_urls"):
        Config.model_validate({"monitors": {"watch": {"x": {"url": "https://evil.example/", "alert": {"above": 1}}}}})


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.example.com/price", True),
        ("https://api.example.com", True),
        ("https://api.example.com/v1/price?x=1", True),
        ("https://api.example.com.evil.net/price", False),  # another host that starts the same
        ("https://api.example.com@evil.net/price", False),  # user info: the host is evil.net
        ("https://api.example.com:8443/price", False),  # another port
        ("http://api.example.com/price", False),  # another scheme
        ("https://x.example/v1/a", True),
        ("https://x.example/v10/a", False),  # a path segment that only starts the same
        ("https://x.example/v1/../admin", False),  # a dot segment leaves the allowed path on the server
        ("https://x.example/v1/%2e%2e/admin", False),  # ...also percent-encoded
        ("https://x.example/v1/a%2f..%2fb", False),  # an encoded slash
        ("https://x.example/v1/./a", False),
    ],
)
def test_the_allow_list_is_by_origin_and_path_segments(url: str, allowed: bool) -> None:
    from ai_employee.proactive.checks import url_allowed

    assert any(url_allowed(url, p) for p in ("https://api.example.com", "https://x.example/v1/")) is allowed


def test_a_read_only_mcp_tool_is_called_and_a_tool_that_changes_things_is_refused(vault: Path) -> None:
    """Through the built-in servers over stdio: `calendar.list_events` (declared read-only) gives the
    next event's title; `vault.create_note` would write, so the monitor refuses to call it."""
    from ai_employee.executor.mcp_pool import McpPool

    config = Config.model_validate(
        {
            "monitors": {
                "watch": {
                    "next_meeting": {
                        "tool": "calendar.list_events",
                        "args": {"start": "2026-12-01T00:00", "end": "2026-12-20T00:00"},
                        "json_path": "events.0.title",
                        "alert": {"on_change": True},
                    },
                    "writer": {"tool": "vault.create_note", "args": {"path": "x.md"}, "alert": {"on_change": True}},
                }
            }
        }
    )
    the_vault = Vault(vault)

    async def scenario() -> list[Any]:
        pool = McpPool.for_engine(config, the_vault)
        try:
            made = await pool.call("calendar", "create_event", {"title": "Board call", "start": "2026-12-10T10:00"}, 20)
            assert made.ok, made.text
            ledger = Ledger(the_vault.ledger_path)
            service = Monitors(the_vault, config.monitors.watch, ledger, lambda *a: "", pool=pool)
            await service.once()
            found = [dict(row) for name in ("next_meeting", "writer") for row in ledger.monitor_values(name, 1)]
            ledger.close()
            return found
        finally:
            await pool.aclose()

    meeting, writer = asyncio.run(scenario())
    assert meeting["value"] == "Board call"
    assert writer["value"] is None and "not declared read-only" in writer["error"]
    assert not list((vault).glob("x.md"))
    with pytest.raises(ValueError, match="servers not in mcp_servers: nowhere"):
        Config.model_validate({"monitors": {"watch": {"x": {"tool": "nowhere.read", "alert": {"on_change": True}}}}})
    with pytest.raises(ValueError, match="exactly one of"):
        MonitorConfig.model_validate({"tool": "calendar.list_events", "command": "true", "alert": {"above": 1}})


def test_vault_monitors_shows_value_trend_chart_and_decisions(rig: Any, tmp_path: Path) -> None:
    r = rig({"temp": monitor(alert={"above": 25})}, ["20", "21", "23", "26", "27"])
    r.minutes(5)
    config = tmp_path / "config.yaml"
    config.write_text("monitors:\n  watch:\n    temp:\n      command: 'true'\n      alert: {above: 25}\n")
    base = ["--vault", str(r.vault.root), "--config", str(config)]
    r.ledger.db.execute("UPDATE monitor_values SET ts = ?", (datetime.now(UTC).isoformat(),))  # within 24 h
    out = CliRunner().invoke(cli, [*base, "monitors"])
    assert out.exit_code == 0, out.output
    assert "temp: 27 · 24 h up" in out.output and "1 alert(s): 0 approved, 0 denied" in out.output
    assert "Cadence: proactive budget 0% used: monitors are checked at their own intervals." in out.output
    one = CliRunner().invoke(cli, [*base, "monitors", "temp"])
    assert sum(1 for line in one.output.splitlines() if line.startswith("  ")) == 5  # its history


@pytest.mark.parametrize(("used", "checks"), [(None, 16), (0.3, 16), (0.6, 8), (0.9, 4), (1.0, 0)])
def test_checks_slow_down_as_the_proactive_budget_is_used_and_stop_when_it_is_spent(
    rig: Any, used: float | None, checks: int
) -> None:
    r = rig({"price": monitor(interval_s=60, alert={"delta": 10})}, ["100"] * 20)
    r.used = used
    r.minutes(16)
    assert len(r.ledger.monitor_values("price")) == checks


def test_cadence_words() -> None:
    from ai_employee.proactive.cadence import cadence_words, stretch

    assert [stretch(u) for u in (None, 0.49, 0.5, 0.79, 0.8, 0.99, 1.0)] == [1, 1, 2, 2, 4, 4, None]
    assert "4× less often" in cadence_words(0.85) and "paused until tomorrow" in cadence_words(1.2)


def test_a_failed_alert_write_is_finished_at_the_next_check_once(rig: Any) -> None:
    """The alert is claimed before its action is written: a write that fails (a full disk) is finished
    at the next check, the alert neither lost nor raised twice, and the service is healthy again."""
    r = rig({"btc": monitor(alert={"on_change": True})}, ["NEUTRAL", "LONG", "LONG", "LONG"])
    real = r.service.alert
    failing = [True]

    def alert(*args: Any) -> None:
        if failing[0]:
            raise OSError(28, "No space left on device")
        real(*args)

    r.service.alert = alert
    r.minutes(2)  # NEUTRAL, then LONG: the alert's write fails
    assert not r.service.healthy() and files(r.vault.folder("Needs_Action"), ".action.yaml") == []
    failing[0] = False
    r.minutes(2)
    [action] = [yaml.safe_load(p.read_text()) for p in files(r.vault.folder("Needs_Action"), ".action.yaml")]
    assert action["source"]["reason"] == "changed from NEUTRAL to LONG" and r.service.healthy()
    assert [a["action_id"] for a in r.ledger.monitor_alerts("btc")] == [action["id"]]
    assert len(r.ledger.recent_events(50, None, ("monitor.alert",))) == 1


def test_a_crash_after_the_alert_was_written_does_not_write_it_twice(rig: Any) -> None:
    r = rig({"btc": monitor(alert={"on_change": True})}, ["NEUTRAL", "LONG", "LONG"])
    r.minutes(2)
    [alert] = r.ledger.monitor_alerts("btc")
    # As if the engine died after writing the action, before the claim was cleared.
    claim = {"id": alert["action_id"], "value": "LONG", "reason": "changed from NEUTRAL to LONG", "at": alert["ts"]}
    r.ledger.set_value("monitor_pending:btc", json.dumps(claim))
    r.minutes(1)
    assert len(files(r.vault.folder("Needs_Action"), ".action.yaml")) == 1


@pytest.mark.parametrize("name", ["../../escape", "Up", "a/b", ""])
def test_monitor_names_cannot_reach_outside_the_monitors_folder(name: str) -> None:
    with pytest.raises(ValueError, match="monitor name"):
        Config.model_validate({"monitors": {"watch": {name: {"command": "true", "alert": {"on_change": True}}}}})


def test_a_command_monitor_gets_no_secrets_and_its_values_are_redacted(vault: Path, monkeypatch: Any) -> None:
    from ai_employee.logsetup import Redactor

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret-key-123456")
    show = [sys.executable, "-c", "import os; print(os.environ.get('ANTHROPIC_API_KEY', 'none'), os.environ['MINE'])"]
    command = monitor(command=show, env={"MINE": "token-abcdef123"})
    assert read_value(command, vault) == "none token-abcdef123"
    config = Config.model_validate({"monitors": {"watch": {"mine": command.model_dump(exclude_none=True)}}})
    v, ledger = Vault(vault), Ledger(Vault(vault).ledger_path)
    try:
        service = Monitors(v, config.monitors.watch, ledger, lambda *a: None, redact=Redactor(config.secrets()).scrub)
        service.check("mine")
        [row] = ledger.monitor_values("mine")
        assert (
            "token-abcdef123" not in str(row["value"])
            and "token-abcdef123" not in (v.root / "Monitors" / "mine.md").read_text()
        )
    finally:
        ledger.close()


def test_a_monitor_urls_token_is_a_secret() -> None:
    watch = {"p": {"url": "https://api.example.com/v1/price?apikey=k3y-0f-the-owner", "alert": {"above": 1}}}
    config = Config.model_validate({"monitors": {"allowed_urls": ["https://api.example.com/v1"], "watch": watch}})
    assert "k3y-0f-the-owner" in config.secrets() and "price" not in config.secrets()


@pytest.mark.parametrize(
    ("tool_settings", "interval", "problem"),
    [
        ({"dry_run": True}, 60, "keep dry"),
        ({"rate_limit": "10/hour"}, 60, "at least 360"),
        ({"rate_limit": "10/hour"}, 400, None),
    ],
)
def test_a_tool_monitor_keeps_to_the_tools_settings(
    tool_settings: dict[str, Any], interval: int, problem: str | None
) -> None:
    data = {
        "mcp_servers": {"calendar": {"command": "x", "tools": {"list_events": tool_settings}}},
        "monitors": {
            "watch": {"cal": {"tool": "calendar.list_events", "interval_s": interval, "alert": {"on_change": True}}}
        },
    }
    if problem is None:
        Config.model_validate(data)
    else:
        with pytest.raises(ValueError, match=problem):
            Config.model_validate(data)


def test_values_that_are_not_finite_are_text_not_numbers() -> None:
    from ai_employee.proactive.detect import number, sparkline

    assert number("nan") is None and number("inf") is None and number("-Infinity") is None and number("2.5") == 2.5
    assert sparkline([1.0, 2.0, 3.0]) == "▁▄█"


def test_the_monitors_note_is_rewritten_when_what_it_shows_changes_not_at_every_check(rig: Any) -> None:
    r = rig({"temp": monitor(alert={"above": 99})}, ["20"] * 30 + ["21"])
    note = r.vault.root / "Monitors" / "temp.md"
    r.minutes(1)
    first = note.stat().st_mtime_ns
    r.minutes(29)  # the same value, within the hour
    assert note.stat().st_mtime_ns == first
    r.minutes(1)
    assert "| 21 |" in note.read_text()


def test_checks_older_than_the_keep_horizon_are_let_go(rig: Any) -> None:
    from ai_employee.ledger.schedules import MONITOR_KEEP_DAYS

    r = rig({"temp": monitor(interval_s=3600, alert={"above": 99})}, ["20"] * 3)
    r.minutes(60)
    r.now += timedelta(days=MONITOR_KEEP_DAYS)
    r.minutes(60)
    r.minutes(60)
    assert len(r.ledger.monitor_values("temp", limit=10_000)) == 2
