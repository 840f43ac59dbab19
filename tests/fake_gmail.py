"""A local fake of the Gmail API and Google's OAuth endpoints, for tests of the real client and engine
(`gmail.api_endpoint` and `gmail.token_uri` point at it).

It keeps a mailbox (messages with labels, a history log, labels, sent mail and drafts), answers the
REST calls the engine makes and their batched form (`/batch/gmail/v1`, multipart/mixed), evaluates the
small part of Gmail's search language the engine uses, checks bearer tokens (refreshed at `/token`),
and can be told to fail: `fail(path_part, status, times)`, `revoke()`, `expire_history()`.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACCOUNT = "owner@example.com"
CLIENT_ID = "test-client.apps.googleusercontent.com"
CLIENT_SECRET = "test-client-secret"
REFRESH_TOKEN = "1//test-refresh-token"


@dataclass
class Message:
    id: str
    thread_id: str
    raw: bytes
    labels: set[str]
    internal_ms: int
    history_id: int


@dataclass
class Mailbox:
    messages: dict[str, Message] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    history_id: int = 1000
    oldest_history: int = 0  # startHistoryId below this: 404
    labels: dict[str, str] = field(default_factory=dict)  # id -> name
    drafts: list[dict[str, Any]] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    next_id: int = 0x18C0000000000000


class FakeGmail:
    def __init__(self, history_page: int = 500) -> None:
        self.box = Mailbox()
        self.lock = threading.RLock()
        self.history_page = history_page
        self.tokens = {"access-0"}
        self.token_count = 0
        self.revoked = False
        self.failures: list[list[Any]] = []  # [path part, status, times left, body]
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, batched ones too
        self.auth_codes: dict[str, str] = {}
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> FakeGmail:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # the mailbox, for tests ---------------------------------------------------------------------------
    def deliver(
        self,
        raw: bytes | EmailMessage,
        labels: tuple[str, ...] = ("INBOX", "UNREAD"),
        thread_id: str | None = None,
        age_s: float = 60.0,
    ) -> str:
        """A message arrives; returns its Gmail id."""
        data = raw.as_bytes() if isinstance(raw, EmailMessage) else raw
        with self.lock:
            box = self.box
            box.next_id += 1
            gid = f"{box.next_id:x}"
            box.history_id += 1
            msg = Message(gid, thread_id or gid, data, set(labels), int((time.time() - age_s) * 1000), box.history_id)
            box.messages[gid] = msg
            box.history.append({"id": str(box.history_id), "messagesAdded": [{"message": self._ref(msg)}]})
            return gid

    def expire_history(self) -> None:
        """Gmail keeps history for a limited time: ids before now answer 404."""
        with self.lock:
            self.box.oldest_history = self.box.history_id + 1
            self.box.history_id += 5

    def fail(self, path_part: str, status: int, times: int = 1, reason: str = "") -> None:
        body = {"error": {"code": status, "message": "fake failure", "errors": [{"reason": reason or "backendError"}]}}
        with self.lock:
            self.failures.append([path_part, status, times, body])

    def revoke(self) -> None:
        with self.lock:
            self.revoked = True
            self.tokens.clear()

    def labels_of(self, gid: str) -> set[str]:
        with self.lock:
            return set(self.box.messages[gid].labels)

    def count(self, path_part: str) -> int:
        with self.lock:
            return sum(1 for _, path in self.requests if path_part in path)

    # internals -------------------------------------------------------------------------------------------
    def _ref(self, msg: Message) -> dict[str, Any]:
        return {"id": msg.id, "threadId": msg.thread_id, "labelIds": sorted(msg.labels)}

    def _label_named(self, name: str) -> str | None:
        return next((i for i, n in self.box.labels.items() if n.lower() == name.lower()), None)

    def _matches(self, msg: Message, query: str) -> bool:
        for neg, key, value in re.findall(r'(-?)(\w+):("[^"]*"|\S+)', query.replace("(", " ").replace(")", " ")):
            value = value.strip('"')
            if key == "is" and value == "unread":
                hit = "UNREAD" in msg.labels
            elif key == "in":
                hit = value.upper() in msg.labels
            elif key == "category":
                hit = f"CATEGORY_{value.upper()}" in msg.labels
            elif key == "after":
                hit = msg.internal_ms / 1000 > int(value)
            elif key == "label":
                label = self._label_named(value)
                hit = label is not None and label in msg.labels
            elif key == "rfc822msgid":
                parsed = BytesParser(policy=default_policy).parsebytes(msg.raw, headersonly=True)
                hit = str(parsed.get("Message-ID", "")).strip("<>") == value
            else:
                raise AssertionError(f"the fake does not know the search term {key}:")
            if hit == bool(neg):
                return False
        return True

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: bytes, auth: str) -> tuple[int, Any]:
        """(status, JSON body) for one API request."""
        with self.lock:
            self.requests.append((method, path))
            for failure in self.failures:
                if failure[0] in path and failure[2] > 0:
                    failure[2] -= 1
                    return failure[1], failure[3]
            if auth.removeprefix("Bearer ") not in self.tokens:
                return 401, {"error": {"code": 401, "message": "Invalid Credentials", "status": "UNAUTHENTICATED"}}
            return self._api(method, path.removeprefix("/gmail/v1/users/me/"), query, body)

    def _api(self, method: str, path: str, q: dict[str, list[str]], body: bytes) -> tuple[int, Any]:  # noqa: C901
        box = self.box
        arg = lambda name, default="": q.get(name, [default])[0]  # noqa: E731
        data = json.loads(body) if body else {}
        if path == "profile":
            return 200, {"emailAddress": ACCOUNT, "messagesTotal": len(box.messages), "historyId": str(box.history_id)}
        if path == "messages" and method == "GET":
            query = arg("q")
            found = sorted(
                (m for m in box.messages.values() if self._matches(m, query)),
                key=lambda m: m.internal_ms,
                reverse=True,
            )
            start, size = int(arg("pageToken", "0") or 0), int(arg("maxResults", "100"))
            page = found[start : start + size]
            result: dict[str, Any] = {"resultSizeEstimate": len(found)}
            if page:
                result["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
            if start + size < len(found):
                result["nextPageToken"] = str(start + size)
            return 200, result
        if path.startswith("messages/") and method == "GET":
            msg = box.messages.get(path.split("/")[1])
            if msg is None:
                return 404, {"error": {"code": 404, "message": "Requested entity was not found."}}
            raw = base64.urlsafe_b64encode(msg.raw).decode()
            return 200, {
                **self._ref(msg),
                "raw": raw,
                "internalDate": str(msg.internal_ms),
                "historyId": str(msg.history_id),
            }
        if path == "history":
            start = int(arg("startHistoryId"))
            if start < box.oldest_history:
                return 404, {"error": {"code": 404, "message": "Requested entity was not found."}}
            records = [r for r in box.history if int(r["id"]) > start]
            offset = int(arg("pageToken", "0") or 0)
            page = records[offset : offset + self.history_page]
            result = {"historyId": str(box.history_id)}
            if page:
                result["history"] = page
            if offset + self.history_page < len(records):
                result["nextPageToken"] = str(offset + self.history_page)
            return 200, result
        if path == "messages/batchModify":
            if any(gid not in box.messages for gid in data["ids"]):
                return 404, {"error": {"code": 404, "message": "Requested entity was not found."}}
            for gid in data["ids"]:
                msg = box.messages[gid]
                msg.labels |= set(data.get("addLabelIds") or [])
                msg.labels -= set(data.get("removeLabelIds") or [])
            return 204, None
        if path == "labels" and method == "GET":
            system = [{"id": i, "name": i, "type": "system"} for i in ("INBOX", "UNREAD", "SENT", "DRAFT")]
            return 200, {"labels": system + [{"id": i, "name": n, "type": "user"} for i, n in box.labels.items()]}
        if path == "labels":
            label_id = f"Label_{len(box.labels) + 1}"
            box.labels[label_id] = data["name"]
            return 200, {"id": label_id, "name": data["name"]}
        if path.startswith("threads/"):
            thread = path.split("/")[1]
            members = [m for m in box.messages.values() if m.thread_id == thread]
            if not members:
                return 404, {"error": {"code": 404, "message": "Requested entity was not found."}}
            return 200, {"id": thread, "messages": [self._metadata(m) for m in members]}
        if path == "messages/send":
            raw = base64.urlsafe_b64decode(data["raw"])
            box.history_id += 1
            box.next_id += 1
            thread = data.get("threadId") or f"{box.next_id:x}"
            msg = Message(f"{box.next_id:x}", thread, raw, {"SENT"}, int(time.time() * 1000), box.history_id)
            box.messages[msg.id] = msg
            box.sent.append(msg)
            box.history.append({"id": str(box.history_id), "messagesAdded": [{"message": self._ref(msg)}]})
            return 200, self._ref(msg)
        if path == "drafts":
            box.next_id += 1
            draft = {"id": f"r{box.next_id:x}", "message": {**data["message"], "id": f"{box.next_id:x}"}}
            box.drafts.append(draft)
            return 200, {
                "id": draft["id"],
                "message": {"id": draft["message"]["id"], "threadId": data["message"].get("threadId")},
            }
        return 404, {"error": {"code": 404, "message": f"the fake does not serve {method} {path}"}}

    def _metadata(self, msg: Message) -> dict[str, Any]:
        parsed = BytesParser(policy=default_policy).parsebytes(msg.raw, headersonly=True)
        names = ("Message-ID", "References", "In-Reply-To", "Subject", "From", "Reply-To", "To", "Cc")
        headers = [{"name": n, "value": str(parsed[n])} for n in names if parsed[n] is not None]
        return {**self._ref(msg), "payload": {"headers": headers}}

    def token(self, form: dict[str, list[str]]) -> tuple[int, Any]:
        """Google's token endpoint: a refresh, or an authorization code from `/auth`."""
        grant = form.get("grant_type", [""])[0]
        with self.lock:
            self.requests.append(("POST", "/token"))
            if form.get("client_id", [""])[0] != CLIENT_ID:
                return 401, {"error": "invalid_client"}
            if grant == "refresh_token":
                if self.revoked or form.get("refresh_token", [""])[0] != REFRESH_TOKEN:
                    return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
            elif grant == "authorization_code":
                if form.get("code", [""])[0] not in self.auth_codes:
                    return 400, {"error": "invalid_grant", "error_description": "Bad code."}
            else:
                return 400, {"error": "unsupported_grant_type"}
            self.token_count += 1
            access = f"access-{self.token_count}"
            self.tokens.add(access)
            answer = {
                "access_token": access,
                "expires_in": 3599,
                "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/gmail.modify",
            }
            if grant == "authorization_code":
                answer["refresh_token"] = REFRESH_TOKEN
            return 200, answer

    def authorize(self, query: dict[str, list[str]]) -> str:
        """Google's consent page, consenting at once: the redirect back to the app, with a code."""
        code = f"code-{len(self.auth_codes) + 1}"
        self.auth_codes[code] = query["redirect_uri"][0]
        params = urllib.parse.urlencode(
            {"code": code, "state": query.get("state", [""])[0], "scope": query["scope"][0]}
        )
        return f"{query['redirect_uri'][0]}?{params}"


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGmail
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        for key, value in (headers or {"Content-Type": "application/json"}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/_count":
            self._reply(200, {"count": self.fake.count(query.get("path", [""])[0])})
            return
        if url.path == "/auth":
            self._reply(302, b"", {"Location": self.fake.authorize(query)})
            return
        self._reply(*self.fake.handle("GET", url.path, query, b"", self.headers.get("Authorization", "")))

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        body = self._body()
        if url.path == "/token":
            form = urllib.parse.parse_qs(body.decode())
            basic = self.headers.get("Authorization", "")
            if basic.startswith("Basic "):  # client_secret_basic, as requests-oauthlib sends it
                client_id, _, _ = base64.b64decode(basic[6:]).decode().partition(":")
                form.setdefault("client_id", [urllib.parse.unquote(client_id)])
            self._reply(*self.fake.token(form))
            return
        if url.path == "/batch/gmail/v1":
            self._batch(body)
            return
        if url.path == "/_deliver":  # the control plane of a fake run in its own process (benchmarks)
            self._reply(200, {"id": self.fake.deliver(mail(**json.loads(body)))})
            return
        query = urllib.parse.parse_qs(url.query)
        self._reply(*self.fake.handle("POST", url.path, query, body, self.headers.get("Authorization", "")))

    def _batch(self, body: bytes) -> None:
        """A multipart/mixed batch: each part one request, answered in a part of the same shape."""
        auth = self.headers.get("Authorization", "")
        boundary = re.search(r'boundary="?([^";]+)"?', self.headers["Content-Type"])
        assert boundary is not None
        answers = []
        for part in body.replace(b"\r\n", b"\n").split(b"--" + boundary.group(1).encode())[1:-1]:
            head, _, inner = part.strip(b"\n").partition(b"\n\n")
            content_id = re.search(rb"Content-ID: <([^>]+)>", head, re.I)
            request_line, _, rest = inner.partition(b"\n")
            inner_auth = re.search(rb"authorization: (.+)", rest, re.I)
            method, target, _ = request_line.decode().split(" ", 2)
            url = urllib.parse.urlsplit(target)
            status, answer = self.fake.handle(
                method,
                url.path,
                urllib.parse.parse_qs(url.query),
                b"",
                inner_auth.group(1).decode().strip() if inner_auth else auth,
            )
            payload = json.dumps(answer)
            cid = content_id.group(1).decode() if content_id else ""
            answers.append(
                f"--END\r\nContent-Type: application/http\r\nContent-ID: <response-{cid}>\r\n\r\n"
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n{payload}\r\n"
            )
        data = ("".join(answers) + "--END--\r\n").encode()
        self._reply(200, data, {"Content-Type": "multipart/mixed; boundary=END"})


def mail(
    subject: str = "Quote for 40 chairs",
    sender: str = "Dana Client <dana@client.example>",
    body: str = "Hello,\n\nCould you send a quote for 40 chairs?\n\nDana\n",
    html: str | None = None,
    message_id: str | None = None,
    **headers: str,
) -> EmailMessage:
    """A plain (or, with `html`, multipart/alternative or HTML-only with body="") email."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ACCOUNT
    msg["Subject"] = subject
    msg["Date"] = "Wed, 02 Dec 2026 09:15:00 +0000"
    msg["Message-ID"] = message_id or f"<{abs(hash((subject, sender, body)))}@client.example>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    if body:
        msg.set_content(body)
        if html:
            msg.add_alternative(html, subtype="html")
    else:
        msg.set_content(html or "", subtype="html")
    return msg


def token_file(path: Any, fake: Any, access: str = "access-0") -> None:
    """A stored token for the fake, as `vault gmail auth` writes it."""
    info = {
        "token": access,
        "refresh_token": REFRESH_TOKEN,
        "token_uri": fake.url + "token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ["https://www.googleapis.com/auth/gmail.modify"],
        "account": ACCOUNT,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    path.chmod(0o600)


def main() -> None:
    """`python -m tests.fake_gmail [N]`: a fake with N messages in its inbox, in a process of its own;
    prints its URL, serves until killed."""
    import sys

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    fake = FakeGmail()
    body = "Hello,\n\nCould you send me a quote for the items below?\n\n" + "- an item\n" * 20 + "\nThanks,\nDana\n"
    for n in range(count):
        fake.deliver(mail(subject=f"Question {n}: a quote", body=body, message_id=f"<b{n}@x.example>"))
    print(fake.url, flush=True)
    fake.server.serve_forever()


if __name__ == "__main__":
    main()
