"""The `gmail` MCP server against a local fake Gmail: replies land in their thread or are refused, a
retried send is found instead of sent twice, labels and archive; and the executor's dry-run check."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import mcp
import pytest

from ai_employee.config_sections import GmailConfig
from ai_employee.mcp_servers import gmail_server
from tests.fake_gmail import FakeGmail, mail, token_file


@pytest.fixture
def fake() -> Iterator[FakeGmail]:
    with FakeGmail() as server:
        yield server


@pytest.fixture
def config(tmp_path: Path, fake: FakeGmail) -> GmailConfig:
    token = tmp_path / "config" / "gmail-token.json"
    token_file(token, fake)
    return GmailConfig(token_file=token, api_endpoint=fake.url, token_uri=fake.url + "token")


async def call(config: GmailConfig, tool: str, **args: Any) -> Any:
    async with mcp.Client(gmail_server.build_server(config)) as client:
        return await client.call_tool(tool, args)


def sent_message(raw_b64: str) -> Any:
    return BytesParser(policy=default_policy).parsebytes(base64.urlsafe_b64decode(raw_b64))


async def test_a_draft_replies_in_the_thread(config: GmailConfig, fake: FakeGmail) -> None:
    first = fake.deliver(mail(subject="Quote: 40 chairs", message_id="<q1@client.example>", References="<r0@x>"))
    result = await call(config, "create_draft", thread_id=first, in_reply_to="<q1@client.example>", body="Hi Dana,\n")
    assert not result.is_error, result.content
    (draft,) = fake.box.drafts
    assert draft["message"]["threadId"] == first
    msg = sent_message(draft["message"]["raw"])
    assert msg["In-Reply-To"] == "<q1@client.example>" and msg["References"] == "<r0@x> <q1@client.example>"
    assert msg["Subject"] == "Re: Quote: 40 chairs" and msg["To"] == "dana@client.example"
    assert result.structured_content["message_id"] == msg["Message-ID"]
    assert fake.box.sent == []  # a draft sends nothing


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ({"thread_id": "deadbeef"}, "no thread deadbeef"),
        ({"in_reply_to": "<other@client.example>"}, "is not a message of thread"),
        ({"subject": "A different subject"}, "is not the thread's"),
        ({"subject": "Re: Quote\r\nBcc: evil@x.example"}, "line break"),
        ({"to": ["Evil <evil@x.example>, second@x.example"]}, "several addresses"),
        ({"thread_id": "../../etc"}, "not a Gmail thread id"),
    ],
)
async def test_a_reply_that_would_start_a_new_conversation_is_refused(
    config: GmailConfig, fake: FakeGmail, args: dict[str, Any], why: str
) -> None:
    thread = fake.deliver(mail(subject="Quote", message_id="<q1@client.example>"))
    full = {"thread_id": thread, "in_reply_to": "<q1@client.example>", "body": "Hi\n", **args}
    for tool in ("check_send_reply", "send_reply", "create_draft"):
        result = await call(config, tool, **({"idempotency_key": "p:1:h"} if tool == "send_reply" else {}), **full)
        assert result.is_error and why in result.content[0].text, (tool, result.content)
    assert fake.box.sent == [] and fake.box.drafts == []


async def test_a_retried_send_is_found_in_sent_not_sent_twice(config: GmailConfig, fake: FakeGmail) -> None:
    thread = fake.deliver(mail(subject="Re: Quote", message_id="<q1@client.example>"))
    args = {"thread_id": thread, "in_reply_to": "<q1@client.example>", "body": "Done.\n", "idempotency_key": "P1:1:ab"}
    first = await call(config, "send_reply", **args)
    assert not first.is_error, first.content
    assert first.structured_content["already_sent"] is False
    (sent,) = fake.box.sent
    assert sent.thread_id == thread
    parsed = BytesParser(policy=default_policy).parsebytes(sent.raw)
    assert parsed["Subject"] == "Re: Quote" and parsed["Message-ID"] == gmail_server.key_message_id("P1:1:ab")
    # The engine did not learn the outcome (a timeout) and the step runs again: found, not sent again.
    again = await call(config, "send_reply", **args)
    assert again.structured_content["already_sent"] is True and again.structured_content["gmail_id"] == sent.id
    assert len(fake.box.sent) == 1
    no_key = await call(config, "send_reply", **{k: v for k, v in args.items() if k != "idempotency_key"})
    assert no_key.is_error and "idempotency_key" in no_key.content[0].text


async def test_labels_and_archive(config: GmailConfig, fake: FakeGmail) -> None:
    gid = fake.deliver(mail())
    assert not (await call(config, "add_label", message=gid, label="Clients/Acme")).is_error
    assert not (await call(config, "add_label", message=gid, label="Clients/Acme")).is_error  # idempotent
    assert list(fake.box.labels.values()) == ["Clients/Acme"]
    assert not (await call(config, "archive", message=gid)).is_error
    assert "INBOX" not in fake.labels_of(gid) and len(fake.labels_of(gid) - {"UNREAD"}) == 1
    missing = await call(config, "archive", message="0123abcd")
    assert missing.is_error and "404" in missing.content[0].text


async def test_system_labels_are_refused(config: GmailConfig, fake: FakeGmail) -> None:
    gid = fake.deliver(mail())
    for label in ("TRASH", "SPAM", "inbox", "CATEGORY_PROMOTIONS"):
        result = await call(config, "add_label", message=gid, label=label)
        assert result.is_error and "system labels" in result.content[0].text, label
    assert fake.labels_of(gid) == {"INBOX", "UNREAD"}


async def test_a_reply_to_elsewhere_must_be_named_in_the_plan(config: GmailConfig, fake: FakeGmail) -> None:
    """Where a reply goes is shown in the plan: a Reply-To other than the sender is never used silently."""
    thread = fake.deliver(mail(subject="Q", message_id="<q1@client.example>", Reply_To="collector@evil.example"))
    args = {"thread_id": thread, "in_reply_to": "<q1@client.example>", "body": "Hi\n"}
    refused = await call(config, "create_draft", **args)
    assert refused.is_error and "collector@evil.example" in refused.content[0].text
    named = await call(config, "create_draft", **args, to=["collector@evil.example"])
    assert not named.is_error
    assert sent_message(fake.box.drafts[0]["message"]["raw"])["To"] == "collector@evil.example"


async def test_without_a_token_the_tools_say_how_to_fix_it(tmp_path: Path, fake: FakeGmail) -> None:
    config = GmailConfig(token_file=tmp_path / "none.json", api_endpoint=fake.url)
    result = await call(config, "archive", message="abc")
    assert result.is_error and "vault gmail auth" in result.content[0].text


async def test_check_tools_are_hidden_from_planners_and_run_before_steps(
    vault: Path, tmp_path: Path, fake: FakeGmail
) -> None:
    """Through the real pool (the server as a stdio subprocess): the catalog planners see has no check
    tools; a dry-run of a reply in the wrong thread fails in the check, before anything runs."""
    from ai_employee.config import Config
    from ai_employee.events import EventBus
    from ai_employee.executor.limits import ToolRules
    from ai_employee.executor.mcp_pool import McpPool
    from ai_employee.executor.run import PlanRunner
    from ai_employee.ledger import Ledger
    from ai_employee.vault.layout import Vault
    from ai_employee.vault.plans import Step

    token = tmp_path / "config" / "gmail-token.json"
    token_file(token, fake)
    config = Config.model_validate(
        {
            "gmail": {
                "enabled": True,
                "token_file": str(token),
                "api_endpoint": fake.url,
                "token_uri": fake.url + "token",
            }
        }
    )
    pool = McpPool.for_engine(config, Vault(vault))
    ledger = Ledger(tmp_path / "ledger.sqlite")
    try:
        names = [name for name, _ in await pool.catalog()]
        assert "gmail.create_draft" in names and not any(".check_" in name for name in names)
        thread = fake.deliver(mail(subject="Quote", message_id="<q1@client.example>"))
        runner = PlanRunner(ledger, EventBus(), pool, ToolRules(config.engine_servers()))
        wrong = Step(tool="gmail.create_draft", args={"thread_id": thread, "in_reply_to": "<nope@x>", "body": "Hi"})
        result = await runner.run("P1", [wrong], dry_run=True, should_stop=lambda: False)
        assert result.status == "failed" and "new conversation" in result.detail
        right = Step(
            tool="gmail.create_draft", args={"thread_id": thread, "in_reply_to": "<q1@client.example>", "body": "Hi"}
        )
        result = await runner.run("P2", [right], dry_run=True, should_stop=lambda: False)
        assert result.status == "done" and fake.box.drafts == []  # checked, and nothing created
        result = await runner.run("P3", [right], dry_run=False, should_stop=lambda: False)
        assert result.status == "done" and len(fake.box.drafts) == 1
        draft = sent_message(fake.box.drafts[0]["message"]["raw"])
        assert draft["Message-ID"] == gmail_server.key_message_id(f"P3:1:{right.args_hash()}")
    finally:
        await pool.aclose()
        ledger.close()


@pytest.mark.integration
def test_vault_gmail_auth_runs_the_installed_app_flow(tmp_path: Path, fake: FakeGmail) -> None:
    """`vault gmail auth --no-browser` against a fake consent page and token endpoint: the URL is printed,
    the browser's redirect lands on the local port, the token is saved outside the vault, mode 0600."""
    import json
    import stat
    import subprocess
    import sys
    import urllib.request

    from ai_employee.vault.layout import init_vault
    from tests.conftest import engine_env, run_cli
    from tests.fake_gmail import CLIENT_ID, CLIENT_SECRET

    init_vault(tmp_path / "vault")
    secret = tmp_path / "client.json"
    installed = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "auth_uri": fake.url + "auth",
        "token_uri": fake.url + "token",
        "redirect_uris": ["http://localhost"],
    }
    secret.write_text(json.dumps({"installed": installed}))
    token = tmp_path / "home" / "gmail-token.json"
    config = tmp_path / "config.yaml"
    gmail = {"client_secret_file": str(secret), "token_file": str(token), "api_endpoint": fake.url}
    config.write_text(json.dumps({"gmail": gmail}))
    env = engine_env({"OAUTHLIB_INSECURE_TRANSPORT": "1"})  # the fake speaks http; Google speaks https
    args = [sys.executable, "-m", "ai_employee", "--vault", str(tmp_path / "vault"), "--config", str(config)]
    proc = subprocess.Popen([*args, "gmail", "auth", "--no-browser"], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    url = ""
    while not url.startswith("http"):
        url = proc.stdout.readline().strip()
        assert url or proc.poll() is None, "no URL printed"
    assert "gmail.modify" in url and "access_type=offline" in url
    with urllib.request.urlopen(url, timeout=10) as page:  # the browser: consent, then the redirect
        assert b"AI Employee may now read your Gmail" in page.read()
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "Gmail access granted for owner@example.com" in out
    saved = json.loads(token.read_text())
    assert saved["refresh_token"] and saved["account"] == "owner@example.com"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    status = run_cli("--vault", str(tmp_path / "vault"), "--config", str(config), "gmail", "status", "--check", env=env)
    assert "Account: owner@example.com" in status.stdout and "Check: ok" in status.stdout, status.stdout + status.stderr
    # A token file inside the vault is refused before anything is asked of Google.
    inside = {**gmail, "token_file": str(tmp_path / "vault" / "token.json")}
    config.write_text(json.dumps({"gmail": inside}))
    refused = run_cli("--vault", str(tmp_path / "vault"), "--config", str(config), "gmail", "auth", env=env)
    assert refused.returncode == 1 and "inside the vault" in refused.stderr
