"""The case journal: the only writer of case events, and readers that follow it by position.

:func:`append` is the one place a ``CaseEvent`` is built. It adds the event and refreshes the
conversation's inbox projection (SLA cycle and due times, ``otklik.store.projections``)
explicitly: no flush hooks. Use cases call it once they have recorded the posts an event is
about (``last_customer_at``), and before they clear the status the event moves away from
(a ``status_changed`` out of ``resolved`` must still see the resolution it ends).

Readers (alerts, escalation, rollups, Celery tasks) follow the journal with a saved position:
:func:`read` returns the events after a reader's position, :func:`advance` moves it forward
in the same transaction as the reader's own writes, so a crash re-reads instead of skipping.
Event ids come from the database; under concurrent writers (PostgreSQL) a lower id can
commit after a higher one, so :func:`read` stops at a gap in the ids until the event after
the gap has been recorded for ``settle`` (a rolled-back id leaves a gap for ever).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from otklik.domain.events import EventKind
from otklik.store import projections
from otklik.store.models import CaseEvent, Conversation, JournalReader, User, utcnow
from otklik.store.projections import events_of

SETTLE = timedelta(seconds=10)
__all__ = ["SETTLE", "advance", "append", "events_of", "position", "read", "read_window"]


def append(
    session: Session,
    conversation: Conversation,
    kind: EventKind,
    at: datetime,
    *,
    user: User | None = None,
    actor: str | None = None,
    recorded_at: datetime | None = None,
    **data: Any,
) -> CaseEvent:
    """Append an event to ``conversation``'s journal and refresh its inbox projection.

    ``at`` is when it happened (a post's own time for posts); ``actor`` defaults to the
    user's name, else ``system``; ``recorded_at`` (default: the wall clock) is when it was
    written, which readers use to let id gaps settle.
    """
    if kind not in EventKind.__members__.values():
        raise ValueError(f"unknown case event kind {kind!r}; add it to otklik.domain.events")
    if conversation.id is None:
        session.flush()  # the conversation needs its id before events can point at it
    latest = projections.latest_event_at(session, conversation.id)
    event = CaseEvent(
        conversation_id=conversation.id,
        kind=str(kind),
        at=at,
        recorded_at=recorded_at or utcnow(),
        actor_id=user.id if user else None,
        actor=actor or (user.username if user else "system"),
        data=data,
    )
    session.add(event)
    projections.apply_event(session, conversation, event, latest)
    return event


def position(session: Session, reader: str) -> int:
    """The id of the last event ``reader`` has handled (0 before its first read)."""
    row = session.get(JournalReader, reader)
    return row.position if row is not None else 0


def read(
    session: Session,
    reader: str,
    now: datetime,
    limit: int = 500,
    kinds: Sequence[str] | None = None,
    settle: timedelta = SETTLE,
) -> list[CaseEvent]:
    """Events after ``reader``'s position, oldest first, up to the first unsettled id gap.

    ``kinds`` filters what is returned, not how far the reader may advance: pass the id of
    the last event *examined* to :func:`advance` (:func:`read_window` returns it).
    """
    events, _last = read_window(session, reader, now, limit, kinds, settle)
    return events


def read_window(
    session: Session,
    reader: str,
    now: datetime,
    limit: int = 500,
    kinds: Sequence[str] | None = None,
    settle: timedelta = SETTLE,
) -> tuple[list[CaseEvent], int]:
    """(events of ``kinds`` after the position, id up to which the journal was examined)."""
    start = position(session, reader)
    rows = list(
        session.scalars(
            select(CaseEvent).where(CaseEvent.id > start).order_by(CaseEvent.id).limit(limit)
        )
    )
    examined, expected = start, start + 1
    kept: list[CaseEvent] = []
    for event in rows:
        recorded = event.recorded_at
        if event.id != expected and recorded is not None and now - recorded < settle:
            break  # a lower id may still be committing: wait until the gap settles
        if kinds is None or event.kind in kinds:
            kept.append(event)
        examined, expected = event.id, event.id + 1
    return kept, examined


def advance(session: Session, reader: str, to_id: int, now: datetime) -> None:
    """Move ``reader``'s position to ``to_id`` (never backwards), in the caller's transaction."""
    row = session.get(JournalReader, reader)
    if row is None:
        row = JournalReader(name=reader, position=0, updated_at=now)
        session.add(row)
    if to_id > row.position:
        row.position, row.updated_at = to_id, now
