"""The Gmail source: a service of the engine that brings new mail into `Inbox/` as notes.

Syncs are *first* (the query, down to the floor of `first_sync_days`), *incremental* (the History API
since the stored history id; the query listed from the new messages' dates, every unknown message taken)
or *resync* (the history expired or the gap is too large: the query down to the floor, reconciled with
the ledger by Gmail id; never a jump to the newest id). Each batch's notes are durable intents before
they are written (`gmail.recovery` sorts them out after a crash); the history id moves forward only once
every message found is in the vault; messages are marked in Gmail only after their notes are stored.
Auth failures pause the source until the token file changes; other failures back off. docs/gmail.md
has the whole story.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from ai_employee.errors import ConfigError
from ai_employee.events import EventName, MailPayload, ServicePayload, SyncPayload
from ai_employee.faults import crash_point
from ai_employee.gmail.auth import FIX, NotAuthorized, check_outside, load_credentials, load_token, save_credentials
from ai_employee.gmail.client import AuthFailed, GmailClient, GmailError, HistoryGone, NotFound, Transient
from ai_employee.gmail.message import BadMessage, MailNote, Skipped, ids, parse_raw, received, render
from ai_employee.gmail.recovery import recover
from ai_employee.ledger.mail import MailIntent
from ai_employee.pipeline.context import EngineContext
from ai_employee.vault.fsops import FileOpError, create_file, group_commit, in_parallel, replace_file
from ai_employee.vault.layout import INBOX

log = structlog.get_logger(__name__)
FETCH_CHUNK = 100  # messages fetched (two batched requests), written and recorded together
PAGE = 500  # ids per page of a listing
MAX_BACKOFF_S = 900.0
AUTH_RECHECK_S = 3600.0  # a paused source tries again this often even if the token file did not change

ClientFactory = Callable[[], GmailClient]


@dataclass
class Synced:
    """What one sync did."""

    kind: str  # first | incremental | resync | none
    taken: int = 0
    skipped: int = 0
    complete: bool = True  # every message found is in the vault (so the history id moved forward)
    detail: str = ""


class GmailSource:
    name = "gmail"

    def __init__(
        self,
        ctx: EngineContext,
        hint: Callable[[str, str, bool | None], None] = lambda folder, name, complete: None,
        client: ClientFactory | None = None,
    ) -> None:
        self.ctx = ctx
        self.config = ctx.config.gmail
        self.hint = hint  # the pipeline's: a note written is ingested at once
        self._make_client = client or self._default_client
        self.client: GmailClient | None = None
        self.fault: str | None = None  # why the source is paused or failing (shown by `vault status`)
        self.failures = 0
        self._paused_on: tuple[float, int, int] | None = None  # the token file as it was when paused
        self._paused_at = 0.0
        self._saved_token: str | None = None
        self._label: str | None = None
        self._account: str | None = None  # whose token it is (as `vault gmail auth` saved it)
        self._wake = asyncio.Event()
        self.last: Synced | None = None  # what the last good sync did

    def healthy(self) -> bool:
        return self.fault is None

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        self.recover()
        while True:
            delay = await self.poll()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def once(self) -> int:
        """`vault start --once`: recover, sync once; the messages taken."""
        self.recover()
        await self.poll()
        return self.last.taken if self.last else 0

    # one poll -----------------------------------------------------------------------------------
    async def poll(self) -> float:
        """Sync if not paused; the seconds until the next poll."""
        interval = self.config.poll_interval_s
        if self._paused_on is not None and not self._token_changed():
            return interval
        try:
            result = await self.sync()
        except (AuthFailed, NotAuthorized) as exc:  # only the human can fix these
            self._pause(str(exc))
            return interval
        except ConfigError as exc:
            self._pause(str(exc), "fix the config, then restart the engine")
            return interval
        except (GmailError, OSError, FileOpError) as exc:  # Gmail, the network, a full disk: wait, retry
            self.failures += 1
            delay = min(MAX_BACKOFF_S, interval * 2.0 ** min(self.failures - 1, 10))
            self._problem(f"Gmail sync failed ({exc}); trying again in {delay:.0f} s")
            return delay
        self.last = result
        self._resume()
        self.failures = 0
        self._save_token()
        if not result.complete:
            self._problem(f"Gmail: {result.detail}; trying again at the next sync")
        elif self.fault is not None:
            self._clear_problem()
        return interval

    async def sync(self) -> Synced:
        client = await self._client()
        try:
            return await self._sync(client)
        finally:
            client.close()

    async def _sync(self, client: GmailClient) -> Synced:
        await self._mark(client)  # what an earlier sync stored but could not mark (a crash, an error)
        state = self._state()
        if "history_id" not in state:
            return await self._full(client, "first")
        try:
            found, newest, overflow = await asyncio.to_thread(
                client.history, state["history_id"], self.config.max_sync_messages
            )
        except HistoryGone as exc:
            log.warning("gmail history id expired: resyncing", error=str(exc))
            return await self._full(client, "resync", "the history id had expired")
        if overflow:
            return await self._full(client, "resync", "more mail arrived than one incremental sync takes")
        wanted = set(found) - self.ctx.ledger.known_mail(found)
        result = Synced("incremental")
        if wanted:
            # Which of the new messages match the query: list it, from the oldest of them on (their
            # dates come from one light batched request), and take what the ledger does not know.
            dates = await asyncio.to_thread(client.get_raw, sorted(wanted), "minimal")
            times = [int(m.get("internalDate") or 0) // 1000 for m in dates.values() if isinstance(m, dict)]
            if any(not isinstance(m, dict | NotFound) for m in dates.values()):
                result.complete = False
                result.detail = "Gmail did not say when some new messages arrived"
            if times:
                # A day's margin: what else is unknown in that window is reconciled too.
                since = max(int(state.get("floor") or 0), min(times) - 86400)
                listed, full = await self._list(client, self._query(since))
                taken = await self._take(client, listed, "incremental")
                taken.complete = taken.complete and result.complete and not full
                taken.detail = result.detail or taken.detail or (self._limit_detail() if full else "")
                result = taken
        if result.complete:
            self.ctx.ledger.set_gmail_state(history_id=newest, last_sync=_now())
        return result

    async def _full(self, client: GmailClient, kind: str, why: str = "") -> Synced:
        """List the query down to the floor and take what the ledger does not know; the history id is
        the one from before the listing, so mail arriving meanwhile comes with the next sync. One sync
        takes at most `max_sync_messages` new messages: when there are more it says so, keeps the old
        cursor, and the next sync takes the next ones."""
        profile = await asyncio.to_thread(client.profile)
        state = self._state()
        floor = state.get("floor")
        if floor is None:  # the first sync: the floor is set once, and no sync ever goes below it
            floor = str(int(time.time()) - self.config.first_sync_days * 86400)
            self.ctx.ledger.set_gmail_state(floor=floor, account=str(profile.get("emailAddress") or "") or None)
        listed, full = await self._list(client, self._query(int(floor)))
        result = await self._take(client, listed, kind)
        if full:
            result.complete = False
            result.detail = self._limit_detail()
            log.warning("gmail sync hit its limit", limit=self.config.max_sync_messages, kind=kind)
        if result.complete:
            self.ctx.ledger.set_gmail_state(
                history_id=str(profile["historyId"]),
                account=str(profile.get("emailAddress") or "") or None,
                last_sync=_now(),
                last_full_sync=_now(),
            )
        log.info("gmail full sync", kind=kind, why=why or None, listed=len(listed), taken=result.taken)
        return result

    async def _list(self, client: GmailClient, query: str) -> tuple[list[str], bool]:
        """The ids matching `query`, newest first, paged until `max_sync_messages` of them are unknown to
        the ledger (what is known costs a page of ids, nothing more); and whether that limit was hit."""
        limit = self.config.max_sync_messages
        listed: list[str] = []
        unknown = 0
        token: str | None = None
        while True:
            page, token = await asyncio.to_thread(client.list_page, query, min(PAGE, limit), token)
            fresh = [gid for gid in page if gid not in self.ctx.ledger.known_mail(page)]
            listed += page
            unknown += len(fresh)
            if unknown >= limit:
                return listed, token is not None
            if not token:
                return listed, False

    def _limit_detail(self) -> str:
        limit = self.config.max_sync_messages
        return (
            f"more than {limit} new messages match the query: {limit} were taken, the rest come with the next"
            " syncs (narrow gmail.query, or raise gmail.max_sync_messages)"
        )

    def _state(self) -> dict[str, str]:
        """The sync cursor; forgotten (a first sync again) when the token is now another account's."""
        state = self.ctx.ledger.gmail_state()
        account = self._account
        if account and state.get("account") and state["account"].casefold() != account.casefold():
            log.warning("gmail account changed: syncing the new one from scratch", account=account)
            self.ctx.ledger.set_gmail_state(history_id=None, floor=None, account=None, last_full_sync=None)
            state = self.ctx.ledger.gmail_state()
        return state

    def _query(self, since: int) -> str:
        query = f"({self.config.query}) after:{since}"
        if self.config.mark == "label":
            query += f' -label:"{self.config.label}"'
        return query

    # taking messages ------------------------------------------------------------------------------
    async def _take(self, client: GmailClient, listed: list[str], kind: str) -> Synced:
        """Fetch, write and record the listed messages the ledger does not know, a chunk at a time (one
        step after the other: overlapping the fetch with the parsing only makes threads fight over the
        GIL); marked in Gmail at the end."""
        result = Synced(kind)
        known = self.ctx.ledger.known_mail(listed)
        todo = [gid for gid in dict.fromkeys(listed) if gid not in known]
        for start in range(0, len(todo), FETCH_CHUNK):
            chunk = todo[start : start + FETCH_CHUNK]
            fetched = await asyncio.to_thread(client.get_raw, chunk)
            notes, skipped = await asyncio.to_thread(self._render_chunk, chunk, fetched, result)
            await self._store(notes, skipped)
            result.taken += len(notes)
            result.skipped += len(skipped)
        await self._mark(client)
        if todo:
            self.ctx.bus.publish(EventName.GMAIL_SYNCED, SyncPayload(kind, result.taken, result.skipped, result.detail))
        return result

    def _render_chunk(
        self, chunk: list[str], fetched: dict[str, Any], result: Synced
    ) -> tuple[list[MailNote], list[Skipped]]:
        """On a worker thread: the notes of a chunk's messages, and those a rule (or an unreadable
        answer) keeps out; a message Gmail did not give leaves the sync incomplete."""
        notes: list[MailNote] = []
        skipped: list[Skipped] = []
        for gid in chunk:
            got = fetched.get(gid)
            if isinstance(got, NotFound):
                continue  # deleted since it was listed: nothing to take
            if not isinstance(got, dict):
                result.complete = False
                result.detail = f"message {gid} could not be fetched ({got})"
                continue
            made = self._render(got)
            if made is None:  # kept unknown: asked for again at the next sync, and said so meanwhile
                result.complete = False
                result.detail = f"Gmail's answer for message {gid} was unreadable"
            elif isinstance(made, MailNote):
                notes.append(made)
            else:
                skipped.append(made)
        return notes, skipped

    def _render(self, message: dict[str, Any]) -> MailNote | Skipped | None:
        """The message's note; a message the parser cannot make a note of comes into the vault as the
        raw `.eml` it is, for ingest (which reads broken mail as text): nothing is left out."""
        try:
            return render(message, self.config.noise)
        except BadMessage as exc:
            log.warning("gmail message unreadable", gmail_id=str(message.get("id"))[:70], error=str(exc))
            return None
        except Exception as exc:  # the email package still has parser bugs on hostile input
            error = f"{type(exc).__name__}: {exc}"
        try:
            gmail_id, thread_id = ids(message)
            raw = parse_raw(message)
        except BadMessage as exc:
            log.warning("gmail message unreadable", gmail_id=str(message.get("id"))[:70], error=str(exc))
            return None
        log.warning("gmail message kept as .eml", gmail_id=gmail_id, error=error)
        return MailNote(gmail_id, thread_id, f"{received(message):%Y-%m-%d} Gmail {gmail_id}.eml", raw)

    async def _store(self, notes: list[MailNote], skipped: list[Skipped]) -> None:
        """Intents (durable), then the files, then the ledger says stored; then the pipeline is told."""
        ledger = self.ctx.ledger
        intents = [MailIntent(n.gmail_id, n.thread_id, n.name, n.sha256, n.rule) for n in notes]
        ledger.mail_intents(intents, [(s.gmail_id, s.thread_id, s.rule) for s in skipped])
        crash_point("gmail.after_intents")
        written = await asyncio.to_thread(self._write, notes)
        ledger.mail_stored(written)
        crash_point("gmail.after_stored")
        bus = self.ctx.bus
        with ledger.batch():
            for note in notes:
                bus.publish(
                    EventName.EMAIL_RECEIVED,
                    MailPayload(note.gmail_id, note.thread_id, f"{INBOX}/{written[note.gmail_id]}", note.rule or ""),
                )
            for skip in skipped:
                bus.publish(EventName.EMAIL_RECEIVED, MailPayload(skip.gmail_id, skip.thread_id, "", skip.rule))
        for name in written.values():
            self.hint(INBOX, name, True)

    def _write(self, notes: list[MailNote]) -> dict[str, str]:
        """On a worker thread: attachments first (replaced: the same bytes again after a crash), then
        each note, created under a free name; gmail id -> the note's file name."""
        vault = self.ctx.vault
        inbox = vault.folder(INBOX)

        def write(note: MailNote) -> str:
            for path, data in note.attachments:
                target = vault.root / path
                target.parent.mkdir(parents=True, exist_ok=True)
                replace_file(target, data, vault.tmp_dir)
            return create_file(inbox, note.name, note.text, vault.tmp_dir).name

        with group_commit():
            results = in_parallel(write, notes)
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise failed[0]  # like a crash: the intents stay, and `recover` sorts them out
        return {note.gmail_id: str(name) for note, name in zip(notes, results, strict=True)}

    async def _mark(self, client: GmailClient) -> None:
        """Mark the messages whose notes are in the vault, as configured. A message Gmail refuses to
        mark (deleted meanwhile, say) is marked one by one and, if it is refused alone too, given up:
        marking never holds up new mail. Auth and transient errors end the sync (tried again later)."""
        ledger = self.ctx.ledger
        while pending := ledger.unmarked_mail():
            try:
                await self._modify(client, pending)
            except (AuthFailed, Transient):
                raise
            except GmailError as exc:
                log.warning("gmail batch mark refused: marking one by one", error=str(exc))
                self._label = None  # the label may have been deleted: look it up (or create it) again
                for gmail_id in pending:
                    try:
                        await self._modify(client, [gmail_id])
                    except (AuthFailed, Transient):
                        raise
                    except GmailError as one:
                        log.warning("gmail message not marked", gmail_id=gmail_id, error=str(one))
            ledger.mail_marked(pending)

    async def _modify(self, client: GmailClient, ids: list[str]) -> None:
        if self.config.mark == "remove_unread":
            await asyncio.to_thread(client.modify, ids, [], ["UNREAD"])
        elif self.config.mark == "label":
            if self._label is None:
                self._label = await asyncio.to_thread(client.label_id, self.config.label)
            await asyncio.to_thread(client.modify, ids, [self._label], [])

    def recover(self) -> int:
        """Sort out the intents a crash left (see `gmail.recovery`)."""
        return recover(self.ctx)

    # credentials and problems ---------------------------------------------------------------------
    def _default_client(self) -> GmailClient:
        check_outside(self.config.token_path(), self.ctx.vault.root)
        creds = load_credentials(self.config)
        self._account = load_token(self.config.token_path()).get("account") or None
        self._saved_token = creds.token
        return GmailClient(creds, self.config.api_endpoint)

    async def _client(self) -> GmailClient:
        if self.client is None:
            self.client = await asyncio.to_thread(self._make_client)
        return self.client

    def _save_token(self) -> None:
        """Keep a refreshed access token, so that a restart does not refresh again."""
        creds = self.client.creds if self.client is not None else None
        if creds is None or not creds.token or creds.token == self._saved_token:
            return
        try:
            save_credentials(creds, self.config.token_path())
            self._saved_token = creds.token
        except OSError as exc:
            log.warning("gmail token not saved", error=exc.strerror or str(exc))

    def _token_stat(self) -> tuple[float, int, int]:
        try:
            st = os.stat(self.config.token_path())
            return (st.st_mtime, st.st_size, st.st_ino)
        except OSError:
            return (0.0, 0, 0)

    def _token_changed(self) -> bool:
        if time.monotonic() - self._paused_at > AUTH_RECHECK_S:
            return True
        return self._token_stat() != self._paused_on

    def _pause(self, why: str, fix: str = FIX) -> None:
        self.client = None  # the next attempt reads the token file again
        self._paused_on = self._token_stat()
        self._paused_at = time.monotonic()
        message = f"Gmail sync is paused: {why.removesuffix(': ' + FIX)}. To fix it, {fix}."
        if self.fault != message:
            log.warning("gmail paused", problem=message)
            self.ctx.bus.publish(EventName.GMAIL_PAUSED, ServicePayload(self.name, message))
        self.fault = message
        self.ctx.ledger.set_gmail_state(problem=message, paused="1")

    def _resume(self) -> None:
        if self._paused_on is None and self.ctx.ledger.gmail_state().get("paused") is None:
            return
        self._paused_on = None
        self.ctx.ledger.set_gmail_state(paused=None, problem=None)
        self.fault = None
        log.info("gmail resumed")
        self.ctx.bus.publish(EventName.GMAIL_RESUMED, ServicePayload(self.name))

    def _problem(self, message: str) -> None:
        if self.fault != message:
            log.warning("gmail problem", problem=message)
        self.fault = message
        self.ctx.ledger.set_gmail_state(problem=message)

    def _clear_problem(self) -> None:
        self.fault = None
        self.ctx.ledger.set_gmail_state(problem=None)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
