"""Notifications from the real engine (a subprocess): an email's approval request reaches the phone,
a tap on the fake Telegram approves it and the plan runs; and a notification cut short by a kill -9 is
never sent again, while the restart says that the engine had stopped unexpectedly."""

from __future__ import annotations

import shutil
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import SAMPLES, EngineProcess, files, run_cli, wait_for
from tests.fake_telegram import TOKEN, start_fake_telegram
from tests.http_sink import start_sink

pytestmark = [pytest.mark.timeout(120), pytest.mark.integration]
ANN = 111


def put(path: Path, text: str) -> None:
    """Into a watched folder at once, as a move would (the engine never sees it half-written)."""
    tmp = path.parent.parent / f".{path.name}.tmp"
    tmp.write_text(text)
    tmp.rename(path)


def write_config(tmp_path: Path, notify: dict[str, Any]) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"notify": notify}))
    return config


def test_an_email_is_approved_from_telegram_and_runs(vault: Path, tmp_path: Path) -> None:
    fake = start_fake_telegram()
    try:
        telegram = {"enabled": True, "token": TOKEN, "allowed_chats": [ANN], "api_base": fake.url, "poll_timeout_s": 1}
        config = write_config(tmp_path, {"telegram": telegram})
        engine = EngineProcess(vault, config=config, log=tmp_path / "engine.log")
        try:
            shutil.copy(SAMPLES / "client-quote-request.eml", vault / "Inbox" / "quote.eml")
            [sent] = wait_for(lambda: [m for m in fake.sent if "reply_markup" in m], 30)
            assert (
                sent["chat_id"] == ANN and "(MEDIUM)" in sent["text"] and "maria@brightpath-design.co" in sent["text"]
            )
            approve = sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
            fake.tap(ANN, sent["message_id"], approve)
            [done] = wait_for(lambda: files(vault / "Done", ".md"), 30)
            assert "DRY RUN — WOULD CALL email.send_email" in done.read_text()
            wait_for(lambda: fake.edits, 15)
            assert "✅ Approved by ann" in fake.edits[0]["text"] and "via telegram" in fake.edits[0]["text"]
        finally:
            engine.stop()
        history = run_cli("--vault", str(vault), "--config", str(config), "history")
        assert "ann (telegram 111)" in history.stdout
        assert TOKEN not in (tmp_path / "engine.log").read_text() + history.stdout
    finally:
        fake.stop()


def test_a_notification_cut_short_by_kill_9_is_not_sent_again(vault: Path, tmp_path: Path) -> None:
    sink = start_sink()
    try:
        config = write_config(tmp_path, {"channels": {"hook": sink.url()}, "min_interval_s": 0})
        sink.script = ["hang"]  # the first delivery is in flight when the engine dies
        engine = EngineProcess(vault, config=config, log=tmp_path / "engine.log")
        put(
            vault / "Approved" / "Broken.md",
            "# Broken\n\n## Steps\n\n```yaml\n- tool: nowhere.nothing\n  args: {}\n```\n",
        )
        wait_for(lambda: len(sink.received) == 1, 30)
        engine.proc.send_signal(signal.SIGKILL)
        engine.stop()  # reaped; its log closed
        engine = EngineProcess(vault, config=config, log=tmp_path / "engine.log")
        try:
            wait_for(lambda: len(sink.received) == 2, 30)
            put(
                vault / "Approved" / "Broken too.md",
                "# Broken too\n\n## Steps\n\n```yaml\n- tool: nowhere.x\n  args: {}\n```\n",
            )
            wait_for(lambda: len(sink.received) == 3, 30)
        finally:
            engine.stop()
        titles = [r.json()["title"] for r in sink.received]
        assert titles == ["Failed: Broken", "The engine stopped unexpectedly", "Failed: Broken too"]
        db = sqlite3.connect(vault / ".ai_employee" / "ledger.sqlite3")
        states = [tuple(row) for row in db.execute("SELECT kind, state FROM notifications ORDER BY id")]
        db.close()
        assert states == [("action.failed", "unknown"), ("engine.crashed", "sent"), ("action.failed", "sent")]
    finally:
        sink.stop()
