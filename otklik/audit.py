"""The audit log: who logged in, replied, assigned, changed a status or a setting, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from otklik.store.models import AuditEntry, User, utcnow


def record(
    session: Session,
    user: User | None,
    action: str,
    target: str = "",
    data: dict[str, Any] | None = None,
    ip: str = "",
    actor: str | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry (in the caller's transaction, so it commits with the change itself)."""
    entry = AuditEntry(
        at=at or utcnow(),
        user_id=user.id if user else None,
        actor=actor or (user.username if user else "anonymous"),
        action=action,
        target=target[:80],
        ip=ip[:64],
        data=dict(data or {}),
    )
    session.add(entry)
    return entry


def recent(session: Session, limit: int = 200, action: str | None = None) -> list[AuditEntry]:
    """The newest entries first, optionally only one action."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if action:
        query = query.where(AuditEntry.action == action)
    return list(session.scalars(query))
