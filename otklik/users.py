"""Console users: argon2 password hashes, roles."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from otklik.store.models import Role, User

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 8


class UserError(ValueError):
    """A user could not be created as asked."""


def create_user(session: Session, username: str, password: str, role: str = Role.AGENT) -> User:
    """Add a user; the password is stored only as an argon2 hash."""
    username = username.strip()
    if not username:
        raise UserError("username is empty")
    if role not in {r.value for r in Role}:
        raise UserError(f"role {role!r} is not one of: {', '.join(r.value for r in Role)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise UserError(f"user {username!r} already exists")
    user = User(username=username, password_hash=_hasher.hash(password), role=role)
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with these credentials, or None."""
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.active:
        _hasher.hash(password)  # spend the same time as a real check
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def count_users(session: Session) -> int:
    """How many users exist."""
    return session.scalar(select(func.count(User.id))) or 0


def generate_password() -> str:
    """A random password for the first admin."""
    return secrets.token_urlsafe(12)
