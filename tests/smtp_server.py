"""A real SMTP server for tests (aiosmtpd on 127.0.0.1) that keeps what it receives, and can be told to
answer 4xx or 5xx, drop the connection or hang, one DATA at a time (`script`)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Collector:
    """An aiosmtpd handler that keeps each message it accepts and refuses the addresses in `refuse`."""

    def __init__(self, refuse: frozenset[str] = frozenset(), delay_s: float = 0.0) -> None:
        self.refuse = refuse
        self.delay_s = delay_s  # how long DATA takes: a slow server, to act while a send is in flight
        self.receiving = threading.Event()  # set when DATA starts
        self.envelopes: list[Envelope] = []
        # What the next DATA commands do, one each, from the front: ok | 4xx | 5xx | drop | hang.
        # `drop` and `hang` receive the message (it counts as delivered) and then never answer.
        self.script: list[str] = []
        self.data_commands = 0

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.receiving.set()
        self.data_commands += 1
        move = self.script.pop(0) if self.script else "ok"
        if move == "4xx":
            return "451 4.3.0 temporary local problem, try again later"
        if move == "5xx":
            return "554 5.7.1 message refused by policy"
        await asyncio.sleep(self.delay_s)
        self.envelopes.append(envelope)
        if move == "drop":
            assert server.transport is not None
            server.transport.abort()
        elif move == "hang":
            await asyncio.sleep(3600)
        return "250 OK"

    def messages(self) -> list[EmailMessage]:
        # The wire format ends lines with CRLF; the parser keeps them in the body unless told otherwise.
        raw = [(env.original_content or b"").replace(b"\r\n", b"\n") for env in self.envelopes]
        return [email.message_from_bytes(data, policy=email.policy.default) for data in raw]


def start_smtp(handler: Collector, port: int | None = None, **smtp_kwargs: Any) -> Controller:
    # Controller cannot take port 0 (it connects to its own port to start), hence free_port().
    controller = Controller(handler, hostname="127.0.0.1", port=port or free_port(), **smtp_kwargs)
    controller.start()
    return controller
