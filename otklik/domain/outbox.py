"""The outbox rules shared by everything Otklik sends (replies now; tickets and alerts later).

A row is written ``queued`` before anything is sent, moved to ``sending`` (committed) before
the outside system is called, then to ``sent``, back to ``queued`` with a backoff, ``failed``,
or ``unknown``. ``unknown`` means the call may or may not have gone out (the process died while
sending, or the platform's answer was lost: :class:`~otklik.domain.OutcomeUnknown`), so it is
never re-sent by itself: a person checks the other side first.

Every change of state is a compare-and-set from the state the writer saw (:data:`TRANSITIONS`
says which are allowed): the writer that finds the row changed meanwhile loses and writes
nothing, so parallel clicks re-queue once and two senders never both claim a row. These rules
are pure; the engine (``responder.engine``) and ``otklik.cases.replies`` apply them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime, timedelta

from otklik.domain.backoff import backoff_seconds
from otklik.domain.mentions import OutcomeUnknown, RateLimited, TransientError

MAX_ATTEMPTS = 5
FIRST_BACKOFF_SECONDS = 30
INTERRUPTED = "the sender stopped while sending; check the other side before retrying"


class OutboxState(enum.StrEnum):
    """Where an outgoing item is."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"  # it may have gone out: a person must check before retrying


TRANSITIONS: dict[OutboxState, frozenset[OutboxState]] = {
    # a sender claims a due row
    OutboxState.QUEUED: frozenset({OutboxState.SENDING}),
    # the call ended: taken, try later, given up, or nobody knows (also: a restart found it)
    OutboxState.SENDING: frozenset(
        {OutboxState.SENT, OutboxState.QUEUED, OutboxState.FAILED, OutboxState.UNKNOWN}
    ),
    # a person's retry
    OutboxState.FAILED: frozenset({OutboxState.QUEUED}),
    # a person's retry after checking; or the sender's late proof that it was taken (a restart
    # had marked the row it was still sending)
    OutboxState.UNKNOWN: frozenset({OutboxState.QUEUED, OutboxState.SENT}),
    OutboxState.SENT: frozenset(),
}
NEEDS_A_PERSON = frozenset({OutboxState.FAILED, OutboxState.UNKNOWN})


class NotRetryable(ValueError):
    """The item is not in a state that may be sent again."""


def check_transition(seen: Iterable[str], to: str) -> None:
    """Raise ValueError unless every state in ``seen`` may move to ``to``."""
    for state in seen:
        if OutboxState(to) not in TRANSITIONS[OutboxState(state)]:
            raise ValueError(f"an outbox row cannot move from {state} to {to}")


def is_transient(exc: Exception) -> bool:
    """A rate limit or a failure before the request left: worth another attempt later."""
    return isinstance(exc, RateLimited | TransientError)


def next_attempt(exc: Exception, attempts: int, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` attempts failed with ``exc``; None: give up."""
    if not is_transient(exc) or attempts >= MAX_ATTEMPTS:
        return None
    if isinstance(exc, RateLimited):
        return now + timedelta(seconds=exc.retry_after)
    return now + timedelta(seconds=backoff_seconds(attempts, base=FIRST_BACKOFF_SECONDS))


def after_failure(
    exc: Exception, attempts: int, now: datetime
) -> tuple[OutboxState, datetime | None]:
    """Where a row goes when attempt number ``attempts`` raised ``exc``, and when to retry.

    An ambiguous outcome (the write may have landed) is ``unknown``, whatever the attempt;
    a transient error is ``queued`` with a backoff until ``MAX_ATTEMPTS``; else ``failed``.
    """
    if isinstance(exc, OutcomeUnknown):
        return OutboxState.UNKNOWN, None
    retry_at = next_attempt(exc, attempts, now)
    if retry_at is not None:
        return OutboxState.QUEUED, retry_at
    return OutboxState.FAILED, None


def check_requeue(state: str, checked_other_side: bool) -> None:
    """Raise NotRetryable unless a person may queue this item again.

    ``failed`` may be retried; ``unknown`` only once someone checked that it did not go out;
    queued, sending or sent never (a double-clicked retry cannot queue a second copy).
    """
    if state == OutboxState.UNKNOWN and not checked_other_side:
        raise NotRetryable("check on the platform that the reply was not posted, then retry")
    if state not in NEEDS_A_PERSON:
        raise NotRetryable(f"the reply is {state}; only a failed reply can be retried")
