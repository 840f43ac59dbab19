"""Live mode end to end: an approved email plan sends exactly one message to a real SMTP server."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, EngineProcess, files, live_config, run_cli, wait_for
from tests.smtp_server import Collector

pytestmark = [pytest.mark.timeout(120), pytest.mark.integration]


def test_approved_reply_is_sent_once_in_live_mode(
    vault: Path, tmp_path: Path, smtp: tuple[Collector, int], engine: Callable[..., EngineProcess]
) -> None:
    collector, port = smtp
    config = live_config(tmp_path, port)
    proc = engine("--live", config=config)
    shutil.copy(SAMPLES / "client-quote-request.eml", vault / "Inbox" / "quote.eml")
    plan = wait_for(lambda: files(vault / "Plans", ".md"))[0]
    assert collector.envelopes == []  # nothing is sent before approval
    os.rename(plan, vault / "Approved" / plan.name)
    done = wait_for(lambda: files(vault / "Done", ".md"))[0]
    wait_for(lambda: len(collector.envelopes) == 1)
    proc.stop()
    [message] = collector.messages()
    assert message["To"] == "maria@brightpath-design.co"
    assert message["Subject"] == "Re: Quote request: website redesign for BrightPath (deadline Dec 12)"
    assert message["In-Reply-To"] == "<CAF3x9Q2k1@mail.brightpath-design.co>"
    assert "Sam Owner" in message.get_content()
    text = done.read_text()
    assert "DRY RUN" not in text and "`email.send_email` · OK" in text
    assert "dry_run: false" in text
    # A second engine run and a copy of the executed plan put back in Approved/ send nothing more.
    shutil.copy(done, vault / "Approved" / "copy of the plan.md")
    again = run_cli("--vault", str(vault), "--config", str(config), "start", "--once", "--live")
    assert again.returncode == 0, again.stderr
    assert len(collector.envelopes) == 1
    assert files(vault / "Approved") == []
    assert [p.name for p in files(vault / "Quarantine")] == ["copy of the plan.md", "copy of the plan.md.why.md"]
    assert "already run" in (vault / "Quarantine" / "copy of the plan.md.why.md").read_text()


def test_tool_failure_sends_the_plan_back_with_the_error(
    vault: Path, tmp_path: Path, engine: Callable[..., EngineProcess]
) -> None:
    # Nothing listens on this port: the tool reports the failure; the plan returns to Plans/ as failed.
    from tests.smtp_server import free_port

    config = live_config(tmp_path, free_port())
    engine("--live", config=config)
    shutil.copy(SAMPLES / "client-quote-request.eml", vault / "Inbox" / "quote.eml")
    plan = wait_for(lambda: files(vault / "Plans", ".md"))[0]
    os.rename(plan, vault / "Approved" / plan.name)
    wait_for(
        lambda: (
            "status: failed" in (vault / "Plans" / plan.name).read_text()
            if (vault / "Plans" / plan.name).exists()
            else False
        )
    )
    text = (vault / "Plans" / plan.name).read_text()
    assert "[!failure] AI Employee: failed" in text and "FAILED" in text
    assert files(vault / "Done") == []
    assert len(files(vault / "Needs_Action", ".action.yaml")) == 1
