"""Proactive work: `vault schedules` (jobs, their last and next run) and `vault schedules run NAME`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from ai_employee.cli.app import AppState, pass_app
from ai_employee.errors import UserError


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def schedules(ctx: click.Context, as_json: bool) -> None:
    """Scheduled jobs (`schedules:` in config): each one's cron, last run and outcome, next run.

    Each slot runs at most once, across restarts; slots missed while the engine was down follow the
    job's `catch_up` (latest, all, skip), and a slot that ran late says so (docs/proactive.md).
    """
    if ctx.invoked_subcommand is not None:
        return
    from ai_employee.clock import local_time
    from ai_employee.proactive.schedules import late_words, next_slot

    app: AppState = ctx.obj
    config = app.config
    vault = app.vault()
    now = datetime.now(UTC)
    found: list[dict[str, Any]] = []
    with app.ledger(vault) as ledger:
        for name, job in config.schedules.items():
            runs = [dict(row) for row in ledger.schedule_runs(name, 5)]
            upcoming = next_slot(job, now).isoformat() if job.enabled else None
            found.append(
                {
                    "name": name,
                    "cron": job.cron,
                    "enabled": job.enabled,
                    "catch_up": job.catch_up,
                    "next": upcoming,
                    "runs": runs,
                }
            )
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo("No schedules: add them under `schedules:` in config (docs/proactive.md).")
    for entry in found:
        when = local_time(entry["next"]) if entry["next"] else "disabled"
        click.echo(f"{entry['name']}: `{entry['cron']}` (catch up: {entry['catch_up']}), next {when}")
        for run in entry["runs"][:3]:
            late = late_words(float(run["late_s"] or 0))
            how = " (run by hand)" if run["manual"] else ""
            click.echo(f"  {local_time(run['slot'])}: {run['state']}{how}" + (f", {late}" if late else ""))
        if not entry["runs"]:
            click.echo("  never run yet")


@schedules.command("run")
@click.argument("name")
@pass_app
def schedules_run(app: AppState, name: str) -> None:
    """Run job NAME now: its action is written into Needs_Action/ at once (a running engine plans it;
    otherwise `vault start --once`). It does not count as a slot of its schedule."""
    from ai_employee.proactive.jobs import run_slot
    from ai_employee.proactive.schedules import Due
    from ai_employee.vault.actions import new_id

    config = app.config
    job = config.schedules.get(name)
    if job is None:
        known = ", ".join(config.schedules) or "none"
        raise UserError(f"no schedule named `{name}` (configured: {known})")
    vault = app.vault()
    now = datetime.now(UTC)
    action_id = new_id()
    with app.ledger(vault) as ledger:
        if not ledger.claim_slot(name, now.isoformat(), "claimed", 0.0, action_id, manual=True):
            raise UserError(f"`{name}` was just run: try again in a moment")
        prose = None
        if job.job == "briefing":
            import asyncio

            from ai_employee.budget import Budget
            from ai_employee.composition import briefing_writer, make_planner
            from ai_employee.executor.mcp_pool import McpPool

            planner = make_planner(config, McpPool.for_engine(config, vault), Budget(ledger, config.budget), ledger)
            prose = briefing_writer(planner, asyncio.run)
        run_slot(vault, ledger, name, job, Due(name, now, 0.0, True), action_id, prose)
    click.echo(f"Ran `{name}`: its action {action_id} is in Needs_Action/.")


@click.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def monitors(app: AppState, name: str | None, as_json: bool) -> None:
    """Monitors (`monitors.watch` in config): current value, the trend over the last 24 h (up, down,
    stable) with a small chart, alerts raised and what was decided on them; with NAME, its history.
    """
    from datetime import timedelta

    from ai_employee.budget import Budget
    from ai_employee.clock import local_time
    from ai_employee.proactive.cadence import cadence_words
    from ai_employee.proactive.detect import number, sparkline, trend

    config = app.config
    watch = config.monitors.watch
    if name is not None and name not in watch:
        raise UserError(f"no monitor named `{name}` (configured: {', '.join(watch) or 'none'})")
    vault = app.vault()
    since = (datetime.now(UTC) - timedelta(hours=24)).isoformat()
    found: list[dict[str, Any]] = []
    with app.ledger(vault) as ledger:
        cadence = cadence_words(Budget(ledger, config.budget).used_fraction("proactive"))
        for monitor in [name] if name else list(watch):
            values = [dict(r) for r in ledger.monitor_values(monitor, since)]
            numbers = [n for n in (number(v["value"]) for v in values) if n is not None]
            alerts = [dict(a) for a in ledger.monitor_alerts(monitor)]
            decided = [_decision(ledger, str(a["action_id"])) for a in alerts]
            found.append(
                {
                    "name": monitor,
                    "value": next((v["value"] for v in reversed(values) if v["value"] is not None), None),
                    "trend": trend(numbers),
                    "sparkline": sparkline(numbers),
                    "checks_24h": len(values),
                    "alerts": len(alerts),
                    "approved": decided.count("approve") + decided.count("auto_approve"),
                    "denied": decided.count("deny"),
                    "history": values[-20:] if name else [],
                }
            )
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    if not found:
        click.echo("No monitors: add them under `monitors.watch` in config (docs/proactive.md).")
        return
    click.echo(f"Cadence: {cadence}.")
    for entry in found:
        chart = f" {entry['sparkline']}" if entry["sparkline"] else ""
        click.echo(
            f"{entry['name']}: {entry['value'] if entry['value'] is not None else 'no value yet'}"
            f" · 24 h {entry['trend']}{chart} · {entry['alerts']} alert(s):"
            f" {entry['approved']} approved, {entry['denied']} denied"
        )
        for row in entry["history"]:
            said = row["value"] if row["value"] is not None else f"no value: {row['error']}"
            click.echo(f"  {local_time(row['ts'])}  {said}")


def _decision(ledger: Any, action_id: str) -> str:
    """What was decided on an alert's plan ("" while none)."""
    plan_id = ledger.plan_for_action(action_id) if action_id else None
    row = ledger.last_decision(plan_id) if plan_id else None
    return str(row["decision"]) if row is not None else ""
