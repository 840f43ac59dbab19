"""Named crash points, for the crash tests: the engine kills itself (SIGKILL, as a power cut or the OOM
killer would) when it reaches the point named by `AI_EMPLOYEE_CRASH_AT`.

`AI_EMPLOYEE_CRASH_AT=plan.after_write` dies the first time a plan note is written; `...@3` the third
time. Unset (always, outside tests), a crash point costs one comparison. The points are listed in
CRASH_POINTS and in docs/reliability.md.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "AI_EMPLOYEE_CRASH_AT"

CRASH_POINTS = {
    "ingest.after_intents": "a batch's intents are durable in the ledger; no original has moved",
    "ingest.after_move": "an original is in Attachments/; its action file is not written yet",
    "ingest.after_action": "an action file is written; its source and events are not recorded",
    "plan.after_register": "the ledger says the action has a plan; the plan note is not written yet",
    "plan.after_write": "a plan note is written; its action is not marked and no event is recorded",
    "execute.after_outbox": "a live step's outbox row is durable; the tool has not been called",
    "execute.after_call": "a live tool call returned; its outcome is not recorded",
    "execute.after_result": "the result is written into the plan note; the note has not moved to Done/",
    "execute.after_done": "the plan note is in Done/; its action is not closed",
    "gmail.after_intents": "a batch of Gmail notes is recorded as intents; no note is written yet",
    "gmail.after_stored": "a batch of Gmail notes is in Inbox/ and stored; the messages are not marked",
}


def _target() -> tuple[str, int] | None:
    raw = os.environ.get(CRASH_ENV, "").strip()
    if not raw:
        return None
    name, _, nth = raw.partition("@")
    if name not in CRASH_POINTS:
        raise ValueError(f"{CRASH_ENV}={raw!r}: unknown crash point; known: {', '.join(CRASH_POINTS)}")
    return name, int(nth or 1)


_TARGET = _target()
_hits = 0


def crash_point(name: str) -> None:
    """Die here if the environment names this point (the Nth time it is reached)."""
    global _hits
    if _TARGET is None or _TARGET[0] != name:
        return
    _hits += 1
    if _hits >= _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)
