"""The built-in MCP servers, driven as a client would: in memory, and over real stdio subprocesses.

Email goes to a real local SMTP server (aiosmtpd); vaults are real temporary folders.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import mcp
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from mcp.types import CallToolResult

from ai_employee.errors import ConfigError
from ai_employee.mcp_servers import calendar_server, email_server, vault_server
from ai_employee.mcp_servers.email_server import EmailSettings, draft_file_name
from ai_employee.vault import layout
from tests.smtp_server import Collector, free_port, start_smtp

PASSWORD = "hunter2-S3cret!"


# --- helpers and fixtures ---------------------------------------------------------------------------


def tree(root: Path) -> list[str]:
    """Every path under `root`, without following symlinks: a snapshot to prove nothing changed."""
    found = []
    for folder, dirs, files in os.walk(root):
        found += [os.path.relpath(os.path.join(folder, name), root) for name in dirs + files]
    return sorted(found)


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    layout.init_vault(root)
    return root


class InMemory:
    """Calls a server's tools through an in-memory `mcp.Client`, opened per call.

    A client cannot live in an async fixture: pytest-asyncio finalises it in another task than the
    one that entered it, which anyio's cancel scopes refuse.
    """

    def __init__(self, server: Any) -> None:
        self.server = server

    async def list_tools(self) -> Any:
        async with mcp.Client(self.server) as client:
            return await client.list_tools()

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        async with mcp.Client(self.server) as client:
            return await client.call_tool(name, arguments)


@pytest.fixture
def vault_client(vault: Path) -> InMemory:
    return InMemory(vault_server.build_server(vault))


@pytest.fixture
def smtp() -> Iterator[tuple[Collector, int]]:
    handler = Collector(refuse=frozenset({"nobody@example.org"}))
    controller = start_smtp(handler)
    try:
        yield handler, controller.port
    finally:
        controller.stop()


def settings_for(port: int, vault: Path | None = None, **overrides: Any) -> EmailSettings:
    base = EmailSettings(smtp_host="127.0.0.1", smtp_port=port, smtp_from="Me <me@example.com>", vault=vault)
    return dataclasses.replace(base, **overrides)


# --- vault server --------------------------------------------------------------------------------------


async def test_vault_tools_document_their_parameters(vault_client: InMemory) -> None:
    tools = {tool.name: tool for tool in (await vault_client.list_tools()).tools}
    assert set(tools) == {"create_note", "append_to_note", "move_note", "set_property", "create_task"}
    create = tools["create_note"]
    assert create.description.startswith("Create a new markdown note in the vault")
    assert not create.description.startswith(" ")
    assert create.input_schema["required"] == ["path", "content"]
    assert "Engine folders" in create.input_schema["properties"]["path"]["description"]
    assert create.output_schema["properties"] == {"path": {"title": "Path", "type": "string"}}


async def test_move_note_moves_within_the_vault_never_over_a_note(vault_client: InMemory, vault: Path) -> None:
    (vault / "Notes").mkdir(exist_ok=True)
    (vault / "Notes" / "Acme.md").write_text("# Acme\n")
    (vault / "Archive").mkdir()
    (vault / "Archive" / "Acme.md").write_text("older\n")
    moved = await vault_client.call_tool("move_note", {"path": "Notes/Acme.md", "folder": "Archive"})
    assert moved.structured_content == {"path": "Archive/Acme (2).md"}
    assert (vault / "Archive" / "Acme.md").read_text() == "older\n" and not (vault / "Notes" / "Acme.md").exists()
    for folder in ("Plans", ".obsidian", ".ai_employee", "../outside", "Approved/x"):
        refused = await vault_client.call_tool("move_note", {"path": "Archive/Acme.md", "folder": folder})
        assert "refused" in error_text(refused), folder
    gone = await vault_client.call_tool("move_note", {"path": "Notes/None.md", "folder": "Archive"})
    assert "does not exist" in error_text(gone)


async def test_set_property_changes_one_key_and_nothing_else(vault_client: InMemory, vault: Path) -> None:
    note = vault / "Notes" / "Acme.md"
    note.parent.mkdir(exist_ok=True)
    note.write_text("---\n# a comment the user wrote\nclient: Acme\n---\nBody stays.\n")
    await vault_client.call_tool("set_property", {"path": "Notes/Acme.md", "name": "status", "value": "won"})
    await vault_client.call_tool("set_property", {"path": "Notes/Acme.md", "name": "tags", "value": ["client", "q4"]})
    text = note.read_text()
    assert text.startswith("---\n# a comment the user wrote\nclient: Acme\n") and text.endswith("---\nBody stays.\n")
    assert "status: won" in text and "- q4" in text
    await vault_client.call_tool("set_property", {"path": "Notes/Acme.md", "name": "status", "value": None})
    assert "status" not in note.read_text()
    plain = vault / "Notes" / "Plain.md"
    plain.write_text("no properties yet\n")
    await vault_client.call_tool("set_property", {"path": "Notes/Plain.md", "name": "due", "value": "2026-12-05"})
    assert plain.read_text() == "---\ndue: '2026-12-05'\n---\nno properties yet\n"
    bad = await vault_client.call_tool("set_property", {"path": "Notes/Acme.md", "name": "x: y\nz", "value": 1})
    assert "property name" in error_text(bad)


async def test_create_task_in_obsidian_tasks_format_once_per_step(vault_client: InMemory, vault: Path) -> None:
    call = {"description": "Send Acme the signed quote", "due": "2026-12-05", "priority": "high"}
    keyed = {**call, "idempotency_key": "P1:1:abc"}
    first = await vault_client.call_tool("create_task", keyed)
    again = await vault_client.call_tool("create_task", keyed)
    assert first.structured_content == again.structured_content == {"path": "Tasks.md"}
    lines = (vault / "Tasks.md").read_text().splitlines()
    assert lines[0] == "# Tasks"
    [task] = [line for line in lines if line.startswith("- [ ]")]
    assert task.startswith("- [ ] Send Acme the signed quote ⏫ 📅 2026-12-05 ➕ ")
    await vault_client.call_tool("create_task", {"description": "Call Maria", "note": "Notes/Todo.md"})
    assert (vault / "Notes" / "Todo.md").read_text().count("- [ ] Call Maria") == 1
    for bad, why in ((("due", "next friday"),), "a date"), ((("description", "a\n- [ ] injected"),), "line break"):
        result = await vault_client.call_tool("create_task", {**call, **dict(bad)})
        assert why in error_text(result)


async def test_create_note_makes_folders_and_returns_the_path(vault_client: InMemory, vault: Path) -> None:
    result = await vault_client.call_tool("create_note", {"path": "Notes/Clients/Acme.md", "content": "# Acme\n"})
    assert not result.is_error
    assert result.structured_content == {"path": "Notes/Clients/Acme.md"}
    assert (vault / "Notes/Clients/Acme.md").read_text() == "# Acme\n"
    assert list((vault / layout.STATE_DIR / "tmp").iterdir()) == []


async def test_create_note_never_overwrites(vault_client: InMemory, vault: Path) -> None:
    (vault / "Notes/Acme.md").write_text("mine\n")
    text = error_text(await vault_client.call_tool("create_note", {"path": "Notes/Acme.md", "content": "x"}))
    assert "already exists" in text
    assert (vault / "Notes/Acme.md").read_text() == "mine\n"


@pytest.mark.parametrize(
    ("old", "added", "expected"),
    [
        ("line one", "line two\n", "line one\nline two\n"),
        ("line one\n", "line two\n", "line one\nline two\n"),
        ("", "first\n", "first\n"),
    ],
)
async def test_append_to_note_separates_with_a_newline(
    vault_client: InMemory, vault: Path, old: str, added: str, expected: str
) -> None:
    (vault / "Notes/Log.md").write_text(old)
    result = await vault_client.call_tool("append_to_note", {"path": "Notes/Log.md", "content": added})
    assert result.structured_content == {"path": "Notes/Log.md"}
    assert (vault / "Notes/Log.md").read_text() == expected


async def test_append_to_a_missing_note_is_refused(vault_client: InMemory, vault: Path) -> None:
    text = error_text(await vault_client.call_tool("append_to_note", {"path": "Notes/No.md", "content": "x"}))
    assert "does not exist" in text
    assert not (vault / "Notes/No.md").exists()


UNSAFE_PATHS = [
    ("", "empty"),
    ("/etc/evil.md", "not absolute"),
    ("../outside.md", "'..'"),
    ("Notes/../../outside.md", "'..'"),
    ("Notes/./x.md", "'.'"),
    ("Notes\\x.md", "'\\'"),
    ("Notes/a\x00b.md", "control"),
    ("Notes/a\nb.md", "control"),
    ("Notes/\u202edm.exe.md", "invisible"),
    ("Notes//x.md", "empty name"),
    ("Notes/x.md/", "empty name"),
    (".obsidian/app.md", "hidden"),
    (".ai_employee/x.md", "hidden"),
    ("Notes/.secret.md", "hidden"),
    *[(f"{folder}/forged.md", "belongs to the engine") for folder in layout.ENGINE_FOLDERS],
    ("inbox/forged.md", "belongs to the engine"),
    ("Plans./forged.md", "belongs to the engine"),
    ("Approved", "belongs to the engine"),
    ("Dashboard.md", "maintained by you or the engine"),
    ("company_handbook.md", "maintained by you or the engine"),
    ("Notes/x.txt", "must end with"),
    ("Notes/x", "must end with"),
    ("a/" * 250 + "x.md", "longer than 400 characters"),
    ("Notes/" + "x" * 300 + ".md", "longer than 255 bytes"),
]


@pytest.mark.parametrize("tool", ["create_note", "append_to_note"])
@pytest.mark.parametrize(("path", "reason"), UNSAFE_PATHS)
async def test_unsafe_paths_are_refused(vault_client: InMemory, vault: Path, tool: str, path: str, reason: str) -> None:
    before = tree(vault)
    text = error_text(await vault_client.call_tool(tool, {"path": path, "content": "pwned"}))
    assert f"Error executing tool {tool}: refused: " in text
    assert reason in text
    assert "\n" not in text
    assert tree(vault) == before


async def test_dashboard_is_left_alone(vault_client: InMemory, vault: Path) -> None:
    before = (vault / layout.DASHBOARD).read_bytes()
    error_text(await vault_client.call_tool("append_to_note", {"path": "Dashboard.md", "content": "x"}))
    assert (vault / layout.DASHBOARD).read_bytes() == before


async def test_symlinks_are_never_followed(vault_client: InMemory, vault: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.md").write_text("outside\n")
    (vault / "Notes/escape").symlink_to(outside, target_is_directory=True)
    (vault / "Notes/linked.md").symlink_to(outside / "target.md")
    (vault / "Notes/dangling.md").symlink_to(outside / "new.md")

    for tool, path in [
        ("create_note", "Notes/escape/new.md"),
        ("create_note", "Notes/escape/deeper/new.md"),
        ("create_note", "Notes/dangling.md"),
        ("append_to_note", "Notes/escape/target.md"),
        ("append_to_note", "Notes/linked.md"),
    ]:
        text = error_text(await vault_client.call_tool(tool, {"path": path, "content": "pwned"}))
        assert "is a symbolic link" in text, (tool, path)
    assert sorted(p.name for p in outside.iterdir()) == ["target.md"]
    assert (outside / "target.md").read_text() == "outside\n"


async def test_oversized_content_is_refused(vault_client: InMemory, vault: Path) -> None:
    big = "x" * (vault_server.MAX_CONTENT_BYTES + 1)
    text = error_text(await vault_client.call_tool("create_note", {"path": "Notes/Big.md", "content": big}))
    assert "larger than" in text
    assert not (vault / "Notes/Big.md").exists()


async def test_vault_server_over_stdio(vault: Path) -> None:
    params = mcp.StdioServerParameters(
        command=sys.executable,
        args=["-m", "ai_employee.mcp_servers.vault_server"],
        env={"AI_EMPLOYEE_VAULT": str(vault), "PATH": os.environ["PATH"]},
    )
    async with mcp.Client(params) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == {"create_note", "append_to_note", "move_note", "set_property", "create_task"}
        result = await client.call_tool("create_note", {"path": "Notes/From stdio.md", "content": "hi\n"})
        assert result.structured_content == {"path": "Notes/From stdio.md"}
        refused = await client.call_tool("create_note", {"path": "Plans/forged.md", "content": "x"})
        assert "belongs to the engine" in error_text(refused)
    assert (vault / "Notes/From stdio.md").read_text() == "hi\n"


@pytest.mark.parametrize("env_value", [None, "/nonexistent/vault"])
def test_vault_server_needs_a_vault_folder(env_value: str | None) -> None:
    env = {"PATH": os.environ["PATH"]} | ({"AI_EMPLOYEE_VAULT": env_value} if env_value else {})
    proc = subprocess.run(
        [sys.executable, "-m", "ai_employee.mcp_servers.vault_server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "AI_EMPLOYEE_VAULT" in proc.stderr


# --- email server: settings ----------------------------------------------------------------------------


def test_settings_defaults_and_parsing(tmp_path: Path) -> None:
    assert EmailSettings.from_env({}) == EmailSettings()
    settings = EmailSettings.from_env(
        {
            "SMTP_HOST": "smtp.example.com",
            "SMTP_PORT": "587",
            "SMTP_USERNAME": "me",
            "SMTP_PASSWORD": PASSWORD,
            "SMTP_FROM": "Me <me@example.com>",
            "SMTP_STARTTLS": "True",
            "SMTP_TIMEOUT_S": "7.5",
            "AI_EMPLOYEE_VAULT": str(tmp_path),
        }
    )
    assert (settings.smtp_port, settings.smtp_starttls, settings.smtp_timeout_s) == (587, True, 7.5)
    assert settings.vault == tmp_path
    assert PASSWORD not in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SMTP_PORT": "smtp"}, "SMTP_PORT"),
        ({"SMTP_PORT": "70000"}, "SMTP_PORT"),
        ({"SMTP_STARTTLS": "maybe"}, "SMTP_STARTTLS"),
        ({"SMTP_TIMEOUT_S": "0"}, "SMTP_TIMEOUT_S"),
        ({"SMTP_FROM": "not an address"}, "SMTP_FROM"),
        ({"SMTP_HOST": "smtp.example.com", "SMTP_USERNAME": "me"}, "SMTP_STARTTLS=true"),
        ({"AI_EMPLOYEE_VAULT": "/nonexistent/vault"}, "AI_EMPLOYEE_VAULT"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EmailSettings.from_env(env)


# --- email server: sending ---------------------------------------------------------------------------


async def test_send_email_delivers_one_message_with_the_right_headers(smtp: tuple[Collector, int]) -> None:
    handler, port = smtp
    async with mcp.Client(email_server.build_server(settings_for(port))) as client:
        result = await client.call_tool(
            "send_email",
            {
                "to": ["Ann Client <ann@example.org>", "nobody@example.org"],
                "cc": ["boss@example.com"],
                "subject": "Re: Quote request — café",
                "body": "Hello Ann,\n\nThanks.\n",
                "in_reply_to": "<orig-1@mail.example.org>",
            },
        )
    assert not result.is_error, result
    sent = result.structured_content
    assert sent["accepted"] == ["ann@example.org", "boss@example.com"]
    assert len(handler.envelopes) == 1
    envelope = handler.envelopes[0]
    assert envelope.mail_from == "me@example.com"
    assert envelope.rcpt_tos == ["ann@example.org", "boss@example.com"]
    msg = handler.messages()[0]
    assert msg["From"] == "Me <me@example.com>"
    assert msg["To"] == "Ann Client <ann@example.org>, nobody@example.org"
    assert msg["Cc"] == "boss@example.com"
    assert msg["Subject"] == "Re: Quote request — café"
    assert msg["Message-ID"] == sent["message_id"]
    assert sent["message_id"].endswith("@example.com>")
    assert msg["In-Reply-To"] == msg["References"] == "<orig-1@mail.example.org>"
    assert email.utils.parsedate_to_datetime(msg["Date"]).tzinfo is not None
    assert msg.get_content() == "Hello Ann,\n\nThanks.\n"


@pytest.mark.parametrize(
    "arguments",
    [
        {"subject": "Hello\r\nBcc: victim@example.net"},
        {"subject": "Hello\nBcc: victim@example.net"},
        {"to": "ann@example.org\r\nBcc: victim@example.net"},
        {"cc": ["boss@example.com\nBcc: victim@example.net"]},
        {"in_reply_to": "<a@b>\r\nBcc: victim@example.net"},
    ],
)
async def test_header_injection_is_refused(smtp: tuple[Collector, int], arguments: dict[str, Any]) -> None:
    handler, port = smtp
    call = {"to": "ann@example.org", "subject": "Hi", "body": "x"} | arguments
    async with mcp.Client(email_server.build_server(settings_for(port))) as client:
        text = error_text(await client.call_tool("send_email", call))
        assert "line break" in text
        assert "line break" in error_text(await client.call_tool("draft_email", call))
    assert handler.envelopes == []


@pytest.mark.parametrize(
    ("to", "reason"),
    [
        ("not-an-address", "not an email address"),
        ("a@b@example.org", "not an email address"),
        ("ann@example.org, eve@example.net", "several addresses"),
        ("", "not an email address"),
        ([], "no recipient"),
        (["a\x00@example.org"], "control characters"),
        ([f"u{i}@example.org" for i in range(51)], "more than 50 recipients"),
    ],
)
async def test_bad_addresses_are_refused(smtp: tuple[Collector, int], to: Any, reason: str) -> None:
    handler, port = smtp
    async with mcp.Client(email_server.build_server(settings_for(port))) as client:
        text = error_text(await client.call_tool("send_email", {"to": to, "subject": "Hi", "body": "x"}))
    assert reason in text
    assert handler.envelopes == []


async def test_send_email_needs_smtp_from(smtp: tuple[Collector, int]) -> None:
    handler, port = smtp
    async with mcp.Client(email_server.build_server(settings_for(port, smtp_from=None))) as client:
        text = error_text(await client.call_tool("send_email", {"to": "a@example.org", "subject": "", "body": ""}))
    assert "SMTP_FROM is not set" in text
    assert handler.envelopes == []


async def test_unreachable_server_is_a_tool_error() -> None:
    async with mcp.Client(email_server.build_server(settings_for(free_port()))) as client:
        text = error_text(await client.call_tool("send_email", {"to": "a@example.org", "subject": "", "body": ""}))
    assert "could not send: temporary failure: could not reach the SMTP server (Connection refused)" in text


def rejecting(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    return AuthResult(success=False, handled=False)


def echoing(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    """A careless server that quotes the credentials back in its refusal."""
    assert isinstance(data, LoginPassword)
    return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad password {data.password.decode()}")


@pytest.mark.parametrize("authenticator", [rejecting, echoing])
async def test_login_failure_never_reveals_the_password(authenticator: Any) -> None:
    handler = Collector()
    # auth_require_tls=False so AUTH is offered over plain TCP on loopback; aiosmtpd warns only when
    # auth_required is also set, which it is not, so no warning filter is needed.
    controller = start_smtp(handler, auth_require_tls=False, authenticator=authenticator)
    try:
        settings = settings_for(controller.port, smtp_username="me", smtp_password=PASSWORD)
        async with mcp.Client(email_server.build_server(settings)) as client:
            text = error_text(await client.call_tool("send_email", {"to": "a@example.org", "subject": "", "body": ""}))
    finally:
        controller.stop()
    assert "could not send: authentication failed: 535 5.7.8" in text
    assert PASSWORD not in text
    assert handler.envelopes == []


async def test_email_server_over_stdio(smtp: tuple[Collector, int], vault: Path) -> None:
    handler, port = smtp
    params = mcp.StdioServerParameters(
        command=sys.executable,
        args=["-m", "ai_employee.mcp_servers.email_server"],
        env={
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "SMTP_FROM": "me@example.com",
            "AI_EMPLOYEE_VAULT": str(vault),
            "PATH": os.environ["PATH"],
        },
    )
    async with mcp.Client(params) as client:
        assert {tool.name for tool in (await client.list_tools()).tools} == {"send_email", "draft_email"}
        result = await client.call_tool("send_email", {"to": "ann@example.org", "subject": "Hi", "body": "Hello\n"})
        assert result.structured_content["accepted"] == ["ann@example.org"]
    assert len(handler.envelopes) == 1
    assert handler.messages()[0]["Message-ID"] == result.structured_content["message_id"]


# --- email server: drafts ------------------------------------------------------------------------------


async def test_draft_email_writes_an_eml_any_mail_client_opens_and_sends_nothing(vault: Path) -> None:
    # A closed port: any attempt to send would fail the call.
    settings = settings_for(free_port(), vault=vault)
    call = {
        "to": ["Ann <ann@example.org>"],
        "subject": "Re: Quote request",
        "body": "Hello Ann,\n---\nnot frontmatter",
        "in_reply_to": "orig-1@mail.example.org",
    }
    async with mcp.Client(email_server.build_server(settings)) as client:
        first = await client.call_tool("draft_email", {**call, "idempotency_key": "P1:1:abc"})
        again = await client.call_tool("draft_email", {**call, "idempotency_key": "P1:1:abc"})
        other = await client.call_tool("draft_email", call)
    today = datetime.now().astimezone().strftime("%Y-%m-%d")
    assert first.structured_content["path"] == f"Drafts/{today} Re Quote request.eml"
    assert again.structured_content == first.structured_content  # the same step drafted twice: one draft
    assert other.structured_content["path"] == f"Drafts/{today} Re Quote request (2).eml"
    key_id = email_server.key_message_id("P1:1:abc", "example.com")
    assert first.structured_content["message_id"] == key_id
    parsed = BytesParser(policy=default_policy).parsebytes((vault / first.structured_content["path"]).read_bytes())
    assert parsed["To"] == "Ann <ann@example.org>"
    assert parsed["From"] == "Me <me@example.com>"
    assert parsed["Subject"] == "Re: Quote request"
    assert parsed["In-Reply-To"] == "<orig-1@mail.example.org>"
    assert parsed["Message-ID"] == key_id and parsed["X-Unsent"] == "1"
    assert parsed.get_content().replace("\r\n", "\n") == "Hello Ann,\n---\nnot frontmatter\n"  # CRLF, as in any .eml


async def test_draft_email_needs_a_vault() -> None:
    async with mcp.Client(email_server.build_server(settings_for(free_port()))) as client:
        text = error_text(await client.call_tool("draft_email", {"to": "a@example.org", "subject": "", "body": ""}))
    assert "AI_EMPLOYEE_VAULT is not set" in text


@pytest.mark.parametrize(
    ("subject", "name"),
    [
        ("Re: Quote request", "2026-11-22 Re Quote request.eml"),
        ("", "2026-11-22 No subject.eml"),
        ("../../etc/passwd", "2026-11-22 etc passwd.eml"),
        (".hidden [[link]] #tag a|b", "2026-11-22 hidden link tag a b.eml"),
        ("é" * 200, "2026-11-22 " + "é" * 75 + ".eml"),
    ],
)
def test_draft_file_names_are_safe(subject: str, name: str) -> None:
    assert draft_file_name(subject, datetime(2026, 11, 22, 9, 30)) == name


# --- calendar server -----------------------------------------------------------------------------------
LISBON = ZoneInfo("Europe/Lisbon")


@pytest.fixture
def calendar_client(vault: Path) -> InMemory:
    settings = calendar_server.CalendarSettings(vault.resolve(), "Calendar/calendar.ics", LISBON)
    return InMemory(calendar_server.build_server(settings))


async def test_create_event_writes_an_ics_calendar_apps_read_and_is_idempotent(
    calendar_client: InMemory, vault: Path
) -> None:
    call = {"title": "Call with Maria", "start": "2026-12-07T10:00", "duration_minutes": 30, "location": "Phone"}
    first = await calendar_client.call_tool("create_event", {**call, "idempotency_key": "P1:1:abc"})
    again = await calendar_client.call_tool("create_event", {**call, "idempotency_key": "P1:1:abc"})
    assert first.structured_content == again.structured_content
    assert first.structured_content["start"] == "2026-12-07T10:00+00:00"
    assert first.structured_content["end"] == "2026-12-07T10:30+00:00"
    calendar = icalendar.Calendar.from_ical((vault / "Calendar" / "calendar.ics").read_bytes())
    [event] = calendar.walk("VEVENT")
    assert str(event["summary"]) == "Call with Maria" and str(event["uid"]) == first.structured_content["uid"]
    assert event.decoded("dtstart") == datetime(2026, 12, 7, 10, 0, tzinfo=LISBON)
    assert calendar.walk("VTIMEZONE")  # the zone travels with the file
    clash = await calendar_client.call_tool("create_event", {"title": "Dentist", "start": "2026-12-07T10:15+00:00"})
    assert [c["title"] for c in clash.structured_content["conflicts"]] == ["Call with Maria"]


async def test_list_events_and_find_free_slots_see_recurring_events(calendar_client: InMemory, vault: Path) -> None:
    (vault / "Calendar").mkdir()
    (vault / "Calendar" / "calendar.ics").write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:standup@x\r\n"
        "SUMMARY:Standup\r\nDTSTART;TZID=Europe/Lisbon:20261130T093000\r\n"
        "DTEND;TZID=Europe/Lisbon:20261130T100000\r\nRRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR\r\n"
        "DTSTAMP:20261101T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    listed = await calendar_client.call_tool("list_events", {"start": "2026-12-04T00:00", "end": "2026-12-08T00:00"})
    assert [(e["title"], e["start"]) for e in listed.structured_content["events"]] == [
        ("Standup", "2026-12-04T09:30+00:00"),
        ("Standup", "2026-12-07T09:30+00:00"),
    ]
    free = await calendar_client.call_tool(
        "find_free_slots",
        {"start": "2026-12-04T00:00", "end": "2026-12-08T00:00", "duration_minutes": 60, "day_end": "12:00"},
    )
    assert free.structured_content["slots"] == [
        {"start": "2026-12-04T10:00+00:00", "end": "2026-12-04T12:00+00:00"},  # Friday, after standup
        {"start": "2026-12-07T10:00+00:00", "end": "2026-12-07T12:00+00:00"},  # the weekend skipped
    ]


async def test_calendar_refuses_bad_times_and_hostile_titles(calendar_client: InMemory) -> None:
    for call, why in (
        ({"title": "x", "start": "next monday"}, "not a time"),
        ({"title": "x", "start": "2026-12-07T10:00", "end": "2026-12-07T09:00"}, "after the start"),
        ({"title": "x\r\nATTENDEE:mailto:eve@evil.example", "start": "2026-12-07T10:00"}, "line break"),
    ):
        assert why in error_text(await calendar_client.call_tool("create_event", call))
    wide = {"start": "2026-01-01T00:00", "end": "2028-01-01T00:00"}
    assert "at most 366 days" in error_text(await calendar_client.call_tool("list_events", wide))


def test_calendar_file_must_stay_in_the_vault(vault: Path) -> None:
    for bad in ("../outside.ics", "Plans/cal.ics", ".obsidian/cal.ics", "/etc/cal.ics", "cal.txt"):
        with pytest.raises(SystemExit):
            calendar_server.CalendarSettings.from_env({"AI_EMPLOYEE_VAULT": str(vault), "CALENDAR_FILE": bad})


def test_calendar_times_without_a_zone_take_the_machines_rules_not_todays_offset(vault: Path) -> None:
    settings = calendar_server.CalendarSettings.from_env({"AI_EMPLOYEE_VAULT": str(vault), "TZ": "Europe/Berlin"})
    summer = calendar_server._parse_when("2027-07-01T10:00", settings.zone, "start")
    winter = calendar_server._parse_when("2027-12-01T10:00", settings.zone, "start")
    assert summer.utcoffset() == timedelta(hours=2) and winter.utcoffset() == timedelta(hours=1)


async def test_calendar_server_over_stdio(vault: Path) -> None:
    params = mcp.StdioServerParameters(
        command=sys.executable,
        args=["-m", "ai_employee.mcp_servers.calendar_server"],
        env={"AI_EMPLOYEE_VAULT": str(vault), "PATH": os.environ["PATH"], "CALENDAR_TIMEZONE": "America/New_York"},
    )
    async with mcp.Client(params) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert names == {"create_event", "list_events", "find_free_slots"}
        made = await client.call_tool("create_event", {"title": "Review", "start": "2026-12-08T15:00"})
        assert made.structured_content["start"] == "2026-12-08T15:00-05:00"
        listed = await client.call_tool("list_events", {"start": "2026-12-08T00:00", "end": "2026-12-09T00:00"})
        assert [e["title"] for e in listed.structured_content["events"]] == ["Review"]
    assert (vault / "Calendar" / "calendar.ics").read_bytes().startswith(b"BEGIN:VCALENDAR")
