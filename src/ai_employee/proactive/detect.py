"""Change detection for monitors: whether a new value is worth an alert, by the rules a monitor names
(a text that changes; a number that moves by N or N% since the last alert; a threshold crossed, with
hysteresis so a value hovering at the line alerts once), never more often than the cooldown.

Pure functions over a small state that the ledger keeps between checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import Field, model_validator

from ai_employee.config_sections import Section


class AlertRule(Section):
    on_change: bool = Field(False, description="A text value that changes (NEUTRAL -> LONG) alerts.")
    delta: float | None = Field(None, gt=0, description="A number that moved by at least this since the last alert.")
    delta_percent: float | None = Field(None, gt=0, description="... or by at least this many percent.")
    above: float | None = Field(None, description="A number that rises above this line.")
    below: float | None = Field(None, description="A number that falls below this line.")
    hysteresis: float = Field(0.0, ge=0, description="How far back past the line it must go before it alerts again.")

    @model_validator(mode="after")
    def _something(self) -> AlertRule:
        if not (self.on_change or self.delta or self.delta_percent or self.above is not None or self.below is not None):
            raise ValueError("an alert needs a rule: on_change, delta, delta_percent, above or below")
        return self


@dataclass(frozen=True)
class State:
    """What detection remembers between checks."""

    last_value: str | None = None  # the previous check's value
    alert_value: str | None = None  # the value at the last alert (the base of `delta`)
    alert_at: str | None = None  # when the last alert was (ISO 8601)
    above_armed: bool = True  # `above` alerts when crossed while armed; re-armed below the line - hysteresis
    below_armed: bool = True


def number(value: object) -> float | None:
    """A value read as a number; None for text, and for `nan` and `inf` (no threshold or chart can use them)."""
    try:
        found = float(str(value)) if value is not None else None
    except ValueError:
        return None
    return found if found is not None and math.isfinite(found) else None


def _moves(rule: AlertRule, number: float, base: float) -> list[str]:
    moved = number - base
    if rule.delta is not None and abs(moved) >= rule.delta:
        return [f"moved by {moved:+g} (from {base:g} to {number:g})"]
    if rule.delta_percent is not None and base != 0 and abs(moved) / abs(base) * 100 >= rule.delta_percent:
        return [f"moved by {moved / abs(base) * 100:+.1f}% (from {base:g} to {number:g})"]
    return []


def _lines(rule: AlertRule, number: float, state: State) -> tuple[list[str], State]:
    """Thresholds crossed while armed (then disarmed), and re-armed once back past the hysteresis."""
    reasons: list[str] = []
    if rule.above is not None:
        if number > rule.above and state.above_armed:
            reasons.append(f"rose above {rule.above:g} (now {number:g})")
            state = replace(state, above_armed=False)
        elif number < rule.above - rule.hysteresis:
            state = replace(state, above_armed=True)
    if rule.below is not None:
        if number < rule.below and state.below_armed:
            reasons.append(f"fell below {rule.below:g} (now {number:g})")
            state = replace(state, below_armed=False)
        elif number > rule.below + rule.hysteresis:
            state = replace(state, below_armed=True)
    return reasons, state


def evaluate(rule: AlertRule, value: str, state: State, now: datetime, cooldown_s: float) -> tuple[str | None, State]:
    """The reason to alert on `value` (None: no alert), and the state after it."""
    now_number = number(value)
    reasons: list[str] = []
    new = replace(state, last_value=value)
    # A change is against the value last told (the alert's), so a change kept back by the cooldown is
    # told after it, and a flap that came back to what was told is no news.
    told = state.alert_value if state.alert_value is not None else state.last_value
    if rule.on_change and told is not None and value != told:
        reasons.append(f"changed from {told} to {value}")
    base = number(state.alert_value if state.alert_value is not None else state.last_value)
    if now_number is not None and base is not None:
        reasons += _moves(rule, now_number, base)
    if now_number is not None:
        crossed, new = _lines(rule, now_number, new)
        reasons += crossed
    if state.alert_value is None and state.last_value is None:
        new = replace(new, alert_value=value)  # the first value is the base of changes (a line crossed is news)
    if not reasons:
        return None, new
    if state.alert_at is not None and (now - datetime.fromisoformat(state.alert_at)).total_seconds() < cooldown_s:
        # Too soon after the last alert: not told now; a threshold stays armed to tell it later.
        return None, replace(new, above_armed=state.above_armed, below_armed=state.below_armed)
    return "; ".join(reasons), replace(new, alert_value=value, alert_at=now.isoformat())


def trend(values: list[float]) -> str:
    """up, down or stable: the last value against the first, beyond 1% of the range or of the first."""
    if len(values) < 2:
        return "stable"
    span = max(values) - min(values)
    moved = values[-1] - values[0]
    if abs(moved) <= max(span * 0.1, abs(values[0]) * 0.01):
        return "stable"
    return "up" if moved > 0 else "down"


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 24) -> str:
    """A small text chart of the latest values."""
    values = values[-width:]
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return _BARS[3] * len(values)
    return "".join(_BARS[int((v - low) / (high - low) * (len(_BARS) - 1))] for v in values)
