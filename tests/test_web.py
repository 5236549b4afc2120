"""The console: login on every page, hostile content rendered inert, CSRF, headers."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from otklik.cases.ingest import store_page
from otklik.domain import RawMention
from otklik.store import db
from otklik.store.models import Mention
from tests.conftest import PASSWORD, login

HOSTILE = RawMention(
    platform="demo",
    external_id="evil-1",
    url="javascript:alert(document.cookie)",
    author_external_id="e1",
    author_handle='<img src=x onerror="alert(1)">',
    text="Refund now! <script>alert('pwned')</script><b onmouseover=alert(2)>hover</b>",
    created_at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
)


def _concrete_paths(app) -> list[str]:
    paths = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<int:[^>]+>", "1", rule.rule)
        paths.append((path, sorted(rule.methods - {"HEAD", "OPTIONS"})))
    return paths


def test_every_page_except_login_requires_a_login(app, client) -> None:
    checked = 0
    for path, methods in _concrete_paths(app):
        if path == "/login":
            continue
        for method in methods:
            response = client.open(path, method=method)
            assert response.status_code in (302, 401), (method, path)
            if response.status_code == 302:
                assert response.headers["Location"].startswith("/login")
            checked += 1
    assert checked >= 4


def test_login_with_wrong_password_fails_and_right_one_works(client) -> None:
    bad = login(client, password="wrong password")
    assert bad.status_code == 200 and "Wrong username or password" in bad.get_data(as_text=True)
    assert client.get("/").status_code == 302
    good = login(client, password=PASSWORD)
    assert good.status_code == 302
    assert client.get("/").status_code == 200


def test_login_does_not_redirect_off_site(client) -> None:
    response = client.post(
        "/login?next=//evil.example/x", data={"username": "agent", "password": PASSWORD}
    )
    assert response.headers["Location"] == "/"


def test_hostile_post_author_and_url_render_inert(runtime, client) -> None:
    with db.transaction(runtime.sessions) as session:
        store_page(session, None, None, [HOSTILE], HOSTILE.created_at)
    with runtime.sessions() as session:
        conversation_id = session.scalar(select(Mention.conversation_id))
    login(client)
    for path in ("/", f"/conversations/{conversation_id}"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in html and "&lt;script&gt;alert(&#39;pwned&#39;)" in html
        assert "<img src=x" not in html and "&lt;img src=x onerror=" in html
        assert "<b onmouseover" not in html
        assert 'href="javascript:' not in html


def test_links_to_posts_are_nofollow_noopener(runtime, client) -> None:
    safe = RawMention(
        **{
            **{
                f: getattr(HOSTILE, f)
                for f in ("platform", "author_external_id", "author_handle", "text", "created_at")
            },
            "external_id": "ok-1",
            "url": "https://vk.com/wall-1_2",
        }
    )
    with db.transaction(runtime.sessions) as session:
        store_page(session, None, None, [safe], safe.created_at)
        conversation_id = session.scalar(select(Mention.conversation_id))
    login(client)
    html = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert 'href="https://vk.com/wall-1_2" rel="noopener noreferrer nofollow"' in html


def test_security_headers_and_session_cookie(client) -> None:
    response = login(client)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


@pytest.fixture
def csrf_client(runtime, users):
    from web import create_app

    return create_app(runtime, {"TESTING": True}).test_client()


def test_state_changing_requests_without_a_csrf_token_are_rejected(csrf_client) -> None:
    response = csrf_client.post("/login", data={"username": "agent", "password": PASSWORD})
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    page = csrf_client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    ok = csrf_client.post(
        "/login", data={"username": "agent", "password": PASSWORD, "csrf_token": token}
    )
    assert ok.status_code == 302
    assert csrf_client.post("/logout").status_code == 400  # no token: still logged in
    assert csrf_client.get("/").status_code == 200
