"""Reading a monitor's value, once: a command's output, a note's property, a URL on the allow-list, or
a read-only MCP tool's answer, picked out of JSON by a dotted path when asked; CheckFailed saying why
when there is no value. Nothing here keeps state or decides anything (that is `monitors.py`)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ai_employee.executor.mcp_pool import McpPool
    from ai_employee.proactive.monitors import MonitorConfig

MAX_VALUE_CHARS = 200
CHECK_TIMEOUT_S = 30.0


def url_allowed(url: str, prefix: str) -> bool:
    """Whether `url` is under an allowed prefix: the same scheme, host and port exactly (not a text
    prefix: `https://api.example.com.evil.net/` and `https://api.example.com@evil.net/` are other hosts),
    no user info, and a path under the prefix's path, segment by segment."""
    from urllib.parse import urlsplit

    try:
        got, allowed = urlsplit(url), urlsplit(prefix)
        same_origin = (got.scheme, got.hostname, got.port) == (allowed.scheme, allowed.hostname, allowed.port)
    except ValueError:
        return False
    if not same_origin or got.username is not None or got.password is not None or not got.hostname:
        return False
    from urllib.parse import unquote

    for segment in got.path.split("/"):
        plain_segment = unquote(segment)
        if plain_segment in (".", "..") or "/" in plain_segment or "\\" in plain_segment:
            return False  # `/v1/../admin` (or `%2e%2e`, `%2f`) leaves the allowed path on the server
    base = allowed.path.rstrip("/")
    return got.path == base or got.path.startswith(base + "/") or (not base and got.path == "")


class CheckFailed(Exception):
    """A check gave no value (the command failed, the note or property is missing, the URL answered an error)."""


def _dig(data: object, path: str) -> object:
    for part in path.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            raise CheckFailed(f"`{path}` is not in the answer")
    return data


def read_value(monitor: MonitorConfig, vault_root: Path) -> str:
    """One check: the value as text (numbers as they are written), or CheckFailed saying why."""
    if monitor.command:
        args = shlex.split(monitor.command) if isinstance(monitor.command, str) else monitor.command
        try:
            done = subprocess.run(
                args, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S, cwd=vault_root, env=command_env(monitor)
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CheckFailed(f"the command could not run: {exc}") from None
        if done.returncode != 0:
            raise CheckFailed(f"the command exited {done.returncode}: {done.stderr.strip()[:200]}")
        value = done.stdout.strip()
    elif monitor.tool:
        raise CheckFailed("a tool monitor is read through the engine's MCP servers")
    elif monitor.note:
        from ai_employee.vault.notes import read_frontmatter, split_note

        path = (vault_root / monitor.note).resolve()
        if not path.is_relative_to(vault_root.resolve()):
            raise CheckFailed(f"{monitor.note} is outside the vault")
        try:
            fm = read_frontmatter(split_note(path.read_text("utf-8", errors="replace")), path.name)
        except (OSError, ValueError) as exc:
            raise CheckFailed(f"{monitor.note} cannot be read: {exc}") from None
        if monitor.property not in fm:
            raise CheckFailed(f"{monitor.note} has no property `{monitor.property}`")
        value = str(fm[monitor.property])
    else:
        value = _read_url(monitor)
    if not value:
        raise CheckFailed("the check gave an empty value")
    return value[:MAX_VALUE_CHARS]


PASSED_ON = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SYSTEMROOT")


def command_env(monitor: MonitorConfig) -> dict[str, str]:
    """A command monitor's environment: the few variables a program needs to run, and the monitor's
    own `env`; not the engine's (it holds the API key and the servers' passwords)."""
    import os

    return {name: os.environ[name] for name in PASSED_ON if name in os.environ} | monitor.env


def _read_url(monitor: MonitorConfig) -> str:
    import httpx2

    try:
        answer = httpx2.get(str(monitor.url), timeout=CHECK_TIMEOUT_S, follow_redirects=False)
    except httpx2.HTTPError as exc:
        raise CheckFailed(f"{type(exc).__name__}: {exc}") from None
    if answer.status_code != 200:
        raise CheckFailed(f"HTTP {answer.status_code}")
    return pick(answer.text, None, monitor.json_path)


def pick(text: str, structured: object, json_path: str | None) -> str:
    """The value in an answer: the text, or with `json_path` the value at that path in its structured
    content (a tool's) or in the text read as JSON."""
    text = text.strip()
    if not json_path:
        return text
    if structured is None:
        try:
            structured = json.loads(text)
        except ValueError:
            raise CheckFailed("the answer is not JSON") from None
    return str(_dig(structured, json_path))


async def read_tool(pool: McpPool, monitor: MonitorConfig) -> str:
    """Call a monitor's tool: only one its server declares read-only (`readOnlyHint`), since a monitor
    runs on its own, with nobody approving; CheckFailed when it cannot be read."""
    server, _, name = str(monitor.tool).partition(".")
    if not pool.due(server):
        raise CheckFailed(f"the {server} server is paused after failures; checked again when it is back")
    try:
        tool = await pool.tool(server, name)
        hints = tool.annotations
        if not getattr(hints, "read_only_hint", False):
            raise CheckFailed(
                f"{monitor.tool} is not declared read-only by its server (readOnlyHint): a monitor only reads"
            )
        await pool.validate(server, name, monitor.args)
        outcome = await pool.call(server, name, monitor.args, CHECK_TIMEOUT_S)
    except CheckFailed:
        raise
    except Exception as exc:  # a server that does not start, a timeout, an argument that does not fit
        raise CheckFailed(f"{monitor.tool}: {type(exc).__name__}: {exc}"[:300]) from None
    if not outcome.ok:
        raise CheckFailed(f"{monitor.tool} answered an error: {outcome.text[:200]}")
    return pick(outcome.text, outcome.structured, monitor.json_path)
