"""What people do to accounts in the console: log in and out, add and change users, change a
password, end sessions, choose a language. Each use case writes its own audit entry (with the
request's address) in the caller's transaction, so the web views never write the audit log
themselves.

Console sessions live on the server (``console_sessions``): the browser's signed cookie holds a
random token, the table only its SHA-256, so a session can be ended whatever the cookie says.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from otklik import audit
from otklik.store import db
from otklik.store.models import ConsoleSession, Role, User, utcnow
from otklik.users import authenticate, create_user, set_password, verify_password


@dataclass(frozen=True)
class SessionRules:
    """How long a console session lives: idle at most ``idle``, in all at most ``max_age``;
    its last-seen time is written at most once per ``touch``."""

    idle: timedelta = timedelta(hours=8)
    max_age: timedelta = timedelta(days=30)
    touch: timedelta = timedelta(minutes=1)


def log_in(session: Session, username: str, password: str, ip: str) -> User | None:
    """The user with these credentials (or None), audited as ``login`` / ``login_failed``."""
    user = authenticate(session, username, password)
    action = "login" if user else "login_failed"
    audit.record(session, user, action, username, ip=ip, actor=username[:80])
    return user


def record_access(session: Session, user: User | None, action: str, username: str, ip: str) -> None:
    """A throttled login attempt."""
    audit.record(session, user, action, username, ip=ip, actor=username[:80])


def _token_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(
    session: Session,
    user: User,
    ip: str,
    now: datetime,
    rules: SessionRules | None = None,
    replaces: str | None = None,
) -> str:
    """A new console session for ``user``; returns the token for the cookie (stored hashed).

    ``replaces``: the token of the session this browser had, which ends. Sessions past their
    lifetime are deleted on the way (they can never be used again).
    """
    rules = rules or SessionRules()
    if replaces:
        _revoke(session, ConsoleSession.id == _token_id(replaces), now)
    session.execute(delete(ConsoleSession).where(ConsoleSession.created_at < now - rules.max_age))
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            id=_token_id(token), user_id=user.id, created_at=now, last_seen_at=now, ip=ip[:64]
        )
    )
    return token


def live_sessions(
    session: Session, now: datetime, rules: SessionRules | None = None
) -> dict[int, int]:
    """How many sessions each user has that could still be used: {user id: count}."""
    rules = rules or SessionRules()
    query = (
        select(ConsoleSession.user_id, func.count(ConsoleSession.id))
        .where(
            ConsoleSession.revoked_at.is_(None),
            ConsoleSession.last_seen_at >= now - rules.idle,
            ConsoleSession.created_at >= now - rules.max_age,
        )
        .group_by(ConsoleSession.user_id)
    )
    return {user_id: count for user_id, count in session.execute(query)}


def session_user(
    session: Session,
    token: str,
    now: datetime,
    rules: SessionRules | None = None,
    activity: bool = True,
) -> User | None:
    """The active user of the session ``token`` stands for, or None when it has ended.

    A session ends when revoked, idle for longer than ``rules.idle`` or older than
    ``rules.max_age``; one found idle or too old is marked revoked. While it lives, its last-seen
    time moves forward at most once per ``rules.touch`` (a conditional UPDATE, so parallel
    requests write it once), unless the request is no ``activity`` of the person (a page's
    automatic heartbeat), which keeps an abandoned open tab from holding a session forever.
    """
    rules = rules or SessionRules()
    row = session.get(ConsoleSession, _token_id(token))
    if row is None or row.revoked_at is not None:
        return None
    if now - row.last_seen_at > rules.idle or now - row.created_at > rules.max_age:
        _revoke(session, ConsoleSession.id == row.id, now)
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    if activity and now - row.last_seen_at >= rules.touch:
        session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.id == row.id, ConsoleSession.last_seen_at == row.last_seen_at)
            .values(last_seen_at=now)
        )
    return user


def log_out(session: Session, user: User, token: str, ip: str, now: datetime) -> None:
    """End this console session (audited as ``logout``)."""
    _revoke(session, ConsoleSession.id == _token_id(token), now)
    audit.record(session, user, "logout", user.username, ip=ip, actor=user.username)


def _revoke(session: Session, which: ColumnElement[bool], now: datetime) -> int:
    """Mark the live sessions matching ``which`` revoked; how many there were."""
    result = session.execute(
        update(ConsoleSession)
        .where(which, ConsoleSession.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return db.rows_changed(result)


def end_sessions(session: Session, user: User, now: datetime) -> int:
    """End every live session of ``user`` (no audit entry: the caller's use case writes one)."""
    return _revoke(session, ConsoleSession.user_id == user.id, now)


def sign_out_everywhere(
    session: Session, actor: User, user: User, now: datetime, ip: str = ""
) -> int:
    """An admin ends all of ``user``'s sessions (audited as ``sessions_ended``); how many."""
    ended = end_sessions(session, user, now)
    audit.record(
        session, actor, "sessions_ended", f"user:{user.username}", {"sessions": ended}, ip=ip
    )
    return ended


def change_password(
    session: Session,
    user: User,
    current: str,
    new: str,
    now: datetime,
    ip: str = "",
    rules: SessionRules | None = None,
) -> str | None:
    """The user changes their own password: every session of theirs ends and a fresh one starts
    for the browser that asked; returns its token. None when ``current`` is wrong (audited as
    ``password_change_failed``); UserError when the policy refuses ``new`` (nothing changes).
    """
    target = f"user:{user.username}"
    if not verify_password(user, current):
        audit.record(session, user, "password_change_failed", target, ip=ip)
        return None
    set_password(user, new)
    ended = end_sessions(session, user, now)
    audit.record(session, user, "password_changed", target, {"sessions_ended": ended}, ip=ip)
    return start_session(session, user, ip, now, rules)


def add_user(
    session: Session, actor: User, username: str, password: str, role: str, ip: str = ""
) -> User:
    """Add a console user (UserError when the name, role or password will not do)."""
    created = create_user(session, username, password, role=role)
    audit.record(session, actor, "user_added", f"user:{created.username}", {"role": role}, ip=ip)
    return created


class SelfLockout(ValueError):
    """An admin tried to demote or deactivate themselves."""


def change_user(
    session: Session,
    actor: User,
    user: User,
    role: str,
    active: bool,
    ip: str = "",
    now: datetime | None = None,
) -> None:
    """Change a user's role or deactivate / reactivate them; a change of either ends the user's
    sessions (a reactivated user logs in afresh)."""
    if role not in {r.value for r in Role}:
        raise ValueError(f"unknown role {role!r}")
    if user.id == actor.id and (role != Role.ADMIN or not active):
        raise SelfLockout("you cannot demote or deactivate yourself")
    change: dict[str, object] = {"role": [user.role, role], "active": [user.active, active]}
    if role != user.role or active != user.active:
        change["sessions_ended"] = end_sessions(session, user, now or utcnow())
    user.role, user.active = role, active
    audit.record(session, actor, "user_changed", f"user:{user.username}", change, ip=ip)


def set_locale(session: Session, user: User, locale: str, ip: str = "") -> None:
    """The console language of ``user``."""
    old, user.locale = user.locale, locale
    target = f"user:{user.username}"
    audit.record(session, user, "settings", target, {"locale": [old, locale]}, ip=ip)
