"""What a schedule slot does, by its job: `action` writes an action file into `Needs_Action/` (type
`schedule`) with the job's instructions, `review` one that lists what still waits, `briefing` a note in
`Briefings/` and an action per suggestion. The pipeline plans the actions like any other item.

Everything a slot writes carries an id derived from the slot's claim, so recovery after a crash writes
only what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import structlog

from ai_employee.clock import local_now, local_time, now_stamp
from ai_employee.ledger import Ledger
from ai_employee.proactive.schedules import Due, ScheduleConfig, late_words

if TYPE_CHECKING:
    from ai_employee.proactive.briefing import Writer
from ai_employee.vault.actions import Action, file_name
from ai_employee.vault.fsops import create_file
from ai_employee.vault.layout import BRIEFINGS, NEEDS_ACTION, Vault
from ai_employee.vault.notes import find_by_id

log = structlog.get_logger(__name__)


def job_title(name: str, job: ScheduleConfig) -> str:
    return job.title or name.replace("_", " ").replace("-", " ").capitalize()


def run_slot(
    vault: Vault,
    ledger: Ledger,
    name: str,
    job: ScheduleConfig,
    due: Due,
    slot_id: str,
    prose: Writer | None = None,
) -> None:
    """What the slot's job does, then the slot marked done. `prose` writes a briefing's opening."""
    if job.job == "briefing":
        write_briefing_slot(vault, ledger, name, job, due, slot_id, prose)
    else:
        report = review_text(vault, ledger) if job.job == "review" else ""
        task = job.instructions or (REVIEW_TASK if job.job == "review" else "")
        write_action(vault, name, job, due, slot_id, task=task, report=report)
    ledger.slot_done(name, due.slot.isoformat())
    late = late_words(due.late_s) or "on time"
    log.info("schedule slot ran", job=name, slot=due.slot.isoformat(), late=late, slot_id=slot_id)


REVIEW_TASK = "Go through what is still pending (below) and say what to decide first, and why."


def write_action(
    vault: Vault,
    name: str,
    job: ScheduleConfig,
    due: Due,
    action_id: str,
    title: str = "",
    task: str = "",
    report: str = "",
) -> None:
    """One action of a slot: `task`, what the owner (or the engine's own job) asks, which the planner
    follows; `report`, what the slot found (titles from emails among it), which the planner reads as
    data. Late is never silent: the action says so."""
    late = late_words(due.late_s)
    lines = [report or f"The scheduled job “{job_title(name, job)}” is due."]
    if late:
        why = "the engine was not running" if due.missed else "the engine was busy with an earlier job"
        lines.append(f"(This ran {late}: its time was {local_time(due.slot.isoformat(), job.zone())}; {why}.)")
    source: dict[str, object] = {"schedule": name, "slot": due.slot.isoformat()}
    if late:
        source["late_s"] = round(due.late_s)
    action = Action(
        id=action_id,
        type="schedule",
        title=title or job_title(name, job),
        created=now_stamp(),
        source=source,
        content={"kind": "text", "preview": "\n\n".join(lines), **({"task": task} if task else {})},
    )
    name_of = file_name(local_now(), action.title)
    create_file(vault.folder(NEEDS_ACTION), name_of, action.to_yaml().encode(), vault.tmp_dir)


def review_text(vault: Vault, ledger: Ledger) -> str:
    """What still waits, in words and oldest first: the content of a `review` job's action."""
    from ai_employee.status import group_plans, human_age

    groups = group_plans(vault, ledger)
    waiting = sorted(groups.waiting, key=lambda p: -p.age_s)
    lines = [f"What is still pending ({len(waiting)} waiting for a decision, oldest first):"]
    lines += [
        f"- {p.title} ({p.criticality.upper()}, waiting {human_age(p.age_s)}, plan {p.id[:10]})" for p in waiting[:30]
    ]
    if not waiting:
        lines.append("- nothing waits for a decision")
    if groups.attention:
        lines.append(f"Needing attention (failed or interrupted): {len(groups.attention)}")
        lines += [f"- {p.title}: {p.error or p.status}" for p in groups.attention[:10]]
    if groups.deferred:
        lines.append(f"Deferred: {len(groups.deferred)}")
    return "\n".join(lines)


EARLIER_BRIEFINGS = 12  # how far back a suggestion still waiting keeps the same one from being repeated


def suggestion_id(slot_id: str, number: int) -> str:
    """A suggestion's action id, derived from its briefing's: recovery can tell which were written."""
    return f"{slot_id[:-2]}{number:02d}"


def _written(vault: Vault, ledger: Ledger, action_id: str) -> bool:
    """Whether an action was written: still in `Needs_Action/`, or planned already."""
    return bool(
        find_by_id([vault.folder(NEEDS_ACTION)], ".action.yaml", action_id) or ledger.plan_for_action(action_id)
    )


def write_briefing_slot(
    vault: Vault, ledger: Ledger, name: str, job: ScheduleConfig, due: Due, slot_id: str, prose: Writer | None = None
) -> None:
    """The briefing note (its id the slot's), then each suggestion as an action; each written once,
    even when a crash interrupts and recovery runs the slot again."""
    from ai_employee.proactive.briefing import render, since_previous, write_briefing

    previous = ledger.previous_schedule_slot(name, due.slot.isoformat())
    period = since_previous(due.slot, datetime.fromisoformat(previous) if previous else None)
    existing = find_by_id([vault.folder(BRIEFINGS)], ".md", slot_id)
    if existing is None:
        _, found = write_briefing(vault, ledger, due.slot, period, slot_id, prose, job.zone())
    else:
        _, found = render(vault, ledger, due.slot - period, due.slot, existing.stem, job.zone())
    for suggestion in found:
        action_id = suggestion_id(slot_id, suggestion.number)
        if _written(vault, ledger, action_id):
            continue
        if _still_waits(vault, ledger, name, slot_id, suggestion.number):
            log.info("briefing suggestion not repeated: the earlier one still waits", job=name, title=suggestion.title)
            continue
        write_action(vault, name, job, due, action_id, suggestion.title, suggestion.task, suggestion.details)


def _still_waits(vault: Vault, ledger: Ledger, name: str, slot_id: str, number: int) -> bool:
    """Whether the same suggestion from one of the job's earlier briefings is still undecided (its action
    not planned yet, or its plan waiting): a stale plan is not followed up on again every week."""
    from ai_employee.status import group_plans

    earlier = [str(r["action_id"]) for r in ledger.schedule_runs(name, EARLIER_BRIEFINGS) if r["action_id"] != slot_id]
    if not earlier:
        return False
    groups = group_plans(vault, ledger)
    waiting = {p.id for p in groups.waiting + groups.deferred}
    for briefing_id in earlier:
        action_id = suggestion_id(briefing_id, number)
        plan_id = ledger.plan_for_action(action_id)
        if plan_id in waiting or (
            plan_id is None and find_by_id([vault.folder(NEEDS_ACTION)], ".action.yaml", action_id)
        ):
            return True
    return False


def recover_slots(
    vault: Vault,
    ledger: Ledger,
    jobs: dict[str, ScheduleConfig],
    prose: Writer | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    older_than_s: float = 0.0,
) -> int:
    """Slots left claimed (a crash; a write that failed: those claimed `older_than_s` ago): what they
    write is written now, unless it was (the action in `Needs_Action/` or planned; a briefing's note and
    suggestions each by id). A slot of a job since removed or disabled is `abandoned`. The count run."""
    from datetime import timedelta

    before = ""
    if older_than_s > 0:
        before = (datetime.now(UTC) - timedelta(seconds=older_than_s)).isoformat(timespec="milliseconds")
    ran = 0
    for row in ledger.open_slots(before):
        name, slot_id = str(row["job"]), str(row["action_id"])
        job = jobs.get(name)
        if job is None or not job.enabled:
            ledger.slot_done(name, str(row["slot"]), "abandoned")
            log.info("schedule slot abandoned: its job is gone or disabled", job=name, slot=str(row["slot"]))
            continue
        if job.job != "briefing" and _written(vault, ledger, slot_id):
            ledger.slot_done(name, str(row["slot"]))
            continue
        slot = datetime.fromisoformat(str(row["slot"]))
        late_s = (clock() - slot).total_seconds()
        run_slot(vault, ledger, name, job, Due(name, slot, late_s, True), slot_id, prose)
        ran += 1
    return ran
