"""The template planner: deterministic plans with no AI, used when there is no API key or budget.

In order, first match wins:
- an invoice or bill (an amount with a currency; any kind of item) becomes a task note with the facts and
  an Obsidian Tasks line with its due date; never a payment step (LOW);
- bulk or automated mail (List-Unsubscribe, List-Id, Precedence: bulk, Auto-Submitted, a no-reply
  sender) gets no reply: it is filed as a summary note (LOW);
- a meeting request becomes a task note with the proposed times (LOW);
- other mail gets a polite acknowledgement reply (MEDIUM: needs approval), naming a colleague as one; mail
  from Gmail gets it as a Gmail draft in its own thread (`gmail.create_draft`), other mail by SMTP;
- a schedule's or a monitor's action is filed as a note saying which job or monitor raised it, why, and
  what it asks (open-ended instructions need Claude) (LOW);
- anything else gets a summary note (LOW).
Urgency words and deadlines are surfaced in the title and the summary. Content from the input is quoted
as data, never obeyed.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from ai_employee.planner import facts
from ai_employee.planner.base import PlanDraft, PlanningContext, Revision
from ai_employee.vault.actions import PROACTIVE_TYPES, Action, clean_text, file_title
from ai_employee.vault.layout import NOTES
from ai_employee.vault.plans import Step

PREVIEW_IN_PLAN_CHARS = 1200
NOTE = "Written by the template planner: deterministic rules, no AI involved."


def quote(text: str, limit: int = PREVIEW_IN_PLAN_CHARS) -> str:
    """Untrusted text as a markdown blockquote: it cannot open a heading, a fence or a callout."""
    cut = text[:limit].rstrip()
    if len(text) > limit:
        cut += " …"
    lines = cut.splitlines() or ["(empty)"]
    # A line starting `[!` right after `> ` would render as a callout, posing as the engine's own.
    escaped = ("\\" + line if line.startswith("[!") else line for line in lines)
    return "\n".join(f"> {line}".rstrip() for line in escaped)


class TemplatePlanner:
    name = "template"
    concurrency: int | None = None
    revises = False  # deterministic: feedback would give the same plan again

    async def draft(self, action: Action, context: PlanningContext, revision: Revision | None = None) -> PlanDraft:
        return self.plan(action, context)

    def plan(self, action: Action, context: PlanningContext) -> PlanDraft:
        """The same draft, synchronously (it needs nothing but the action)."""
        if action.type in PROACTIVE_TYPES:  # the engine's own: its text is a job's, not a sender's
            return self._proactive_note(action, context)
        email = action.email or {}
        sender = str(email.get("from_addr") or "")
        head = f"{email.get('subject') or action.title}\n{action.preview[:300]}"
        found = facts.invoice(action.preview)
        if found is not None:
            draft = self._invoice_task(action, context, found)
        elif sender and (email.get("bulk") or facts.automated_sender(sender)):
            why = str(email.get("bulk") or f"it comes from {sender}, an address nobody reads")
            draft = self._summary_note(action, context, no_reply=f"Bulk or automated mail ({why}): no reply.")
        elif (meeting := facts.meeting(head)) is not None:
            draft = self._meeting_task(action, context, facts.meeting(action.preview) or meeting)
        elif sender:
            draft = self._reply(action, context)
        else:
            draft = self._summary_note(action, context)
        urgent = facts.urgency(str(email.get("subject") or action.title), action.preview)
        if not urgent:
            return draft
        return replace(
            draft,
            title=f"Urgent: {draft.title}",
            summary=f"**Time-sensitive:** {'; '.join(urgent)}.\n\n{draft.summary}",
        )

    def _reply(self, action: Action, context: PlanningContext) -> PlanDraft:
        email = action.email or {}
        warning = clean_text(str(email.get("sender_warning") or ""), 300)
        # A display name that poses as someone else is never believed: the address is who wrote.
        shown_name = "" if warning else clean_text(str(email.get("from_name") or ""))
        sender = shown_name or str(email["from_addr"])
        subject = clean_text(str(email.get("subject") or "")) or "(no subject)"
        reply_subject = subject if subject.lower().startswith("re:") else f"Re: {subject}"
        greeting_name = sender.split()[0] if shown_name else "there"
        colleague = context.is_colleague(str(email["from_addr"])) and not warning
        body = (
            f"Hello {greeting_name},\n\n"
            f'Thank you for your message about "{subject}". This is a quick note to confirm it has reached '
            "us; a person will read it and follow up with you soon.\n\n"
            f"Kind regards,\n{context.signature}\n"
        )
        args: dict[str, object] = {"to": [str(email["from_addr"])], "subject": reply_subject, "body": body}
        if email.get("message_id"):
            args["in_reply_to"] = str(email["message_id"])
        tool, how = "email.send_email", "suggests a short acknowledgement"
        if email.get("thread_id") and email.get("message_id"):
            # Mail from Gmail: a draft in its own thread, for the owner to read and send from Gmail.
            args = {
                "thread_id": str(email["thread_id"]),
                "in_reply_to": str(email["message_id"]),
                "to": [str(email["from_addr"])],
                "body": body,
            }
            tool, how = "gmail.create_draft", "drafts a short acknowledgement in the Gmail thread (not sent)"
        caution = (
            f"> [!warning] Suspicious sender\n> {warning}. Check who really wrote before you answer.\n\n"
            if warning
            else ""
        )
        who = f"Your colleague **{sender}**" if colleague else f"**{sender}**"
        summary = caution + (
            f"{who} wrote about **{subject}**"
            + (f" on {email['date']}" if email.get("date") else "")
            + f". The template planner {how}; a person should follow up with a real answer.\n\n"
            + quote(action.preview)
        )
        step = Step(tool=tool, args=args, why=f"Acknowledge {sender}'s message")
        return PlanDraft(
            title=f"Reply to {sender}: {subject}",
            summary=summary,
            steps=[step],
            planner=self.name,
            planner_note=NOTE,
        )

    def _invoice_task(self, action: Action, context: PlanningContext, bill: facts.Invoice) -> PlanDraft:
        """A task note to pay, with the facts read from the invoice: the human pays, the engine never."""
        payee = _payee(action)
        number = f" ({bill.number})" if bill.number else ""
        due = f" 📅 {bill.due.isoformat()}" if bill.due else ""
        rows = [
            ("Amount", bill.amount + (f" ({bill.currency})" if bill.currency else "")),
            ("Due", bill.due.isoformat() if bill.due else "not found: check the invoice"),
            ("Invoice", bill.number or "not found"),
            ("Pay to", "; ".join(bill.bank) or "not found: check the invoice"),
            ("From", payee),
        ]
        task = f"- [ ] Pay {payee} {bill.amount}{number}{due}"
        lines = [f"# Pay {payee}{number}", "", task, "", "| | |", "|---|---|"]
        lines += [f"| {name} | {_cell(value)} |" for name, value in rows]
        lines += _source_lines(action)
        lines += ["", "These facts were read by plain rules: check the invoice itself before you pay.", ""]
        lines += ["## Preview", "", quote(action.preview)]
        path = self._free_note_path(f"{action.created[:10]} Pay {file_title(payee)}{number}", context)
        step = Step("vault.create_note", {"path": path, "content": "\n".join(lines) + "\n"}, "A task to pay it")
        summary = (
            f"An invoice arrived from **{payee}**: {bill.amount}{number}"
            + (f", due {bill.due.isoformat()}" if bill.due else ", no due date found")
            + f". The template planner files a task note at `{path}` with an Obsidian Tasks line; paying is"
            " yours to do (no plan ever pays).\n\n" + quote(action.preview)
        )
        return PlanDraft(f"Task: pay {payee} {bill.amount}{number}", summary, [step], self.name, NOTE)

    def _meeting_task(self, action: Action, context: PlanningContext, request: facts.Meeting) -> PlanDraft:
        """A task note to set the meeting up, with the proposed times and who is asked."""
        email = action.email or {}
        subject = clean_text(str(email.get("subject") or _first_line(action) or action.title), 80)
        times = request.times or ["none found: read the request"]
        lines = [f"# Meeting: {subject}", "", f"- [ ] Set up the meeting: {subject}", "", "Proposed times:"]
        lines += [f"- {clean_text(t, 200)}" for t in times]
        if request.attendees:
            lines += ["", f"Who: {clean_text(request.attendees, 200)}"]
        if request.duration:
            lines += [f"How long: {request.duration}"]
        if email.get("from_addr"):
            lines += [f"Asked by: {clean_text(str(email.get('from_name') or ''))} <{email['from_addr']}>"]
        lines += [*_source_lines(action), "", "## Preview", "", quote(action.preview)]
        path = self._free_note_path(f"{action.created[:10]} Meeting {file_title(subject)}", context)
        step = Step("vault.create_note", {"path": path, "content": "\n".join(lines) + "\n"}, "A task to set it up")
        summary = (
            f"A meeting request: **{subject}**. Proposed: {'; '.join(clean_text(t, 120) for t in times)}. The"
            f" template planner files a task note at `{path}`.\n\n" + quote(action.preview)
        )
        return PlanDraft(f"Task: set up {subject}", summary, [step], self.name, NOTE)

    def _summary_note(self, action: Action, context: PlanningContext, no_reply: str = "") -> PlanDraft:
        source = str(action.source.get("path") or "")
        path = self._free_note_path(f"{action.created[:10]} {file_title(action.title)}", context)
        described = str(action.content.get("description") or action.content.get("kind") or "file")
        lines = [f"# {action.title}", ""]
        if source:
            lines.append(f"- Source: [[{source}]]")
        lines += [f"- What: {described}", f"- Received: {action.created}", "", "## Preview", ""]
        lines.append(quote(action.preview) if action.preview else "_No text could be read from this file._")
        step = _note_step(path, lines, "File a summary note of the input in the vault")
        summary = (
            (f"{no_reply} " if no_reply else "")
            + f"A new {described} arrived: **{action.title}**. The template planner files a short summary"
            f" note at `{path}`.\n\n" + (quote(action.preview) if action.preview else "")
        )
        return PlanDraft(
            title=f"File a summary of {action.title}",
            summary=summary.rstrip(),
            steps=[step],
            planner=self.name,
            planner_note=NOTE,
        )

    def _proactive_note(self, action: Action, context: PlanningContext) -> PlanDraft:
        """A schedule's or a monitor's action: a note saying which job or monitor raised it and why, with
        what it asks. Open-ended instructions need Claude; the template files them for the person."""
        why = proactive_reason(action)
        path = self._free_note_path(f"{action.created[:10]} {file_title(action.title)}", context)
        lines = [f"# {action.title}", "", f"- Why: {why}", f"- Raised: {action.created}", "", "## What it asks", ""]
        task = action.task
        lines.append(quote(task) if task else "_Nothing more was said._")
        if action.preview:
            lines += ["", "## What it reports", "", quote(action.preview)]
        step = _note_step(path, lines, "File what the job or monitor asks as a note")
        summary = (
            f"{why[0].upper()}{why[1:]}. The template planner cannot carry out open-ended instructions; it files"
            f" what is asked at `{path}` for you (with an Anthropic key, Claude plans the work itself)."
        )
        return PlanDraft(f"Note: {action.title}", summary, [step], self.name, NOTE)

    @staticmethod
    def _free_note_path(stem: str, context: PlanningContext) -> str:
        n = 1
        while True:
            name = f"{stem}.md" if n == 1 else f"{stem} ({n}).md"
            candidate = f"{NOTES}/{name}"
            if candidate not in context.reserved_paths and not (Path(context.vault_root) / candidate).exists():
                context.reserved_paths.add(candidate)
                return candidate
            n += 1


def _note_step(path: str, lines: list[str], why: str) -> Step:
    return Step(tool="vault.create_note", args={"path": path, "content": "\n".join(lines) + "\n"}, why=why)


def proactive_reason(action: Action) -> str:
    """Why the engine raised a proactive action, in words: the job and its slot, or the monitor's change."""
    from ai_employee.clock import local_time
    from ai_employee.proactive.schedules import late_words

    source = action.source
    if action.type == "monitor":
        monitor = clean_text(str(source.get("monitor") or "?"), 60)
        said = f"the monitor {monitor} {clean_text(str(source.get('reason') or 'changed'), 200)}"
        value = clean_text(str(source.get("value") or ""), 80)
        return f"{said} (value now {value})" if value and value not in said else said
    slot = str(source.get("slot") or "")
    said = f"the scheduled job {clean_text(str(source.get('schedule') or '?'), 60)} is due"
    if slot:
        said += f" (its slot {local_time(slot)})"
    late = source.get("late_s")
    if isinstance(late, int | float) and late > 0:
        said += f", run {late_words(float(late))}"
    return said


def _payee(action: Action) -> str:
    """Who sent the bill: the mail's sender, else the first line of the text (up to a wide gap)."""
    email = action.email or {}
    name = clean_text(str(email.get("from_name") or ""), 60)
    if name:
        return name
    first = _first_line(action)
    # "ACME Ltd.      INVOICE", "NORTHWIND TRADERS - INVOICE NW-7731": the name before the word.
    name = _INVOICE_WORD.split(first.split("  ")[0])[0]
    return clean_text(name, 60) or clean_text(action.title, 60)


def _first_line(action: Action) -> str:
    return next((line.strip() for line in action.preview.splitlines() if line.strip()), "")


_INVOICE_WORD = re.compile(r"\s*[-–—|:]?\s*\b(?:invoice|bill|rechnung|factura|facture)\b", re.IGNORECASE)


def _cell(value: str) -> str:
    return clean_text(value, 200).replace("|", "\\|")


def _source_lines(action: Action) -> list[str]:
    source = str(action.source.get("path") or "")
    return ["", f"Source: [[{source}]]"] if source else []
