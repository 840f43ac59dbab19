"""The template planner's rules, table-tested on the repo's sample inputs as the engine ingests them: bulk
mail gets no reply, invoices become tasks to pay (never a payment), meeting requests become tasks with the
proposed times, urgency shows in the title, a colleague is not someone outside."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml

from ai_employee.config import Config
from ai_employee.orchestrator import Engine
from ai_employee.planner import facts
from ai_employee.vault.layout import Vault
from ai_employee.vault.plans import parse_steps, split_note
from tests.conftest import SAMPLES, files

pytestmark = pytest.mark.timeout(120)


def plan_for(vault: Path, source: Path, config: Config | None = None) -> tuple[dict[str, object], str, list]:
    shutil.copy(source, vault / "Inbox" / source.name)
    config = config or Config()
    config.watcher.__dict__["settle_s"] = 0.0
    Engine(Vault(vault), config).run_once()
    [note] = files(vault / "Plans", ".md") + files(vault / "Done", ".md")
    text = note.read_text("utf-8")
    parts = split_note(text)
    return yaml.safe_load(parts.frontmatter), text, parse_steps(parts.body)


@pytest.mark.parametrize(
    ("sample", "tools", "title", "in_content"),
    [
        ("newsletter-weekly-digest.eml", ["vault.create_note"], "File a summary of Your weekly digest", ["Weekly"]),
        ("invoice-acme-INV-2291.txt", ["vault.create_note"], "Task: pay ACME Cloud Hosting Ltd. £546.00 (INV-2291)",
         ["- [ ] Pay ACME Cloud Hosting Ltd. £546.00 (INV-2291) 📅 2026-11-30", "Sort code 20-00-00"]),
        ("invoice-northwind-NW-7731.pdf", ["vault.create_note"], "Task: pay NORTHWIND TRADERS EUR 1,290.00 (NW-7731)",
         ["📅 2026-12-02", "DE89 3704 0044 0532 0130 00"]),
        ("meeting_request.txt", ["vault.create_note"], "Task: set up Schedule a team meeting",
         ["Who: Sam, Priya, Jonas", "How long: 60 minutes", "any afternoon except Wednesday"]),
        ("client-quote-request.eml", ["email.send_email"], "Urgent: Reply to Maria Lopez", []),
    ],
    ids=["bulk-mail", "invoice-text", "invoice-pdf", "meeting", "urgent-request"],
)  # fmt: skip
def test_each_sample_gets_the_plan_a_person_would_expect(
    vault: Path, sample: str, tools: list[str], title: str, in_content: list[str]
) -> None:
    props, text, steps = plan_for(vault, SAMPLES / sample)
    assert props["planner"] == "template"
    assert [step.tool for step in steps] == tools
    assert title in text.splitlines()[text.splitlines().index("---", 1) + 1]
    content = str(steps[0].args.get("content", ""))
    for expected in in_content:
        assert expected in content
    assert "payment" not in " ".join(step.tool for step in steps), "no plan ever pays"


def test_bulk_mail_says_why_it_gets_no_reply(vault: Path) -> None:
    _, text, _ = plan_for(vault, SAMPLES / "newsletter-weekly-digest.eml")
    assert "Bulk or automated mail (it has a List-Unsubscribe header): no reply." in text


def test_an_urgent_deadline_is_surfaced_in_the_summary(vault: Path) -> None:
    _, text, _ = plan_for(vault, SAMPLES / "client-quote-request.eml")
    assert "**Time-sensitive:** deadline Dec 12" in text


def test_mail_from_a_colleague_is_not_from_outside(vault: Path, tmp_path: Path) -> None:
    mail = tmp_path / "from-priya.eml"
    mail.write_text(
        "From: Priya Shah <priya@example-studio.com>\nTo: sam@example-studio.com\nSubject: Slides\n"
        "Message-ID: <p1@example-studio.com>\n\nCan you look at my slides before Friday?\n"
    )
    config = Config(app={"own_domains": ["example-studio.com"]})  # type: ignore[arg-type]
    _, text, steps = plan_for(vault, mail, config)
    assert "Your colleague **Priya Shah**" in text
    assert [step.tool for step in steps] == ["email.send_email"]


@pytest.mark.parametrize(
    ("address", "automated"),
    [
        ("no-reply@news.example.io", True),
        ("noreply@github.com", True),
        ("do-not-reply@bank.example", True),
        ("notifications@service.example", True),
        ("MAILER-DAEMON@mx.example", True),
        ("maria@brightpath-design.co", False),
        ("noreen@example.com", False),
    ],
)
def test_automated_senders(address: str, automated: bool) -> None:
    assert facts.automated_sender(address) is automated


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Invoice total: £546.00, due 2026-11-30", ("£546.00", date(2026, 11, 30))),
        ("Invoice 4411\nAmount due: 1.234,50 EUR\nPayable by 15 December", ("1.234,50 EUR", date(2026, 12, 15))),
        ("Your bill: $89.99. Payment due Jan 3", ("$89.99", date(2027, 1, 3))),
        ("We invoice monthly; no amount here.", None),
        ("Lunch was £12 and dinner £30.", None),  # an amount without an invoice is no invoice
    ],
)
def test_invoice_facts(text: str, expected: tuple[str, date] | None) -> None:
    found = facts.invoice(text, today=date(2026, 12, 2))
    assert (None if found is None else (found.amount, found.due)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("URGENT: server down", ["URGENT"]),
        ("Please reply asap, we need to decide by December 12th.", ["asap", "decide by December 12th"]),
        ("Can you send it today?", ["today"]),
        ("Thanks for the update.", []),
    ],
)
def test_urgency(text: str, expected: list[str]) -> None:
    assert facts.urgency(text) == expected


def test_a_schedule_or_monitor_action_says_which_job_or_monitor_and_why(vault: Path) -> None:
    """The engine's own actions are not mail: a review listing an urgent invoice is still filed as the
    review (no invoice task, no "Urgent:"), and the plan says which job or monitor raised it."""
    from ai_employee.planner.base import PlanningContext
    from ai_employee.planner.template import TemplatePlanner
    from ai_employee.vault.actions import Action

    context = PlanningContext(vault, "", "")
    review = Action(
        id="a1",
        type="schedule",
        title="Morning review",
        created="2026-12-03T08:00:00+00:00",
        source={"schedule": "morning_review", "slot": "2026-12-03T08:00:00+00:00", "late_s": 2700},
        content={"kind": "text", "preview": "What is still pending:\n- Urgent: invoice INV-1 EUR 500 due today"},
    )
    draft = TemplatePlanner().plan(review, context)
    assert draft.title == "Note: Morning review"
    assert "scheduled job morning_review is due" in draft.summary and "45 min late" in draft.summary
    assert [s.tool for s in draft.steps] == ["vault.create_note"] and "Urgent" not in draft.title
    assert "invoice INV-1" in draft.steps[0].args["content"]
    alert = Action(
        id="a2",
        type="monitor",
        title="btc signal changed",
        created="2026-12-03T09:00:00+00:00",
        source={"monitor": "btc_signal", "value": "LONG", "reason": "changed from NEUTRAL to LONG"},
        content={"kind": "text", "preview": "The monitor btc_signal changed from NEUTRAL to LONG."},
    )
    draft = TemplatePlanner().plan(alert, context)
    assert draft.summary.startswith("The monitor btc_signal changed from NEUTRAL to LONG.")
    assert "A new text arrived" not in draft.summary
