"""How long the web page's waiting list takes to render, server side, on a big vault: 1,000 plans
waiting in `Plans/` and 100,000 notes in `Done/` (target: at most 100 ms), next to a floor measured in
the same run: the same app answering a tiny static file (the token check, the routing, the headers).

Requests go through the real ASGI app (the Guard, Starlette, the templates) in-process, so what is
measured is the server's time, not a network's. The first render reads every plan note; later ones
re-read only notes that changed (the figure that matters while the page is open), both are printed.

    python benchmarks/web.py [--plans 1000] [--done 100000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def make_vault(root: Path, plans: int, done: int) -> Any:
    from ai_employee.vault.layout import Vault, init_vault
    from ai_employee.vault.plans import PlanNote, Step, render_plan

    init_vault(root)
    for n in range(plans):
        step = Step(
            tool="email.send_email",
            args={"to": [f"client{n}@example.org"], "subject": f"Re: Quote {n}", "body": "Hello,\n\nThanks!\n" * 5},
            why="Acknowledge the request",
        )
        note = PlanNote(
            id=f"P{n:06d}", action_id=f"A{n:06d}", title=f"Reply to client {n}", summary="A short reply.",
            steps=[step], criticality="medium", reasons=["Step 1 sends an email in your name."], planner="template",
            planner_note="Written by the template planner.", created=f"2026-11-{1 + n % 28:02d}T09:00:00+00:00",
            status="pending_approval", source_links=[],
        )  # fmt: skip
        (root / "Plans" / f"2026-11-01 Reply to client {n}.md").write_text(render_plan(note), "utf-8")
    done_dir = root / "Done"
    for n in range(done):
        (done_dir / f"2026-10-01 Done {n}.md").write_text("---\nid: D\nstatus: done\n---\n# Done\n", "utf-8")
    record_history(Vault(root), done)
    return Vault(root)


def record_history(vault: Any, runs: int) -> None:
    """A run and a decision recorded for every note in Done/, as the engine would have (for History)."""
    import json

    from ai_employee.ledger import Ledger

    ledger = Ledger(vault.ledger_path)
    try:
        with ledger.transaction() as db:
            db.executemany(
                "INSERT INTO events (ts, name, payload) VALUES (?, 'plan.execution_completed', ?)",
                (
                    (f"2026-10-01T09:00:{n % 60:02d}.000+00:00", json.dumps({"plan_id": f"D{n}", "title": f"Done {n}"}))
                    for n in range(runs)
                ),
            )
            db.executemany(
                "INSERT INTO decisions (ts, plan_id, decision, channel, actor) VALUES (?, ?, 'approve', 'file', 'me')",
                ((f"2026-10-01T08:00:{n % 60:02d}.000+00:00", f"D{n}") for n in range(runs)),
            )
    finally:
        ledger.close()


async def get(app: Any, path: str, token: str) -> tuple[int, int, float]:
    """One GET through the ASGI app: status, body size, seconds."""
    sent: list[dict[str, Any]] = []
    path, _, query = path.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8765"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8765),
    }  # fmt: skip

    asked = []

    async def receive() -> dict[str, Any]:
        asked.append(1)
        if len(asked) == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)  # the client stays connected until the answer is sent
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    start = time.perf_counter()
    await app(scope, receive, send)
    took = time.perf_counter() - start
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    size = sum(len(m.get("body", b"")) for m in sent if m["type"] == "http.response.body")
    return status, size, took


async def main_async(args: argparse.Namespace) -> None:
    from ai_employee.config import Config
    from ai_employee.web.app import create_app
    from ai_employee.web.security import Access

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        vault = make_vault(Path(tmp) / "vault", args.plans, args.done)
        made = time.perf_counter() - started
        print(f"vault: {args.plans} plans waiting, {args.done} notes in Done/ (made in {made:.1f} s)")
        access = Access.make("127.0.0.1", [])
        app = create_app(vault, Config(), access)
        status, size, first = await get(app, "/waiting/list", access.token)
        assert status == 200, status
        warm, floor = [], []
        for _ in range(args.rounds):
            floor.append((await get(app, "/static/app.css", access.token))[2])
            warm.append((await get(app, "/waiting/list", access.token))[2])
        med, fl = statistics.median(warm), statistics.median(floor)
        print(f"first render (reads every note): {first * 1000:.0f} ms, {size // 1024} KiB of HTML")
        print(f"waiting list, median of {args.rounds}: {med * 1000:.1f} ms (target <= 100 ms)")
        print(f"floor (a static file through the same app): {fl * 1000:.1f} ms; list / floor = {med / fl:.1f}x")
        from ai_employee.pipeline.lookup import resolve_plan

        finding = []
        for _ in range(4):  # the first reads every note's id; later ones only what changed
            started = time.perf_counter()
            resolve_plan(vault, "P000500")
            finding.append(time.perf_counter() - started)
        started = time.perf_counter()
        listed = sum(1 for _ in os.scandir(vault.folder("Done")))
        scan = time.perf_counter() - started
        print(
            f"finding a plan to decide on (any decision): first {finding[0] * 1000:.0f} ms, then"
            f" {statistics.median(finding[1:]) * 1000:.0f} ms; floor: listing Done/ ({listed:,}) {scan * 1000:.0f} ms"
        )
        for path in ("/history", "/history?q=Done%2099999", "/history?q=nothing%20matches"):
            answers = [await get(app, path, access.token) for _ in range(5)]
            assert all(a[0] == 200 for a in answers), answers
            took = statistics.median(a[2] for a in answers) * 1000
            print(f"{path} over {args.done:,} runs and decisions: {took:.1f} ms, {answers[0][1] // 1024} KiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--plans", type=int, default=1000)
    parser.add_argument("--done", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
