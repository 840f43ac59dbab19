"""The page's routes: views (GET) and decisions (POST, with the CSRF token), on the same vault and the
same decision API as the CLI and the folders (`pipeline/decisions.py`, channel `web`).

Work that touches files and SQLite runs on a worker thread, one request at a time (the ledger's
connection is not shared between threads at once), so the event loop (the engine's too, with
`vault start --web`) is not held up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ai_employee.config import Config
from ai_employee.errors import AIEmployeeError, FormatError, UserError
from ai_employee.ledger import Ledger
from ai_employee.status import VaultView
from ai_employee.vault.layout import APPROVED, DONE, PLANS, QUARANTINE, REJECTED, Vault
from ai_employee.web import views
from ai_employee.web.security import CSRF_FIELD, CSRF_HEADER, Access, Guard, same_secret

HERE = Path(__file__).parent
T = TypeVar("T")
WATCHED = (PLANS, APPROVED, REJECTED, DONE, QUARANTINE)
LIVE_POLL_S = 0.25  # how often the live feed looks for a change (a note moved, an event recorded)
PAGES = [
    ("waiting", "Waiting"),
    ("attention", "Needs attention"),
    ("history", "History"),
    ("activity", "Activity"),
    ("budget", "Budget"),
    ("monitors", "Monitors"),
]


class Desk:
    """What the routes share: the vault, the config, one ledger connection (used by one thread at a
    time), and what is kept between requests (the plans' summaries and details)."""

    def __init__(self, vault: Vault, config: Config, access: Access) -> None:
        self.vault = vault
        self.config = config
        self.access = access
        self.ledger = Ledger(vault.ledger_path)
        self.view = VaultView()
        self.details = views.Details()
        self._lock = threading.Lock()
        self._feed: sqlite3.Connection | None = None  # the live feed's own read-only connection
        self._feed_lock = threading.Lock()

    async def work(self, fn: Callable[..., T], *args: Any) -> T:
        def locked() -> T:
            with self._lock:
                return fn(*args)

        return await run_in_threadpool(locked)

    def signature(self) -> tuple[int, ...]:
        """What changes when the page should: the plan folders' modification times, the newest edit of a
        note in `Plans/` (an edit in Obsidian changes the card), the latest event. Read without the
        desk's lock, on a connection of its own: a decision in progress does not hold up the feed."""
        stamps = []
        for name in WATCHED:
            try:
                stamps.append(os.stat(self.vault.folder(name)).st_mtime_ns)
            except FileNotFoundError:
                stamps.append(0)
        newest = 0
        with contextlib.suppress(FileNotFoundError), os.scandir(self.vault.folder(PLANS)) as found:
            for entry in found:
                with contextlib.suppress(OSError):
                    newest = max(newest, entry.stat(follow_symlinks=False).st_mtime_ns)
        with self._feed_lock:
            if self._feed is None:
                self._feed = sqlite3.connect(
                    f"{self.vault.ledger_path.absolute().as_uri()}?mode=ro", uri=True, check_same_thread=False
                )
            row = self._feed.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()
        return (*stamps, newest, int(row[0]))

    def close(self) -> None:
        with self._lock:
            self.ledger.close()
        with self._feed_lock:
            if self._feed is not None:
                self._feed.close()
                self._feed = None


class Site:
    """The routes' handlers, over one `Desk`."""

    def __init__(self, desk: Desk) -> None:
        self.desk, self.vault, self.config, self.access = desk, desk.vault, desk.config, desk.access
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals.update(pages=PAGES, csrf=desk.access.csrf, csrf_field=CSRF_FIELD)

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        if not name.startswith("_"):  # a whole page: its live feed starts from what this render shows
            context.setdefault("live", getattr(request.state, "live", None) or _digest(self.desk.signature()))
        context.setdefault("notice", request.query_params.get("notice", "")[:500])
        context.setdefault("notice_bad", request.query_params.get("bad") == "1")
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    async def mark(self, request: Request) -> None:
        """Before a view reads its data: where its live feed starts (a change from now on is sent)."""
        request.state.live = _digest(await run_in_threadpool(self.desk.signature))

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/waiting", 303)

    async def waiting(self, request: Request) -> Response:
        await self.mark(request)
        opened = frozenset(request.query_params.getlist("open")[: views.FULL_CARDS])
        desk = self.desk
        data = await desk.work(views.waiting, self.vault, desk.ledger, desk.view, desk.details, opened)
        fragment = request.url.path.endswith("/list")
        return self.page(request, "_waiting.html" if fragment else "waiting.html", current="waiting", w=data)

    async def plan(self, request: Request) -> Response:
        plan_id = request.path_params["plan_id"]

        def read() -> views.PlanView | None:
            summary = views.find_summary(self.vault, self.desk.ledger, self.desk.view, plan_id)
            return self.desk.details.of(self.vault, summary) if summary is not None else None

        found = await self.desk.work(read)
        if found is None:
            # 200 for htmx, which swaps only 2xx answers: the row says the plan is gone.
            status = 200 if request.headers.get("hx-request") == "true" else 404
            return self.page(request, "_gone.html", status, plan_id=plan_id)
        return self.page(request, "_plan.html", p=found)

    async def edit(self, request: Request) -> Response:
        await self.mark(request)
        plan_id = request.path_params["plan_id"]

        def read() -> tuple[views.PlanView | None, list[tuple[str, str]]]:
            summary = views.find_summary(self.vault, self.desk.ledger, self.desk.view, plan_id)
            if summary is None:
                return None, []
            found = self.desk.details.of(self.vault, summary)
            return found, views.planned_diff(self.desk.ledger, plan_id, found.steps_yaml)

        found, diff = await self.desk.work(read)
        if found is None:
            return self.page(request, "gone.html", 404, current="waiting", plan_id=plan_id)
        return self.page(request, "edit.html", current="waiting", p=found, text=found.steps_yaml, diff=diff, problem="")

    async def diff(self, request: Request) -> Response:
        form = await _form(request, self.access)
        text = str(form.get("steps", ""))
        rows = await self.desk.work(views.planned_diff, self.desk.ledger, request.path_params["plan_id"], _normal(text))
        return self.page(request, "_diff.html", diff=rows)

    async def decide(self, request: Request) -> Response:
        plan_id, verb = request.path_params["plan_id"], request.path_params["verb"]
        form = await _form(request, self.access)
        try:
            said = await self.desk.work(_decide, self.desk, plan_id, verb, form)
        except AIEmployeeError as exc:  # refused, already decided, changed meanwhile, not valid steps
            return _answer(request, self.page, plan_id, str(exc), ok=False)
        except OSError as exc:  # the disk (full, read-only), a note moved under our feet
            return _answer(request, self.page, plan_id, f"nothing was decided: {exc.strerror or exc}", ok=False)
        except sqlite3.Error as exc:  # the ledger busy or broken: the move may have happened before
            said = f"the ledger could not be written ({exc}): reload the page to see whether it was decided"
            return _answer(request, self.page, plan_id, said, ok=False)
        return _answer(request, self.page, plan_id, said, ok=True)

    async def retry(self, request: Request) -> Response:
        await _form(request, self.access)
        from ai_employee.pipeline.quarantine import release

        try:
            moved = await self.desk.work(release, self.vault, request.path_params["name"])
        except AIEmployeeError as exc:
            return _answer(request, self.page, "", str(exc), ok=False, back="/attention")
        except OSError as exc:  # moved meanwhile (`vault retry`, by hand), the disk
            return _answer(
                request, self.page, "", f"nothing was moved: {exc.strerror or exc}", ok=False, back="/attention"
            )
        return _answer(
            request, self.page, "", f"{moved} is back in Inbox/: it is taken again.", ok=True, back="/attention"
        )

    async def attention(self, request: Request) -> Response:
        await self.mark(request)
        items = await self.desk.work(views.attention, self.vault, self.desk.ledger)
        fragment = request.url.path.endswith("/list")
        return self.page(request, "_attention.html" if fragment else "attention.html", current="attention", items=items)

    async def history(self, request: Request) -> Response:
        await self.mark(request)
        query = request.query_params.get("q", "")[:200]
        rows = await self.desk.work(views.history, self.desk.ledger, query)
        fragment = request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == "rows"
        return self.page(
            request, "_history.html" if fragment else "history.html", current="history", rows=rows, q=query
        )

    async def activity(self, request: Request) -> Response:
        await self.mark(request)
        rows = await self.desk.work(views.activity, self.desk.ledger)
        fragment = request.url.path.endswith("/list")
        return self.page(request, "_activity.html" if fragment else "activity.html", current="activity", rows=rows)

    async def budget(self, request: Request) -> Response:
        await self.mark(request)
        from ai_employee.clock import local_zone

        limits = {
            "reactive": self.config.budget.reactive_daily_tokens,
            "proactive": self.config.budget.proactive_daily_tokens,
        }
        zone = local_zone() if self.config.budget.timezone is None else ZoneInfo(self.config.budget.timezone)
        data = await self.desk.work(views.budget, self.desk.ledger, limits, zone)
        return self.page(request, "budget.html", current="budget", b=data)

    async def monitors(self, request: Request) -> Response:
        await self.mark(request)
        names = list(self.config.monitors.watch)
        data = await self.desk.work(views.monitors, self.desk.ledger, names)
        return self.page(request, "monitors.html", current="monitors", monitors=data)

    async def events(self, request: Request) -> Response:
        from sse_starlette.sse import EventSourceResponse

        since = request.query_params.get("since", "")

        async def changes() -> AsyncIterator[dict[str, str]]:
            last = await run_in_threadpool(self.desk.signature)
            if since and since != _digest(last):  # changed between the page's render and this connection
                yield {"event": "changed", "data": str(last[-1])}
            while True:
                await asyncio.sleep(LIVE_POLL_S)
                now = await run_in_threadpool(self.desk.signature)
                if now != last:
                    last = now
                    yield {"event": "changed", "data": str(now[-1])}

        return EventSourceResponse(changes(), ping=10)


def create_app(vault: Vault, config: Config, access: Access) -> Guard:
    desk = Desk(vault, config, access)
    site = Site(desk)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from ai_employee.pipeline.lookup import all_plans

        # Every plan note's id read once, in the background, so the first decision need not (2 s at
        # 100,000 notes in Done/; later ones read only what changed). It touches no ledger: no desk lock,
        # and a stop does not wait for it (the thread ends with the process).
        threading.Thread(target=all_plans, args=(vault,), name="web-warm-up", daemon=True).start()
        try:
            yield
        finally:
            desk.close()

    routes = [
        Route("/", site.home),
        Route("/waiting", site.waiting),
        Route("/waiting/list", site.waiting),
        Route("/plans/{plan_id}", site.plan),
        Route("/plans/{plan_id}/edit", site.edit),
        Route("/plans/{plan_id}/diff", site.diff, methods=["POST"]),
        Route("/plans/{plan_id}/{verb:str}", site.decide, methods=["POST"]),
        Route("/quarantine/{name:path}/retry", site.retry, methods=["POST"]),
        Route("/attention", site.attention),
        Route("/attention/list", site.attention),
        Route("/history", site.history),
        Route("/activity", site.activity),
        Route("/activity/list", site.activity),
        Route("/budget", site.budget),
        Route("/monitors", site.monitors),
        Route("/events", site.events),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={_Forbidden: forbidden})
    app.state.desk = desk
    return Guard(app, access)


async def _form(request: Request, access: Access) -> dict[str, Any]:
    """The POSTed form, once the request is shown to come from the page (CSRF token, Origin)."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    given = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER, "")
    if not same_secret(given, access.csrf) or not access.same_origin(dict(request.headers)):
        raise _Forbidden
    return form


class _Forbidden(Exception):
    pass


def _normal(text: str) -> str:
    """Edited steps as the planner's would be written (to compare like with like); the text itself if
    it does not read as steps."""
    from ai_employee.vault.plans import dump_steps, steps_from_yaml

    try:
        return dump_steps(steps_from_yaml(text))
    except FormatError:
        return text


def _decide(desk: Desk, plan_id: str, verb: str, form: dict[str, Any]) -> str:
    """One decision through the one API (channel `web`); what happened, in words."""
    from ai_employee.pipeline import decisions

    vault, ledger = desk.vault, desk.ledger
    feedback = str(form.get("feedback", "")).strip()[:2000]
    seen = str(form.get("seen", "")) or None
    if verb == "approve":
        decisions.approve(vault, ledger, plan_id, feedback, channel="web", seen=seen)
        return "Approved." + _when(vault)
    if verb == "approve-edited":
        from ai_employee.vault.plans import steps_from_yaml

        steps = steps_from_yaml(str(form.get("steps", "")))
        decisions.approve_edited(vault, ledger, plan_id, steps, feedback, channel="web", seen=seen)
        return "Your edit was saved and approved: what runs is your version." + _when(vault)
    if verb == "deny":
        decisions.deny(vault, ledger, plan_id, feedback, channel="web")
        return "Declined."
    if verb == "defer":
        given = str(form.get("minutes") or "60")
        minutes = int(given) if given.isascii() and given.isdecimal() and len(given) < 10 else 0  # else refused
        until = decisions.defer(vault, ledger, plan_id, minutes, channel="web")
        from ai_employee.clock import local_time

        return f"Deferred until {local_time(until)}."
    if verb == "resume":
        decisions.resume(vault, ledger, plan_id, feedback, channel="web")
        return "Resumed: it goes on from the first step not done." + _when(vault)
    raise UserError(f"unknown decision {verb!r}")


def _digest(signature: tuple[int, ...]) -> str:
    import hashlib

    return hashlib.sha256(repr(signature).encode()).hexdigest()[:16]


def _when(vault: Vault) -> str:
    """When what was decided happens: now if an engine runs on the vault, else when one starts."""
    from ai_employee.lock import holder

    if holder(vault.lock_path) is not None:
        return " The engine takes it now."
    return " No engine is running on this vault: it happens when one starts (`vault start`)."


def _answer(
    request: Request,
    page: Callable[..., Response],
    plan_id: str,
    said: str,
    ok: bool,
    back: str = "/waiting",
) -> Response:
    """After a decision: for htmx, the notice in place of the plan's card; else back to the list."""
    if request.headers.get("hx-request") == "true":
        return page(request, "_notice.html", ok=ok, said=said, plan_id=plan_id)
    return RedirectResponse(f"{back}?notice={quote(said)}{'' if ok else '&bad=1'}", 303)


async def forbidden(request: Request, exc: Exception) -> Response:
    return Response("Refused: a change needs the page's CSRF token and its own origin.", 403)
