"""The proactive cadence: as the day's proactive token budget is used, proactive work slows down, and
it pauses when the budget is spent, until the next day. Reactive work has its own budget and is never
slowed by this."""

from __future__ import annotations

SLOW_FROM = 0.5  # used fraction from which intervals double
SLOWER_FROM = 0.8  # ... and from which they are four times as long
PAUSED_RECHECK_S = 300.0  # while paused, how often the budget is looked at again


def stretch(used: float | None) -> float | None:
    """How many times longer proactive intervals are, for the fraction of the day's proactive budget
    used (None: no limit): 1 under 50 %, 2 up to 80 %, 4 above; None when it is spent (paused)."""
    if used is None or used < SLOW_FROM:
        return 1.0
    if used < SLOWER_FROM:
        return 2.0
    if used < 1.0:
        return 4.0
    return None


def cadence_words(used: float | None) -> str:
    """The cadence in words, for `vault monitors`."""
    factor = stretch(used)
    if used is None:
        return "no proactive budget limit: monitors are checked at their own intervals"
    if factor is None:
        return f"the proactive budget is spent ({used:.0%}): monitors are paused until tomorrow"
    if factor == 1.0:
        return f"proactive budget {used:.0%} used: monitors are checked at their own intervals"
    return f"proactive budget {used:.0%} used: monitors are checked {factor:g}× less often"
