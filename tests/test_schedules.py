"""Schedules with an injected clock: slots across DST changes, each slot once across restarts, a crash
between the claim and the action, downtime with each catch-up policy, lateness said, and the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from click.testing import CliRunner

from ai_employee.cli import cli
from ai_employee.config import Config, load_config
from ai_employee.errors import ConfigError
from ai_employee.ledger import Ledger
from ai_employee.proactive.jobs import recover_slots, run_slot
from ai_employee.proactive.schedules import Due, ScheduleClaims, ScheduleConfig, Scheduler, due_slots, slots_between
from ai_employee.vault.layout import Vault
from tests.conftest import files

BERLIN = "Europe/Berlin"
ZONE = ZoneInfo(BERLIN)


def job(cron: str, **extra: Any) -> ScheduleConfig:
    return ScheduleConfig.model_validate({"cron": cron, "timezone": BERLIN, **extra})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_slots_across_daylight_saving_changes() -> None:
    nightly = job("30 2 * * *")
    spring = slots_between(nightly, at("2026-03-28T00:00+01:00"), at("2026-03-31T00:00+02:00"))
    assert [s.astimezone(UTC).isoformat() for s in spring] == [
        "2026-03-28T01:30:00+00:00",
        "2026-03-29T01:00:00+00:00",  # 02:30 does not exist that night: 03:00 local
        "2026-03-30T00:30:00+00:00",
    ]
    autumn = slots_between(nightly, at("2026-10-24T00:00+02:00"), at("2026-10-27T00:00+01:00"))
    assert len(autumn) == 3  # 02:30 happens twice on the 25th: once
    # ...also when the scheduler asks slot by slot: after the first 02:30, the second is not a new slot.
    after_first = slots_between(nightly, at("2026-10-25T02:30+02:00"), at("2026-10-26T00:00+01:00"))
    assert after_first == []
    morning = slots_between(job("0 8 * * *"), at("2026-10-24T00:00+02:00"), at("2026-10-27T00:00+01:00"))
    assert {s.astimezone(ZONE).hour for s in morning} == {8}  # 08:00 local on both sides of the change


@pytest.mark.parametrize(
    ("catch_up", "runs"),
    [("latest", [False, False, True]), ("all", [True, True, True]), ("skip", [False, False, False])],
)
def test_missed_slots_follow_the_jobs_catch_up(catch_up: str, runs: list[bool]) -> None:
    daily = job("0 8 * * *", catch_up=catch_up)
    due = due_slots("d", daily, at("2026-12-01T09:00+01:00"), at("2026-12-04T10:00+01:00"))
    assert [d.run for d in due] == runs
    assert [round(d.late_s / 3600) for d in due] == [50, 26, 2]


def test_an_on_time_slot_runs_even_with_skip() -> None:
    due = due_slots(
        "d", job("0 8 * * *", catch_up="skip"), at("2026-12-01T09:00+01:00"), at("2026-12-02T08:00:20+01:00")
    )
    assert [(d.run, d.late_s) for d in due] == [(True, 20.0)]


class Week:
    """A scheduler on a real vault and ledger, driven by an injected clock."""

    def __init__(self, root: Path, jobs: dict[str, ScheduleConfig], now: datetime) -> None:
        self.vault = Vault(root)
        self.ledger = Ledger(self.vault.ledger_path)
        self.jobs = jobs
        self.now = now
        self.scheduler = self.start()

    def start(self) -> Scheduler:
        def fire(due: Due, action_id: str) -> None:
            run_slot(self.vault, self.ledger, due.job, self.jobs[due.job], due, action_id)

        scheduler = Scheduler(self.jobs, fire, ScheduleClaims(self.ledger), lambda: self.now)
        scheduler.cycle()  # as the service does when it starts
        return scheduler

    def advance(self, hours: float, step_h: float = 1.0) -> None:
        end = self.now + timedelta(hours=hours)
        while self.now < end:
            self.now = min(end, self.now + timedelta(hours=step_h))
            self.scheduler.cycle()

    def actions(self) -> list[dict[str, Any]]:
        return [yaml.safe_load(p.read_text()) for p in files(self.vault.folder("Needs_Action"), ".action.yaml")]


@pytest.fixture
def week(vault: Path) -> Iterator[Any]:
    made: list[Week] = []

    def make(jobs: dict[str, ScheduleConfig], start: str) -> Week:
        made.append(Week(vault, jobs, at(start)))
        return made[-1]

    yield make
    for one in made:
        one.ledger.close()


def test_a_simulated_week_runs_each_slot_once_across_a_restart(week: Any) -> None:
    w = week({"review": job("0 8 * * *", instructions="List what is still pending.")}, "2026-11-30T06:00+01:00")
    w.advance(60)  # Monday 06:00 to Wednesday 18:00: Monday, Tuesday, Wednesday
    w.scheduler = w.start()  # a restart: the same ledger, a new scheduler
    w.advance(96)  # to Sunday 18:00
    slots = [a["source"]["slot"] for a in w.actions()]
    assert len(slots) == 7 and len(set(slots)) == 7
    assert all(a["type"] == "schedule" and a["content"]["task"] == "List what is still pending." for a in w.actions())
    assert all("late" not in a["content"]["preview"] for a in w.actions())  # each on time


def test_a_new_job_does_not_run_the_past(week: Any) -> None:
    w = week({"review": job("0 8 * * *")}, "2026-12-03T12:00+01:00")
    w.advance(1)
    assert w.actions() == []  # today's 08:00 was before the job existed


def test_downtime_runs_the_latest_slot_late_and_says_so(week: Any) -> None:
    w = week({"review": job("0 8 * * *", catch_up="latest")}, "2026-12-01T07:00+01:00")
    w.advance(2)  # Tuesday 08:00 runs on time
    w.now += timedelta(days=3)  # the engine was down until Friday 09:00
    w.scheduler = w.start()
    actions = w.actions()
    [late] = [a for a in actions if "late_s" in a["source"]]
    assert len(actions) == 2 and "ran 60 min late" in late["content"]["preview"] and late["source"]["late_s"] == 3600
    states = [r["state"] for r in w.ledger.schedule_runs("review", 10)]
    assert states.count("skipped") == 2 and states.count("done") == 2  # Wednesday and Thursday on record


def test_a_crash_between_the_claim_and_the_action_writes_it_once(vault: Path) -> None:
    v = Vault(vault)
    ledger = Ledger(v.ledger_path)
    try:
        jobs = {"review": job("0 8 * * *")}
        ledger.claim_slot("review", "2026-12-03T07:00:00+00:00", "claimed", 0.0, "01JSLOT0000000000000000001")
        assert recover_slots(v, ledger, jobs) == 1
        assert recover_slots(v, ledger, jobs) == 0
        [action] = files(v.folder("Needs_Action"), ".action.yaml")
        assert yaml.safe_load(action.read_text())["id"] == "01JSLOT0000000000000000001"
    finally:
        ledger.close()


def test_config_names_a_bad_cron(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("schedules:\n  review:\n    cron: 'every morning'\n")
    with pytest.raises(ConfigError, match=r"schedules.review.cron.*not a cron expression"):
        load_config(path, {})
    assert Config.model_validate({"schedules": {"ok": {"cron": "0 7 * * mon"}}}).schedules["ok"].catch_up == "latest"


def test_vault_schedules_lists_and_runs_a_job(vault: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("schedules:\n  review:\n    cron: '0 8 * * *'\n    title: Morning review\n")
    base = ["--vault", str(vault), "--config", str(config)]
    listed = CliRunner().invoke(cli, [*base, "schedules"])
    assert listed.exit_code == 0 and "review: `0 8 * * *`" in listed.output and "never run yet" in listed.output
    ran = CliRunner().invoke(cli, [*base, "schedules", "run", "review"])
    assert ran.exit_code == 0, ran.output
    [action] = files(vault / "Needs_Action", ".action.yaml")
    assert yaml.safe_load(action.read_text())["title"] == "Morning review"
    listed = CliRunner().invoke(cli, [*base, "schedules"])
    assert "(run by hand)" in listed.output
    unknown = CliRunner().invoke(cli, [*base, "schedules", "run", "nope"])
    assert unknown.exit_code != 0 and "no schedule named `nope`" in str(unknown.exception)


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_vault_start_once_runs_what_is_due_for_cron_users(vault: Path, tmp_path: Path) -> None:
    from tests.invariants import start_once

    config = tmp_path / "config.yaml"
    config.write_text("schedules:\n  nightly:\n    cron: '0 0 * * *'\n    timezone: UTC\n    title: Nightly check\n")
    ledger = Ledger(Vault(vault).ledger_path)
    try:  # the job has been known for a day: its latest slot is due, the older ones were missed
        ledger.schedule_since("nightly", (datetime.now(UTC) - timedelta(days=2)).isoformat())
    finally:
        ledger.close()
    assert start_once(vault, config=config).returncode == 0
    [done] = [p for p in files(vault / "Done", ".md") if "Nightly check" in p.read_text()]
    assert "DRY RUN" in done.read_text()
    again = start_once(vault, config=config)  # a second burst the same day: nothing new
    assert (
        again.returncode == 0
        and len([p for p in files(vault / "Done", ".md") if "Nightly check" in p.read_text()]) == 1
    )


def test_a_slot_whose_action_cannot_be_written_is_retried_not_left_claimed(vault: Path) -> None:
    """A write that fails (a full disk) leaves the slot claimed and the service unhealthy; the running
    engine's recovery finishes it once the claim is stale, and the service is healthy again."""
    v, ledger = Vault(vault), Ledger(Vault(vault).ledger_path)
    jobs = {"review": job("0 8 * * *")}
    now = [at("2026-12-03T07:59+01:00")]
    broken = [True]

    def fire(due: Due, action_id: str) -> None:
        if broken[0]:
            raise OSError(28, "No space left on device")
        run_slot(v, ledger, due.job, jobs[due.job], due, action_id)

    def recover(older_than_s: float) -> object:
        return recover_slots(v, ledger, jobs, older_than_s=older_than_s)

    try:
        scheduler = Scheduler(jobs, fire, ScheduleClaims(ledger), lambda: now[0], recover=recover)
        scheduler.cycle()
        now[0] = at("2026-12-03T08:00:05+01:00")
        scheduler.cycle()
        assert not scheduler.healthy() and "review: OSError" in str(scheduler.fault)
        assert [r["state"] for r in ledger.open_slots()] == ["claimed"]
        broken[0] = False
        scheduler.cycle()  # claimed moments ago: not yet stale
        assert len(ledger.open_slots()) == 1 and scheduler.healthy()
        ledger.db.execute("UPDATE schedule_runs SET claimed = '2026-12-03T06:00:00.000+00:00'")  # an hour on
        scheduler.cycle()
        assert ledger.open_slots() == [] and len(files(v.folder("Needs_Action"), ".action.yaml")) == 1
    finally:
        ledger.close()


def test_a_claimed_slot_of_a_removed_job_is_abandoned_not_done(vault: Path) -> None:
    v, ledger = Vault(vault), Ledger(Vault(vault).ledger_path)
    try:
        ledger.claim_slot("gone", "2026-12-03T07:00:00+00:00", "claimed", 0.0, "01JSLOT0000000000000000002")
        disabled = {"paused": job("0 8 * * *", enabled=False)}
        ledger.claim_slot("paused", "2026-12-03T07:00:00+00:00", "claimed", 0.0, "01JSLOT0000000000000000003")
        assert recover_slots(v, ledger, disabled) == 0
        assert {r["job"]: r["state"] for r in ledger.schedule_runs("gone") + ledger.schedule_runs("paused")} == {
            "gone": "abandoned",
            "paused": "abandoned",
        }
        assert files(v.folder("Needs_Action"), ".action.yaml") == []
    finally:
        ledger.close()


def test_every_half_hour_runs_the_repeated_hour_once() -> None:
    """`*/30` on the night clocks go back: 02:00 and 02:30 happen twice in Berlin; each wall time once,
    also when asked slot by slot."""
    half = job("*/30 * * * *")
    night = slots_between(half, at("2026-10-25T01:45+02:00"), at("2026-10-25T03:10+01:00"))
    walls = [s.astimezone(ZONE).strftime("%H:%M") for s in night]
    assert walls == ["02:00", "02:30", "03:00"]
    # Slot by slot, from the last slot handled, as the service asks.
    last, walls = at("2026-10-25T01:45+02:00"), []
    for _ in range(8):
        found = slots_between(half, last, at("2026-10-25T03:10+01:00"))[:1]
        if not found:
            break
        walls.append(found[0].astimezone(ZONE).strftime("%H:%M"))
        last = found[0]
    assert walls == ["02:00", "02:30", "03:00"]


def test_a_month_down_with_a_minute_cron_decides_on_the_newest_slots_quickly(week: Any) -> None:
    """43,200 minute slots missed: the newest runs (not the oldest), the newest MAX_SLOTS are recorded
    skipped in one transaction, and the job goes on from now."""
    import time

    from ai_employee.proactive.schedules import MAX_SLOTS

    w = week({"tick": job("* * * * *", catch_up="latest")}, "2026-11-01T00:00:30+01:00")
    w.now = at("2026-12-01T00:00:30+01:00")
    started = time.monotonic()
    w.scheduler = w.start()
    took = time.monotonic() - started
    [action] = w.actions()
    assert action["source"]["slot"] == at("2026-12-01T00:00+01:00").isoformat()
    states = [r["state"] for r in w.ledger.schedule_runs("tick", 10_000)]
    assert states.count("skipped") == MAX_SLOTS - 1 and states.count("done") == 1
    assert took < 30  # generous: a guard against walking and syncing every one of 43,200 slots


def test_a_job_behind_a_slow_one_is_not_skipped_as_missed(week: Any) -> None:
    """A briefing that takes two minutes (Claude) does not make the next job's on-time slot "missed":
    with `catch_up: skip` it still runs, and says it was late because the engine was busy."""
    jobs = {"slow": job("0 8 * * *"), "quick": job("1 8 * * *", catch_up="skip")}
    w = week(jobs, "2026-12-03T07:59+01:00")
    w.now = at("2026-12-03T08:00:10+01:00")
    w.scheduler.cycle()  # the slow job's slot runs...
    w.now = at("2026-12-03T08:03:30+01:00")  # ...and took until 08:03:30
    w.scheduler.cycle()
    quick = [a for a in w.actions() if a["source"]["schedule"] == "quick"]
    assert len(quick) == 1 and "engine was busy" in quick[0]["content"]["preview"]
