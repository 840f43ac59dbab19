"""The composition root: the one place where the engine's parts are built from config and wired.

The planner (from `claude`: the Claude planner when it has a key, else the template planner), the
context every stage shares, the MCP pool and the services `vault start` runs are made here and nowhere
else; sources and notifiers are added here as they come. The CLI takes the service names from
`SERVICE_NAMES` (this module imports nothing heavy at the top, so commands stay cheap), and
`build_services` checks that it builds exactly those.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ai_employee.budget import Budget
    from ai_employee.config import Config
    from ai_employee.events import EventBus
    from ai_employee.executor.mcp_pool import McpPool
    from ai_employee.ledger import Ledger
    from ai_employee.notify.channels import Channel
    from ai_employee.notify.notifier import Notifier
    from ai_employee.orchestrator import Service
    from ai_employee.pipeline.context import EngineContext
    from ai_employee.planner import Planner
    from ai_employee.policy import Policy
    from ai_employee.proactive.briefing import Writer
    from ai_employee.vault.layout import Vault

# The services `vault start` runs, in the order they start (`notifier` when channels are configured,
# `telegram` when the bot is enabled, `scheduler` when there are schedules, `monitors` when there are
# monitors, `gmail` when `gmail.enabled`); `vault start --once` runs the first in burst mode, after
# one sync of each source, and then one round of notifications.
SERVICE_NAMES = (
    "pipeline",
    "watcher",
    "dashboard",
    "notifier",
    "telegram",
    "scheduler",
    "monitors",
    "gmail",
    "web",
)


def claude_configured(config: Config) -> bool:
    """Whether the Claude planner is used (a key is set); without one, the template planner is."""
    return config.claude.api_key is not None and bool(config.claude.api_key.get_secret_value())


def make_planner(config: Config, tools: McpPool, budget: Budget, ledger: Ledger | None = None) -> Planner:
    """The Claude planner when `claude.api_key` is set (falling back to the template planner, per
    draft, whenever it cannot plan, or the day's budget is spent), else the template planner."""
    from ai_employee.planner import TemplatePlanner

    if not claude_configured(config):
        return TemplatePlanner()
    from ai_employee.planner.claude import ClaudePlanner

    if ledger is None:
        return ClaudePlanner(config, tools, budget)
    memory = ledger  # earlier plans for the same sender or thread, and what the owner decided
    return ClaudePlanner(config, tools, budget, lambda a: memory.related_plans(a.sender, a.thread, a.id))


def make_budget(config: Config, ledger: Ledger, bus: EventBus) -> Budget:
    """The day's token budgets; reservations a crash left behind are counted as spent here, at start."""
    from ai_employee.budget import Budget

    budget = Budget(ledger, config.budget, bus.publish)
    budget.clear_stale()
    return budget


def colleagues(config: Config) -> list[str]:
    """Who counts as a known contact besides `policy.known_contacts`: you and your organisation."""
    return [*config.app.owner_addresses, *(f"@{d.lstrip('@')}" for d in config.app.own_domains)]


def make_policy(config: Config, ledger: Ledger | None = None, annotations: Any = None) -> Policy:
    """The policy of `policy:`, with the rules learned from your decisions (accepted in
    `vault insights`, or promoted by themselves with `learning.auto_promote`) when there is a ledger."""
    from ai_employee.policy import Policy
    from ai_employee.policy.learning import Learned

    policy = Policy(config.policy, colleagues(config), annotations or (lambda tool: None))
    if ledger is not None:
        from ai_employee.vault.plans import Step

        learning = config.learning
        level_of = lambda tool: policy.rate_step(Step(tool=tool, args={}))[0].label  # noqa: E731
        policy.learned = Learned(config.learned_path(), ledger, level_of, learning.auto_promote, learning.min_samples)
    return policy


def announce_pauses(pool: McpPool, bus: EventBus) -> None:
    """A server paused or resumed is an event (`server.paused`, `server.resumed`): the ledger, the
    dashboard and notifications hear of it."""
    import time

    from ai_employee.events import EventName, ServerPayload

    pool.on_pause = lambda server, p: bus.publish(EventName.SERVER_PAUSED, ServerPayload(server, p.kind, p.reason))
    pool.on_resume = lambda server, p: bus.publish(
        EventName.SERVER_RESUMED, ServerPayload(server, p.kind, p.reason, round(time.monotonic() - p.since, 1))
    )


def make_channels(config: Config, vault: Vault) -> dict[str, Channel]:
    """The notification channels of `notify:` (Apprise URLs are checked here: a bad one is a
    ConfigError naming it), and the Telegram bot when it is enabled."""
    from ai_employee.logsetup import Redactor
    from ai_employee.notify.channels import AppriseChannel

    redact = Redactor(config.secrets()).scrub
    channels: dict[str, Channel] = {
        name: AppriseChannel(name, urls, redact) for name, urls in config.notify.channels.items()
    }
    if config.notify.telegram.enabled:
        from ai_employee.notify.telegram import TelegramChannel

        channels["telegram"] = TelegramChannel(config, vault, redact)
    return channels


def make_notifier(ctx: EngineContext) -> Notifier | None:
    """The notifier, when there is somewhere to send to."""
    from ai_employee.logsetup import Redactor
    from ai_employee.notify.notifier import Notifier

    channels = make_channels(ctx.config, ctx.vault)
    if not channels:
        return None
    return Notifier(ctx.vault, ctx.config.notify, ctx.bus, channels, redact=Redactor(ctx.config.secrets()).scrub)


def make_scheduler(ctx: EngineContext) -> Service | None:
    """The scheduler, with its own ledger connection (it runs on a worker thread), when jobs are set;
    slots a crash left claimed are settled first."""
    from ai_employee.ledger import Ledger
    from ai_employee.proactive.jobs import recover_slots, run_slot
    from ai_employee.proactive.onloop import EngineLoop
    from ai_employee.proactive.schedules import ScheduleClaims, Scheduler

    jobs = {name: job for name, job in ctx.config.schedules.items() if job.enabled}
    if not jobs:
        return None
    ledger = Ledger(ctx.vault.ledger_path)
    vault, engine = ctx.vault, EngineLoop()
    timeout_s = ctx.config.claude.timeout_s + 5
    prose = briefing_writer(ctx.planner, lambda coroutine: engine.run(coroutine, timeout_s))
    return Scheduler(
        jobs,
        lambda due, action_id: run_slot(vault, ledger, due.job, jobs[due.job], due, action_id, prose),
        ScheduleClaims(ledger),
        recover=lambda older_than_s: recover_slots(vault, ledger, jobs, prose, older_than_s=older_than_s),
        engine=engine,
    )


def briefing_writer(planner: Planner, run: Callable[[Any], str]) -> Writer | None:
    """What writes a briefing's opening: Claude, within the `proactive` budget, when the planner is
    Claude's (`run` takes the coroutine to where it can run: the engine's loop, or `asyncio.run` in the
    CLI); None for the template planner."""
    if getattr(planner, "name", "") != "claude":
        return None
    from ai_employee.clock import now_stamp
    from ai_employee.planner.claude import ClaudePlanner
    from ai_employee.proactive.briefing import TASK
    from ai_employee.vault.actions import Action

    claude = planner if isinstance(planner, ClaudePlanner) else None
    if claude is None:
        return None

    def write(note_id: str, text: str) -> str:
        action = Action(id=note_id, type="schedule", title="The briefing's opening", created=now_stamp())
        return run(claude.write(action, TASK, text))

    return write


def make_monitors(ctx: EngineContext) -> Service | None:
    """The monitors service, with its own ledger connection (it checks on a worker thread), when any
    monitor is set."""
    import functools

    from ai_employee.ledger import Ledger
    from ai_employee.logsetup import Redactor
    from ai_employee.proactive.monitors import Monitors, raise_alert

    watch = {name: m for name, m in ctx.config.monitors.watch.items() if m.enabled}
    if not watch:
        return None
    from ai_employee.budget import Budget

    ledger = Ledger(ctx.vault.ledger_path)
    vault = ctx.vault
    budget = Budget(ledger, ctx.config.budget)
    return Monitors(
        vault,
        watch,
        ledger,
        functools.partial(raise_alert, vault, ledger),
        budget=lambda: budget.used_fraction("proactive"),
        pool=ctx.pool,
        redact=Redactor(ctx.config.secrets()).scrub,
    )


def make_context(vault: Vault, config: Config, ledger: Ledger, bus: EventBus) -> EngineContext:
    from ai_employee.executor.mcp_pool import McpPool
    from ai_employee.pipeline.context import EngineContext

    pool = McpPool.for_engine(config, vault)
    announce_pauses(pool, bus)
    return EngineContext(
        vault=vault,
        config=config,
        ledger=ledger,
        bus=bus,
        policy=make_policy(config, ledger, pool.annotations),
        planner=make_planner(config, pool, make_budget(config, ledger, bus), ledger),
        pool=pool,
    )


def build_services(
    ctx: EngineContext, should_stop: Callable[[], bool], mode: Callable[[], str], once: bool = False
) -> list[Service]:
    """The services, wired: the watcher's and the sources' hints go to the pipeline; the dashboard
    follows the bus. With `once`, the pipeline, the schedules and monitors, and the sources (each looked
    at once, then the pipeline runs until nothing is left: a burst needs no watcher)."""
    from ai_employee.dashboard import DashboardWriter
    from ai_employee.pipeline.runner import Pipeline
    from ai_employee.watcher import VaultWatcher

    pipeline = Pipeline(ctx, should_stop)
    sources: list[Service] = []
    if ctx.config.gmail.enabled:
        from ai_employee.gmail.sync import GmailSource

        sources.append(GmailSource(ctx, pipeline.hint))
    proactive = [service for service in (make_scheduler(ctx), make_monitors(ctx)) if service is not None]
    if once:
        return [pipeline, *proactive, *sources]  # schedules and monitors first: the burst plans what they raise
    watcher = VaultWatcher(ctx.vault, pipeline.hint, ctx.config.watcher.polling, ctx.config.watcher.poll_interval)
    services: list[Service] = [pipeline, watcher, DashboardWriter(ctx.vault, ctx.bus, mode)]
    notifier = make_notifier(ctx)
    if notifier is not None:
        services.append(notifier)
    if ctx.config.notify.telegram.enabled:
        from ai_employee.notify.telegram import TelegramBot

        services.append(TelegramBot(ctx.vault, ctx.config))
    services += [*proactive, *sources]
    if ctx.config.web.serve:
        from ai_employee.web.server import WebService

        web = ctx.config.web
        services.append(WebService(ctx.vault, ctx.config, web.host, web.port))
    names = tuple(service.name for service in services)
    if names != tuple(name for name in SERVICE_NAMES if name in names):
        raise AssertionError(f"the services built ({names}) are not the ones named ({SERVICE_NAMES})")
    return services
