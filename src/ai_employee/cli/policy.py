"""Policy commands: `vault explain ID` (why a plan is as critical as it is) and `vault policy test FILE`
(classify a plan note or an action file with the rules in config, running nothing)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ai_employee.cli.app import AppState, pass_app
from ai_employee.errors import FormatError, UserError

if TYPE_CHECKING:
    from ai_employee.policy import Assessment
    from ai_employee.vault.actions import Action
    from ai_employee.vault.layout import Vault
    from ai_employee.vault.plans import Step


def _policy(app: AppState, ledger: Any = None) -> Any:
    from ai_employee.composition import make_policy

    return make_policy(app.config, ledger)


@contextmanager
def _maybe_ledger(app: AppState, vault: Vault) -> Iterator[Any]:
    """The vault's ledger (for the rules learned from decisions), or None if it has none yet."""
    if not vault.ledger_path.exists():
        yield None
        return
    with app.ledger(vault) as ledger:
        yield ledger


def _action(vault: Vault, action_id: str) -> Action | None:
    from ai_employee.vault.actions import read_action
    from ai_employee.vault.layout import ACTION_FOLDERS, ACTION_SUFFIX
    from ai_employee.vault.notes import find_by_id

    found = find_by_id([vault.folder(name) for name in ACTION_FOLDERS], ACTION_SUFFIX, action_id) if action_id else None
    if found is None:
        return None
    try:
        return read_action(found)[0]
    except (OSError, FormatError, ValueError):
        return None


def verdict(assessment: Assessment) -> dict[str, Any]:
    return {
        "criticality": assessment.criticality.label,
        "reasons": assessment.reasons,
        "rules": [{"rule": m.rule, "level": m.level.label, "why": m.why, "step": m.step} for m in assessment.matches],
    }


def explain_plan(app: AppState, vault: Vault, ref: str) -> dict[str, Any]:
    """A plan's recorded criticality, and the rules' verdict on its steps as they are now."""
    from ai_employee.pipeline.lookup import resolve_plan
    from ai_employee.policy import Facts
    from ai_employee.vault.notes import split_note
    from ai_employee.vault.plans import parse_steps

    plan = resolve_plan(vault, ref)
    fm = plan.frontmatter
    steps = parse_steps(split_note(plan.path.read_text("utf-8")).body)
    action = _action(vault, str(fm.get("action_id") or ""))
    with _maybe_ledger(app, vault) as ledger:
        now = _policy(app, ledger).assess(steps, None, Facts.of(action))
    return {
        "plan_id": plan.plan_id,
        "note": f"{plan.folder}/{plan.path.name}",
        "recorded": str(fm.get("criticality") or "unrated"),
        "item": _item(action),
        **verdict(now),
    }


def _item(action: Action | None) -> dict[str, Any] | None:
    if action is None:
        return None
    return {"id": action.id, "type": action.type, "title": action.title, "sender": action.sender or None}


def _print(data: dict[str, Any]) -> None:
    for reason in data["reasons"]:
        click.echo(f"  - {reason}")
    click.echo("Rules that matched:")
    for rule in data["rules"]:
        where = f"step {rule['step']}" if rule["step"] else "plan"
        click.echo(f"  {rule['level'].upper():6}  {rule['rule']:18} {where:7}  {rule['why']}")


@click.command()
@click.argument("plan")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_app
def explain(app: AppState, plan: str, as_json: bool) -> None:
    """Say why a plan is as critical as it is: every rule that matched its steps, and why. PLAN is an id,
    a unique prefix of one, or the note's file name. The rules are those of the config now; a plan rated
    otherwise when it was written (other rules, or the planner's own rating, which can only raise it)
    says what it was rated then."""
    data = explain_plan(app, app.vault(), plan)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    level = data["criticality"].upper()
    recorded = data["recorded"].upper()
    click.echo(
        f"Plan {data['plan_id']} ({data['note']}) is {level}"
        + ("" if recorded == level else f" (rated {recorded} when it was written)")
    )
    _print(data)


@click.group()
def policy() -> None:
    """Tune the criticality rules of `policy:` in config (docs/policy.md)."""


@policy.command("test")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_app
def policy_test(app: AppState, file: Path, as_json: bool) -> None:
    """Classify a plan note (its steps) or an action file (the template planner's plan for it) with the
    rules in config, and say why. Runs and changes nothing."""
    data = classify_file(app, file)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{file.name}: {data['criticality'].upper()}" + (f" ({data['about']})" if data.get("about") else ""))
    _print(data)


def classify_file(app: AppState, file: Path) -> dict[str, Any]:
    from ai_employee.policy import Facts
    from ai_employee.vault.actions import read_action
    from ai_employee.vault.notes import read_frontmatter, split_note
    from ai_employee.vault.plans import parse_steps

    try:
        text = file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {file}: {exc}") from exc
    vault = app.vault(check=False)
    action: Action | None
    if file.name.endswith(".action.yaml"):
        try:
            action = read_action(file)[0]
        except (FormatError, ValueError) as exc:
            raise UserError(f"{file} is not an action file: {exc}") from exc
        steps = _template_steps(app, vault, action)
        about = "the template planner's plan for this item"
    else:
        try:
            parts = split_note(text)
            steps = parse_steps(parts.body)
            fm = read_frontmatter(parts, file.name)
        except FormatError as exc:
            raise UserError(f"{file} is not a plan note: {exc}") from exc
        action = _action(vault, str(fm.get("action_id") or "")) if vault.root.is_dir() else None
        about = "" if action is None else f"its item: {action.title}"
    with _maybe_ledger(app, vault) as ledger:
        assessment = _policy(app, ledger).assess(steps, None, Facts.of(action))
    return {"file": str(file), "about": about, "steps": [s.tool for s in steps], **verdict(assessment)}


def _template_steps(app: AppState, vault: Vault, action: Action) -> list[Step]:
    from ai_employee.planner import TemplatePlanner
    from ai_employee.planner.base import PlanningContext

    config = app.config
    context = PlanningContext(
        vault_root=vault.root,
        handbook="",
        signature=config.app.owner_name or config.app.name,
        owner_name=config.app.owner_name,
        own_addresses=frozenset(a.lower() for a in config.app.owner_addresses),
        own_domains=frozenset(d.lower().lstrip("@") for d in config.app.own_domains),
    )
    return TemplatePlanner().plan(action, context).steps


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
def insights(ctx: click.Context, as_json: bool) -> None:
    """What your decisions say: approval rates per pattern (a tool and the domain it writes to), and
    proposals to make a pattern LOW or HIGH. Nothing changes until you accept one
    (`vault insights accept N`); the rules you accepted, and any a denial demoted, are listed too."""
    if ctx.invoked_subcommand is not None:
        return
    app = ctx.find_object(AppState)
    assert app is not None
    data = _insights(app)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    if not data["patterns"]:
        click.echo("No decisions of yours to learn from yet.")
    for row in data["patterns"]:
        wait = f", median {human_wait(row['median_wait_s'])} to decide" if row["median_wait_s"] is not None else ""
        click.echo(
            f"  {row['pattern']}: approved {row['approved']} of {row['decided']}"
            f" ({row['edited']} edited first){wait}; now {row['level'].upper()}"
        )
    for number, proposal in enumerate(data["proposals"], 1):
        click.echo(f"Proposal {number}: {proposal['text']}  (`vault insights accept {number}`)")
    for rule in data["rules"]:
        state = "DEMOTED by a denial since" if rule["demoted"] else "applies"
        click.echo(f"Rule you accepted: {rule['tool']} to @{rule['domain']} is {rule['level'].upper()} ({state})")
    click.echo(f"Learned rules file: {data['file']}")


@insights.command("accept")
@click.argument("number", type=click.IntRange(min=1))
@pass_app
def insights_accept(app: AppState, number: int) -> None:
    """Accept proposal NUMBER of `vault insights`: its rule is written to the learned-rules file, with
    where it came from. A running engine applies it within seconds."""
    from ai_employee.policy import learning

    found = _proposals(app)
    if number > len(found):
        raise UserError(f"there is no proposal {number}: `vault insights` lists {len(found)}")
    rule = learning.accept(app.config.learned_path(), found[number - 1])
    click.echo(f"Accepted: {rule.tool} to @{rule.domain} is {rule.level.upper()} ({app.config.learned_path()}).")


def human_wait(seconds: float) -> str:
    from ai_employee.status import human_age

    return human_age(seconds)


def _proposals(app: AppState) -> list[Any]:
    from ai_employee.policy import learning

    vault = app.vault()
    with _maybe_ledger(app, vault) as ledger:
        if ledger is None:
            return []
        found = learning.tally(ledger)
        policy = _policy(app)
        current = {p: _level(policy, p.tool) for p in found}
        accepted = {r.pattern for r in learning.load(app.config.learned_path())}
        return [
            p for p in learning.proposals(found, current, app.config.learning.min_samples) if p.pattern not in accepted
        ]


def _level(policy: Any, tool: str) -> str:
    from ai_employee.vault.plans import Step

    return str(policy.rate_step(Step(tool=tool, args={}))[0].label)


def _insights(app: AppState) -> dict[str, Any]:
    from ai_employee.policy import learning

    vault = app.vault()
    path = app.config.learned_path()
    rules = learning.load(path)
    with _maybe_ledger(app, vault) as ledger:
        found = learning.tally(ledger) if ledger is not None else {}
    policy = _policy(app)
    patterns = [
        {
            "pattern": str(p),
            "tool": p.tool,
            "domain": p.domain,
            "approved": t.approved,
            "denied": t.denied,
            "decided": t.decided,
            "edited": t.edited,
            "median_wait_s": t.median_wait_s,
            "level": _level(policy, p.tool),
        }
        for p, t in sorted(found.items(), key=lambda item: (-item[1].decided, item[0]))
    ]
    return {
        "file": str(path),
        "patterns": patterns,
        "proposals": [{"pattern": str(p.pattern), "level": p.level, "text": p.text} for p in _proposals(app)],
        "rules": [
            {
                "tool": r.tool,
                "domain": r.domain,
                "level": r.level,
                "accepted": r.accepted,
                "demoted": learning.demoted(r, found),
            }
            for r in rules
        ],
    }
