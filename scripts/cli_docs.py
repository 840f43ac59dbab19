"""Print docs/cli.md: the `vault` command reference, generated from the CLI's own --help text.

`make docs` writes it; tests/test_docs.py fails when docs/cli.md and --help disagree.
"""

from __future__ import annotations

import click

from ai_employee.cli import cli

INTRO = """# `vault` command reference

Generated from `vault --help` by `make docs`; do not edit by hand. `python -m ai_employee` is the same
command. Errors you can fix exit with status 1 and a one-line message; add `-v` for a traceback.

`ID` arguments take a plan id, a unique prefix of one, or the plan note's file name.
"""


def render() -> str:
    parts = [INTRO]
    settings = {**cli.context_settings, "terminal_width": 100}
    ctx = click.Context(cli, info_name="vault", **settings)
    parts.append(f"## vault\n\n```\n{cli.get_help(ctx)}\n```\n")
    for name in sorted(cli.list_commands(ctx)):
        command = cli.get_command(ctx, name)
        assert command is not None
        sub = click.Context(command, info_name=name, parent=ctx, **settings)
        parts.append(f"## vault {name}\n\n```\n{command.get_help(sub)}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")
