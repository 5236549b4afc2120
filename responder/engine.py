"""The one outbox engine: write first, send, record; backoff, give up, or ask a person.

Everything Otklik sends to the outside (replies now; tickets and alerts next) is a row with the
outbox columns (``state``, ``attempts``, ``next_attempt_at``, ``error``, ``external_id``,
``sent_at``) and a :class:`Channel` that says how to send one. The engine:

1. claims a due ``queued`` row and commits it as ``sending`` (so a crash leaves a trace);
2. calls the outside system outside any transaction;
3. records ``sent`` (and the channel's reaction, e.g. the journal event) in one transaction,
   or a failure (``otklik.domain.outbox.after_failure``): a transient error (the request surely
   did not land) goes back to ``queued`` with a backoff; an ambiguous one (``OutcomeUnknown``:
   it may have landed) becomes ``unknown``; anything else, and transient errors past
   ``MAX_ATTEMPTS``, become ``failed``.

At start, :func:`recover_interrupted` turns rows left in ``sending`` into ``unknown``: the
call may have gone out, and sending twice is worse than asking a person to check.

Every change of state is a compare-and-set (``otklik.store.outbox.compare_and_set``,
``UPDATE ... WHERE id = :id AND state IN (:seen)``, checking the row count): of two senders
claiming one row, or a sender and a person's Retry, exactly one wins; the loser writes nothing,
and the channel's reactions (journal events, audit) run only for the winner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session, sessionmaker

from otklik.domain.outbox import INTERRUPTED, OutboxState, after_failure
from otklik.faults import crash_point
from otklik.store import db
from otklik.store.models import utcnow
from otklik.store.outbox import compare_and_set

log = logging.getLogger(__name__)
P = TypeVar("P")


@dataclass(frozen=True)
class Channel(Generic[P]):
    """How one kind of outgoing item is sent.

    ``prepare`` reads what the call needs while the row is claimed (plain values, no ORM
    objects); ``deliver`` makes the call and returns the external id; ``on_sent`` and
    ``on_failed`` are the explicit reactions, run in the transaction that records the result.
    ``on_failed`` runs when the row needs a person: ``failed``, or ``unknown`` (the row's
    state tells which).
    """

    name: str
    model: type[Any]
    prepare: Callable[[Session, Any], P]
    deliver: Callable[[P], str]
    on_sent: Callable[[Session, Any, str, datetime], None]
    on_failed: Callable[[Session, Any, datetime], None]


def recover_interrupted(
    sessions: sessionmaker[Session],
    model: type[Any],
    on_unknown: Callable[[Session, Any, datetime], None] | None = None,
    now: datetime | None = None,
) -> int:
    """Mark rows left in ``sending`` by a dead worker as ``unknown``; return how many.

    ``on_unknown`` (a channel's ``on_failed``) runs once for each row this call moved.
    """
    now = now or utcnow()
    recovered = 0
    with db.transaction(sessions) as session:
        stuck = list(session.scalars(select(model.id).where(model.state == OutboxState.SENDING)))
        for row_id in stuck:
            if not compare_and_set(
                session,
                model,
                row_id,
                [OutboxState.SENDING],
                OutboxState.UNKNOWN,
                error=INTERRUPTED,
            ):
                continue  # its sender finished meanwhile
            recovered += 1
            if on_unknown is not None:
                on_unknown(session, _load(session, model, row_id), now)
    return recovered


def send_due(sessions: sessionmaker[Session], channel: Channel[Any], now: datetime) -> int:
    """Send every queued row of ``channel`` that is due; return how many were sent."""
    model = channel.model
    with db.transaction(sessions) as session:
        due = list(
            session.scalars(
                select(model.id)
                .where(model.state == OutboxState.QUEUED, _is_due(model, now))
                .order_by(model.id)
            )
        )
    return sum(1 for row_id in due if _send_one(sessions, channel, row_id, now))


def _is_due(model: type[Any], now: datetime) -> ColumnElement[bool]:
    return or_(model.next_attempt_at.is_(None), model.next_attempt_at <= now)


def _load(session: Session, model: type[Any], row_id: int) -> Any:
    """The row as the database has it now (after a compare-and-set this session won)."""
    return session.get(model, row_id, populate_existing=True)


def _send_one(
    sessions: sessionmaker[Session], channel: Channel[Any], row_id: int, now: datetime
) -> bool:
    model = channel.model
    with db.transaction(sessions) as session:
        claimed = compare_and_set(
            session,
            model,
            row_id,
            [OutboxState.QUEUED],
            OutboxState.SENDING,
            _is_due(model, now),  # a backoff set meanwhile by another sender still holds
            attempts=model.attempts + 1,
        )
        if not claimed:
            return False  # another sender took it, or it was moved meanwhile
        row = _load(session, model, row_id)
        attempts: int = row.attempts
        payload = channel.prepare(session, row)
    crash_point(f"after-{channel.name}-sending")
    try:
        external_id = channel.deliver(payload)
    except Exception as exc:  # noqa: BLE001 - recorded on the row, shown in the console
        _record_failure(sessions, channel, row_id, attempts, exc, now)
        return False
    return _record_sent(sessions, channel, row_id, external_id, now)


def _record_sent(
    sessions: sessionmaker[Session],
    channel: Channel[Any],
    row_id: int,
    external_id: str,
    now: datetime,
) -> bool:
    model = channel.model
    with db.transaction(sessions) as session:
        # ``unknown`` too: a restart may have marked the row while this call was still out;
        # the platform's answer is the proof that it was taken
        seen = [OutboxState.SENDING, OutboxState.UNKNOWN]
        values = {"external_id": external_id, "sent_at": now, "error": None}
        if compare_and_set(session, model, row_id, seen, OutboxState.SENT, **values):
            channel.on_sent(session, _load(session, model, row_id), external_id, now)
            return True
        state = session.scalar(select(model.state).where(model.id == row_id))
    log.error(
        "%s %s was taken by the other side as %s, but the row is %s meanwhile: not recorded",
        channel.name,
        row_id,
        external_id,
        state,
    )
    return False


def _record_failure(
    sessions: sessionmaker[Session],
    channel: Channel[Any],
    row_id: int,
    attempts: int,
    exc: Exception,
    now: datetime,
) -> None:
    model = channel.model
    error = f"{type(exc).__name__}: {exc}"
    state, retry_at = after_failure(exc, attempts, now)
    values: dict[str, Any] = {"error": error}
    if state == OutboxState.QUEUED:
        values["next_attempt_at"] = retry_at
    with db.transaction(sessions) as session:
        if not compare_and_set(session, model, row_id, [OutboxState.SENDING], state, **values):
            log.warning("%s %s: %s not recorded: moved meanwhile", channel.name, row_id, error)
            return
        if state != OutboxState.QUEUED:
            channel.on_failed(session, _load(session, model, row_id), now)
    log.warning("%s %s %s: %s", channel.name, row_id, state, error)
