"""What people do to accounts in the console: log in and out, add and change users, choose a
language. Each use case writes its own audit entry (with the request's address) in the
caller's transaction, so the web views never write the audit log themselves.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from otklik import audit
from otklik.store.models import Role, User
from otklik.users import authenticate, create_user


def log_in(session: Session, username: str, password: str, ip: str) -> User | None:
    """The user with these credentials (or None), audited as ``login`` / ``login_failed``."""
    user = authenticate(session, username, password)
    action = "login" if user else "login_failed"
    audit.record(session, user, action, username, ip=ip, actor=username[:80])
    return user


def record_access(session: Session, user: User | None, action: str, username: str, ip: str) -> None:
    """A throttled login attempt or a logout."""
    audit.record(session, user, action, username, ip=ip, actor=username[:80])


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
    session: Session, actor: User, user: User, role: str, active: bool, ip: str = ""
) -> None:
    """Change a user's role or deactivate / reactivate them."""
    if role not in {r.value for r in Role}:
        raise ValueError(f"unknown role {role!r}")
    if user.id == actor.id and (role != Role.ADMIN or not active):
        raise SelfLockout("you cannot demote or deactivate yourself")
    change = {"role": [user.role, role], "active": [user.active, active]}
    user.role, user.active = role, active
    audit.record(session, actor, "user_changed", f"user:{user.username}", change, ip=ip)


def set_locale(session: Session, user: User, locale: str, ip: str = "") -> None:
    """The console language of ``user``."""
    old, user.locale = user.locale, locale
    target = f"user:{user.username}"
    audit.record(session, user, "settings", target, {"locale": [old, locale]}, ip=ip)
