"""MCP server "gmail": replies in the original thread (as a draft, or sent), labels, archive.

Serve it over stdio with `python -m ai_employee.mcp_servers.gmail_server`. It uses the token `vault
gmail auth` stored (`GMAIL_TOKEN_FILE`; `GMAIL_API_ENDPOINT` and `GMAIL_TOKEN_URI` point it elsewhere).

A reply is checked before anything is created or sent: the thread must exist, the message answered
(`in_reply_to`, its Message-ID) must be in it, and the subject must be the thread's (`Re: ...`); the
reply carries `threadId`, `In-Reply-To` and `References`. A reply that would arrive as a new conversation
is an error, not a surprise. `check_reply` runs the same checks and creates nothing: the executor calls
it in dry-run and before a live step.

Every reply's Message-ID is derived from the step's idempotency key (which the executor passes). Before
sending, the mailbox is searched for it: a retried send after an unknown outcome finds the first one in
Sent and reports it instead of sending twice.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses
from pathlib import Path
from typing import Annotated, Any, TypedDict

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from ai_employee import __version__
from ai_employee.config_sections import GmailConfig
from ai_employee.errors import ConfigError
from ai_employee.gmail.auth import NotAuthorized, check_outside, load_credentials, save_credentials
from ai_employee.gmail.client import GmailClient, GmailError, NotFound
from ai_employee.mcp_servers import email_server
from ai_employee.mcp_servers.email_server import MAX_BODY_BYTES, MAX_RECIPIENTS, check_header_value, parse_address

log = logging.getLogger(__name__)
_GMAIL_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_RE = re.compile(r"^\s*((re|aw|sv|antw|fwd?)\s*:\s*)+", re.IGNORECASE)
KEY_DOMAIN = "ai-employee.invalid"  # the Message-ID's right side when no sender domain is known

ThreadId = Annotated[str, Field(description="Gmail's id of the thread (the action's `email.thread_id`).")]
InReplyTo = Annotated[
    str, Field(description="Message-ID of the message answered, e.g. '<abc@mail.example.com>' (`email.message_id`).")
]
Body = Annotated[str, Field(description="Plain-text body of the reply, at most 1 MiB once UTF-8 encoded.")]
To = Annotated[
    list[str] | None,
    Field(description="Recipients; default: the Reply-To (or From) of the message answered."),
]
Cc = Annotated[Sequence[str], Field(description="Carbon-copy addresses, one per item.")]
Subject = Annotated[str | None, Field(description="Default and only accepted form: 'Re: ' and the thread's subject.")]
IdempotencyKey = Annotated[str | None, Field(description="Filled in by the engine (the step's key); leave it out.")]
MessageRef = Annotated[str, Field(description="Gmail's id of a message (the action's `email.gmail_id`).")]
Label = Annotated[str, Field(description="A label name, e.g. 'Clients/Acme' (created if missing).")]


class Checked(TypedDict):
    """What a reply would be: where it goes and how it threads."""

    thread_id: str
    to: list[str]
    cc: list[str]
    subject: str
    in_reply_to: str
    references: str


class Replied(TypedDict):
    thread_id: str
    message_id: str
    gmail_id: str
    already_sent: bool


class DraftCreated(TypedDict):
    thread_id: str
    message_id: str
    draft_id: str


class Labelled(TypedDict):
    gmail_id: str
    labels_added: list[str]
    labels_removed: list[str]


def normal_subject(subject: str) -> str:
    return " ".join(_RE.sub("", subject).split()).casefold()


def key_message_id(key: str, domain: str = KEY_DOMAIN) -> str:
    """The Message-ID of the reply a step sends: the same for every attempt of that step."""
    return email_server.key_message_id(key, domain, "reply")


def _headers(message: Mapping[str, Any]) -> dict[str, str]:
    payload = message.get("payload") or {}
    return {str(h.get("name", "")).lower(): str(h.get("value", "")) for h in payload.get("headers") or []}


@dataclass(frozen=True)
class Reply:
    """A reply's fields, checked against its thread."""

    thread_id: str
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    subject: str
    in_reply_to: str
    references: str
    body: str

    def message(self, message_id: str) -> EmailMessage:
        msg = EmailMessage()
        msg["To"] = ", ".join(formataddr(pair) for pair in self.to)
        if self.cc:
            msg["Cc"] = ", ".join(formataddr(pair) for pair in self.cc)
        msg["Subject"] = self.subject
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = message_id
        msg["In-Reply-To"] = self.in_reply_to
        msg["References"] = self.references
        msg.set_content(self.body)
        return msg

    def summary(self) -> Checked:
        return {
            "thread_id": self.thread_id,
            "to": [formataddr(p) for p in self.to],
            "cc": [formataddr(p) for p in self.cc],
            "subject": self.subject,
            "in_reply_to": self.in_reply_to,
            "references": self.references,
        }


class Gmail:
    """The tools' shared work: the client (made on first use), and the thread checks."""

    def __init__(self, config: GmailConfig, client: GmailClient | None = None) -> None:
        self.config = config
        self._client = client
        self._saved: str | None = None

    @property
    def client(self) -> GmailClient:
        if self._client is None:
            try:
                creds = load_credentials(self.config)
            except NotAuthorized as exc:
                raise ToolError(f"cannot reach Gmail: {exc}") from None
            self._saved = creds.token
            self._client = GmailClient(creds, self.config.api_endpoint)
        return self._client

    def call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except GmailError as exc:
            raise ToolError(f"{what}: {exc}") from None
        finally:
            self._keep_token()

    def _keep_token(self) -> None:
        """Keep a refreshed token, and close the connections (a call is a few requests, minutes apart)."""
        if self._client is not None:
            self._client.close()
        creds = self._client.creds if self._client is not None else None
        if creds is not None and creds.token and creds.token != self._saved:
            try:
                save_credentials(creds, self.config.token_path())
                self._saved = creds.token
            except OSError as exc:
                log.warning("token not saved: %s", exc.strerror or exc)

    def check(
        self, thread_id: str, in_reply_to: str, body: str, to: list[str] | None, cc: Sequence[str], subject: str | None
    ) -> Reply:
        """The reply, if it would land in the thread; ToolError saying why not otherwise."""
        if not _GMAIL_ID.fullmatch(thread_id):
            raise ToolError(f"refused: thread_id {thread_id[:80]!r} is not a Gmail thread id")
        wanted = check_header_value(in_reply_to, "in_reply_to").strip()
        wanted = wanted if wanted.startswith("<") else f"<{wanted}>"
        if not _MESSAGE_ID.fullmatch(wanted):
            raise ToolError(f"refused: in_reply_to {wanted!r} is not a Message-ID like '<abc@mail.example.com>'")
        if len(body.encode("utf-8")) > MAX_BODY_BYTES:
            raise ToolError(f"refused: the body is larger than {MAX_BODY_BYTES} bytes")
        try:
            thread = self.client.thread(thread_id)
        except NotFound:
            raise ToolError(
                f"refused: Gmail has no thread {thread_id}: the reply would arrive as a new conversation"
            ) from None
        except GmailError as exc:
            raise ToolError(f"could not read the thread: {exc}") from None
        finally:
            self._keep_token()
        original = next(
            (h for h in map(_headers, thread.get("messages") or []) if h.get("message-id", "").strip() == wanted), None
        )
        if original is None:
            raise ToolError(
                f"refused: {wanted} is not a message of thread {thread_id}: the reply would arrive as a new"
                " conversation"
            )
        if subject is not None:
            check_header_value(subject, "the subject")
        theirs = original.get("subject", "")
        expected = theirs if _RE.match(theirs) else f"Re: {theirs}".rstrip()
        if subject is not None and subject.strip() and normal_subject(subject) != normal_subject(theirs):
            raise ToolError(
                f"refused: subject {subject!r} is not the thread's ({expected!r}): the reply would arrive as a"
                " new conversation in most mail clients; leave `subject` out"
            )
        chosen = subject.strip() if subject and subject.strip() else expected
        check_header_value(chosen, "the subject")
        senders = {a.lower() for _, a in getaddresses([original.get("from", "")]) if a}
        reply_to = [a for _, a in getaddresses([original.get("reply-to", "")]) if a]
        if not to and reply_to and {a.lower() for a in reply_to} != senders:
            # The sender chose where answers go: the owner must see that address in the plan, not find out.
            raise ToolError(
                f"refused: the message asks for replies to {', '.join(reply_to)}, not to its sender; give `to`"
                " explicitly, so that the plan shows who the reply goes to"
            )
        to_list = to if to else sorted(senders)
        if not to_list:
            raise ToolError("refused: there is no recipient (the message answered has no From or Reply-To)")
        if len(to_list) + len(cc) > MAX_RECIPIENTS:
            raise ToolError(f"refused: more than {MAX_RECIPIENTS} recipients")
        references = " ".join([*original.get("references", "").split(), wanted][-20:])
        return Reply(
            thread_id=thread_id,
            to=[parse_address(a, "a `to` address") for a in to_list],
            cc=[parse_address(a, "a `cc` address") for a in cc],
            subject=chosen,
            in_reply_to=wanted,
            references=check_header_value(references, "References"),
            body=body,
        )


def build_server(config: GmailConfig, client: GmailClient | None = None) -> MCPServer:
    """The "gmail" MCP server, with the token `config` names (or a ready `client`, in tests)."""
    gmail = Gmail(config, client)

    def check_reply(
        thread_id: ThreadId,
        in_reply_to: InReplyTo,
        body: Body = "",
        to: To = None,
        cc: Cc = (),
        subject: Subject = None,
    ) -> Checked:
        """Check that a reply would land in its thread (for dry-run); creates and sends nothing.

        Returns the recipients, subject and threading headers the reply would have.
        """
        return gmail.check(thread_id, in_reply_to, body, to, cc, subject).summary()

    def create_draft(
        thread_id: ThreadId,
        in_reply_to: InReplyTo,
        body: Body,
        to: To = None,
        cc: Cc = (),
        subject: Subject = None,
        idempotency_key: IdempotencyKey = None,
    ) -> DraftCreated:
        """Save a reply as a Gmail draft in the original thread, for you to review and send; sends nothing.

        The recipients default to the sender of the message answered, the subject to 'Re: ' and the
        thread's subject.
        """
        reply = gmail.check(thread_id, in_reply_to, body, to, cc, subject)
        message_id = key_message_id(idempotency_key) if idempotency_key else key_message_id(os.urandom(16).hex())
        raw = reply.message(message_id).as_bytes()
        made = gmail.call("could not create the draft", gmail.client.create_draft, raw, thread_id)
        log.info("draft created thread=%s", thread_id)
        return {"thread_id": thread_id, "message_id": message_id, "draft_id": str(made.get("id", ""))}

    def send_reply(
        thread_id: ThreadId,
        in_reply_to: InReplyTo,
        body: Body,
        to: To = None,
        cc: Cc = (),
        subject: Subject = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Replied:
        """Send a reply in the original thread from your Gmail account, now; it cannot be recalled.

        The recipients default to the sender of the message answered, the subject to 'Re: ' and the
        thread's subject. A retried step finds its earlier send in the mailbox and does not send again.
        """
        reply = gmail.check(thread_id, in_reply_to, body, to, cc, subject)
        if not idempotency_key:
            raise ToolError("refused: send_reply needs the engine's idempotency_key (run it through the engine)")
        message_id = key_message_id(idempotency_key)
        earlier = gmail.call("could not search for an earlier send", gmail.client.find_sent, message_id)
        if earlier:
            log.info("reply already sent thread=%s", thread_id)
            return {"thread_id": thread_id, "message_id": message_id, "gmail_id": earlier, "already_sent": True}
        sent = gmail.call("could not send", gmail.client.send, reply.message(message_id).as_bytes(), thread_id)
        log.info("reply sent thread=%s", thread_id)
        return {
            "thread_id": thread_id,
            "message_id": message_id,
            "gmail_id": str(sent.get("id", "")),
            "already_sent": False,
        }

    def add_label(message: MessageRef, label: Label) -> Labelled:
        """Add a label to a message in your mailbox (the label is created if it does not exist)."""
        name = check_header_value(label, "the label").strip()
        if not name or len(name) > 225:
            raise ToolError("refused: a label name must be 1 to 225 characters")
        label_id = gmail.call("could not find or create the label", gmail.client.label_id, name)
        return _modify(gmail, message, [label_id], [])

    def archive(message: MessageRef) -> Labelled:
        """Archive a message: take it out of your inbox (it stays in All Mail, and can be moved back)."""
        return _modify(gmail, message, [], ["INBOX"])

    server: MCPServer = MCPServer("gmail", version=__version__)
    # (tool, name, read only, idempotent, reaches people outside). The executor runs `check_<tool>`
    # before a step of `<tool>` (in dry-run too); planners are not shown the check tools.
    tools: list[tuple[Callable[..., Any], str, bool, bool, bool]] = [
        (check_reply, "check_create_draft", True, True, False),
        (check_reply, "check_send_reply", True, True, False),
        (create_draft, "create_draft", False, False, False),
        (send_reply, "send_reply", False, False, True),
        (add_label, "add_label", False, True, False),
        (archive, "archive", False, True, False),
    ]
    for tool, name, read_only, idempotent, open_world in tools:
        hints = ToolAnnotations(
            read_only_hint=read_only, destructive_hint=False, idempotent_hint=idempotent, open_world_hint=open_world
        )
        server.add_tool(tool, name=name, description=inspect.getdoc(tool), annotations=hints)
    return server


def _modify(gmail: Gmail, message: str, add: list[str], remove: list[str]) -> Labelled:
    if not _GMAIL_ID.fullmatch(message):
        raise ToolError(f"refused: {message[:80]!r} is not a Gmail message id")
    gmail.call("could not change the message", gmail.client.modify, [message], add, remove)
    return {"gmail_id": message, "labels_added": add, "labels_removed": remove}


def config_from_env(env: Mapping[str, str]) -> GmailConfig:
    """The settings the engine passes (`GMAIL_*`); a token inside the vault (`AI_EMPLOYEE_VAULT`) is refused."""
    token = env.get("GMAIL_TOKEN_FILE")
    config = GmailConfig(
        token_file=Path(token).expanduser() if token else None,
        api_endpoint=env.get("GMAIL_API_ENDPOINT") or None,
        token_uri=env.get("GMAIL_TOKEN_URI") or None,
    )
    vault = env.get("AI_EMPLOYEE_VAULT")
    check_outside(config.token_path(), Path(vault) if vault else None)
    return config


def main() -> None:
    """Serve the Gmail tools over stdio with the token named in the environment."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_env(os.environ)
    except (ConfigError, ValueError) as exc:
        sys.exit(f"gmail MCP server: {exc}")
    build_server(config).run()


if __name__ == "__main__":
    main()
