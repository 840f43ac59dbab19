"""The docs say what the code does: docs/cli.md matches --help; the README shows the two commands."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import cli_docs  # noqa: E402


def test_cli_reference_matches_help() -> None:
    expected = cli_docs.render()
    actual = (REPO / "docs" / "cli.md").read_text("utf-8")
    assert actual == expected, "docs/cli.md is stale: run `make docs`"


def test_every_command_and_option_has_help() -> None:
    import click

    from ai_employee.cli import cli

    ctx = click.Context(cli, info_name="vault")
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None and command.help, f"`vault {name}` has no help text"
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"`vault {name} {param.opts[0]}` has no help text"


def test_readme_shows_the_two_setup_commands() -> None:
    readme = (REPO / "README.md").read_text("utf-8")
    assert "make run" in readme and "make test" in readme
