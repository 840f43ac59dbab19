"""The Gmail API, through google-api-python-client, with its failures sorted into what to do about them:
`AuthFailed` (pause; the human runs `vault gmail auth`), `HistoryGone` (the history id is too old: a full
resync), `Transient` (rate limits, 5xx, the network: back off and try again) and `GmailError` (the rest).

Every call blocks (httplib2): the engine makes them on a worker thread, one at a time per client.
"""

from __future__ import annotations

import base64
import functools
import json
import socket
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.oauth2.credentials import Credentials

GOOGLE_ENDPOINT = "https://gmail.googleapis.com/"
TIMEOUT_S = 60.0
BATCH_SIZE = 50  # Gmail's advice: larger batches are often rate-limited
MODIFY_SIZE = 1000  # batchModify's limit
PAGE_SIZE = 500  # messages.list's largest page
RETRIES = 3  # the library's own retries of one request (429, 5xx), with exponential backoff
BATCH_ROUNDS = 4  # rounds of re-asking for the messages a batch answered with a transient error
_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "backendError"})
_SYSTEM_LABELS = frozenset(
    {"INBOX", "SPAM", "TRASH", "UNREAD", "STARRED", "IMPORTANT", "SENT", "DRAFT", "CHAT"}
    | {f"CATEGORY_{c}" for c in ("PERSONAL", "SOCIAL", "PROMOTIONS", "UPDATES", "FORUMS")}
)


class GmailError(Exception):
    """Gmail refused a request for a reason trying again will not fix."""


class AuthFailed(GmailError):
    """The token was refused (revoked, expired, or lacks a scope): sync pauses until `vault gmail auth`."""


class HistoryGone(GmailError):
    """The stored history id is older than Gmail keeps: the only safe way on is a full resync."""


class Transient(GmailError):
    """A rate limit, a server error or a network failure: try again later."""


class NotFound(GmailError):
    """The message, thread or label does not exist (any more)."""


def _reason(exc: Any) -> str:
    try:
        error = json.loads(exc.content.decode("utf-8")).get("error", {})
        details = error.get("errors") or [{}]
        return str(details[0].get("reason") or error.get("status") or "")
    except (ValueError, AttributeError, TypeError, IndexError):
        return ""


def classify(exc: BaseException) -> GmailError:
    """The `GmailError` an exception from the client library means."""
    from google.auth.exceptions import RefreshError, TransportError
    from googleapiclient.errors import HttpError

    if isinstance(exc, GmailError):
        return exc
    if isinstance(exc, RefreshError):
        return AuthFailed(f"Google refused the token ({exc.args[0] if exc.args else exc})")
    if isinstance(exc, HttpError):
        status, reason = int(exc.resp.status), _reason(exc)
        text = f"HTTP {status}" + (f" {reason}" if reason else "")
        if status == 401:
            return AuthFailed(f"Google refused the token ({text})")
        if status == 403 and reason not in _RATE_REASONS:
            return AuthFailed(f"Gmail refused access ({text}); the token may lack the gmail.modify scope")
        if status in (403, 429) or status >= 500:
            return Transient(text)
        if status == 404:
            return NotFound(text)
        return GmailError(f"{text}: {exc._get_reason() if hasattr(exc, '_get_reason') else exc}")
    if isinstance(exc, TransportError | OSError | socket.timeout | TimeoutError) or type(exc).__module__.startswith(
        "httplib2"
    ):
        return Transient(f"{type(exc).__name__}: {exc}")
    return GmailError(f"{type(exc).__name__}: {exc}")


def _collect(
    found: dict[str, Any], retry: list[str], request_id: str, response: Any, exception: Exception | None
) -> None:
    """A batch's callback: one answer, or its error (a transient one is asked again)."""
    if exception is None:
        found[request_id] = response
        return
    found[request_id] = error = classify(exception)
    if isinstance(error, Transient):
        retry.append(request_id)


def build_service(creds: Credentials | None, endpoint: str | None, http: Any = None) -> Any:
    """The discovery-built Gmail service (offline: the document ships in the package), with a timeout.
    Tests pass `http` (the library's HttpMockSequence) instead of credentials."""
    import httplib2
    from googleapiclient.discovery import build

    if http is None:
        import google_auth_httplib2

        http = google_auth_httplib2.AuthorizedHttp(creds, http=httplib2.Http(timeout=TIMEOUT_S))
    options = {"api_endpoint": endpoint} if endpoint else None
    return build("gmail", "v1", http=http, static_discovery=True, cache_discovery=False, client_options=options)


class GmailClient:
    """The calls the engine makes, for the user `me`."""

    def __init__(
        self,
        creds: Credentials | None,
        endpoint: str | None = None,
        http: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.creds = creds
        self.endpoint = (endpoint or GOOGLE_ENDPOINT).rstrip("/") + "/"
        self.service = build_service(creds, endpoint, http)
        self.sleep = sleep

    def close(self) -> None:
        """Close the open connections (the next call opens new ones): between polls nothing stays open."""
        self.service.close()

    def _run(self, request: Any, retries: int | None = None) -> Any:
        """Execute a request; the library retries it (429, 5xx, network) `RETRIES` times, or `retries`:
        0 for requests that create something, which a retry after a lost answer would create twice."""
        from googleapiclient.http import BatchHttpRequest

        try:
            if isinstance(request, BatchHttpRequest):
                return request.execute()  # each answer goes to the batch's callback
            return request.execute(num_retries=RETRIES if retries is None else retries)
        except Exception as exc:
            raise classify(exc) from exc

    # reading ------------------------------------------------------------------------------------
    def profile(self) -> dict[str, Any]:
        """The account's address and current history id."""
        result: dict[str, Any] = self._run(self.service.users().getProfile(userId="me"))
        return result

    def list_page(self, query: str, size: int, token: str | None = None) -> tuple[list[str], str | None]:
        """One page of the ids of the messages matching `query`, newest first, and the next page's token."""
        page = self._run(
            self.service.users().messages().list(userId="me", q=query, maxResults=min(PAGE_SIZE, size), pageToken=token)
        )
        return [m["id"] for m in page.get("messages", [])], page.get("nextPageToken")

    def list_ids(self, query: str, limit: int, enough: Callable[[list[str]], bool] = lambda ids: False) -> list[str]:
        """Ids of the messages matching `query`, newest first, at most `limit`, paging until `enough(ids)`."""
        ids: list[str] = []
        token: str | None = None
        while len(ids) < limit:
            page, token = self.list_page(query, limit - len(ids), token)
            ids += page
            if not token or enough(ids):
                break
        return ids[:limit]

    def history(self, start: str, limit: int) -> tuple[list[str], str, bool]:
        """Messages added (or given a label) since history id `start`: (their ids, the newest history id,
        whether there were more than `limit`). HistoryGone when `start` is too old."""
        ids: dict[str, None] = {}
        newest = start
        token: str | None = None
        while True:
            request = (
                self.service.users()
                .history()
                .list(
                    userId="me",
                    startHistoryId=start,
                    historyTypes=["messageAdded", "labelAdded"],
                    maxResults=500,
                    pageToken=token,
                )
            )
            try:
                page = self._run(request)
            except NotFound as exc:
                raise HistoryGone(f"history id {start} is too old ({exc})") from None
            newest = str(page.get("historyId") or newest)
            for record in page.get("history", []):
                for key in ("messagesAdded", "labelsAdded"):
                    for item in record.get(key, []):
                        ids[item["message"]["id"]] = None
            token = page.get("nextPageToken")
            if len(ids) > limit:
                return list(ids), newest, True
            if not token:
                return list(ids), newest, False

    def get_raw(self, ids: Iterable[str], fmt: str = "raw") -> dict[str, dict[str, Any] | GmailError]:
        """Each message in full (`format=raw`; `minimal`: ids, labels, date and size only), fetched in
        batches; a message Gmail could not give is its error (transient errors are asked again a few
        times first, with backoff)."""
        from googleapiclient.http import BatchHttpRequest

        pending = list(dict.fromkeys(ids))
        found: dict[str, dict[str, Any] | GmailError] = {}
        for round_ in range(BATCH_ROUNDS):
            retry: list[str] = []
            for start in range(0, len(pending), BATCH_SIZE):
                chunk = pending[start : start + BATCH_SIZE]
                done = functools.partial(_collect, found, retry)
                batch = BatchHttpRequest(callback=done, batch_uri=self.endpoint + "batch/gmail/v1")
                for gmail_id in chunk:
                    request = self.service.users().messages().get(userId="me", id=gmail_id, format=fmt)
                    batch.add(request, request_id=gmail_id)
                self._run(batch)
            if not retry:
                break
            pending = retry
            if round_ + 1 < BATCH_ROUNDS:
                self.sleep(0.5 * 2**round_)
        return found

    # changing -----------------------------------------------------------------------------------
    def modify(self, ids: list[str], add: list[str], remove: list[str]) -> None:
        for start in range(0, len(ids), MODIFY_SIZE):
            body = {"ids": ids[start : start + MODIFY_SIZE], "addLabelIds": add, "removeLabelIds": remove}
            self._run(self.service.users().messages().batchModify(userId="me", body=body))

    def label_id(self, name: str, create: bool = True) -> str:
        """The id of the user label `name`, created if missing. System labels (INBOX, TRASH, SPAM,
        UNREAD, ...) are refused: adding one moves or hides mail, which is not what labelling means."""
        labels = self._run(self.service.users().labels().list(userId="me")).get("labels", [])
        for label in labels:
            if label.get("name", "").casefold() == name.casefold() or label.get("id") == name:
                if label.get("type") == "system":
                    raise GmailError(f"{name!r} is one of Gmail's system labels, not a label of yours")
                return str(label["id"])
        if name.upper() in _SYSTEM_LABELS:
            raise GmailError(f"{name!r} is one of Gmail's system labels, not a label of yours")
        if not create:
            raise NotFound(f"no label named {name!r}")
        body = {"name": name, "labelListVisibility": "labelShow", "messageListVisibility": "show"}
        return str(self._run(self.service.users().labels().create(userId="me", body=body), retries=0)["id"])

    def thread(self, thread_id: str) -> dict[str, Any]:
        """A thread's messages with the headers a reply needs."""
        headers = ["Message-ID", "References", "In-Reply-To", "Subject", "From", "Reply-To", "To", "Cc"]
        request = (
            self.service.users().threads().get(userId="me", id=thread_id, format="metadata", metadataHeaders=headers)
        )
        result: dict[str, Any] = self._run(request)
        return result

    def find_sent(self, message_id: str) -> str | None:
        """The Gmail id of a message with this Message-ID header in the mailbox (Sent included), if any."""
        query = f"rfc822msgid:{message_id.strip('<>')}"
        page = self._run(
            self.service.users().messages().list(userId="me", q=query, includeSpamTrash=True, maxResults=5)
        )
        messages = page.get("messages") or []
        return str(messages[0]["id"]) if messages else None

    def send(self, raw: bytes, thread_id: str) -> dict[str, Any]:
        body = {"raw": base64.urlsafe_b64encode(raw).decode("ascii"), "threadId": thread_id}
        result: dict[str, Any] = self._run(self.service.users().messages().send(userId="me", body=body), retries=0)
        return result

    def create_draft(self, raw: bytes, thread_id: str) -> dict[str, Any]:
        message = {"raw": base64.urlsafe_b64encode(raw).decode("ascii"), "threadId": thread_id}
        request = self.service.users().drafts().create(userId="me", body={"message": message})
        result: dict[str, Any] = self._run(request, retries=0)
        return result
