"""`vault interactive`: step through the plans waiting for you in the terminal, oldest first: each shown
with its criticality, why and its steps, then approve, deny, defer, edit (your $EDITOR on the note), skip
or quit. Every decision goes through the same API as `vault approve` and the folders."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ai_employee.cli.app import AppState, pass_app
from ai_employee.errors import FormatError, UserError

if TYPE_CHECKING:
    from ai_employee.ledger import Ledger
    from ai_employee.status import PlanSummary
    from ai_employee.vault.layout import Vault

CHOICES = {"a": "approve", "d": "deny", "f": "defer", "e": "edit", "s": "skip", "q": "quit"}
PROMPT = "[a]pprove  [d]eny  de[f]er  [e]dit  [s]kip  [q]uit"


@click.command()
@pass_app
def interactive(app: AppState) -> None:
    """Step through the plans waiting for you, oldest first: approve, deny, defer, edit the note in
    $EDITOR (then decide), skip, or quit. Nothing is decided without your key."""
    from ai_employee.status import group_plans

    vault = app.vault()
    with app.ledger(vault) as ledger:
        waiting = group_plans(vault, ledger).waiting
        if not waiting:
            click.echo("No plans are waiting for you.")
            return
        click.echo(f"{len(waiting)} plan(s) waiting for you.")
        for number, plan in enumerate(waiting, 1):
            if not _one(vault, ledger, plan, number, len(waiting)):
                break
        click.echo("Done.")


def _one(vault: Vault, ledger: Ledger, plan: PlanSummary, number: int, total: int) -> bool:
    """Show one plan and take one decision on it; False when the person quits."""
    from ai_employee.pipeline import decisions

    while True:
        shown = _show(vault, plan, number, total)
        key = click.prompt(PROMPT, type=click.Choice(list(CHOICES)), show_choices=False, default="s")
        choice = CHOICES[key]
        try:
            if choice == "quit":
                return False
            if choice == "skip":
                return True
            if choice == "edit":
                click.edit(filename=str(vault.root / plan.file))
                continue  # shown again as edited, then decided
            if choice == "approve":
                feedback = click.prompt("Feedback (optional)", default="", show_default=False)
                dest = decisions.approve(vault, ledger, plan.id, feedback=feedback, seen=shown)
                click.echo(f"Approved: {vault.relative(dest)}.")
            elif choice == "deny":
                feedback = click.prompt("Why (optional, kept for the planner)", default="", show_default=False)
                dest = decisions.deny(vault, ledger, plan.id, feedback=feedback)
                click.echo(f"Declined: {vault.relative(dest)}.")
            else:
                minutes = click.prompt("Defer for how many minutes", type=click.IntRange(min=1), default=60)
                until = decisions.defer(vault, ledger, plan.id, minutes)
                click.echo(f"Deferred until {until}.")
            return True
        except UserError as exc:  # decided elsewhere meanwhile, or the note's steps cannot be read
            click.echo(f"Not done: {exc}")
            return True


def _show(vault: Vault, plan: PlanSummary, number: int, total: int) -> str | None:
    """Print the plan; the hash of the steps shown (what an approval binds to), None if unreadable."""
    from ai_employee.status import human_age
    from ai_employee.vault.notes import split_note
    from ai_employee.vault.plans import dump_steps, parse_steps, steps_hash
    from ai_employee.vault.revisions import section_text

    click.echo("")
    click.echo(f"[{number}/{total}] {plan.criticality.upper()}  {plan.title}  (waiting {human_age(plan.age_s)})")
    try:
        body = split_note((vault.root / plan.file).read_text("utf-8")).body
    except (OSError, UnicodeDecodeError, FormatError) as exc:
        click.echo(f"  cannot read the note: {exc}")
        return None
    why = section_text(body, "Why this criticality")
    if why:
        click.echo("  " + why.replace("\n", "\n  "))
    try:
        steps = parse_steps(body)
    except FormatError as exc:
        click.echo(f"  Steps cannot be read: {exc}")
        return None
    click.echo("  Steps:\n    " + dump_steps(steps).rstrip().replace("\n", "\n    "))
    return steps_hash(steps)
