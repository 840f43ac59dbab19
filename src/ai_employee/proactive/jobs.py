"""What a schedule slot does: it writes an action file into `Needs_Action/` (type `schedule`), which
the pipeline plans like any other item. Recovery writes the action of a slot claimed before a crash,
unless it is already there."""

from __future__ import annotations

from datetime import datetime

import structlog

from ai_employee.clock import local_now, local_time, now_stamp
from ai_employee.ledger import Ledger
from ai_employee.proactive.schedules import Due, ScheduleConfig, late_words
from ai_employee.vault.actions import Action, file_name
from ai_employee.vault.fsops import create_file
from ai_employee.vault.layout import NEEDS_ACTION, Vault
from ai_employee.vault.notes import find_by_id

log = structlog.get_logger(__name__)


def job_title(name: str, job: ScheduleConfig) -> str:
    return job.title or name.replace("_", " ").replace("-", " ").capitalize()


def write_action(vault: Vault, ledger: Ledger, name: str, job: ScheduleConfig, due: Due, action_id: str) -> None:
    """The slot's action, then the slot marked done. Late is never silent: the action says so."""
    late = late_words(due.late_s)
    lines = [job.instructions or f"The scheduled job “{job_title(name, job)}” is due."]
    if late:
        lines.append(f"(This ran {late}: its time was {local_time(due.slot.isoformat())}; the engine was not running.)")
    source: dict[str, object] = {"schedule": name, "slot": due.slot.isoformat()}
    if late:
        source["late_s"] = round(due.late_s)
    action = Action(
        id=action_id,
        type="schedule",
        title=job_title(name, job),
        created=now_stamp(),
        source=source,
        content={"kind": "text", "preview": "\n\n".join(lines)},
    )
    create_file(
        vault.folder(NEEDS_ACTION), file_name(local_now(), action.title), action.to_yaml().encode(), vault.tmp_dir
    )
    ledger.slot_done(name, due.slot.isoformat())
    log.info("schedule slot ran", job=name, slot=due.slot.isoformat(), late=late or "on time", action_id=action_id)


def recover_slots(vault: Vault, ledger: Ledger, jobs: dict[str, ScheduleConfig]) -> int:
    """Slots a crash left claimed: their action is written now, unless it was written (in
    `Needs_Action/`, or planned already). The count written."""
    written = 0
    for row in ledger.open_slots():
        job = jobs.get(str(row["job"]))
        action_id = str(row["action_id"])
        there = find_by_id([vault.folder(NEEDS_ACTION)], ".action.yaml", action_id) or ledger.plan_for_action(action_id)
        if there or job is None:
            ledger.slot_done(str(row["job"]), str(row["slot"]))
            continue
        slot = datetime.fromisoformat(str(row["slot"]))
        late_s = (datetime.now(slot.tzinfo) - slot).total_seconds()
        write_action(vault, ledger, str(row["job"]), job, Due(str(row["job"]), slot, late_s, True), action_id)
        written += 1
    return written
