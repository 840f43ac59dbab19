"""Notification commands: `vault notify test [CHANNEL]` and `vault notify status`."""

from __future__ import annotations

import json

import click

from ai_employee.cli.app import AppState, pass_app
from ai_employee.errors import UserError


@click.group()
def notify() -> None:
    """Notifications: channels (Apprise URLs, the Telegram bot) and what was sent (docs/notifications.md)."""


@notify.command("test")
@click.argument("channel", required=False)
@pass_app
def notify_test(app: AppState, channel: str | None) -> None:
    """Send a test message to every channel (or CHANNEL) now, and print what each answered.

    Exits 1 if a channel did not take the message. Nothing is recorded as a notification.
    """
    from ai_employee.composition import make_channels
    from ai_employee.notify.messages import Message

    config = app.config
    vault = app.vault()
    channels = make_channels(config, vault)
    if not channels:
        raise UserError("no notification channels are configured: add notify.channels (see docs/notifications.md)")
    if channel is not None:
        if channel not in channels:
            raise UserError(f"no channel named `{channel}` (configured: {', '.join(channels)})")
        channels = {channel: channels[channel]}
    message = Message(
        "notify.test", "low", f"{config.app.name}: test message", "If you can read this, notifications reach you."
    )
    failed = 0
    for name, target in channels.items():
        delivery = target.send(message, [])
        word = "OK" if delivery.ok else "FAILED"
        failed += not delivery.ok
        click.echo(f"{name}: {word} · {target.described()}" + (f" — {delivery.detail}" if delivery.detail else ""))
        closing = getattr(target, "close", None)
        if closing is not None:
            closing()
    if failed:
        raise click.exceptions.Exit(1)


@notify.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, help="How many recent deliveries to list.")
@pass_app
def notify_status(app: AppState, as_json: bool, limit: int) -> None:
    """Each channel's last delivery (failing channels first), and the latest notifications."""
    vault = app.vault()
    with app.ledger(vault) as ledger:
        health = ledger.channel_health()
        rows = [dict(row) for row in ledger.deliveries(limit)]
    if as_json:
        click.echo(json.dumps({"channels": health, "deliveries": rows}, indent=2, default=str))
        return
    if not health:
        click.echo("Nothing was sent yet.")
    for name, state in sorted(health.items(), key=lambda item: item[1]["state"] == "sent"):
        waiting = f", {state['waiting']} waiting" if state.get("waiting") else ""
        click.echo(
            f"{name}: last {state['state']} at {state['at']}{waiting}"
            + (f" — {state['outcome']}" if state["outcome"] else "")
        )
    for row in rows:
        click.echo(
            f"  {row['created'][:19]} {row['channel']:<10} {row['state']:<8} {row['kind']:<18} {row['title'][:60]}"
        )
