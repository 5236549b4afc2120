"""Console security: each role's limits, CSRF on every state change, throttling, audit, XSS."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from otklik.cases.ingest import store_page
from otklik.domain import RawMention
from otklik.store import db
from otklik.store.models import AuditEntry, Conversation, Mention, ReplyTemplate, User, utcnow
from tests.conftest import PASSWORD, login
from tests.web_support import fast_password_hashing  # noqa: F401
from workers.jobs import run_source

ADMIN_PAGES = {
    "templates": ("GET", "/admin/templates"),
    "save_template": ("POST", "/admin/templates"),
    "delete_template": ("POST", "/admin/templates/1/delete"),
    "users": ("GET", "/admin/users"),
    "add_user": ("POST", "/admin/users"),
    "update_user": ("POST", "/admin/users/1"),
    "sign_out_user": ("POST", "/admin/users/999/sign-out"),
    "audit": ("GET", "/admin/audit"),
}
ALLOWED = {
    "agent": set(),
    "lead": {"templates", "save_template", "delete_template", "audit"},
    "admin": set(ADMIN_PAGES),
}


@pytest.fixture
def conversation_id(runtime) -> int:
    run_source(runtime, "demo")
    with runtime.sessions() as session:
        return session.scalar(select(Conversation.id).order_by(Conversation.id))


@pytest.mark.parametrize("role", ["agent", "lead", "admin"])
def test_each_role_reaches_only_its_admin_pages(client, role) -> None:
    login(client, role)
    for name, (method, path) in ADMIN_PAGES.items():
        status = client.open(path, method=method, data={}).status_code
        if name in ALLOWED[role]:
            assert status in (200, 302, 404), (role, name, status)
        else:
            assert status == 403, (role, name, status)


def test_agents_cannot_change_templates_users_or_roles(runtime, client, users) -> None:
    login(client, "agent")
    client.post("/admin/templates", data={"name": "x", "language": "en", "body": "hi"})
    client.post("/admin/users", data={"username": "mallory", "password": "p" * 10, "role": "admin"})
    client.post(f"/admin/users/{users['agent']}", data={"role": "admin", "active": "1"})
    with runtime.sessions() as session:
        assert session.scalar(select(ReplyTemplate)) is None
        assert session.scalar(select(User).where(User.username == "mallory")) is None
        assert session.get(User, users["agent"]).role == "agent"
    nav = client.get("/").get_data(as_text=True)
    assert "/admin/templates" not in nav and "/admin/users" not in nav


def test_agents_assign_only_themselves_leads_assign_anyone(
    runtime, app, conversation_id, users
) -> None:
    agent, lead = app.test_client(), app.test_client()
    login(agent, "agent")
    login(lead, "lead")
    url = f"/conversations/{conversation_id}/assign"
    assert agent.post(url, data={"assignee": str(users["lead"])}).status_code == 403
    assert (
        agent.post("/bulk", data={"action": "assign", "ids": [conversation_id]}).status_code == 403
    )
    assert agent.post(url, data={"assignee": "me"}).status_code == 302
    assert lead.post(url, data={"assignee": str(users["admin"])}).status_code == 302
    assert agent.post(url, data={"assignee": ""}).status_code == 403  # not theirs any more
    with runtime.sessions() as session:
        assert session.get(Conversation, conversation_id).assignee_id == users["admin"]
    page = agent.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert 'class="assignee-select"' not in page


def test_a_lead_manages_templates_and_an_admin_manages_users(runtime, app, users) -> None:
    lead, admin = app.test_client(), app.test_client()
    login(lead, "lead")
    login(admin, "admin")
    lead.post(
        "/admin/templates", data={"name": "sorry", "language": "en", "body": "Sorry, {author}!"}
    )
    bad = lead.post("/admin/templates", data={"name": "x", "language": "en", "body": "{secret}"})
    assert bad.status_code == 302
    assert "unknown variable" in lead.get("/admin/templates").get_data(as_text=True)
    admin.post("/admin/users", data={"username": "nina", "password": PASSWORD, "role": "lead"})
    admin.post(f"/admin/users/{users['admin']}", data={"role": "agent", "active": "1"})
    with runtime.sessions() as session:
        assert [t.name for t in session.scalars(select(ReplyTemplate))] == ["sorry"]
        assert session.scalar(select(User.role).where(User.username == "nina")) == "lead"
        assert session.get(User, users["admin"]).role == "admin"  # cannot demote themselves
        actions = set(session.scalars(select(AuditEntry.action)))
    assert {"template_saved", "user_added"} <= actions


@pytest.fixture
def csrf_app(runtime, users):
    from web import create_app

    return create_app(runtime, {"TESTING": True})


def _token(client, path: str = "/") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def _login_with_token(client, username: str = "admin") -> None:
    token = _token(client, "/login")
    response = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302


def test_every_state_changing_route_rejects_a_missing_csrf_token(csrf_app, conversation_id) -> None:
    client = csrf_app.test_client()
    _login_with_token(client)
    checked = 0
    for rule in csrf_app.url_map.iter_rules():
        if "POST" not in rule.methods:
            continue
        path = re.sub(r"<int:[^>]+>", str(conversation_id), rule.rule)
        response = client.post(path, data={"status": "resolved", "body": "x"})
        assert response.status_code == 400, (path, response.status_code)
        checked += 1
    assert checked >= 15
    with csrf_app.extensions["otklik"].sessions() as session:
        assert session.get(Conversation, conversation_id).status == "new"


def test_json_api_needs_the_csrf_header(csrf_app, conversation_id) -> None:
    client = csrf_app.test_client()
    _login_with_token(client)
    url = f"/api/conversations/{conversation_id}/presence"
    assert client.post(url, json={}).status_code == 400
    ok = client.post(url, json={}, headers={"X-CSRFToken": _token(client)})
    assert ok.status_code == 200 and ok.get_json()["others"] == []


def test_a_token_from_another_session_is_refused(csrf_app, conversation_id) -> None:
    mine, theirs = csrf_app.test_client(), csrf_app.test_client()
    _login_with_token(mine)
    foreign = _token(theirs, "/login")
    url = f"/conversations/{conversation_id}/status"
    assert mine.post(url, data={"status": "resolved", "csrf_token": foreign}).status_code == 400


def test_login_is_throttled_after_repeated_failures(runtime, client) -> None:
    for _ in range(5):
        assert login(client, "agent", "wrong password").status_code == 200
    locked = login(client, "agent", PASSWORD)
    assert locked.status_code == 429 and "Too many failed attempts" in locked.get_data(as_text=True)
    assert login(client, "lead", PASSWORD).status_code == 302  # other users are not locked
    with runtime.sessions() as session:
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions == ["login_failed"] * 5 + ["login_throttled", "login"]


def test_audit_log_records_logins_replies_assignments_status_and_settings(
    runtime, client, conversation_id
) -> None:
    login(client, "lead")
    with runtime.sessions() as session:
        target = session.scalar(select(Mention).where(Mention.conversation_id == conversation_id))
    base = f"/conversations/{conversation_id}"
    client.post(
        f"{base}/reply", data={"body": "Hi", "idempotency_key": "a", "in_reply_to": target.id}
    )
    client.post(f"{base}/assign", data={"assignee": "me"})
    client.post(f"{base}/status", data={"status": "resolved"})
    client.post("/account/locale", data={"locale": "ru"})
    client.post("/logout")
    with runtime.sessions() as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [e.action for e in entries] == [
        "login",
        "reply",
        "assign",
        "status",
        "settings",
        "logout",
    ]
    assert all(e.actor == "lead" for e in entries)
    assert entries[3].data == {"from": "open", "to": "resolved"}  # the reply opened it
    login(client, "lead")
    page = client.get("/admin/audit").get_data(as_text=True)
    assert "settings" in page and "user:lead" in page


def test_session_cookie_is_secure_over_https(client) -> None:
    response = client.post(
        "/login",
        data={"username": "agent", "password": PASSWORD},
        base_url="https://console.example",
    )
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    plain = login(client)
    assert "Secure" not in plain.headers["Set-Cookie"]


HOSTILE_HANDLE = '"><img src=x onerror=alert(1)>'


def test_hostile_names_stay_inert_in_templates_notes_and_attributes(runtime, client) -> None:
    post = RawMention(
        platform="demo",
        external_id="x-1",
        url='https://example.com/" onmouseover="alert(1)',
        author_external_id="x",
        author_handle=HOSTILE_HANDLE,
        text="hello <svg onload=alert(1)>",
        created_at=utcnow(),
    )
    with db.transaction(runtime.sessions) as session:
        store_page(session, None, None, [post], utcnow())
        conversation_id = session.scalar(select(Mention.conversation_id))
        session.add(ReplyTemplate(name="hi", language="en", body="Hi {author} <b>"))
    login(client, "lead")
    client.post(f"/conversations/{conversation_id}/notes", data={"body": "<script>x()</script>"})
    html = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert "<img src=x" not in html and "<svg onload" not in html and "<script>x()" not in html
    assert 'data-body="Hi &#34;&gt;&lt;img src=x onerror=alert(1)&gt; &lt;b&gt;"' in html
    assert 'onmouseover="alert' not in html
    assert 'rel="noopener noreferrer nofollow"' in html
    inbox = client.get("/").get_data(as_text=True)
    assert "<img src=x" not in inbox and "<svg onload" not in inbox


def test_the_console_speaks_russian_when_the_user_chooses_it(client) -> None:
    login(client)
    assert ">Inbox</h1>" in client.get("/").get_data(as_text=True)
    client.post("/account/locale", data={"locale": "ru"})
    page = client.get("/").get_data(as_text=True)
    assert '<html lang="ru">' in page and ">Входящие</h1>" in page
    assert "Жалобы без исполнителя" in page and "Скоро просрочка" in page
    client.post("/account/locale", data={"locale": "en"})
    assert ">Inbox</h1>" in client.get("/").get_data(as_text=True)


def test_the_login_page_follows_the_browser_language(client) -> None:
    page = client.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert "Войти" in page.get_data(as_text=True)
