"""Commands about running plans and the tools they call: `vault tools`, `vault doctor`,
`vault interventions`, `vault resume`."""

from __future__ import annotations

import json
from typing import Any

import click

from ai_employee.cli.app import AppState, pass_app


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_app
def tools(app: AppState, as_json: bool) -> None:
    """List every tool of every configured MCP server: description, annotations, input schema.

    Each server is started to ask it; one that does not start is named with the reason.
    """
    import asyncio

    listed, problems = asyncio.run(_list_tools(app))
    if as_json:
        click.echo(json.dumps({"tools": listed, "problems": problems}, indent=2, ensure_ascii=False))
        return
    for tool in listed:
        hints = ", ".join(f"{k}={v}" for k, v in (tool["annotations"] or {}).items() if v is not None)
        settings = ", ".join(f"{k}={v}" for k, v in tool["settings"].items() if v not in (None, False))
        click.echo(
            f"{tool['name']}" + (f"  [{hints}]" if hints else "") + (f"  (config: {settings})" if settings else "")
        )
        first = (tool["description"] or "").split("\n\n")[0]
        click.echo(f"    {' '.join(first.split())}")
        required = set(tool["input_schema"].get("required") or [])
        params = [f"{name}{'' if name in required else '?'}" for name in (tool["input_schema"].get("properties") or {})]
        click.echo(f"    args: {', '.join(params) or '(none)'}")
    for server, why in problems.items():
        click.echo(f"{server}: NOT AVAILABLE — {why}", err=True)
    if problems:
        raise SystemExit(1)


async def _list_tools(app: AppState) -> tuple[list[dict[str, Any]], dict[str, str]]:
    from ai_employee.executor.failures import describe
    from ai_employee.executor.mcp_pool import McpPool, is_check

    vault = app.vault()
    app.configure_logging(vault, quiet=True)  # the servers' chatter goes to the log, not the listing
    config = app.config
    servers = config.engine_servers()
    pool = McpPool.for_engine(config, vault)
    listed: list[dict[str, Any]] = []
    problems: dict[str, str] = {}
    try:
        for server in servers:
            try:
                found = await pool.session_for(server)
            except Exception as exc:
                problems[server] = pool.redact(describe(exc))[:300]
                continue
            for name, tool in sorted(found.items()):
                if is_check(name, found):
                    continue
                annotations = tool.annotations.model_dump(exclude_none=True) if tool.annotations else {}
                listed.append(
                    {
                        "name": f"{server}.{name}",
                        "description": tool.description or "",
                        "annotations": annotations,
                        "input_schema": tool.input_schema,
                        "settings": servers[server].tool(name).model_dump(),
                    }
                )
    finally:
        await pool.aclose()
    return listed, problems


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_app
def doctor(app: AppState, as_json: bool) -> None:
    """Check the whole installation: config, vault and its permissions, file watching limits, each MCP
    server (started, its tools listed), SMTP, Gmail, the API key and endpoint; and say how to fix each
    problem. Sends nothing; exits 1 if something is broken."""
    from dataclasses import asdict

    from ai_employee.doctor import check_all

    vault = app.vault(check=False)
    app.configure_logging(vault, quiet=True) if vault.root.is_dir() else None
    findings = check_all(app.config, vault)
    if as_json:
        click.echo(json.dumps([asdict(f) for f in findings], indent=2, ensure_ascii=False))
    else:
        marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
        for finding in findings:
            click.echo(f"{marks[finding.level]}  {finding.what}: {finding.detail}")
            if finding.fix and finding.level != "ok":
                click.echo(f"      fix: {finding.fix}")
        failed = sum(1 for f in findings if f.level == "fail")
        warned = sum(1 for f in findings if f.level == "warn")
        click.echo(f"{failed} problem(s), {warned} warning(s)." if failed or warned else "Everything looks right.")
    if any(f.level == "fail" for f in findings):
        raise SystemExit(1)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_app
def interventions(app: AppState, as_json: bool) -> None:
    """List everything waiting on you because of a failure: failed and interrupted plans, plans waiting
    for a server or a rate limit, paused servers, quarantined inputs (the blocker, attempts, last error)."""
    from ai_employee import interventions as found
    from ai_employee.status import engine_state

    vault = app.vault()
    engine = engine_state(vault)
    with app.ledger(vault) as ledger:
        items = found.collect(vault, ledger, engine.get("paused_servers"))
    if as_json:
        click.echo(json.dumps(found.as_json(items), indent=2, ensure_ascii=False))
        return
    if not items:
        click.echo("Nothing needs you: no failed, interrupted or waiting plans, no paused servers, no quarantine.")
        return
    for item in items:
        ref = item.ref[:10] if item.kind in ("failed", "interrupted", "waiting") else item.ref
        click.echo(f"{item.kind.upper():11} {ref}  {item.title}")
        click.echo(f"    blocker: {item.blocker}")
        if item.attempts:
            tries = f", the failing step tried {item.tries} time(s) in the last" if item.tries > 1 else ""
            click.echo(f"    attempts: {item.attempts} run(s){tries}")
        if item.last_error and item.last_error not in item.blocker:
            click.echo(f"    last error: {item.last_error}")
        if item.file:
            click.echo(f"    note: {item.file}")
        click.echo(f"    to do: {item.what_to_do}")


@click.command()
@click.argument("plan")
@click.option("--note", default="", help="How you resolved it (kept with the decision in the ledger and the note).")
@pass_app
def resume(app: AppState, plan: str, note: str) -> None:
    """Resume a failed or interrupted plan: the same as moving its note back into Approved/.

    It goes on from the first step not done; a step that ran never runs again. Fix the steps in the
    note first if they need it (for an interrupted plan, delete a step that did happen).
    """
    from ai_employee.cli.plans import what_next
    from ai_employee.pipeline import decisions

    vault = app.vault()
    with app.ledger(vault) as ledger:
        dest = decisions.resume(vault, ledger, plan, note)
    click.echo(f"Resumed: {dest.parent.name}/{dest.name}.")
    what_next(
        vault,
        "The engine goes on with it next.",
        "nothing runs yet: start it with `vault start` (or `vault start --once` to run what is pending and exit).",
    )


@click.command()
@click.argument("name")
@pass_app
def retry(app: AppState, name: str) -> None:
    """Put a quarantined input back into Inbox/ to be taken again: NAME as in Quarantine/ (see `vault
    interventions`); the same as moving it back by hand.

    Only regular files that were set aside on their way in; a plan set aside from Approved/ stays where
    it is (putting it back would approve it; its note in Quarantine/ says what to do).
    """
    from ai_employee.cli.plans import what_next
    from ai_employee.pipeline.quarantine import release

    vault = app.vault()
    moved = release(vault, name)
    click.echo(f"Back in Inbox/: {moved}.")
    what_next(vault, "The engine takes it again now.", "it is taken when the engine runs (`vault start`).")
