"""The `vault` command line: one module per command group, errors handled in one place (`main`)."""

from __future__ import annotations

import sys
import traceback

import click

from ai_employee import __version__
from ai_employee.cli.app import AppState
from ai_employee.cli.engine import budget, init, restart, start, status, stop
from ai_employee.cli.execution import doctor, interventions, resume, retry, tools
from ai_employee.cli.gmail import gmail
from ai_employee.cli.interactive import interactive
from ai_employee.cli.notify import notify
from ai_employee.cli.plans import approve, defer, deny, history, list_plans, reject, replan, show, stats
from ai_employee.cli.policy import explain, insights, policy
from ai_employee.cli.proactive import monitors, schedules
from ai_employee.cli.web import web
from ai_employee.errors import AIEmployeeError, machine_fault


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="vault")
@click.option(
    "--vault",
    "vault_path",
    type=click.Path(path_type=__import__("pathlib").Path),
    help="The vault to use (else $VAULT_PATH, else app.vault_path in config, else ./AI_Employee_Vault).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=__import__("pathlib").Path),
    help="Config file (else $AI_EMPLOYEE_CONFIG, else ./config.yaml if present, else built-in defaults).",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, and full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, vault_path: object, config_path: object, verbose: bool) -> None:
    """AI Employee: your Obsidian vault as the desk of a trustworthy assistant.

    Drop things into Inbox/; plans appear in Plans/; move a plan to Approved/ to run it.
    """
    from pathlib import Path

    ctx.obj = AppState(
        vault_option=vault_path if isinstance(vault_path, Path) else None,
        config_option=config_path if isinstance(config_path, Path) else None,
        verbose=verbose,
    )


for command in (
    init,
    start,
    stop,
    restart,
    status,
    list_plans,
    show,
    approve,
    deny,
    reject,
    defer,
    replan,
    history,
    stats,
    budget,
    gmail,
    interactive,
    explain,
    policy,
    insights,
    tools,
    doctor,
    interventions,
    resume,
    retry,
    notify,
    schedules,
    monitors,
    web,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI; user errors are one line and exit 1, tracebacks only with -v."""
    verbose = any(arg in ("-v", "--verbose") for arg in (argv if argv is not None else sys.argv[1:]))
    try:
        cli.main(args=argv, prog_name="vault", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(1)
    except AIEmployeeError as exc:  # UserError and every other error the engine raises on purpose
        if verbose:
            traceback.print_exc()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        fault = machine_fault(exc)
        if fault is not None:  # a full disk, a read-only vault: the person can fix it, so say it plainly
            click.echo(f"Error: {fault} ({exc}); fix that, then run the command again", err=True)
        else:
            click.echo(f"Error: unexpected {type(exc).__name__}: {exc} (run with -v for the traceback)", err=True)
        sys.exit(1)
