"""The template planner: deterministic plans with no AI, used when there is no API key or budget.

An email gets a polite acknowledgement reply (MEDIUM: needs approval); anything else gets a summary
note filed in the vault (LOW: runs by itself). Content from the input is quoted as data, never obeyed.
"""

from __future__ import annotations

from pathlib import Path

from ai_employee.planner.base import PlanDraft, PlanningContext
from ai_employee.vault.actions import Action, clean_text, file_title
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

    async def draft(self, action: Action, context: PlanningContext) -> PlanDraft:
        return self.plan(action, context)

    def plan(self, action: Action, context: PlanningContext) -> PlanDraft:
        """The same draft, synchronously (it needs nothing but the action)."""
        email = action.email or {}
        if email.get("from_addr"):
            return self._reply(action, context)
        return self._summary_note(action, context)

    def _reply(self, action: Action, context: PlanningContext) -> PlanDraft:
        email = action.email or {}
        warning = clean_text(str(email.get("sender_warning") or ""), 300)
        # A display name that poses as someone else is never believed: the address is who wrote.
        shown_name = "" if warning else clean_text(str(email.get("from_name") or ""))
        sender = shown_name or str(email["from_addr"])
        subject = clean_text(str(email.get("subject") or "")) or "(no subject)"
        reply_subject = subject if subject.lower().startswith("re:") else f"Re: {subject}"
        greeting_name = sender.split()[0] if shown_name else "there"
        body = (
            f"Hello {greeting_name},\n\n"
            f'Thank you for your message about "{subject}". This is a quick note to confirm it has reached '
            "us; a person will read it and follow up with you soon.\n\n"
            f"Kind regards,\n{context.signature}\n"
        )
        args: dict[str, object] = {"to": [str(email["from_addr"])], "subject": reply_subject, "body": body}
        if email.get("message_id"):
            args["in_reply_to"] = str(email["message_id"])
        caution = (
            f"> [!warning] Suspicious sender\n> {warning}. Check who really wrote before you answer.\n\n"
            if warning
            else ""
        )
        summary = caution + (
            f"**{sender}** wrote about **{subject}**"
            + (f" on {email['date']}" if email.get("date") else "")
            + ". The template planner suggests a short acknowledgement; a person should follow up with a"
            " real answer.\n\n" + quote(action.preview)
        )
        step = Step(tool="email.send_email", args=args, why=f"Acknowledge {sender}'s message")
        return PlanDraft(
            title=f"Reply to {sender}: {subject}",
            summary=summary,
            steps=[step],
            planner=self.name,
            planner_note=NOTE,
        )

    def _summary_note(self, action: Action, context: PlanningContext) -> PlanDraft:
        source = str(action.source.get("path") or "")
        path = self._free_note_path(f"{action.created[:10]} {file_title(action.title)}", context)
        described = str(action.content.get("description") or action.content.get("kind") or "file")
        lines = [f"# {action.title}", ""]
        if source:
            lines.append(f"- Source: [[{source}]]")
        lines += [f"- What: {described}", f"- Received: {action.created}", "", "## Preview", ""]
        lines.append(quote(action.preview) if action.preview else "_No text could be read from this file._")
        step = Step(
            tool="vault.create_note",
            args={"path": path, "content": "\n".join(lines) + "\n"},
            why="File a summary note of the input in the vault",
        )
        summary = (
            f"A new {described} arrived: **{action.title}**. The template planner files a short summary"
            f" note at `{path}`.\n\n" + (quote(action.preview) if action.preview else "")
        )
        return PlanDraft(
            title=f"File a summary of {action.title}",
            summary=summary.rstrip(),
            steps=[step],
            planner=self.name,
            planner_note=NOTE,
        )

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
