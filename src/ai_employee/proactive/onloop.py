"""The engine's event loop, as a service's worker thread reaches it. The scheduler and the monitors do
their work on worker threads (files, SQLite, subprocesses); what they need from the loop (the MCP pool's
sessions, the async Anthropic client) runs there, and the thread waits for the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class EngineLoop:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    def attach(self) -> None:
        """Called by a service on the loop, when it starts."""
        self.loop = asyncio.get_running_loop()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float) -> T:
        """Run `coroutine` on the engine's loop and wait for it (from a worker thread only: the loop's
        own thread would wait for itself). TimeoutError after `timeout_s`, the call cancelled."""
        loop = self.loop
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        if loop is None or loop.is_closed() or on_loop:
            coroutine.close()
            raise RuntimeError("the engine's loop is not reachable from here")
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result(timeout=timeout_s)
        except TimeoutError:
            future.cancel()
            raise
