"""The web page's checks, one by one (the browser tests in test_web.py drive them end to end)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ai_employee.web.security import Access, _local, cookie_name, publish, same_secret, state_file


@pytest.mark.parametrize(
    ("path", "query", "where"),
    [
        ("/waiting", "token=t", "/waiting"),
        ("/history", "token=t&q=acme", "/history?q=acme"),
        ("//evil.example/x", "token=t", "/evil.example/x"),  # never protocol-relative
        ("/\\evil.example", "token=t", "/evil.example"),  # a backslash is read as a slash by browsers
        ("/\t/evil.example", "token=t", "/%09/evil.example"),
        ("/a\r\nSet-Cookie: x=1", "token=t", "/a%0D%0ASet-Cookie%3A%20x%3D1"),  # no header injection
    ],
)
def test_the_token_redirect_stays_on_the_page(path: str, query: str, where: str) -> None:
    assert _local(path, query) == where


def test_origin_must_be_this_host_and_port_or_a_configured_public_name() -> None:
    access = Access.make("127.0.0.1", ["desk.tailnet.example"])
    host = {"host": "127.0.0.1:8765"}
    assert access.same_origin(host)  # no Origin (a same-origin GET-initiated form in older browsers)
    assert access.same_origin({**host, "origin": "http://127.0.0.1:8765"})
    assert not access.same_origin({**host, "origin": "http://127.0.0.1:3000"})  # another port: another site
    assert not access.same_origin({**host, "origin": "http://localhost:8765"})  # another name for it
    assert not access.same_origin({**host, "origin": "null"})
    assert not access.same_origin({**host, "origin": "http://[bad"})
    assert access.same_origin({**host, "origin": "https://desk.tailnet.example"})  # behind a proxy


def test_cookie_names_carry_the_port_and_secrets_compare_safely() -> None:
    assert cookie_name("127.0.0.1:8765") == "ai_employee_token_8765"
    assert cookie_name("[::1]:9000") == "ai_employee_token_9000"
    assert cookie_name("localhost") == cookie_name("[::1]") == cookie_name("a:b:c") == "ai_employee_token"
    assert same_secret("abc", "abc") and not same_secret("é" * 3, "abc") and not same_secret(None, "abc")


def test_the_published_state_is_the_owners_only_even_over_a_leftover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    vault = tmp_path / "vault"
    vault.mkdir()
    leftover = state_file(vault).with_suffix(".tmp")
    leftover.parent.mkdir(parents=True)
    leftover.write_text("old", "utf-8")
    os.chmod(leftover, 0o644)
    path = publish(vault, "http://127.0.0.1:1/?token=t", "t")
    assert path.stat().st_mode & 0o777 == 0o600 and not leftover.exists()
