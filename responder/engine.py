"""The one outbox engine: write first, send, record; backoff, give up, or ask a person.

Everything Otklik sends to the outside (replies now; tickets and alerts next) is a row with the
outbox columns (``state``, ``attempts``, ``next_attempt_at``, ``error``, ``external_id``,
``sent_at``) and a :class:`Channel` that says how to send one. The engine:

1. claims a due ``queued`` row and commits it as ``sending`` (so a crash leaves a trace);
2. calls the outside system outside any transaction;
3. records ``sent`` (and the channel's reaction, e.g. the journal event) in one transaction,
   or a failure: transient errors go back to ``queued`` with a backoff, permanent ones (and
   transient ones past ``MAX_ATTEMPTS``) become ``failed``.

At start, :func:`recover_interrupted` turns rows left in ``sending`` into ``unknown``: the
call may have gone out, and sending twice is worse than asking a person to check
(``otklik.domain.outbox``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from otklik.domain.outbox import INTERRUPTED, OutboxState, next_attempt
from otklik.faults import crash_point
from otklik.store import db

log = logging.getLogger(__name__)
P = TypeVar("P")


@dataclass(frozen=True)
class Channel(Generic[P]):
    """How one kind of outgoing item is sent.

    ``prepare`` reads what the call needs while the row is claimed (plain values, no ORM
    objects); ``deliver`` makes the call and returns the external id; ``on_sent`` and
    ``on_failed`` are the explicit reactions, run in the transaction that records the result.
    """

    name: str
    model: type[Any]
    prepare: Callable[[Session, Any], P]
    deliver: Callable[[P], str]
    on_sent: Callable[[Session, Any, str, datetime], None]
    on_failed: Callable[[Session, Any, datetime], None]


def recover_interrupted(sessions: sessionmaker[Session], model: type[Any]) -> int:
    """Mark rows left in ``sending`` by a dead worker as ``unknown``; return how many."""
    with db.transaction(sessions) as session:
        stuck = list(session.scalars(select(model).where(model.state == OutboxState.SENDING)))
        for row in stuck:
            row.state, row.error = OutboxState.UNKNOWN, INTERRUPTED
    return len(stuck)


def send_due(sessions: sessionmaker[Session], channel: Channel[Any], now: datetime) -> int:
    """Send every queued row of ``channel`` that is due; return how many were sent."""
    model = channel.model
    with db.transaction(sessions) as session:
        due = [
            row.id
            for row in session.scalars(
                select(model).where(model.state == OutboxState.QUEUED).order_by(model.id)
            )
            if row.next_attempt_at is None or row.next_attempt_at <= now
        ]
    return sum(1 for row_id in due if _send_one(sessions, channel, row_id, now))


def _send_one(
    sessions: sessionmaker[Session], channel: Channel[Any], row_id: int, now: datetime
) -> bool:
    with db.transaction(sessions) as session:
        row: Any = session.get(channel.model, row_id)  # a channel.model instance, or None
        if row is None or row.state != OutboxState.QUEUED:
            return False  # another worker took it
        row.state, row.attempts = OutboxState.SENDING, row.attempts + 1
        payload = channel.prepare(session, row)
    crash_point(f"after-{channel.name}-sending")
    try:
        external_id = channel.deliver(payload)
    except Exception as exc:  # noqa: BLE001 - recorded on the row, shown in the console
        _record_failure(sessions, channel, row_id, exc, now)
        return False
    with db.transaction(sessions) as session:
        row = session.get(channel.model, row_id)  # claimed (SENDING) above, so present
        row.state, row.external_id, row.sent_at, row.error = (
            OutboxState.SENT,
            external_id,
            now,
            None,
        )
        channel.on_sent(session, row, external_id, now)
    return True


def _record_failure(
    sessions: sessionmaker[Session],
    channel: Channel[Any],
    row_id: int,
    exc: Exception,
    now: datetime,
) -> None:
    with db.transaction(sessions) as session:
        row: Any = session.get(channel.model, row_id)  # claimed (SENDING) by _send_one, so present
        row.error = f"{type(exc).__name__}: {exc}"
        retry_at = next_attempt(exc, row.attempts, now)
        if retry_at is not None:
            row.state, row.next_attempt_at = OutboxState.QUEUED, retry_at
            return
        row.state = OutboxState.FAILED
        channel.on_failed(session, row, now)
    log.warning("%s %s failed: %s: %s", channel.name, row_id, type(exc).__name__, exc)
