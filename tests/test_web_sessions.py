"""Console sessions end on the server: logout, deactivation, a role or password change, an admin's
"sign out everywhere", an idle timeout and an absolute lifetime (issue 16, item 2).

A replayed cookie is the attacker's move: each test copies the session cookie before the event
and presents it again afterwards from another client.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import select, update

from otklik.store.models import AuditEntry, ConsoleSession, User, utcnow
from tests.conftest import PASSWORD, login
from tests.web_support import fast_password_hashing  # noqa: F401

NEW_PASSWORD = "a quite different passphrase"


def _logged_in(app, username: str = "agent"):
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def _cookie(client) -> str:
    return client.get_cookie("session").value


def _replay(app, cookie: str) -> int:
    """The status of the inbox for a fresh client presenting ``cookie``."""
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    return thief.get("/").status_code


def _sessions(runtime, user_id: int) -> list[ConsoleSession]:
    with runtime.sessions() as session:
        query = select(ConsoleSession).where(ConsoleSession.user_id == user_id)
        return list(session.scalars(query.order_by(ConsoleSession.created_at)))


def test_a_cookie_replayed_after_logout_is_refused(app) -> None:
    client = _logged_in(app)
    cookie = _cookie(client)
    assert _replay(app, cookie) == 200
    client.post("/logout")
    assert client.get("/").status_code == 302
    assert _replay(app, cookie) == 302


def test_the_cookie_carries_a_random_token_stored_only_as_its_hash(runtime, app, users) -> None:
    client = _logged_in(app)
    data = SecureCookieSessionInterface().get_signing_serializer(app).loads(_cookie(client))
    assert "user_id" not in data
    (row,) = _sessions(runtime, users["agent"])
    assert row.id == hashlib.sha256(data["sid"].encode()).hexdigest()
    assert row.revoked_at is None and row.ip == "127.0.0.1"


def test_deactivation_ends_sessions_and_reactivation_does_not_revive_them(app, users) -> None:
    agent, admin = _logged_in(app, "agent"), _logged_in(app, "admin")
    cookie = _cookie(agent)
    admin.post(f"/admin/users/{users['agent']}", data={"role": "agent"})  # inactive
    assert agent.get("/").status_code == 302
    admin.post(f"/admin/users/{users['agent']}", data={"role": "agent", "active": "1"})
    assert _replay(app, cookie) == 302
    assert _logged_in(app, "agent").get("/").status_code == 200  # a new login works


def test_a_role_change_ends_the_users_sessions(runtime, app, users) -> None:
    lead, admin = _logged_in(app, "lead"), _logged_in(app, "admin")
    assert lead.get("/admin/templates").status_code == 200
    admin.post(f"/admin/users/{users['lead']}", data={"role": "agent", "active": "1"})
    assert lead.get("/").status_code == 302
    unchanged = _logged_in(app, "agent")
    admin.post(f"/admin/users/{users['agent']}", data={"role": "agent", "active": "1"})
    assert unchanged.get("/").status_code == 200  # nothing changed: the session stays
    with runtime.sessions() as session:
        entry = session.scalar(
            select(AuditEntry).where(AuditEntry.action == "user_changed").order_by(AuditEntry.id)
        )
    assert entry.data["sessions_ended"] == 1


def test_an_admin_signs_a_user_out_everywhere(runtime, app, users) -> None:
    phone, laptop, tablet = _logged_in(app), _logged_in(app), _logged_in(app)
    admin = _logged_in(app, "admin")
    page = admin.get("/admin/users").get_data(as_text=True)
    assert f'action="/admin/users/{users["agent"]}/sign-out"' in page
    response = admin.post(f"/admin/users/{users['agent']}/sign-out")
    assert response.status_code == 302
    assert "Signed out of 3 session(s)." in admin.get("/admin/users").get_data(as_text=True)
    assert [c.get("/").status_code for c in (phone, laptop, tablet)] == [302, 302, 302]
    assert admin.get("/").status_code == 200
    assert all(s.revoked_at is not None for s in _sessions(runtime, users["agent"]))
    with runtime.sessions() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "sessions_ended"))
    assert entry.actor == "admin" and entry.target == "user:agent"
    assert entry.data == {"sessions": 3}


def test_only_admins_sign_others_out(app, users) -> None:
    lead = _logged_in(app, "lead")
    admin = _logged_in(app, "admin")
    assert lead.post(f"/admin/users/{users['admin']}/sign-out").status_code == 403
    assert admin.get("/").status_code == 200
    assert _logged_in(app).post("/admin/users/999/sign-out").status_code in (403, 404)


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(runtime, app, users) -> None:
    here, elsewhere = _logged_in(app), _logged_in(app)
    old_cookie = _cookie(here)
    wrong = here.post(
        "/account/password",
        data={"current_password": "not it at all", "new_password": NEW_PASSWORD},
    )
    assert wrong.status_code == 302 and elsewhere.get("/").status_code == 200
    assert "Your current password is wrong." in here.get("/account/").get_data(as_text=True)
    changed = here.post(
        "/account/password",
        data={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 302
    assert here.get("/").status_code == 200  # a fresh session for the browser that changed it
    assert elsewhere.get("/").status_code == 302
    assert _replay(app, old_cookie) == 302  # the session id was rotated, too
    fresh = app.test_client()
    assert login(fresh, "agent", PASSWORD).status_code == 200
    assert login(fresh, "agent", NEW_PASSWORD).status_code == 302
    with runtime.sessions() as session:
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert "password_changed" in actions


def test_a_new_password_must_follow_the_policy(app) -> None:
    client = _logged_in(app)
    response = client.post(
        "/account/password", data={"current_password": PASSWORD, "new_password": "short"}
    )
    assert response.status_code == 302
    assert "at least 12 characters" in client.get("/account/").get_data(as_text=True)
    assert login(app.test_client(), "agent", PASSWORD).status_code == 302


def test_an_idle_session_expires(runtime, app, users) -> None:
    client = _logged_in(app)
    with runtime.sessions.begin() as session:
        session.execute(update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(hours=9)))
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert client.get("/").status_code == 302  # and stays ended


def test_an_old_session_expires_however_busy(runtime, app, users) -> None:
    client = _logged_in(app)
    with runtime.sessions.begin() as session:
        session.execute(update(ConsoleSession).values(created_at=utcnow() - timedelta(days=31)))
    assert client.get("/").status_code == 302


def test_the_idle_timeout_is_an_app_setting(runtime, users) -> None:
    from web import create_app

    app = create_app(
        runtime, {"TESTING": True, "WTF_CSRF_ENABLED": False, "SESSION_IDLE_SECONDS": 60}
    )
    client = _logged_in(app)
    with runtime.sessions.begin() as session:
        session.execute(update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(minutes=2)))
    assert client.get("/").status_code == 302


def test_last_seen_is_written_at_most_once_a_minute(runtime, app, users) -> None:
    client = _logged_in(app)
    recent = utcnow() - timedelta(seconds=30)
    with runtime.sessions.begin() as session:
        session.execute(update(ConsoleSession).values(last_seen_at=recent))
    client.get("/")
    (row,) = _sessions(runtime, users["agent"])
    assert row.last_seen_at == recent
    stale = utcnow() - timedelta(minutes=5)
    with runtime.sessions.begin() as session:
        session.execute(update(ConsoleSession).values(last_seen_at=stale))
    client.get("/")
    (row,) = _sessions(runtime, users["agent"])
    assert row.last_seen_at > utcnow() - timedelta(seconds=10)


def test_a_session_of_a_user_deactivated_elsewhere_is_refused(runtime, app, users) -> None:
    client = _logged_in(app)
    with runtime.sessions.begin() as session:
        session.execute(update(User).where(User.id == users["agent"]).values(active=False))
    assert client.get("/").status_code == 302


def test_automatic_heartbeats_do_not_keep_an_abandoned_tab_alive(runtime, app, users) -> None:
    client = _logged_in(app)
    stale = utcnow() - timedelta(minutes=5)
    with runtime.sessions.begin() as session:
        session.execute(update(ConsoleSession).values(last_seen_at=stale))
    client.post("/api/conversations/1/presence", json={})  # 404 or 200: the page's heartbeat
    assert _sessions(runtime, users["agent"])[0].last_seen_at == stale
    with runtime.sessions.begin() as session:
        session.execute(update(ConsoleSession).values(last_seen_at=utcnow() - timedelta(hours=9)))
    assert client.post("/api/conversations/1/presence", json={}).status_code == 401
