"""Every failure of a step, classified: what it means for retrying, and what the human is told.

- `transient`: the call did not happen and may work later (connection refused, 429/503, "try again",
  an SMTP 4xx): retried with exponential backoff and jitter, longer for rate limits.
- `auth`: the server does not accept the credentials: the server is paused and the plan waits.
- `unavailable`: the server did not start or answer before anything was called: paused, the plan waits.
- `logic`: the tool refused the step (a schema violation, a tool's own error): stopped, never retried.
- `unknown`: the call started but its outcome is unknown (a timeout, a crash mid-call): a tool not
  declared idempotent is never called again by itself; the human decides.

A server can say which kind its error is in plain words the patterns below know ("temporary failure",
"authentication failed", "outcome unknown"); a third-party server's text is read the same way. Anything
not recognised is `logic`: stopping is the safe default. A timeout or a 5xx other than 503 reported by a
tool means the remote side may have acted: `unknown`, unless the tool is idempotent.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["transient", "auth", "unavailable", "logic", "unknown"]


def _codes(codes: str) -> str:
    """A status code where it is one: after `HTTP`/`status`/`code`/`error`, at the start, before an SMTP
    enhanced code (`535 5.7.8`) or a capitalised reason (`401 Unauthorized`); never a bare number in a
    sentence (`invoice 450 is already paid`, `no customer with id 401`)."""
    return (
        rf"(?:\b(?:http|status|code|error|response)\W{{0,3}}(?:{codes})\b|^\W*(?:{codes})\b"
        rf"|\b(?:{codes})[ -][245]\.\d{{1,3}}\.\d{{1,3}}\b|\b(?:{codes}) (?-i:[A-Z][a-z]))"
    )


# What a server that knows says first ("could not send: temporary failure: ...") is taken as it says.
_DECLARED = re.compile(
    r"^(?:[^:\n]{0,50}:\s*){0,2}(temporary failure|outcome unknown|authentication failed|refused)\b", re.IGNORECASE
)
_DECLARED_KIND: dict[str, Kind] = {
    "temporary failure": "transient",
    "outcome unknown": "unknown",
    "authentication failed": "auth",
    "refused": "logic",
}
_AUTH = re.compile(
    _codes("401|403|530|534|535") + r"|unauthori[sz]ed|\bforbidden\b|authenticat\w* (failed|required|error)|"
    r"invalid[_ ](credentials|grant|token|api[_ ]key)|token (has )?(expired|been revoked|revoked)|"
    r"not signed in|sign in again",
    re.IGNORECASE,
)
# Signs that the remote side may have acted: for a tool not declared idempotent, never retried.
_MAYBE_DONE = re.compile(
    r"outcome (is )?unknown|may (or may not )?have\b|timed out|time-?out (error|expired|exceeded|while|after|waiting)"
    r"|deadline exceeded|gateway time-?out|" + _codes("500|502|504") + r"|connection (was )?(reset|dropped|closed|lost|"
    r"aborted)|closed by (the )?(peer|remote)",
    re.IGNORECASE,
)
# ... unless the server says plainly that nothing happened.
_NOTHING_DONE = re.compile(
    r"nothing (was|has been) (sent|done|changed|called|created|written)|(was|were|has|have) not (been )?(sent|"
    r"processed|executed|created|charged)|no changes? (was |were )?made",
    re.IGNORECASE,
)
_RATE_LIMITED = re.compile(_codes("429") + r"|rate[- ]limit|too many requests|quota exceeded|slow down", re.IGNORECASE)
_TRANSIENT = re.compile(
    r"temporar(y|ily)|try again|connection refused|could not connect|cannot connect|unreachable|"
    + _codes("503|421|450|451|452|454")
    + r"|service unavailable|server (is )?busy|not available right now",
    re.IGNORECASE,
)
_RETRY_AFTER = re.compile(r"retry[- ]after[:= ]+(\d+(?:\.\d+)?)\s*(s|sec|seconds?|m|min|minutes?)?", re.IGNORECASE)
_NUMBERS = re.compile(r"\d+")


@dataclass(frozen=True)
class Failure:
    kind: Kind
    detail: str
    rate_limited: bool = False
    retry_after_s: float | None = None

    @property
    def signature(self) -> str:
        """What makes two failures "the same": the kind and the text with its numbers (ids, times,
        ports) blanked."""
        return f"{self.kind}:{_NUMBERS.sub('#', self.detail.lower())[:300]}"

    @property
    def retryable(self) -> bool:
        return self.kind == "transient"

    @property
    def pauses_server(self) -> bool:
        return self.kind in ("auth", "unavailable")


def retry_after(text: str) -> float | None:
    match = _RETRY_AFTER.search(text)
    if match is None:
        return None
    unit = (match.group(2) or "s").lower()
    return float(match.group(1)) * (60 if unit.startswith("m") else 1)


def classify_error_text(text: str, idempotent: bool) -> Failure:
    """A tool's own error result (is_error): the call reached the tool, which says it failed. What the
    server declares first wins; then any sign that it may have acted (for a tool not idempotent: unknown,
    before credentials, rate limits or "try again"); then credentials, rate limits, temporary failures.
    Anything else is the tool's refusal: logic."""
    declared = _DECLARED.match(text)
    if declared is not None:
        kind = _DECLARED_KIND[declared.group(1).lower()]
        if kind == "unknown" and idempotent:
            kind = "transient"
        rated = kind == "transient" and _RATE_LIMITED.search(text) is not None
        return Failure(kind, text, rate_limited=rated, retry_after_s=retry_after(text) if kind == "transient" else None)
    maybe_done = _MAYBE_DONE.search(text) is not None and _NOTHING_DONE.search(text) is None
    if maybe_done and not idempotent:
        return Failure("unknown", text)
    if _AUTH.search(text):
        return Failure("auth", text)
    if _RATE_LIMITED.search(text):
        return Failure("transient", text, rate_limited=True, retry_after_s=retry_after(text))
    if _MAYBE_DONE.search(text) or _TRANSIENT.search(text):  # idempotent, or nothing was done
        return Failure("transient", text, retry_after_s=retry_after(text))
    return Failure("logic", text)


def backoff_s(tries: int, failure: Failure, base_s: float, cap_s: float, rate_base_s: float) -> float:
    """How long to wait before try number `tries + 1`: the server's retry-after if it gave one, else
    exponential (doubling from `base_s`, or from `rate_base_s` after a rate limit) with full jitter
    between half and all of it, never over `cap_s` (rate limits: never over 10 × cap)."""
    if failure.retry_after_s is not None:
        return failure.retry_after_s
    start, cap = (rate_base_s, cap_s * 10) if failure.rate_limited else (base_s, cap_s)
    ceiling = min(cap, start * 2 ** max(0, tries - 1))
    return random.uniform(ceiling / 2, ceiling)


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions an exception group holds (the SDK's task groups wrap what went wrong)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def describe(exc: BaseException) -> str:
    return "; ".join(f"{type(leaf).__name__}: {leaf}".rstrip(": ") for leaf in _leaves(exc))


def failure_of_exception(exc: BaseException, started: bool) -> Failure:
    """A failure raised on the engine's side. Before the call was sent (`started` False) nothing can
    have happened: credentials refused → auth, anything else → the server is unavailable. Once sent, a
    timeout or a lost connection leaves the outcome unknown."""
    text = describe(exc)
    if _AUTH.search(text):
        return Failure("auth", text)
    if not started:
        return Failure("unavailable", text)
    return Failure("unknown", text)
