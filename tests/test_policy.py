"""The policy: deterministic criticality of a plan's steps (policy/rules.py)."""

from __future__ import annotations

import pytest

from ai_employee.policy import Criticality, Policy
from ai_employee.vault.plans import Step


def step(tool: str, **args: object) -> Step:
    return Step(tool=tool, args=dict(args))


@pytest.mark.parametrize(
    ("tool", "level"),
    [
        ("vault.create_note", Criticality.LOW),
        ("vault.append_to_note", Criticality.LOW),
        ("vault.anything_new", Criticality.LOW),
        ("email.draft_email", Criticality.LOW),
        ("email.send_email", Criticality.MEDIUM),
        ("email.delete_everything", Criticality.HIGH),
        ("shell.run", Criticality.HIGH),
        ("payments.transfer", Criticality.HIGH),
        ("Vault.create_note", Criticality.HIGH),  # case matters: unknown is HIGH
        ("vaultx.create_note", Criticality.HIGH),
        ("my.vault.create_note", Criticality.HIGH),
        ("email.send_email_now", Criticality.HIGH),
    ],
)
def test_builtin_rules(tool: str, level: Criticality) -> None:
    rated, why = Policy().rate_step(step(tool))
    assert rated == level
    assert why


def test_unknown_tool_reason() -> None:
    assert Policy().rate_step(step("shell.run")) == (Criticality.HIGH, "the policy does not know this tool")


def test_arguments_do_not_lower_a_rating() -> None:
    policy = Policy()
    assert policy.assess([step("email.send_email", to=[])]).criticality == Criticality.MEDIUM
    assert policy.assess([step("shell.run", dry_run=True, criticality="low")]).criticality == Criticality.HIGH


def test_user_rules_come_first() -> None:
    policy = Policy({"email.send_email": "low", "vault.delete_*": "high", "crm.*": "medium"})
    assert policy.rate_step(step("email.send_email")) == (Criticality.LOW, "your rule in config (policy.tool_defaults)")
    assert policy.rate_step(step("vault.delete_note"))[0] == Criticality.HIGH
    assert policy.rate_step(step("vault.create_note"))[0] == Criticality.LOW  # built-in still applies
    assert policy.rate_step(step("crm.add_contact"))[0] == Criticality.MEDIUM
    assert policy.rate_step(step("email.draft_email"))[0] == Criticality.LOW


def test_user_rules_in_order_first_match_wins() -> None:
    assert Policy({"vault.*": "medium", "vault.create_note": "low"}).rate_step(step("vault.create_note"))[0] == (
        Criticality.MEDIUM
    )
    assert Policy({"vault.create_note": "low", "vault.*": "high"}).rate_step(step("vault.create_note"))[0] == (
        Criticality.LOW
    )


@pytest.mark.parametrize("level", ["LOW", " Medium ", "high"])
def test_user_rule_levels_are_parsed_loosely(level: str) -> None:
    assert Policy({"a.b": level}).rate_step(step("a.b"))[0] == Criticality.parse(level)


def test_user_rule_with_unknown_level() -> None:
    with pytest.raises(ValueError, match="unknown criticality 'urgent': use low, medium or high"):
        Policy({"a.b": "urgent"})


def test_empty_plan_is_low() -> None:
    assessment = Policy().assess([])
    assert assessment.criticality == Criticality.LOW
    assert assessment.reasons == ["The plan has no steps: nothing will run."]


@pytest.mark.parametrize(
    ("tools", "level"),
    [
        (["vault.create_note"], Criticality.LOW),
        (["vault.create_note", "email.draft_email"], Criticality.LOW),
        (["vault.create_note", "email.send_email"], Criticality.MEDIUM),
        (["email.send_email", "vault.create_note"], Criticality.MEDIUM),
        (["vault.create_note", "shell.run", "email.send_email"], Criticality.HIGH),
    ],
)
def test_plan_is_the_max_of_its_steps(tools: list[str], level: Criticality) -> None:
    assert Policy().assess([step(t) for t in tools]).criticality == level


def test_reasons_mention_each_step() -> None:
    assessment = Policy().assess([step("vault.create_note"), step("email.send_email"), step("shell.run")])
    assert assessment.reasons == [
        "Step 1 `vault.create_note` is LOW: only writes notes inside this vault.",
        "Step 2 `email.send_email` is MEDIUM: sends an email in your name.",
        "Step 3 `shell.run` is HIGH: the policy does not know this tool.",
    ]


@pytest.mark.parametrize("hint", [Criticality.MEDIUM, Criticality.HIGH])
def test_planner_hint_can_raise(hint: Criticality) -> None:
    assessment = Policy().assess([step("vault.create_note")], planner_hint=hint)
    assert assessment.criticality == hint
    assert assessment.reasons[-1] == f"The planner raised the plan to {hint.name}."


@pytest.mark.parametrize(
    ("tools", "hint"),
    [
        (["email.send_email"], Criticality.LOW),
        (["shell.run"], Criticality.LOW),
        (["shell.run"], Criticality.MEDIUM),
        (["email.send_email"], Criticality.MEDIUM),
        ([], Criticality.LOW),
    ],
)
def test_planner_hint_never_lowers(tools: list[str], hint: Criticality) -> None:
    steps = [step(t) for t in tools]
    without = Policy().assess(steps)
    with_hint = Policy().assess(steps, planner_hint=hint)
    assert with_hint == without


def test_planner_hint_on_an_empty_plan() -> None:
    # No steps means nothing runs: a hint cannot make an empty plan need approval.
    assert Policy().assess([], planner_hint=Criticality.HIGH).criticality == Criticality.LOW


def test_criticality_order_labels_and_parse() -> None:
    assert Criticality.LOW < Criticality.MEDIUM < Criticality.HIGH
    assert [c.label for c in Criticality] == ["low", "medium", "high"]
    assert Criticality.parse("medium") is Criticality.MEDIUM
    with pytest.raises(ValueError, match="unknown criticality"):
        Criticality.parse("")
