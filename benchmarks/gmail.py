"""The Gmail source's speed against the local fake Gmail (no latency): prints figures; asserts nothing.

Measured:
  1. a first sync of N messages (default 2,000) into an empty vault, with batched requests: messages/s
     (target ≥ 200/s), beside three floors measured in the same run: fetching the same messages alone
     (the client library and HTTP), parsing them into notes alone, and writing the notes alone (the
     vault's atomic writes). The
     fake runs in a process of its own, as Google's servers are not in the engine's;
  2. with the real engine (`vault start`, dry-run, template planner): a message delivered at a random
     moment appears as a plan in Plans/ within how long, against one poll interval (target: ≤ interval
     + 1 s).

    python benchmarks/gmail.py [--messages 2000] [--poll-s 2] [--trials 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import engine_env  # noqa: E402
from tests.fake_gmail import token_file  # noqa: E402

from ai_employee.config import Config  # noqa: E402
from ai_employee.gmail.auth import load_credentials  # noqa: E402
from ai_employee.gmail.client import GmailClient  # noqa: E402
from ai_employee.gmail.message import render  # noqa: E402
from ai_employee.gmail.sync import GmailSource  # noqa: E402
from ai_employee.orchestrator import Engine  # noqa: E402
from ai_employee.vault.fsops import create_file, group_commit, in_parallel  # noqa: E402
from ai_employee.vault.layout import Vault, init_vault  # noqa: E402


class RemoteFake:
    """The fake Gmail in a process of its own (as Google is): its CPU does not compete with the engine's."""

    def __init__(self, messages: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_gmail", str(messages)], stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def deliver(self, **fields: str) -> str:
        request = urllib.request.Request(self.url + "_deliver", data=json.dumps(fields).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            return str(json.load(answer)["id"])

    def count(self, path: str) -> int:
        with urllib.request.urlopen(f"{self.url}_count?path={path}", timeout=10) as answer:
            return int(json.load(answer)["count"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def settings(tmp: Path, url: str, **extra: Any) -> dict[str, Any]:
    token = tmp / "config" / "gmail-token.json"
    token_file(token, SimpleNamespace(url=url))
    return {"enabled": True, "token_file": str(token), "api_endpoint": url, "token_uri": url + "token", **extra}


def first_sync(count: int) -> None:
    fake = RemoteFake(count)
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            config = Config.model_validate({"gmail": settings(tmp, fake.url, max_sync_messages=max(count, 2000))})
            client = GmailClient(load_credentials(config.gmail), fake.url)
            ids = client.list_ids("in:inbox", count)

            # Floor 1: fetching the same messages, batched, and nothing else.
            start = time.perf_counter()
            fetched = client.get_raw(ids)
            fetch_s = time.perf_counter() - start
            client.close()

            # Floor 2: writing the same notes (rendered beforehand) into a vault, as the source writes them.
            floor = tmp / "floor"
            init_vault(floor)
            start = time.perf_counter()
            notes = [render(m, config.gmail.noise) for m in fetched.values() if isinstance(m, dict)]
            render_s = time.perf_counter() - start
            start = time.perf_counter()
            with group_commit():
                in_parallel(
                    lambda n: create_file(floor / "Inbox", n.name, n.text, floor / ".ai_employee" / "tmp"), notes
                )  # type: ignore[union-attr]
            write_s = time.perf_counter() - start

            root = tmp / "vault"
            init_vault(root)
            engine = Engine(Vault(root), config)
            ctx = engine._open()
            source = GmailSource(ctx)
            start = time.perf_counter()
            asyncio.run(source.poll())
            sync_s = time.perf_counter() - start
            engine._close()
            written = len(list((root / "Inbox").glob("*.md")))
            print(
                f"1. first sync of {count} messages: {written} notes in {sync_s:.2f} s"
                f" = {written / sync_s:,.0f} messages/s"
            )
            print("   (target ≥ 200/s; the fake Gmail runs in a process of its own)")
            print(f"   floor, fetch only (batched): {fetch_s:.2f} s = {count / fetch_s:,.0f}/s")
            print(f"   floor, write the notes only: {write_s:.2f} s = {count / write_s:,.0f}/s")
            print(f"   floor, parse into notes only: {render_s:.2f} s = {count / render_s:,.0f}/s")
            print(f"   sync ÷ (fetch + parse + write floors): {sync_s / (fetch_s + render_s + write_s):.2f}×")
    finally:
        fake.close()


def latency(poll_s: float, trials: int) -> None:
    fake = RemoteFake(0)
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            root = tmp / "vault"
            init_vault(root)
            config = tmp / "config.yaml"
            config.write_text(yaml.safe_dump({"gmail": settings(tmp, fake.url, poll_interval_s=poll_s)}))
            log = open(tmp / "engine.log", "ab")  # noqa: SIM115
            args = [sys.executable, "-m", "ai_employee", "--vault", str(root), "--config", str(config), "start"]
            proc = subprocess.Popen(args, stdout=log, stderr=log, env=engine_env(), cwd=tmp)
            try:
                deadline = time.monotonic() + 60
                while not fake.count("/profile") and time.monotonic() < deadline:
                    time.sleep(0.05)
                found: list[float] = []
                for n in range(trials):
                    time.sleep(random.uniform(0, poll_s))  # a random moment within the poll cycle
                    before = len(list((root / "Plans").glob("*.md")))
                    start = time.monotonic()
                    fake.deliver(subject=f"Latency {n}", message_id=f"<lat{n}@x.example>")
                    while len(list((root / "Plans").glob("*.md"))) == before and time.monotonic() - start < 60:
                        time.sleep(0.01)
                    found.append(time.monotonic() - start)
                print(f"2. new message -> plan in Plans/, poll interval {poll_s:g} s, {trials} trials:")
                print(
                    f"   median {statistics.median(found):.2f} s, max {max(found):.2f} s"
                    f" (target ≤ interval + 1 s = {poll_s + 1:g} s)"
                )
            finally:
                proc.terminate()
                proc.wait(timeout=60)
                log.close()
    finally:
        fake.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--poll-s", type=float, default=2.0)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    first_sync(args.messages)
    latency(args.poll_s, args.trials)


if __name__ == "__main__":
    main()
