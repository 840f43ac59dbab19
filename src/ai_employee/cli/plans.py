"""Approval commands: `list`, `show`, `approve`, `deny`/`reject`, `defer`, `history`, `stats`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from ai_employee.cli.app import AppState, pass_app
from ai_employee.clock import local_time
from ai_employee.errors import FormatError, UserError

if TYPE_CHECKING:
    from ai_employee.vault.layout import Vault


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON (each plan with its `state`).")
@pass_app
def list_plans(app: AppState, as_json: bool) -> None:
    """List the plans in Plans/: waiting for your decision (oldest first), then those needing attention
    after a failure, then those deferred (with until when)."""
    from dataclasses import asdict

    from ai_employee.status import group_plans, human_age

    vault = app.vault()
    if vault.ledger_path.exists():
        with app.ledger(vault) as ledger:
            groups = group_plans(vault, ledger)
    else:
        groups = group_plans(vault)
    listed = [("waiting", p) for p in groups.waiting]
    listed += [("attention", p) for p in groups.attention] + [("deferred", p) for p in groups.deferred]
    if as_json:
        click.echo(json.dumps([{**asdict(plan), "state": state} for state, plan in listed], indent=2))
        return
    if not listed:
        click.echo("No plans are waiting for you.")
        return
    for state, plan in listed:
        flag = {
            "waiting": "",
            "attention": f"  [{plan.status}]",
            "deferred": f"  (deferred until {local_time(plan.deferred_until or '')})",
        }[state]
        click.echo(f"{plan.id}  {plan.criticality.upper():6}  {human_age(plan.age_s):>6}  {plan.title}{flag}")


@click.command()
@click.argument("plan")
@pass_app
def show(app: AppState, plan: str) -> None:
    """Show a plan: where it is, its status, criticality and why, steps and decisions. PLAN is an id, a
    unique prefix of one, or the note's file name."""
    from ai_employee.pipeline import decisions
    from ai_employee.pipeline.lookup import resolve_plan
    from ai_employee.vault.notes import split_note
    from ai_employee.vault.plans import dump_steps, parse_steps
    from ai_employee.vault.revisions import section_text

    vault = app.vault()
    ref = resolve_plan(vault, plan)
    fm = ref.frontmatter
    click.echo(f"Plan {ref.plan_id}")
    click.echo(f"  note:        {ref.folder}/{ref.path.name}")
    for key in ("status", "criticality", "planner", "created", "action_id", "executed", "error"):
        if fm.get(key) not in (None, ""):
            click.echo(f"  {key + ':':12} {fm[key]}")
    body = split_note(ref.path.read_text("utf-8")).body
    why = section_text(body, "Why this criticality")
    if why:
        click.echo("Why this criticality (`vault explain` checks it against the rules now):")
        click.echo("  " + why.replace("\n", "\n  "))
    try:
        steps = parse_steps(body)
        click.echo("Steps:")
        click.echo("  " + dump_steps(steps).rstrip().replace("\n", "\n  "))
    except FormatError as exc:
        click.echo(f"Steps: cannot be read: {exc}")
    if vault.ledger_path.exists():
        with app.ledger(vault) as ledger:
            rows = ledger.decisions(1000, plan_id=ref.plan_id)
            runs = ledger.runs(ref.plan_id)
        for row in reversed(rows):
            click.echo("Decision: " + decisions.describe(row))
        for run in runs:
            mode = "dry-run" if run.dry_run else "live"
            click.echo(
                f"Run {run.attempt}: {run.state} ({mode}) {run.started}" + (f" — {run.detail}" if run.detail else "")
            )


@click.command()
@click.argument("plan")
@click.option("--feedback", default="", help="Why you approved (kept in the ledger and the note).")
@pass_app
def approve(app: AppState, plan: str, feedback: str) -> None:
    """Approve a pending plan's steps as they are now: the same as moving its note into Approved/."""
    from ai_employee.pipeline import decisions

    vault = app.vault()
    with app.ledger(vault) as ledger:
        dest = decisions.approve(vault, ledger, plan, feedback)
    click.echo(f"Approved: {dest.parent.name}/{dest.name}.")
    what_next(
        vault,
        "The engine runs it next.",
        "nothing runs yet: start it with `vault start` (or `vault start --once` to run what is pending and exit).",
    )


def what_next(vault: Vault, running: str, stopped: str) -> None:
    """What happens next, depending on whether an engine is running on the vault."""
    from ai_employee.lock import holder

    if holder(vault.lock_path) is not None:
        click.echo(running)
    else:
        click.echo(f"No engine is running on {vault.root}, so {stopped}")


def _deny(app: AppState, plan: str, feedback: str) -> None:
    from ai_employee.pipeline import decisions

    vault = app.vault()
    with app.ledger(vault) as ledger:
        dest = decisions.deny(vault, ledger, plan, feedback)
    click.echo(f"Denied: {dest.parent.name}/{dest.name}.")


@click.command()
@click.argument("plan")
@click.option("--feedback", default="", help="Why you declined (kept in the ledger and the note).")
@pass_app
def deny(app: AppState, plan: str, feedback: str) -> None:
    """Decline a pending plan: the same as moving its note into Rejected/."""
    _deny(app, plan, feedback)


@click.command()
@click.argument("plan")
@click.option("--feedback", default="", help="Why you declined (kept in the ledger and the note).")
@pass_app
def reject(app: AppState, plan: str, feedback: str) -> None:
    """Alias of `deny`."""
    _deny(app, plan, feedback)


@click.command()
@click.argument("plan")
@click.option("--minutes", type=int, required=True, help="How long to snooze the plan.")
@pass_app
def defer(app: AppState, plan: str, minutes: int) -> None:
    """Snooze a pending plan: it stays in Plans/, shown as deferred (not waiting) until then."""
    from ai_employee.pipeline import decisions

    vault = app.vault()
    with app.ledger(vault) as ledger:
        until = decisions.defer(vault, ledger, plan, minutes)
    click.echo(f"Deferred until {local_time(until)}.")


@click.command()
@click.argument("plan")
@click.option("--feedback", required=True, help="What should change: the planner reads it as your words.")
@pass_app
def replan(app: AppState, plan: str, feedback: str) -> None:
    """Ask for a new version of a waiting plan: the same as writing under `## Feedback` in its note. The
    engine writes the new version into the same note (same id), keeps the one you saw under `## Earlier
    versions`, and it waits for you again. Needs the Claude planner; never for an approved or run plan."""
    from ai_employee.pipeline import decisions

    vault = app.vault()
    from ai_employee.composition import claude_configured

    if not claude_configured(app.config):
        raise UserError(
            "replanning needs the Claude planner (set `claude.api_key` or ANTHROPIC_API_KEY): the template"
            " planner would write the same plan again. Edit the note's steps instead."
        )
    with app.ledger(vault) as ledger:
        path = decisions.request_revision(vault, ledger, plan, feedback)
    click.echo(f"Feedback added to {path.parent.name}/{path.name}.")
    what_next(
        vault,
        "The engine writes the new version now; it waits for you in the same note.",
        "the new version is written when you `vault start` it.",
    )


@click.command()
@click.option("--limit", default=20, show_default=True, help="How many decisions to show.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_app
def history(app: AppState, limit: int, as_json: bool) -> None:
    """Show recent decisions (approve, deny, defer, auto-approve), newest first: which plan, who decided,
    how (command line, moving the note, the policy) and when."""
    from ai_employee.pipeline import decisions

    vault = app.vault()
    if not vault.ledger_path.exists():
        click.echo("[]" if as_json else "No history yet: the engine has not run on this vault.")
        return
    with app.ledger(vault) as ledger:
        rows = ledger.decisions(limit)
    if as_json:
        keys = ("ts", "plan_id", "title", "decision", "channel", "actor", "feedback", "until", "plan_hash")
        click.echo(json.dumps([{k: row[k] for k in keys} for row in rows], indent=2))
        return
    if not rows:
        click.echo("No decisions yet.")
    for row in rows:
        click.echo(decisions.describe(row))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_app
def stats(app: AppState, as_json: bool) -> None:
    """Show totals from the ledger: plans by outcome (approved by you or by the policy, denied,
    expired), your approval rate and median time to decide, how many the policy ran; then events,
    decisions, runs and steps by kind. --json adds them under `outcomes`."""
    vault = app.vault()
    if not vault.ledger_path.exists():
        click.echo("No statistics yet: the engine has not run on this vault.")
        return
    from ai_employee.status import human_age

    with app.ledger(vault) as ledger:
        counts = ledger.counts()
        outcomes = ledger.decision_stats()
    if as_json:
        click.echo(json.dumps({"outcomes": outcomes, **counts}, indent=2))
        return
    rate = outcomes["approval_rate"]
    wait = outcomes["median_time_to_decide_s"]
    click.echo(
        f"Plans: {outcomes['approved']} approved by you, {outcomes['auto_approved']} by the policy"
        f" ({outcomes['auto_executed']} of them run), {outcomes['denied']} denied, {outcomes['expired']} expired"
    )
    click.echo(
        "Your decisions: "
        + (f"{rate:.0%} approved" if rate is not None else "none yet")
        + (f", median time to decide {human_age(wait)}" if wait is not None else "")
    )
    for section, values in counts.items():
        click.echo(f"{section}: " + (", ".join(f"{k} {v}" for k, v in values.items()) or "none"))
