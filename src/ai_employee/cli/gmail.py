"""Gmail commands: `vault gmail auth` (the OAuth consent, once) and `vault gmail status`."""

from __future__ import annotations

import json
import stat
from typing import Any

import click

from ai_employee.cli.app import AppState, pass_app
from ai_employee.errors import UserError


@click.group()
def gmail() -> None:
    """Connect Gmail: new mail becomes notes in Inbox/, replies go out in the same thread (docs/gmail.md)."""


@gmail.command()
@click.option("--no-browser", is_flag=True, help="Do not try to open a browser: open the printed URL yourself.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port of the local redirect (0: any free one).")
@click.option(
    "--timeout", "timeout_s", type=click.FloatRange(min=1), default=300.0, help="Seconds to wait for consent."
)
@pass_app
def auth(app: AppState, no_browser: bool, port: int, timeout_s: float) -> None:
    """Let the engine read and label your Gmail, draft and send replies (scope gmail.modify).

    \b
    Runs Google's installed-app flow: a URL to open in a browser, and a redirect back to a local
    port on this machine. The token is saved to gmail.token_file (default
    ~/.config/ai-employee/gmail-token.json), readable by you only, never in the vault. A running
    engine whose Gmail sync is paused picks the new token up by itself.
    """
    from ai_employee.gmail.auth import authorize, check_outside, save_credentials
    from ai_employee.gmail.client import GmailClient, GmailError

    config = app.config.gmail
    token = config.token_path()
    check_outside(token, app.vault(check=False).root)
    try:
        creds = authorize(config, open_browser=not no_browser, port=port, timeout_s=timeout_s)
    except UserError:
        raise
    except Exception as exc:  # the flow's errors: refused consent, a timeout, a bad answer from Google
        raise UserError(
            f"Google did not grant access ({type(exc).__name__}: {exc}); run `vault gmail auth` again"
        ) from exc
    try:
        account = str(GmailClient(creds, config.api_endpoint).profile().get("emailAddress") or "")
    except GmailError as exc:
        raise UserError(f"access was granted, but Gmail refused the token ({exc})") from exc
    save_credentials(creds, token, account)
    click.echo(f"Gmail access granted for {account}. Token saved to {token} (readable by you only).")
    if not config.enabled:
        click.echo("Set `gmail.enabled: true` in config.yaml, then run `vault start` (or `vault restart`).")


def gmail_summary(app: AppState) -> dict[str, Any]:
    """What `vault gmail status` shows, as plain data (no network)."""
    from ai_employee.gmail.auth import NotAuthorized, load_token

    config = app.config.gmail
    token_path = config.token_path()
    token: dict[str, Any] = {"file": str(token_path), "present": token_path.exists()}
    try:
        info = load_token(token_path)
        token.update(
            account=info.get("account") or None,
            scopes=info.get("scopes") or [],
            mode=oct(stat.S_IMODE(token_path.stat().st_mode)),
        )
    except NotAuthorized as exc:
        token["problem"] = str(exc)
    vault = app.vault()
    state: dict[str, str] = {}
    counts: dict[str, int] = {}
    if vault.ledger_path.exists():
        with app.ledger(vault) as ledger:
            state, counts = ledger.gmail_state(), ledger.mail_counts()
    return {
        "enabled": config.enabled,
        "query": config.query,
        "mark": config.mark if config.mark != "label" else f"label {config.label}",
        "token": token,
        "account": state.get("account") or token.get("account"),
        "last_sync": state.get("last_sync"),
        "last_full_sync": state.get("last_full_sync"),
        "history_id": state.get("history_id"),
        "paused": state.get("paused") == "1",
        "problem": state.get("problem") or token.get("problem"),
        "messages": counts,
    }


@gmail.command(name="status")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--check", is_flag=True, help="Also ask Google whether the token works (one request).")
@pass_app
def gmail_status(app: AppState, as_json: bool, check: bool) -> None:
    """Show the Gmail account, the token's scopes, the last sync, the messages taken and any problem."""
    from ai_employee.clock import local_time

    data = gmail_summary(app)
    if check:
        data["check"] = _check(app)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    token = data["token"]
    click.echo(f"Gmail sync: {'on' if data['enabled'] else 'off (set gmail.enabled: true)'}; query: {data['query']}")
    click.echo(f"Account: {data['account'] or 'unknown (run `vault gmail auth`)'}")
    scopes = ", ".join(s.rsplit("/", 1)[-1] for s in token.get("scopes") or []) or "none"
    click.echo(
        f"Token: {token['file']}" + (f" ({token.get('mode')}; scopes: {scopes})" if token["present"] else " (missing)")
    )
    synced = local_time(data["last_sync"]) if data["last_sync"] else "never"
    counts = data["messages"]
    click.echo(
        f"Last sync: {synced}; notes written: {counts.get('stored', 0)}, skipped by rules: {counts.get('skipped', 0)}"
    )
    if data["problem"]:
        click.echo(f"Problem: {data['problem']}")
    if check:
        click.echo(f"Check: {data['check']}")


def _check(app: AppState) -> str:
    from ai_employee.gmail.auth import NotAuthorized, load_credentials
    from ai_employee.gmail.client import GmailClient, GmailError

    try:
        client = GmailClient(load_credentials(app.config.gmail), app.config.gmail.api_endpoint)
        profile = client.profile()
        client.close()
    except (NotAuthorized, GmailError) as exc:
        return f"failed: {exc}"
    return f"ok: {profile.get('emailAddress')} ({profile.get('messagesTotal')} messages)"
