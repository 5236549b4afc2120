"""Named leases in the database: one holder at a time, until an expiry the holder pushes back.

A lock is a row of ``job_locks``: a name (``"scheduler"``; ``"source:<name>"`` for the
scale-out workers' one-collector-per-source rule), the owner and when the lease runs out.
Every change is one conditional statement, so the rule holds across threads, processes and
machines, on SQLite as on PostgreSQL:

- ``acquire``: insert the row, or take it over when it has run out or is already ours
  (``INSERT ... ON CONFLICT (name) DO UPDATE ... WHERE expires_at <= :now OR owner = :me``);
- ``renew``: push the expiry back, only while the row is ours;
- ``release``: delete the row, only if it is ours.

``now`` is passed in: holders on several machines need clocks that agree to well within the
ttl. Give each call a short transaction of its own and commit it at once (on SQLite a
transaction that read before it writes can be refused the write lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from otklik.store import db
from otklik.store.models import JobLock

_LOCKS = cast(Table, JobLock.__table__)
# the same INSERT ... ON CONFLICT DO UPDATE in both dialects
_UPSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lock, since when and until when."""

    name: str
    owner: str
    acquired_at: datetime
    expires_at: datetime


def acquire(session: Session, name: str, owner: str, now: datetime, ttl: timedelta) -> bool:
    """Take lock ``name`` for ``owner`` until ``now + ttl``; False when someone else holds it.

    Taking a lock one already holds renews it (``acquired_at`` stays that of the first take).
    """
    values = {"name": name, "owner": owner, "acquired_at": now, "expires_at": now + ttl}
    taken_over = or_(_LOCKS.c.expires_at <= now, _LOCKS.c.owner == owner)
    dialect = session.get_bind().dialect.name
    insert: Any = _UPSERTS.get(dialect)
    if insert is None:  # pragma: no cover - Otklik runs on SQLite and PostgreSQL only
        raise NotImplementedError(f"job locks need SQLite or PostgreSQL, not {dialect}")
    row = insert(_LOCKS).values(values)
    stmt = row.on_conflict_do_update(
        index_elements=["name"], set_=_takeover(row.excluded), where=taken_over
    ).returning(_LOCKS.c.owner)
    # RETURNING, not rowcount: drivers leave an INSERT's rowcount at -1 (psycopg under SQLAlchemy)
    return session.execute(stmt).first() is not None


def _takeover(excluded: Any) -> dict[str, Any]:
    return {
        "owner": excluded.owner,
        "acquired_at": case(
            (_LOCKS.c.owner == excluded.owner, _LOCKS.c.acquired_at), else_=excluded.acquired_at
        ),
        "expires_at": excluded.expires_at,
    }


def renew(session: Session, name: str, owner: str, now: datetime, ttl: timedelta) -> bool:
    """Move the expiry of ``owner``'s lock to ``now + ttl``; False when it is not theirs.

    A lease that ran out but that nobody took over is still the owner's (nobody else can
    have worked in between), so renewing it succeeds.
    """
    stmt = (
        update(_LOCKS)
        .where(_LOCKS.c.name == name, _LOCKS.c.owner == owner)
        .values(expires_at=now + ttl)
    )
    return _changed(session.execute(stmt))


def release(session: Session, name: str, owner: str) -> bool:
    """Drop ``owner``'s lock ``name``; False when it was not theirs (any more)."""
    stmt = delete(_LOCKS).where(_LOCKS.c.name == name, _LOCKS.c.owner == owner)
    return _changed(session.execute(stmt))


def holder(session: Session, name: str) -> Holder | None:
    """The row of lock ``name`` (it may have run out: compare ``expires_at`` with now)."""
    row = session.execute(
        select(_LOCKS.c.owner, _LOCKS.c.acquired_at, _LOCKS.c.expires_at).where(
            _LOCKS.c.name == name
        )
    ).one_or_none()
    return None if row is None else Holder(name, row.owner, row.acquired_at, row.expires_at)


def _changed(result: Any) -> bool:
    return db.rows_changed(result) == 1
