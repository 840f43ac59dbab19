"""The words of the engine's callout in a plan note, one function per state the note can be in.

Every state change replaces the callout (`set_callout`), so the note always says where it stands.
Each function returns (callout kind, title, lines); the stages decide, these only word it.
"""

from __future__ import annotations

from ai_employee.vault.actions import clean_text

Callout = tuple[str, str, list[str]]
RETRY_HELP = "Fix the steps if needed, then move this note back to `Approved/` to try again, or to `Rejected/`."
CHANNEL_WORDS = {
    "cli": "with `vault approve`",
    "file": "by moving the note into `Approved/`",
    "policy": "by the policy (LOW risk)",
}


def waiting(level: str, plan_id: str, feedback: bool = False) -> Callout:
    lines = [
        f"This plan is **{level.upper()}** risk. Move this note to `Approved/` to run it, or to `Rejected/`"
        " to decline it.",
        "You may edit the steps below first: what runs is exactly what the note says when you approve.",
    ]
    if feedback:
        lines.append("Not quite right? Write what should change under **Feedback** below: a new version follows.")
    lines.append(f"From a terminal: `vault approve {plan_id}` or `vault deny {plan_id}`.")
    return ("question", "waiting for your approval", lines)


def runs_by_itself(level: str) -> Callout:
    return (
        "info",
        "runs by itself",
        [f"This plan is **{level.upper()}** risk, so the engine approved it and runs it without asking."],
    )


def approved(actor: str, channel: str, at: str) -> Callout:
    how = CHANNEL_WORDS.get(channel, f"via {channel}")
    return ("info", "approved", [f"Approved by {clean_text(actor, 80)} {how} at {at}. The engine runs it next."])


def running(channel: str, at: str) -> Callout:
    how = CHANNEL_WORDS.get(channel, f"via {channel}")
    return ("info", "running", [f"Approved {how}; running since {at}. The log is added when it finishes."])


def rejected(actor: str, at: str, feedback: str = "") -> Callout:
    lines = [f"Declined by {clean_text(actor, 80)} at {at}. Nothing in it was run."]
    if feedback:
        lines.append(f"Feedback: {clean_text(feedback, 500)}")
    lines.append("To run it after all, move this note to `Approved/`: that is a new approval.")
    return ("note", "rejected", lines)


def expired(at: str, waited: str) -> Callout:
    lines = [
        f"Expired at {at}: nobody decided within {waited}, so it was declined by the timeout. Nothing in it"
        " was run; a timeout never approves.",
        "To run it after all, move this note to `Approved/`: that is a new approval.",
    ]
    return ("note", "expired", lines)


def steps_changed(level: str, reasons: list[str], diff: list[str], decided: str) -> Callout:
    """The steps are not the ones the last approval saw: what changed, and the new rating."""
    lines = [
        f"The steps changed after they were approved ({decided}), so they did not run. Nothing was run.",
        f"Rated again, they are **{level.upper()}** risk:",
        *(f"- {reason}" for reason in reasons),
    ]
    if diff:
        lines += ["", "What changed since the approval:", *diff]
    lines += ["", "Move this note to `Approved/` to run the steps as they are now, or to `Rejected/`."]
    return ("question", "waiting for your approval: the steps changed", lines)


def no_decision(level: str, reasons: list[str]) -> Callout:
    """The note says it is approved, but no approval of these steps is on record."""
    return (
        "question",
        "waiting for your approval",
        [
            "This note says it is approved, but no approval of these steps is on record, so they did not run.",
            f"Rated by the policy, they are **{level.upper()}** risk:",
            *(f"- {reason}" for reason in reasons),
            "",
            "Move this note to `Approved/` to run them, or to `Rejected/`.",
        ],
    )


def done(dry_run: bool) -> Callout:
    if dry_run:
        return (
            "success",
            "done (dry run)",
            [
                "This was a **dry run**: every step was checked against its tool, and nothing outside the vault"
                " was changed. The log below says what would have been called.",
                "To run plans for real, start the engine with `--live` (or set `execution.dry_run: false`).",
            ],
        )
    return ("success", "done", ["Every step ran. The log below says what happened."])


def _resume_help(plan_id: str) -> str:
    how = f" (or run `vault resume {plan_id[:10]}`)" if plan_id else ""
    return (
        f"Then move this note back to `Approved/`{how} to go on from the first step not done: a step that"
        " ran is never run again. Or move it to `Rejected/`."
    )


def failed(detail: str, plan_id: str = "", what_to_do: str = "") -> Callout:
    """A plan that stopped on a failure; the steps that ran are ticked in the checklist."""
    return (
        "failure",
        "failed",
        [detail, (what_to_do or "Fix what is wrong (or the steps).") + " " + _resume_help(plan_id)],
    )


def outcome(status: str, dry_run: bool, detail: str, plan_id: str, step: int, failure: str) -> Callout:
    """The callout of a run's result: done, interrupted at `step`, or failed (with what to do about a
    failure of that kind)."""
    if status == "done":
        return done(dry_run)
    if status == "interrupted":
        return interrupted(detail, step, plan_id)
    return failed(detail, plan_id, _what_to_do(failure))


def _what_to_do(kind: str) -> str:
    if kind == "transient":
        return "It kept failing for a reason that usually passes (the service was down or busy): try again later."
    if kind == "logic":
        return "The tool refused the step as it is: fix the step's arguments (or the data it needs)."
    return "Fix what is wrong (or the steps)."


def interrupted(detail: str, step: int = 0, plan_id: str = "") -> Callout:
    which = f"step {step}" if step else "the step"
    return (
        "warning",
        "interrupted: may or may not have happened",
        [
            detail,
            f"Check whether {which} happened (a sent folder, the note it writes). If it did, delete it from the"
            " steps; if it did not, leave it, and it runs again. " + _resume_help(plan_id),
        ],
    )


def blocked(blocker: str) -> Callout:
    """An approved plan that cannot go on yet (a paused server, a rate limit): it stays in `Approved/`."""
    return (
        "warning",
        "waiting",
        [
            f"Waiting: {blocker}.",
            "It goes on by itself when it can; the steps already done (ticked) are not run again. To call it"
            " off, move this note to `Rejected/`.",
        ],
    )


def interrupted_at_restart(step_index: int, tool: str, plan_id: str = "") -> Callout:
    return interrupted(
        f"The engine stopped while step {step_index} (`{tool}`) was running, so it may or may not have"
        " happened. It was not retried.",
        step_index,
        plan_id,
    )


def cannot_run(title: str, problem: str) -> Callout:
    return ("failure", title, [problem, RETRY_HELP])
