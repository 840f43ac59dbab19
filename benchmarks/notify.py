"""Notification speed. Prints figures; asserts nothing.

1. What the notifier adds to the bus's publishing path: publishing events with the notifier
   subscribed (and its channel hanging) beside the same bus without it (the floor). It only sets a flag,
   so the two should be the same.
2. Event -> delivered to a local HTTP endpoint (Apprise `json://`), one event at a time, through the
   notifier's cycle (route, render, claim durably, send on a worker thread, settle), beside Apprise
   sending the same message directly (the floor).

Usage: python benchmarks/notify.py [--events 2000] [--sends 100]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.http_sink import start_sink

from ai_employee.config import Config
from ai_employee.events import EventBus, EventName, ServicePayload
from ai_employee.ledger import Ledger
from ai_employee.notify.channels import AppriseChannel
from ai_employee.notify.notifier import Notifier
from ai_employee.vault.layout import Vault, init_vault


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def publish_cost(n: int, root: Path, url: str) -> tuple[float, float]:
    """Seconds per publish, without and with the notifier subscribed (its channel hangs: no matter)."""
    vault = Vault(root)
    config = Config.model_validate({"notify": {"channels": {"hook": url}}})
    results = []
    for with_notifier in (False, True):
        bus = EventBus()
        if with_notifier:
            Notifier(vault, config.notify, bus, {"hook": AppriseChannel("hook", [url], str)})
        start = time.perf_counter()
        for i in range(n):
            bus.publish(EventName.SERVICE_ERROR, ServicePayload("x", str(i)))
        results.append((time.perf_counter() - start) / n)
    return results[0], results[1]


async def delivery(n: int, root: Path) -> tuple[list[float], list[float]]:
    sink = start_sink()
    try:
        vault = Vault(root)
        config = Config.model_validate({"notify": {"channels": {"hook": sink.url()}, "min_interval_s": 0}})
        ledger = Ledger(vault.ledger_path)
        bus = EventBus()
        bus.subscribe(ledger.record_event)
        channel = AppriseChannel("hook", [sink.url()], str)
        notifier = Notifier(vault, config.notify, bus, {"hook": channel}, lambda: datetime.now(UTC))
        through, direct = [], []
        for i in range(n):
            start = time.perf_counter()
            bus.publish(EventName.SERVICE_ERROR, ServicePayload("svc", f"failure {i}"))  # HIGH: never held
            await notifier.cycle()
            through.append(time.perf_counter() - start)
            start = time.perf_counter()
            channel.apprise.notify(body=f"failure {i}", title="The svc service failed")
            direct.append(time.perf_counter() - start)
        assert len(sink.received) == 2 * n, len(sink.received)
        notifier.close()
        ledger.close()
        return through, direct
    finally:
        sink.stop()


def main() -> None:
    import logging

    logging.disable(logging.INFO)  # the per-message log lines are not the figures
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--sends", type=int, default=100)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "vault"
        init_vault(root)
        sink = start_sink()
        sink.script = ["hang"] * 5
        try:
            bare, subscribed = publish_cost(options.events, root, sink.url())
        finally:
            sink.stop()
        per = f"bare bus {bare * 1e6:.1f} µs/event; with the notifier {subscribed * 1e6:.1f} µs/event"
        print(f"publish, n={options.events}: {per}")
        through, direct = asyncio.run(delivery(options.sends, root))
        for name, values in (("through the notifier", through), ("Apprise directly (floor)", direct)):
            took = f"p50 {pct(values, 50) * 1e3:.1f} ms, p99 {pct(values, 99) * 1e3:.1f} ms"
            print(f"event -> delivered, n={options.sends}, {name}: {took}")
        added = [t - d for t, d in zip(through, direct, strict=True)]
        print(f"the notifier adds: p50 {pct(added, 50) * 1e3:.1f} ms, p99 {pct(added, 99) * 1e3:.1f} ms per message")


if __name__ == "__main__":
    main()
