"""Everything waiting on a human because of a failure (`vault interventions`): plans that failed or were
interrupted, approved plans waiting for a server or a rate limit, paused servers, quarantined inputs.
Read from the vault, the ledger and the running engine's heartbeat; works whether or not it runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ai_employee.errors import FormatError
from ai_employee.ledger import Ledger
from ai_employee.vault.layout import APPROVED, PLANS, QUARANTINE, Vault, entries
from ai_employee.vault.notes import read_frontmatter, split_note
from ai_employee.vault.plans import plan_title


@dataclass(frozen=True)
class Intervention:
    kind: str  # failed | interrupted | waiting | server | quarantine
    ref: str  # plan id, server name or quarantined file
    title: str
    blocker: str  # what stands in the way, in words
    file: str = ""  # the note, vault-relative
    attempts: int = 0  # runs of the plan so far
    tries: int = 0  # tries of the failing step in its last run
    last_error: str = ""
    since: str = ""
    what_to_do: str = ""
    origin: str = ""  # quarantine: the folder the file was set aside from
    can_retry: bool = False  # quarantine: `vault retry` (the page's Retry) puts it back into Inbox/


def _plans(vault: Vault, folder: str) -> list[tuple[Path, dict[str, Any], str]]:
    found = []
    for entry in entries(vault.folder(folder), ".md"):
        path = Path(entry.path)
        try:
            parts = split_note(path.read_text("utf-8"))
            fm = read_frontmatter(parts, path.name)
        except (OSError, UnicodeDecodeError, FormatError):
            continue
        found.append((path, fm, plan_title(parts.body, fm) or path.stem))
    return found


def collect(vault: Vault, ledger: Ledger | None, paused_servers: dict[str, Any] | None = None) -> list[Intervention]:
    items: list[Intervention] = []
    for path, fm, title in _plans(vault, PLANS):
        if fm.get("status") != "failed":
            continue
        plan_id = str(fm.get("id") or "")
        interrupted = fm.get("interrupted") is True
        runs = ledger.runs(plan_id) if ledger is not None and plan_id else []
        last = ledger.last_failure(plan_id) if ledger is not None and plan_id else None
        short = plan_id[:10]
        items.append(
            Intervention(
                kind="interrupted" if interrupted else "failed",
                ref=plan_id,
                title=title,
                blocker=str(fm.get("error") or "failed"),
                file=vault.relative(path),
                attempts=len(runs),
                tries=int(last["tries"]) if last is not None else 0,
                last_error=str(last["result"])[:300] if last is not None else "",
                since=str(fm.get("executed") or ""),
                what_to_do=(
                    f"check whether the step happened; delete it from the steps if it did; then `vault resume {short}`"
                    if interrupted
                    else f"fix the cause (or the steps), then `vault resume {short}`; or move it to Rejected/"
                ),
            )
        )
    for path, fm, title in _plans(vault, APPROVED):
        if fm.get("status") == "waiting":
            items.append(
                Intervention(
                    kind="waiting",
                    ref=str(fm.get("id") or ""),
                    title=title,
                    blocker=str(fm.get("waiting_for") or "waiting"),
                    file=vault.relative(path),
                    attempts=len(ledger.runs(str(fm.get("id")))) if ledger is not None and fm.get("id") else 0,
                    what_to_do="it goes on by itself; move it to Rejected/ to call it off",
                )
            )
    for server, pause in (paused_servers or {}).items():
        auth = pause.get("kind") == "auth"
        items.append(
            Intervention(
                kind="server",
                ref=server,
                title=f"MCP server `{server}` is paused",
                blocker=str(pause.get("reason") or ""),
                since=str(pause.get("since") or ""),
                what_to_do="fix its credentials (see `vault doctor`); it is tried again by itself"
                if auth
                else "see its log in .ai_employee/logs/ and `vault doctor`; it is tried again by itself",
            )
        )
    from ai_employee.pipeline.quarantine import read_why, retryable

    for entry in entries(vault.folder(QUARANTINE), ".why.md"):
        name = entry.name.removesuffix(".why.md")
        why = read_why(Path(entry.path))
        retry = retryable(vault.folder(QUARANTINE) / name, why)
        items.append(
            Intervention(
                kind="quarantine",
                ref=name,
                title=name,
                blocker=why.reason[:300],
                file=f"{QUARANTINE}/{name}",
                what_to_do=f"{(why.retry or 'fix it and move it back to Inbox/ to try again').rstrip('. ')}"
                f"{f' (or `vault retry {name}`)' if retry else ''}. See {QUARANTINE}/{entry.name}.",
                origin=why.origin,
                can_retry=retry,
            )
        )
    return items


def as_json(items: list[Intervention]) -> list[dict[str, Any]]:
    return [asdict(item) for item in items]
