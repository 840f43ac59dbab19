"""`vault web`: the desk in a browser, on its own (the engine may run or not: decisions are the same
files and ledger)."""

from __future__ import annotations

import click

from ai_employee.cli.app import AppState, pass_app


@click.command()
@click.option("--host", default=None, help="Where to listen (default: web.host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Its port (default: web.port, 8765; 0: any free one).")
@click.option("--public", is_flag=True, help="Allow a host beyond loopback (prints a warning).")
@pass_app
def web(app: AppState, host: str | None, port: int | None, public: bool) -> None:
    """Serve the local web page: review, edit, approve, deny, defer and resume plans, live.

    It prints its URL with a token (also shown by `vault status`); nothing answers without it."""
    from ai_employee.web.server import check_bind, serve

    config = app.config
    host = host or config.web.host
    warning = check_bind(host, public or config.web.public)
    if warning:
        click.echo(warning, err=True)
    vault = app.vault()
    app.configure_logging(vault)
    serve(vault, config, host, config.web.port if port is None else port, lambda line: click.echo(line, err=True))
