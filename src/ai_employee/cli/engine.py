"""Engine commands: `init`, `start`, `stop`, `restart`, `status`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ai_employee.cli.app import AppState, pass_app
from ai_employee.clock import local_time
from ai_employee.composition import SERVICE_NAMES
from ai_employee.errors import UserError
from ai_employee.lock import holder, refuse_if_held
from ai_employee.vault.layout import Vault, init_vault

if TYPE_CHECKING:
    from ai_employee.orchestrator import Engine

STOP_TIMEOUT_S = 45.0


@click.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@pass_app
def init(app: AppState, path: Path | None) -> None:
    """Create a vault (folders, Dashboard.md, Company_Handbook.md) at PATH.

    Also Obsidian Bases views in Views/ (pending approvals, needs attention, recent work) and the types
    of the engine's properties in .obsidian/types.json (only the keys missing there). PATH defaults to
    the vault chosen by --vault, $VAULT_PATH or config. Running it again only adds what is missing; it
    never overwrites your files.
    """
    root = path.expanduser().absolute() if path else app.vault(check=False).root
    created = init_vault(root)
    if created:
        click.echo(f"Vault ready at {root} (created {len(created)} items).")
    else:
        click.echo(f"Vault at {root} is already complete; nothing changed.")
    click.echo(f"Next: `vault --vault {root} start`, then drop a file into {root / 'Inbox'}.")


def _engine(app: AppState, live: bool | None) -> tuple[Engine, Vault]:
    from ai_employee.orchestrator import Engine  # the MCP SDK and the whole pipeline: only to run it

    config = app.config
    if live is not None:
        config = config.model_copy(update={"execution": config.execution.model_copy(update={"dry_run": not live})})
    vault = app.vault()
    return Engine(vault, config), vault


def _detach(app: AppState, vault: Vault, live: bool | None) -> None:
    args = [sys.executable, "-m", "ai_employee", "--vault", str(vault.root)]
    if app.config.source is not None:
        args += ["--config", str(app.config.source.absolute())]
    args.append("start")
    if app.config.web.serve:
        args.append("--web")
    if live is not None:
        args.append("--live" if live else "--dry-run")
    (vault.state_dir / "logs").mkdir(parents=True, exist_ok=True)
    with open(vault.state_dir / "logs" / "engine.out", "ab") as out:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, close_fds=True
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if holder(vault.lock_path) is not None:
            click.echo(f"Engine started in the background (pid {proc.pid}). Stop it with `vault stop`.")
            if app.config.web.serve:
                _announce_page(vault)
            return
        if proc.poll() is not None:
            raise UserError(
                f"the engine exited at once (code {proc.returncode}): see {vault.state_dir / 'logs' / 'engine.out'}"
            )
        time.sleep(0.1)
    raise UserError(f"the engine did not start within 15 s: see {vault.state_dir / 'logs' / 'engine.out'}")


@click.command()
@click.option("--once", is_flag=True, help="Process everything pending in every stage, then exit 0.")
@click.option(
    "--live/--dry-run",
    "live",
    default=None,
    help="Run tools for real, or only record what would run (default: execution.dry_run in config, true).",
)
@click.option("--detach", is_flag=True, help="Run in the background; stop it with `vault stop`.")
@click.option("--web", is_flag=True, help="Serve the web page too (see `vault web`; its URL is in `vault status`).")
@pass_app
def start(app: AppState, once: bool, live: bool | None, detach: bool, web: bool) -> None:
    """Run the engine on the vault (foreground; Ctrl-C or SIGTERM stop it gracefully)."""
    if detach and once:
        raise UserError("--detach and --once do not go together: use one of them")
    if web and once:
        raise UserError("--web and --once do not go together: the page needs a running engine (or `vault web`)")
    if web:
        config = app.config
        app._config = config.model_copy(update={"web": config.web.model_copy(update={"serve": True})})
    if app.config.web.serve and not once:
        from ai_employee.web.server import check_bind

        warning = check_bind(app.config.web.host, app.config.web.public)
        if warning:
            click.echo(warning, err=True)
    engine, vault = _engine(app, live)
    refuse_if_held(vault.lock_path)  # before anything is printed or started
    if detach:
        _detach(app, vault, live)
        return
    log_file = app.configure_logging(vault)
    mode = engine.config.mode()
    mode += ": tools are checked, never called" if engine.config.dry_run else ": tools are called for real"
    if once:
        handled = engine.run_once()
        click.echo(f"Processed {handled} item(s) ({mode}).")
        from ai_employee.status import waiting_in_approved

        waiting = waiting_in_approved(vault)
        if waiting:
            click.echo(f"{len(waiting)} approved plan(s) wait for a server or a rate limit: see `vault interventions`.")
        return
    click.echo(f"AI Employee watching {vault.root} ({mode}). Logs: {log_file.absolute()}. Ctrl-C to stop.", err=True)
    if app.config.web.serve and sys.stderr.isatty():  # a terminal, never a log file: the URL holds the token
        import threading

        threading.Thread(target=_announce_page, args=(vault,), daemon=True).start()
    engine.run()


def _announce_page(vault: Vault, wait_s: float = 15.0) -> None:
    """Print the web page's URL (with its token) once the engine's page listens."""
    from ai_employee.web.security import published

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        found = published(vault.root)
        if found is not None:
            click.echo(f"The desk in a browser: {found['url']}", err=True)
            return
        time.sleep(0.1)


def _stop(vault: Vault, timeout_s: float) -> bool:
    """Send SIGTERM to the engine holding the lock and wait for it to let go; False if none runs."""
    info = holder(vault.lock_path)
    if info is None:
        return False
    if info.pid <= 0 or (info.host and info.host != socket.gethostname()):
        raise UserError(f"the engine holding {vault.lock_path} runs elsewhere ({info.host}): stop it there")
    try:
        os.kill(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if holder(vault.lock_path) is None:
            return True
        time.sleep(0.1)
    raise UserError(
        f"the engine (pid {info.pid}) did not stop within {timeout_s:.0f} s; it may be finishing a step."
        f" Wait, or as a last resort `kill -9 {info.pid}`"
    )


@click.command()
@click.option("--timeout", "timeout_s", default=STOP_TIMEOUT_S, show_default=True, help="Seconds to wait.")
@pass_app
def stop(app: AppState, timeout_s: float) -> None:
    """Stop the engine running on the vault, letting it finish the step in progress."""
    vault = app.vault()
    if _stop(vault, timeout_s):
        click.echo("Engine stopped.")
    else:
        click.echo(f"No engine is running on {vault.root}.")


@click.command()
@click.option("--live/--dry-run", "live", default=None, help="Mode for the restarted engine.")
@click.option("--timeout", "timeout_s", default=STOP_TIMEOUT_S, show_default=True, help="Seconds to wait for the stop.")
@click.option(
    "--services",
    "services",
    multiple=True,
    type=click.Choice(SERVICE_NAMES),
    help="Restart only these services inside the running engine (repeatable); the engine keeps running.",
)
@pass_app
def restart(app: AppState, live: bool | None, timeout_s: float, services: tuple[str, ...]) -> None:
    """Stop the running engine (if any) and start it again in the background, or restart some of its
    services with --services."""
    vault = app.vault()
    if services:
        info = holder(vault.lock_path)
        if info is None:
            raise UserError(f"no engine is running on {vault.root}: start it with `vault start`")
        vault.restart_request_path.write_text(json.dumps({"services": list(services)}), "utf-8")
        os.kill(info.pid, signal.SIGHUP)
        click.echo(f"Asked the engine (pid {info.pid}) to restart: {', '.join(services)}.")
        return
    _stop(vault, timeout_s)
    _detach(app, vault, live)


def _print_engine(engine: dict[str, Any]) -> None:
    """The engine's lines of `vault status`: mode, services, paused servers."""
    from ai_employee.status import human_age

    if engine["running"]:
        beat = engine.get("heartbeat_age_s")
        click.echo(
            f"Engine: running (pid {engine.get('pid')}, {engine.get('mode', '?')},"
            f" up {human_age(engine.get('uptime_s', 0))}"
            + (f", heartbeat {beat:.0f}s ago" if beat is not None else "")
            + ")"
        )
        mode = str(engine.get("mode") or "?")
        meaning = (
            "approved steps are carried out for real"
            if mode.startswith("LIVE")
            else "nothing outside the vault is changed"
        )
        click.echo(f"Mode: {mode} ({meaning})")
        for name, svc in engine.get("services", {}).items():
            mark = "ok" if svc.get("healthy") else "UNHEALTHY" + (f": {svc['problem']}" if svc.get("problem") else "")
            extra = f", {svc['restarts']} restarts, last error: {svc['last_error']}" if svc.get("restarts") else ""
            click.echo(f"  {name}: {svc.get('state')} ({mark}{extra})")
        for name, pause in engine.get("paused_servers", {}).items():
            fix = "fix its credentials" if pause.get("kind") == "auth" else "it is tried again by itself"
            click.echo(
                f"  server {name}: PAUSED since {local_time(pause.get('since', ''))}: {pause.get('reason')} ({fix})"
            )
    else:
        click.echo("Engine: not running (start it with `vault start`)")


def _print_status(data: dict[str, Any]) -> None:
    from ai_employee.status import human_age

    engine = data["engine"]
    _print_engine(engine)
    for problem in data["disk_problems"] + (engine.get("last_problems", []) if engine["running"] else []):
        click.echo(f"  problem: {problem}")
    click.echo("Folders: " + ", ".join(f"{k} {v}" for k, v in data["folders"].items()))
    pending = data["pending_approvals"]
    click.echo(f"Waiting for approval: {len(pending)}")
    for plan in pending[:20]:
        click.echo(f"  {plan['id']}  {plan['criticality'].upper():6}  {human_age(plan['age_s']):>5}  {plan['title']}")
    if len(pending) > 20:
        click.echo(f"  ... and {len(pending) - 20} more (`vault list`)")
    deferred = data["deferred"]
    if deferred:
        click.echo(f"Deferred: {len(deferred)}")
        for plan in deferred[:20]:
            until = local_time(plan["deferred_until"] or "")
            click.echo(f"  {plan['id']}  {plan['criticality'].upper():6}  until {until}  {plan['title']}")
    attention = data["attention"]
    if attention:
        click.echo(f"Needs attention: {len(attention)}")
        for item in attention[:20]:
            click.echo(f"  {item['file']}" + (f"  {item['error']}" if item.get("error") else ""))
    click.echo("Tokens today: " + budget_line(data.get("budget") or {}))
    if data.get("web"):
        click.echo(f"Web page: {data['web']['url']}")
    gmail = data.get("gmail")
    if gmail:
        synced = local_time(gmail["last_sync"]) if gmail.get("last_sync") else "never"
        click.echo(f"Gmail: {gmail.get('account') or 'unknown account'}, last sync {synced}")
        if gmail.get("problem"):
            click.echo(f"  problem: {gmail['problem']}")
    failing = {n: h for n, h in (data.get("notifications") or {}).items() if h.get("state") in ("failed", "gave_up")}
    for name, health in failing.items():
        waiting = f", {health['waiting']} waiting" if health.get("waiting") else ""
        click.echo(
            f"Notifications to {name}: FAILING since {local_time(str(health['at']))}{waiting} — {health['outcome']}"
        )


def budget_line(budget: dict[str, Any]) -> str:
    """`planning 12,400 of 500,000 ($0.04); scheduled work 0 (no limit)`: one line for `vault status`."""
    parts = []
    for scope, words in (("reactive", "planning"), ("proactive", "scheduled work")):
        entry = budget.get(scope) or {}
        used, limit = int(entry.get("used", 0)), entry.get("limit")
        cost = f", ${entry.get('cost_usd', 0):.2f}" if entry.get("cost_usd") else ""
        if not budget.get("limits_known"):
            parts.append(f"{words} {used:,}{cost}")
        else:
            parts.append(f"{words} {used:,} " + (f"of {limit:,}" if limit else "(no limit)") + cost)
    return "; ".join(parts)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_app
def budget(app: AppState, as_json: bool) -> None:
    """Show today's token use per scope against the budgets in the config, what calls in flight hold,
    what is left and what it cost, and the last 7 days.

    \b
    Scopes: reactive (planning what arrived), proactive (scheduled work). Days start at midnight in
    budget.timezone (default: this machine's).
    """
    from ai_employee.budget import Budget

    vault = app.vault()
    with app.ledger(vault) as ledger:
        data = Budget(ledger, app.config.budget).summary()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"Today ({data['day']}, {data['timezone']}):")
    for scope, entry in data["scopes"].items():
        limit = f"of {entry['limit']:,}" if entry["limit"] else "(no limit)"
        left = f", {entry['remaining']:,} left" if entry["remaining"] is not None else ""
        held = f", {entry['reserved']:,} held by calls in flight" if entry["reserved"] else ""
        click.echo(f"  {scope:9}  {entry['used']:>12,} {limit}{left}{held}  ${entry['cost_usd']:.2f}")
    click.echo("Last 7 days:")
    for day in data["history"]:
        tokens = f"reactive {day['reactive']:>12,}  proactive {day['proactive']:>12,}"
        click.echo(f"  {day['day']}  {tokens}  ${day['cost_usd']:.2f}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_app
def status(app: AppState, as_json: bool) -> None:
    """Show the engine's state, counts per folder, pending approvals and what needs attention.

    Each service is `ok` or `UNHEALTHY: <why>`, followed by the problems the engine is waiting on.
    The vault's file system is also checked here, so a full disk or a read-only vault is shown even
    when the engine cannot write anything (`disk_problems` in --json).

    \b
    --json keys: vault, engine, disk_problems, folders, pending_approvals (waiting for a decision,
    oldest first), deferred (waiting, snoozed until `deferred_until`), attention (failed or interrupted
    plans, and quarantined files), tokens_today, budget (today's tokens per scope with the running
    engine's limits), gmail (account, last_sync, paused, problem; null without Gmail), notifications
    (per channel: its last delivery's state, at, outcome, and how many wait), web (the running page's
    url with its token, or null; never written into the vault). `vault list` shows the same three
    groups.
    """
    from ai_employee.status import collect
    from ai_employee.web.security import published

    vault = app.vault()
    if vault.ledger_path.exists():
        with app.ledger(vault) as ledger:
            data = collect(vault, ledger)
    else:
        data = collect(vault, None)
    page = published(vault.root)
    data["web"] = {"url": page["url"]} if page else None
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        _print_status(data)
