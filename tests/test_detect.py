"""Change detection with scripted values: text changes, moves by N or N%, thresholds with hysteresis,
no alert storms (cooldown), trends and sparklines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ai_employee.proactive.detect import AlertRule, State, evaluate, sparkline, trend

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def run(rule: AlertRule, values: list[str], cooldown_s: float = 0, step_s: float = 60) -> list[str | None]:
    state, said = State(), []
    for n, value in enumerate(values):
        reason, state = evaluate(rule, value, state, T0 + timedelta(seconds=n * step_s), cooldown_s)
        said.append(reason)
    return said


def test_a_text_signal_that_changes_alerts_each_time_it_changes() -> None:
    said = run(AlertRule(on_change=True), ["NEUTRAL", "NEUTRAL", "LONG", "LONG", "NEUTRAL"])
    assert said == [None, None, "changed from NEUTRAL to LONG", None, "changed from LONG to NEUTRAL"]


def test_a_number_alerts_when_it_moved_enough_since_the_last_alert() -> None:
    said = run(AlertRule(delta=5), ["100", "103", "104", "106", "108", "110", "111"])
    assert [bool(s) for s in said] == [False, False, False, True, False, False, True]
    assert said[3] == "moved by +6 (from 100 to 106)"
    assert run(AlertRule(delta_percent=10), ["200", "215", "221"])[2] == "moved by +10.5% (from 200 to 221)"


def test_a_value_hovering_at_the_line_alerts_once_thanks_to_hysteresis() -> None:
    rule = AlertRule(above=100, hysteresis=5)
    said = run(rule, ["98", "101", "99", "101", "99.5", "102", "94", "101"])
    assert [bool(s) for s in said] == [False, True, False, False, False, False, False, True]
    below = run(AlertRule(below=20, hysteresis=2), ["25", "19", "21", "19.5", "23", "18"])
    assert [bool(s) for s in below] == [False, True, False, False, False, True]


def test_a_first_value_over_the_line_is_news_but_a_first_value_is_no_change() -> None:
    assert run(AlertRule(above=100), ["150"]) == ["rose above 100 (now 150)"]
    assert run(AlertRule(on_change=True, delta=1), ["5"]) == [None]


def test_the_cooldown_stops_alert_storms() -> None:
    said = run(AlertRule(on_change=True), ["A", "B", "C", "D", "E"], cooldown_s=150, step_s=60)
    assert [bool(s) for s in said] == [False, True, False, False, True]


def test_a_rule_is_required() -> None:
    with pytest.raises(ValueError, match="an alert needs a rule"):
        AlertRule()


def test_trend_and_sparkline() -> None:
    assert trend([1, 2, 3, 5]) == "up" and trend([5, 4, 2]) == "down" and trend([10, 10.05, 9.98, 10]) == "stable"
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█" and sparkline([3, 3]) == "▄▄" and sparkline([]) == ""


def test_a_change_kept_back_by_the_cooldown_is_told_after_it_and_a_flap_back_is_not() -> None:
    rule = AlertRule(on_change=True)
    said = run(rule, ["NEUTRAL", "LONG", "NEUTRAL", "NEUTRAL", "NEUTRAL"], cooldown_s=150, step_s=60)
    assert said[:4] == [None, "changed from NEUTRAL to LONG", None, None]
    assert said[4] == "changed from LONG to NEUTRAL"  # what the person was last told is no longer true
    flap = run(rule, ["NEUTRAL", "LONG", "NEUTRAL", "LONG", "LONG"], cooldown_s=150, step_s=60)
    assert [bool(s) for s in flap] == [False, True, False, False, False]  # back to what was told: no news
