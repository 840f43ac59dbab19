"""`Dashboard.md`: activity from the ledger (so it survives a restart), in plain words with titles and
links that stay right, and times rather than ages frozen at write time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ai_employee.dashboard import recent_activity, render
from ai_employee.events import DecisionPayload, Event, EventName, ExecutionPayload, PlanPayload, StepPayload
from ai_employee.ledger import Ledger
from ai_employee.status import collect
from ai_employee.vault.layout import Vault, init_vault

TITLE = "Reply to Maria Lopez: Quote request"


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    init_vault(tmp_path / "vault")
    return Vault(tmp_path / "vault")


@pytest.fixture
def ledger(vault: Vault) -> Iterator[Ledger]:
    opened = Ledger(vault.ledger_path)
    yield opened
    opened.close()


def a_day(ledger: Ledger) -> None:
    note = "2026-12-02 Reply to Maria Lopez Quote request.md"
    events = [
        (EventName.PLAN_CREATED, PlanPayload("P1", "A1", "medium", f"Plans/{note}", TITLE)),
        (EventName.APPROVAL_REQUIRED, PlanPayload("P1", "A1", "medium", f"Plans/{note}", TITLE)),
        (EventName.ACTION_APPROVED, DecisionPayload("P1", "approve", "cli", "ann", "", TITLE)),
        (EventName.ACTION_EXECUTED, StepPayload("P1", 1, "email.send_email", "dry_run", True)),
        (EventName.PLAN_EXECUTION_COMPLETED, ExecutionPayload("P1", "done", 1, True, f"Done/{note}", "", TITLE)),
    ]
    for name, payload in events:
        ledger.record_event(Event(name, payload))


def test_activity_is_in_words_with_titles_links_and_times(vault: Vault, ledger: Ledger) -> None:
    a_day(ledger)
    text = render(collect(vault, ledger), recent_activity(ledger), "dry-run")
    activity = text.split("## Today", 1)[1].split("## Token budget", 1)[0]
    assert "plan.execution_completed" not in text and "email.send_email" not in activity
    link = "[[2026-12-02 Reply to Maria Lopez Quote request|Reply to Maria Lopez: Quote request]]"
    assert f"Done (dry run): {link}" in activity  # by name: right wherever the note is now
    assert f"Approved {link}" not in activity and f'Approved "{TITLE}" by ann' in activity
    assert f"Waiting for you: {link} (MEDIUM)" in activity
    lines = [line for line in activity.splitlines() if line.startswith("- ")]
    assert lines and all(re.match(r"- \d{4}-\d\d-\d\d \d\d:\d\d · ", line) for line in lines)
    assert lines[0].endswith(link), "newest first"


def test_activity_survives_a_restart(vault: Vault, ledger: Ledger) -> None:
    a_day(ledger)
    before = recent_activity(ledger)
    ledger.close()
    reopened = Ledger(vault.ledger_path)
    try:
        assert recent_activity(reopened) == before and before
    finally:
        reopened.close()


def test_waiting_plans_show_since_when_not_an_age(vault: Vault, ledger: Ledger) -> None:
    (vault.folder("Plans") / "p.md").write_text(
        "---\nid: P9\nstatus: pending_approval\ncriticality: high\ncreated: 2026-12-01T09:30:00+00:00\n---\n"
        "# Wire | the deposit\n",
        "utf-8",
    )
    text = render(collect(vault, ledger), [], "dry-run")
    row = next(line for line in text.splitlines() if line.startswith("| [[p"))
    assert row.startswith("| [[p\\|Wire / the deposit]] | HIGH | 2026-12-0")  # the bar escaped inside a table
    assert " min |" not in row and " h |" not in row


def test_the_dashboards_view_rereads_only_what_changed(
    vault: Vault, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import time as clock

    from ai_employee import status

    view = status.VaultView()
    note = vault.folder("Plans") / "p.md"
    note.write_text("---\nid: P1\nstatus: pending_approval\ncriticality: medium\n---\n# One\n", "utf-8")
    old = clock.time() - 10
    os.utime(vault.folder("Plans"), (old, old))
    assert [p.title for p in view.plans(vault, ledger)] == ["One"]
    reads: list[object] = []
    monkeypatch.setattr(status, "_read_plan_props", lambda path: reads.append(path) or {})
    assert [p.title for p in view.plans(vault, ledger)] == ["One"] and reads == [], "unchanged: nothing read"
    (vault.folder("Plans") / "q.md").write_text("---\nid: P2\n---\n# Two\n", "utf-8")
    monkeypatch.undo()
    assert sorted(p.title for p in view.plans(vault, ledger)) == ["One", "Two"], "a new note is seen at once"
    assert view.count(vault, "Plans") == 2
    (vault.folder("Plans") / "r.md").write_text("# Three\n", "utf-8")
    assert view.count(vault, "Plans") == 3, "a small folder is counted again when it changed"


def test_a_scripted_day_shows_what_matters_with_the_urgent_first(vault: Vault, ledger: Ledger) -> None:
    from ai_employee.dashboard import gather
    from ai_employee.events import BudgetPayload, ServicePayload, StageErrorPayload

    a_day(ledger)
    (vault.folder("Plans") / "wire.md").write_text(
        "---\nid: P7\nstatus: pending_approval\ncriticality: high\ncreated: 2026-12-01T09:30:00+00:00\n---\n"
        "# Wire the deposit\n",
        "utf-8",
    )
    (vault.folder("Plans") / "failed.md").write_text(
        "---\nid: P8\nstatus: failed\ncriticality: medium\nerror: '535 5.7.8 bad credentials'\n---\n# Send the offer\n",
        "utf-8",
    )
    (vault.folder("Briefings") / "2026-11-30 Monday Briefing.md").write_text("# Briefing\n", "utf-8")
    ledger.record_event(Event(EventName.STAGE_ERROR, StageErrorPayload("ingest", "Inbox/x.pdf", "not a PDF")))
    ledger.record_event(Event(EventName.ENGINE_CRASHED, ServicePayload("engine", "last heard of at 09:00")))
    ledger.record_event(Event(EventName.BUDGET_WARNING, BudgetPayload("reactive", 80, 800, 1000, "2026-12-03")))
    text = render(collect(vault, ledger), gather(vault, ledger), "LIVE")
    head, rest = text.split("## Waiting for your approval", 1)
    assert "(LIVE when it ran)" in head  # no engine runs in this test
    assert "> [!warning] Needs you now" in head
    assert "1 HIGH plan(s) wait for your approval: [[wire|Wire the deposit]]" in head
    assert "1 plan(s) failed or were interrupted: [[failed|Send the offer]]" in head
    assert "The engine had stopped unexpectedly today" in head
    row = next(line for line in rest.splitlines() if line.startswith("| [[wire"))
    assert re.match(r"\| \[\[wire\\\|Wire the deposit\]\] \| HIGH \| 2026-12-01 \d\d:\d\d \([\d.]+ (h|d)\) \|$", row), (
        row
    )
    assert "- [[failed|Send the offer]] — 535 5.7.8 bad credentials" in rest
    today = rest.split("## Today", 1)[1].split("## Token budget", 1)[0]
    assert "The engine had stopped unexpectedly: last heard of at 09:00" in today
    assert "| reactive | 0 | none | $0.00 |" in rest
    errors = rest.split("## Last errors", 1)[1].split("## Briefings", 1)[0]
    assert "not a PDF" in errors
    assert "- [[2026-11-30 Monday Briefing]]" in rest.split("## Briefings", 1)[1]


def test_an_edited_dashboard_is_kept_once_and_never_written_over(vault: Vault) -> None:
    from ai_employee.dashboard import DashboardWriter
    from ai_employee.events import EventBus

    writer = DashboardWriter(vault, EventBus(), lambda: "dry-run")
    dashboard = vault.root / "Dashboard.md"
    writer.write()  # over the placeholder `vault init` wrote: nothing kept
    assert not (vault.root / "Dashboard (edited).md").exists()
    mine = dashboard.read_text() + "\nMy own note: call the bank on Monday.\n"
    dashboard.write_text(mine)
    writer.write()
    kept = vault.root / "Dashboard (edited).md"
    assert kept.read_text() == mine
    assert "Your edits of this note are kept in [[Dashboard (edited)]]" in dashboard.read_text()
    writer.write()
    writer.write()
    assert sorted(p.name for p in vault.root.glob("Dashboard*")) == ["Dashboard (edited).md", "Dashboard.md"]
    dashboard.write_text("# Mine again\n")
    writer.write()
    copies = sorted(vault.root.glob("Dashboard (edited)*"))
    assert len(copies) == 2 and kept.read_text() == mine  # the first copy is never written over
    assert any(p.read_text() == "# Mine again\n" for p in copies)


def test_untrusted_titles_and_errors_are_plain_text(vault: Vault, ledger: Ledger) -> None:
    hostile = '<img src="https://evil.example/p.gif"> ![[Company_Handbook]] #urgent $x$ > [!danger]'
    ledger.record_event(Event(EventName.ACTION_APPROVED, DecisionPayload("P1", "approve", "cli", "ann", "", hostile)))
    text = render(collect(vault, ledger), recent_activity(ledger), "dry-run")
    line = next(line for line in text.splitlines() if line.startswith("- ") and "Approved" in line)
    for raw in ("<img", "![[", "#urgent", "$x$", "[!danger]"):
        assert not re.search(r"(?<!\\)" + re.escape(raw), line), (raw, line)  # only escaped
    assert "\\<img" in line and "\\!\\[\\[Company\\_Handbook\\]\\]" in line


def test_an_edit_made_while_the_dashboard_is_rendered_is_kept(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    import ai_employee.dashboard as dashboard
    from ai_employee.events import EventBus

    writer = dashboard.DashboardWriter(vault, EventBus(), lambda: "dry-run")
    writer.write()
    path = vault.root / "Dashboard.md"
    real = dashboard.collect

    def slow_collect(*args: object, **kwargs: object) -> dict[str, object]:
        path.write_text("# Typed while the engine rendered\n")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dashboard, "collect", slow_collect)
    writer.write()
    assert (vault.root / "Dashboard (edited).md").read_text() == "# Typed while the engine rendered\n"
    monkeypatch.setattr(dashboard, "collect", real)
    writer.write()  # the engine's own text is recognised again: nothing more is kept
    assert len(list(vault.root.glob("Dashboard (edited)*"))) == 1
