"""Serving the page: on its own (`vault web`) or as one of the engine's services (`vault start --web`),
on loopback unless told otherwise, with a new token each start (published for `vault status`)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import structlog

from ai_employee.config import Config
from ai_employee.errors import UserError
from ai_employee.vault.layout import Vault
from ai_employee.web.security import Access, is_loopback, publish, withdraw

log = structlog.get_logger(__name__)


def check_bind(host: str, public: bool) -> str | None:
    """None for loopback; else the warning to print, or UserError without `--public`."""
    if is_loopback(host):
        return None
    if not public:
        raise UserError(
            f"--host {host} would open the page beyond this machine: add --public to mean it"
            " (and reach it through a tunnel you trust; the token is all that stands in the way)"
        )
    return (
        f"WARNING: the page listens on {host}, reachable from the network: anyone with the URL and token"
        " can approve plans. Prefer 127.0.0.1 and a tunnel (ssh -L, tailscale serve)."
    )


class _Embedded:
    """uvicorn's server without its signal handlers: the engine owns SIGINT and SIGTERM."""

    @staticmethod
    def make(config: Any) -> Any:
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        return Server(config)


class WebService:
    """The page as a service of the engine (health: listening)."""

    name = "web"

    def __init__(self, vault: Vault, config: Config, host: str, port: int) -> None:
        self.vault, self.config, self.host, self.port = vault, config, host, port
        self.server: Any = None
        self.url = ""

    def healthy(self) -> bool:
        return self.server is None or not self.server.should_exit

    async def run(self) -> None:
        server, sock, self.url = prepare(self.vault, self.config, self.host, self.port, embedded=True)
        self.server = server
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            # The engine stops (or restarts this service): a graceful shutdown, not a cancelled one, so
            # open live feeds end, requests in flight finish (up to uvicorn's grace) and the app's own
            # ledger connection is closed by its lifespan.
            _stop(server)
            with contextlib.suppress(Exception):
                await serving
            raise
        finally:
            _reset()
            server.should_exit = True
            withdraw(self.vault.root)
            sock.close()


def prepare(
    vault: Vault, config: Config, host: str, port: int, embedded: bool = False
) -> tuple[Any, socket.socket, str]:
    """The server, its socket (bound here, so port 0 gets a real port to print) and its URL with the token."""
    import uvicorn

    from ai_employee.web.app import create_app

    access = Access.make(host, config.web.allowed_hosts)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    url = f"http://{shown}:{bound}/?token={access.token}"
    app = create_app(vault, config, access)
    settings = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2, proxy_headers=False
    )
    server = _Embedded.make(settings) if embedded else uvicorn.Server(settings)
    publish(vault.root, url, access.token)
    log.info("web page listening", host=host, port=bound)
    return server, sock, url


def serve(vault: Vault, config: Config, host: str, port: int, announce: Any = print) -> None:
    """`vault web`: serve until Ctrl-C or SIGTERM, then stop gracefully and withdraw the published URL
    (uvicorn's own signal handling re-raises the signal when it is done, which would skip that)."""
    import signal

    server, sock, url = prepare(vault, config, host, port, embedded=True)
    announce(f"The desk in a browser: {url}")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stop, server)
        await server.serve(sockets=[sock])

    try:
        asyncio.run(main())
    finally:
        _reset()
        withdraw(vault.root)
        sock.close()


def _stop(server: Any) -> None:
    """A graceful stop: uvicorn finishes what is in flight; open live feeds (sse-starlette) end."""
    from sse_starlette.sse import AppStatus

    server.should_exit = AppStatus.should_exit = True


def _reset() -> None:
    from sse_starlette.sse import AppStatus

    AppStatus.should_exit = False  # a later server in this process (a restart) starts fresh
