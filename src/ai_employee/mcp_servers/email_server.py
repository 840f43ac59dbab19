"""MCP server "email": sends one email over SMTP, or drafts one as an `.eml` file in the vault's Drafts/.

Serve it over stdio with `python -m ai_employee.mcp_servers.email_server`; settings come from the
environment (`EmailSettings.from_env`). Recipients and subjects can be shaped by hostile email content,
so a CR or LF in any header value is REFUSED rather than stripped: a smuggled header line fails the
call loudly instead of being quietly sent as part of the subject.
"""

from __future__ import annotations

import base64
import email.policy
import hashlib
import inspect
import ipaddress
import logging
import os
import re
import smtplib
import ssl
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses, make_msgid, parseaddr
from pathlib import Path
from typing import Annotated, Any, TypedDict

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from ai_employee import __version__
from ai_employee.errors import ConfigError
from ai_employee.vault import layout
from ai_employee.vault.fsops import FileOpError, create_file, os_reason

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_RECIPIENTS = 50
MAX_HEADER_CHARS = 998  # RFC 5322's limit on one line
# Drafts without a sender (SMTP_FROM unset) get Message-IDs in this reserved domain.
DRAFT_DOMAIN = "ai-employee.invalid"
# Room for the date and " (2)" suffixes within the 255-byte limit on a file name.
MAX_DRAFT_NAME_BYTES = 150
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
# Characters that Windows, Obsidian links or sync tools reject in a file name.
_UNSAFE_NAME_CHARS = re.compile(r'[\\/:*?"<>|#^\[\]]')

To = Annotated[
    list[str] | str,
    Field(description="Recipient address or list of addresses, one per item, e.g. 'Ann <ann@example.com>'."),
]
Cc = Annotated[Sequence[str], Field(description="Carbon-copy addresses, one per item.")]
Subject = Annotated[str, Field(description="Subject line: a single line, no line breaks.")]
Body = Annotated[str, Field(description="Plain-text body, at most 1 MiB once UTF-8 encoded.")]
IdempotencyKey = Annotated[str | None, Field(description="Filled in by the engine (the step's key); leave it out.")]
InReplyTo = Annotated[
    str | None,
    Field(description="Message-ID of the email answered, e.g. '<abc@mail.example.com>'; threads the reply."),
]


class SentEmail(TypedDict):
    """What send_email handed to the SMTP server."""

    message_id: str
    accepted: list[str]


class DraftWritten(TypedDict):
    """Where draft_email wrote the draft."""

    path: str
    message_id: str


def _env_bool(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "false", "0", "no"):
        return False
    if value in ("true", "1", "yes"):
        return True
    raise ConfigError(f"{name}={env[name]!r} is not a boolean: set it to true or false")


def _env_number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = -1
    if not 0 < value < float("inf"):  # also catches nan
        raise ConfigError(f"{name}={raw!r} is not a positive number: set it to e.g. {default:g}")
    return value


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class EmailSettings:
    """Where and how the email server sends, and the vault it writes drafts into."""

    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    # repr=False keeps the password out of logs and tracebacks that show the settings.
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = 30.0
    vault: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EmailSettings:
        """Read the settings from SMTP_* and AI_EMPLOYEE_VAULT; raise ConfigError naming a bad one."""
        port = _env_number(env, "SMTP_PORT", 25)
        if port != int(port) or port > 65535:
            raise ConfigError(f"SMTP_PORT={env['SMTP_PORT']!r} is not a port number (1-65535)")
        settings = cls(
            smtp_host=env.get("SMTP_HOST") or "localhost",
            smtp_port=int(port),
            smtp_username=env.get("SMTP_USERNAME") or None,
            smtp_password=env.get("SMTP_PASSWORD") or None,
            smtp_from=env.get("SMTP_FROM") or None,
            smtp_starttls=_env_bool(env, "SMTP_STARTTLS"),
            smtp_timeout_s=_env_number(env, "SMTP_TIMEOUT_S", 30.0),
            vault=Path(env["AI_EMPLOYEE_VAULT"]).expanduser() if env.get("AI_EMPLOYEE_VAULT") else None,
        )
        if settings.smtp_from:
            try:
                parse_address(settings.smtp_from, "SMTP_FROM")
            except ToolError as exc:
                raise ConfigError(f"SMTP_FROM is not a valid address: {exc}") from None
        if settings.smtp_username and not settings.smtp_starttls and not _is_loopback(settings.smtp_host):
            raise ConfigError(
                "SMTP_USERNAME is set but SMTP_STARTTLS is not, so the password would cross the network "
                "unencrypted: set SMTP_STARTTLS=true"
            )
        if settings.vault is not None and not settings.vault.is_dir():
            raise ConfigError(f"AI_EMPLOYEE_VAULT={settings.vault} is not a folder: set it to the vault")
        return settings


def check_header_value(value: str, what: str) -> str:
    """Refuse a header value that could smuggle in another header line; return it unchanged."""
    if "\r" in value or "\n" in value:
        raise ToolError(f"refused: {what} contains a line break (CR or LF); header values must be one line")
    if any(unicodedata.category(ch) == "Cc" and ch != "\t" for ch in value):
        raise ToolError(f"refused: {what} contains control characters")
    if len(value) > MAX_HEADER_CHARS:
        raise ToolError(f"refused: {what} is longer than {MAX_HEADER_CHARS} characters")
    return value


def parse_address(raw: str, what: str) -> tuple[str, str]:
    """Check one address from a tool call; return (display name, address)."""
    check_header_value(raw, what)
    name, addr = parseaddr(raw)
    local, at, domain = addr.partition("@")
    if not (local and at and domain) or "@" in domain or any(ch.isspace() for ch in addr):
        raise ToolError(f"refused: {what} {raw!r} is not an email address")
    # parseaddr keeps the first of several addresses silently; the rest must not vanish unnoticed.
    if len(getaddresses([raw])) > 1:
        raise ToolError(f"refused: {what} {raw!r} holds several addresses; give one address per list item")
    return name, addr


def _message_id(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = check_header_value(value, "in_reply_to").strip()
    value = value if value.startswith("<") else f"<{value}>"
    if not _MESSAGE_ID.fullmatch(value):
        raise ToolError(f"refused: in_reply_to {value!r} is not a Message-ID like '<abc@mail.example.com>'")
    return value


@dataclass(frozen=True)
class Outgoing:
    """An email's fields from a tool call, checked: what both send_email and draft_email work from."""

    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    subject: str
    body: str
    in_reply_to: str | None

    @classmethod
    def check(
        cls, to: list[str] | str, cc: Sequence[str], subject: str, body: str, in_reply_to: str | None
    ) -> Outgoing:
        """Validate a tool call's arguments; raise ToolError saying what is refused."""
        to_list = [to] if isinstance(to, str) else to
        if not to_list:
            raise ToolError("refused: there is no recipient in `to`")
        if len(to_list) + len(cc) > MAX_RECIPIENTS:
            raise ToolError(f"refused: more than {MAX_RECIPIENTS} recipients")
        if len(body.encode("utf-8")) > MAX_BODY_BYTES:
            raise ToolError(f"refused: the body is larger than {MAX_BODY_BYTES} bytes")
        return cls(
            to=[parse_address(addr, "a `to` address") for addr in to_list],
            cc=[parse_address(addr, "a `cc` address") for addr in cc],
            subject=check_header_value(subject, "the subject"),
            body=body,
            in_reply_to=_message_id(in_reply_to),
        )

    def message(self, sender: tuple[str, str], key: str | None = None) -> EmailMessage:
        """The email, with the Message-ID of the step's idempotency key (the same on every attempt, so a
        mail client or server can tell a repeat), or a fresh one without a key."""
        msg = EmailMessage()
        msg["From"] = formataddr(sender)
        msg["To"] = ", ".join(formataddr(pair) for pair in self.to)
        if self.cc:
            msg["Cc"] = ", ".join(formataddr(pair) for pair in self.cc)
        msg["Subject"] = self.subject
        msg["Date"] = formatdate(localtime=True)
        domain = sender[1].partition("@")[2] or DRAFT_DOMAIN
        # An explicit domain: the default looks up this host's FQDN, which can stall on DNS.
        msg["Message-ID"] = key_message_id(key, domain) if key else make_msgid(domain=domain)
        if self.in_reply_to:
            msg["In-Reply-To"] = self.in_reply_to
            msg["References"] = self.in_reply_to
        msg.set_content(self.body)
        return msg


def _redact(text: str, settings: EmailSettings) -> str:
    """Remove the password, plain or as the base64 AUTH blobs, from text a server sent back."""
    password = settings.smtp_password
    if not password:
        return text
    user = settings.smtp_username or ""
    for secret in (
        password,
        base64.b64encode(password.encode()).decode(),
        base64.b64encode(f"\0{user}\0{password}".encode()).decode(),
    ):
        text = text.replace(secret, "***")
    return text


def key_message_id(key: str, domain: str, kind: str = "mail") -> str:
    """The Message-ID of what a step sends or drafts: derived from its idempotency key, so every attempt
    of the step gives the same one."""
    return f"<{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}.{kind}@{domain}>"


def _smtp_failure(exc: Exception, in_data: bool) -> str:
    """What went wrong, worded so the engine can tell what to do (see executor/failures.py): a
    temporary failure is tried again, refused credentials pause the server, a refusal stops, and a
    connection lost while the message was handed over leaves its outcome unknown."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return f"refused: every recipient was refused ({', '.join(exc.recipients)})"
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error
        said = f"{exc.smtp_code} {reply.decode(errors='replace') if isinstance(reply, bytes) else reply}"
        if exc.smtp_code in (530, 534, 535):
            return f"authentication failed: {said}"
        if 400 <= exc.smtp_code < 500:
            return f"temporary failure: the SMTP server answered {said}; nothing was sent"
        return f"refused by the SMTP server: {said}"
    reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
    if in_data:
        return (
            f"outcome unknown: the connection was lost while the message was handed over ({reason});"
            " it may have been sent"
        )
    return f"temporary failure: could not reach the SMTP server ({reason}); nothing was sent"


class _Delivery(smtplib.SMTP):
    """smtplib's client, noting when the message itself (DATA) starts to go out: a failure before that
    sent nothing, one after it may have sent the message."""

    in_data = False

    def data(self, msg: Any) -> tuple[int, bytes]:
        self.in_data = True
        return super().data(msg)


def deliver(settings: EmailSettings, msg: EmailMessage, sender: str, recipients: list[str]) -> list[str]:
    """Hand `msg` to the SMTP server once; return the recipients it accepted. A failure is raised as a
    ToolError worded by `_smtp_failure`."""
    smtp = _Delivery(timeout=settings.smtp_timeout_s)
    try:
        try:
            smtp.connect(settings.smtp_host, settings.smtp_port)
            refused = _send(smtp, settings, msg, sender, recipients)
        except (smtplib.SMTPException, OSError) as exc:
            raise ToolError(f"could not send: {_redact(_smtp_failure(exc, smtp.in_data), settings)}") from None
    finally:
        smtp.close()
    return [r for r in recipients if r not in refused]


def _send(
    smtp: smtplib.SMTP, settings: EmailSettings, msg: EmailMessage, sender: str, recipients: list[str]
) -> dict[str, tuple[int, bytes]]:
    """On a connected session: encrypt, log in, send, quit; the recipients refused."""
    if settings.smtp_starttls:
        smtp.starttls(context=ssl.create_default_context())
    if settings.smtp_username:
        smtp.login(settings.smtp_username, settings.smtp_password or "")
    refused = smtp.send_message(msg, from_addr=sender, to_addrs=recipients)
    # Once the server accepted the data the message is out: a failing QUIT must not turn that into
    # an error, or a caller that retries would send it twice (smtplib's `with` raises there).
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        log.debug("QUIT failed after the message was accepted")
    return refused


def draft_file_name(subject: str, now: datetime) -> str:
    """A readable note name for a draft: the date, then the subject made safe for any filesystem."""
    cleaned = _UNSAFE_NAME_CHARS.sub(" ", subject)
    cleaned = "".join(ch for ch in cleaned if not unicodedata.category(ch).startswith("C"))
    cleaned = " ".join(cleaned.split())
    cleaned = cleaned.encode("utf-8")[:MAX_DRAFT_NAME_BYTES].decode("utf-8", "ignore").strip(" .")
    return f"{now:%Y-%m-%d} {cleaned or 'No subject'}.eml"


def _draft_with_id(drafts: Path, message_id: str) -> Path | None:
    """A draft already in `drafts` with this Message-ID (a step drafted again), if any."""
    wanted = f"message-id: {message_id}".lower().encode()
    for path in drafts.glob("*.eml"):
        try:
            with open(path, "rb") as fh:
                head = fh.read(8192).lower()
        except OSError:
            continue
        if wanted in head:
            return path
    return None


def build_server(settings: EmailSettings) -> MCPServer:
    """The "email" MCP server, sending with `settings`."""

    def send_email(
        to: To,
        subject: Subject,
        body: Body,
        cc: Cc = (),
        in_reply_to: InReplyTo = None,
        idempotency_key: IdempotencyKey = None,
    ) -> SentEmail:
        """Send one plain-text email over SMTP, now; it cannot be recalled.

        Header values (addresses, subject, in_reply_to) with a line break are refused. Returns the
        Message-ID and the recipients the SMTP server accepted.
        """
        outgoing = Outgoing.check(to, cc, subject, body, in_reply_to)
        if not settings.smtp_from:
            raise ToolError("refused: cannot send, SMTP_FROM is not set in the email server's environment")
        sender = parse_address(settings.smtp_from, "SMTP_FROM")
        msg = outgoing.message(sender, idempotency_key)
        # Each address once: a duplicate envelope recipient can receive two copies.
        recipients = list(dict.fromkeys(addr for _, addr in outgoing.to + outgoing.cc))
        accepted = deliver(settings, msg, sender[1], recipients)
        log.info(
            "email sent message_id=%s recipients=%d accepted=%d",
            msg["Message-ID"],
            len(recipients),
            len(accepted),
        )
        return {"message_id": str(msg["Message-ID"]), "accepted": accepted}

    def draft_email(
        to: To,
        subject: Subject,
        body: Body,
        cc: Cc = (),
        in_reply_to: InReplyTo = None,
        idempotency_key: IdempotencyKey = None,
    ) -> DraftWritten:
        """Save an email as a draft in the vault's Drafts/ folder, for you to review; sends nothing.

        The draft is an .eml file (marked unsent) that any mail client opens, ready to send. Drafting the
        same step again returns the draft already written. Returns its vault-relative path and Message-ID.
        """
        outgoing = Outgoing.check(to, cc, subject, body, in_reply_to)
        if settings.vault is None:
            raise ToolError("refused: cannot draft, AI_EMPLOYEE_VAULT is not set in the email server's environment")
        vault = layout.Vault(settings.vault.resolve())
        drafts = vault.folder(layout.DRAFTS)
        if drafts.is_symlink():
            raise ToolError(f"refused: {layout.DRAFTS}/ is a symbolic link")
        sender = parse_address(settings.smtp_from, "SMTP_FROM") if settings.smtp_from else ("", "")
        msg = outgoing.message(sender if sender[1] else ("", f"drafts@{DRAFT_DOMAIN}"), idempotency_key)
        if not sender[1]:
            del msg["From"]  # the mail client fills in the account it sends from
        msg["X-Unsent"] = "1"  # Outlook and Thunderbird open it as a draft to send
        message_id = str(msg["Message-ID"])
        try:
            drafts.mkdir(exist_ok=True)
            earlier = _draft_with_id(drafts, message_id) if idempotency_key else None
            if earlier is not None:
                return {"path": vault.relative(earlier), "message_id": message_id}
            now = datetime.now().astimezone()
            data = msg.as_bytes(policy=email.policy.SMTP)
            written = create_file(drafts, draft_file_name(subject, now), data, vault.tmp_dir)
        except (OSError, FileOpError) as exc:
            raise ToolError(f"could not write the draft into {layout.DRAFTS}/: {os_reason(exc)}") from None
        log.info("draft written path=%r", vault.relative(written))
        return {"path": vault.relative(written), "message_id": message_id}

    server: MCPServer = MCPServer("email", version=__version__)
    for tool, open_world in ((send_email, True), (draft_email, False)):
        # inspect.getdoc dedents: Python 3.11 keeps a docstring's indentation, which the SDK sends as is.
        hints = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=open_world)
        server.add_tool(tool, description=inspect.getdoc(tool), annotations=hints)
    return server


def main() -> None:
    """Serve the email tools over stdio with settings from the environment."""
    # Configured before the SDK's own basicConfig so that nothing can log to stdout, the transport.
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = EmailSettings.from_env(os.environ)
    except ConfigError as exc:
        sys.exit(f"email MCP server: {exc}")
    build_server(settings).run()


if __name__ == "__main__":
    main()
