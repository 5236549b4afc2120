"""Merging conversations that turn out to be one thread.

A backlog delivered newest page first can store a reply before the post that
links it to its thread; when the linking post arrives, the conversations on
both sides are merged into the oldest one. Every table that points at a
conversation is moved over, found from the metadata so new tables are never
forgotten; rows that would collide with a unique constraint (the same tag on
both) are dropped from the merged side first. The merge is an event of the survivor's journal,
which replays its cycle; its flags are recomputed from the posts it now holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Table, and_, delete, exists, select, update
from sqlalchemy.orm import Session, aliased

from otklik.cases import journal
from otklik.domain.events import EventKind
from otklik.store import projections
from otklik.store.models import Base, Conversation, Status

OPEN_STATUSES = (Status.NEW, Status.OPEN, Status.PENDING)


def merge_conversations(
    session: Session, conversations: Sequence[Conversation | None], now: datetime
) -> Conversation | None:
    """Merge the distinct conversations into the oldest; return the survivor (or None)."""
    distinct = {c.id: c for c in conversations if c is not None}
    if len(distinct) < 2:
        return next(iter(distinct.values()), None)
    keep, *others = sorted(distinct.values(), key=lambda c: (c.opened_at, c.id))
    session.flush()
    for other in others:
        _combine_fields(keep, other)
        for table, column in _references():
            _move_rows(session, table, column, other.id, keep.id)
        journal.append(session, keep, EventKind.MERGED, now, recorded_at=now, merged=other.id)
        session.flush()
        session.expire(keep, ["mentions"])
        session.delete(other)
    session.flush()
    projections.refresh_flags(session, keep)
    return keep


def _combine_fields(keep: Conversation, other: Conversation) -> None:
    keep.opened_at = min(keep.opened_at, other.opened_at)
    keep.last_customer_at = max(keep.last_customer_at, other.last_customer_at)
    responses = [t for t in (keep.first_response_at, other.first_response_at) if t is not None]
    keep.first_response_at = min(responses) if responses else None
    keep.priority = max(keep.priority, other.priority)
    keep.peak_negative = max(keep.peak_negative or 0.0, other.peak_negative or 0.0)
    keep.assignee_id = keep.assignee_id or other.assignee_id
    if keep.status == Status.RESOLVED and other.status in OPEN_STATUSES:
        keep.status, keep.resolved_at = other.status, None


def _references() -> list[tuple[Table, Column]]:
    """Every (table, column) with a foreign key to conversations.id."""
    found = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if any(fk.column.table.name == "conversations" for fk in column.foreign_keys):
                found.append((table, column))
    return found


def _move_rows(session: Session, table: Table, column: Column, from_id: int, to_id: int) -> None:
    for constraint in table.constraints:
        columns: Any = getattr(constraint, "columns", None)  # read only on a UniqueConstraint
        if constraint.__class__.__name__ != "UniqueConstraint" or column.name not in columns:
            continue
        twin = aliased(table)
        same = [twin.c[c.name] == c for c in columns if c.name != column.name]
        collides = exists(select(twin.c[column.name]).where(twin.c[column.name] == to_id, *same))
        session.execute(delete(table).where(and_(column == from_id, collides)))
    session.execute(update(table).where(column == from_id).values({column.name: to_id}))
