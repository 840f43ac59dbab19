"""What stands between the page and anyone else on the machine or the network.

- A token made at start-up, required on every request: given once in the URL (`/?token=...`), then kept
  in an HttpOnly, SameSite=Strict cookie (or sent as `Authorization: Bearer ...` by a script). It is kept
  outside the vault (mode 0600), so `vault status` can show the URL.
- The `Host` header must be an allowed name: DNS rebinding makes a hostile site's name point at
  127.0.0.1, and only the Host header tells it apart.
- What changes anything is a POST with the CSRF token (derived from the page token) and, when the
  browser says where it comes from (`Origin`), from the page itself.
- Every answer forbids inline script and any source but the page (CSP), framing, and sniffing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

COOKIE = "ai_employee_token"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Access:
    """The page's token and the host names it answers to."""

    token: str
    hosts: frozenset[str]
    public: frozenset[str] = frozenset()  # names from web.allowed_hosts that are not this machine's

    @classmethod
    def make(cls, bind: str, extra: list[str]) -> Access:
        names = {*LOCAL_NAMES, *(h.lower() for h in extra)}
        if bind not in ("0.0.0.0", "::", ""):
            names.add(bind.lower())
        public = frozenset(h.lower() for h in extra if not is_loopback(h.lower()))
        return cls(secrets.token_urlsafe(24), frozenset(names), public)

    @property
    def csrf(self) -> str:
        return hmac.new(self.token.encode(), b"csrf", hashlib.sha256).hexdigest()[:32]

    def host_allowed(self, header: str) -> bool:
        name = header.strip().lower()
        if name.startswith("["):  # [::1]:8765
            name = name[1 : name.find("]")] if "]" in name else name
        else:
            name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
        return name in self.hosts

    def token_given(self, headers: dict[str, str], query: str) -> tuple[bool, bool]:
        """(the request carries the token, it came in the URL: to be moved into the cookie)."""
        if _same(parse_qs(query).get("token", [""])[0], self.token):
            return True, True
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and _same(auth[7:].strip(), self.token):
            return True, False
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is no token
            return False, False
        morsel = cookie.get(cookie_name(headers.get("host", "")))
        return (morsel is not None and _same(morsel.value, self.token)), False

    def same_origin(self, headers: dict[str, str]) -> bool:
        """A state-changing request from the page itself: its Origin (when the browser sends one) names
        exactly the host and port the request was sent to (another port on 127.0.0.1 is another site's
        page). The CSRF token is checked besides."""
        origin = headers.get("origin")
        if origin is None:
            return True
        try:
            netloc = urlsplit(origin).netloc.lower()
        except ValueError:
            return False
        if origin == "null" or not netloc:
            return False
        if netloc == headers.get("host", "").strip().lower():
            return True
        # Behind a reverse proxy that rewrites Host: the page's public name, as configured.
        return (urlsplit(origin).hostname or "") in self.public


def _same(given: str, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def same_secret(given: object, expected: str) -> bool:
    """A form's or header's secret against the expected one, in constant time; anything else is False."""
    return isinstance(given, str) and _same(given, expected)


def cookie_name(host: str) -> str:
    """The token's cookie, one per port: browsers send a cookie to every port of a host, so two pages
    (two vaults) on one machine would otherwise overwrite each other's."""
    port = host.rsplit(":", 1)[1] if host.count(":") == 1 or (host.startswith("[") and "]:" in host) else ""
    return f"{COOKIE}_{port}" if port.isdigit() else COOKIE


class Guard:
    """ASGI middleware: the Host check, the token, and the security headers on every answer."""

    def __init__(self, app: Any, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # no websockets here: refused before anything else
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not self.access.host_allowed(headers.get("host", "")):
            await _plain(send, 421, "This page answers only to its own host names (see web.allowed_hosts).")
            return
        path = scope.get("path", "")
        if path.startswith("/static/"):
            await self.app(scope, receive, _with_headers(send))
            return
        ok, in_url = self.access.token_given(headers, scope.get("query_string", b"").decode("latin-1"))
        if not ok:
            await _plain(
                send, 401, "The page needs its token: open the URL `vault web` printed (also in `vault status`)."
            )
            return
        if in_url:  # into the cookie, and out of the address bar (and the history)
            name = cookie_name(headers.get("host", ""))
            cookie = f"{name}={self.access.token}; HttpOnly; SameSite=Strict; Path=/"
            await _redirect(send, _local(path, scope.get("query_string", b"").decode("latin-1")), cookie)
            return
        await self.app(scope, receive, _with_headers(send))


def _local(path: str, query: str) -> str:
    """Where to after the token moved into the cookie: the same path on this page (never `//elsewhere`),
    with the rest of the query."""
    from urllib.parse import quote, urlencode

    rest = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "token"]
    # Quoted: `\`, tabs and line breaks cannot make `/\evil.example` (which browsers read as `//`).
    return "/" + quote(path.lstrip("/\\"), safe="/") + (f"?{urlencode(rest)}" if rest else "")


def _with_headers(send: Any) -> Any:
    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *HEADERS]
        await send(message)

    return sending


async def _plain(send: Any, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Any, location: str, cookie: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()), *HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": b""})


# Where the running page is told to `vault status`: outside the vault, readable by its owner only.
def state_file(vault_root: Path) -> Path:
    from ai_employee.config_sections import user_config_dir

    key = hashlib.sha256(str(vault_root.resolve()).encode()).hexdigest()[:16]
    return user_config_dir() / "web" / f"{key}.json"


def publish(vault_root: Path, url: str, token: str) -> Path:
    path = state_file(vault_root)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = json.dumps({"url": url, "token": token, "pid": os.getpid(), "vault": str(vault_root.resolve())})
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)  # a leftover keeps its mode: made anew, so it is the owner's only
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(data)
    os.replace(tmp, path)
    return path


def published(vault_root: Path) -> dict[str, Any] | None:
    """The running page's URL (with its token), if one runs for this vault."""
    try:
        data: dict[str, Any] = json.loads(state_file(vault_root).read_text("utf-8"))
        os.kill(int(data["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return data


def withdraw(vault_root: Path) -> None:
    path = state_file(vault_root)
    try:
        if json.loads(path.read_text("utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass
