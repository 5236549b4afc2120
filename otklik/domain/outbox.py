"""The outbox rules shared by everything Otklik sends (replies now; tickets and alerts later).

A row is written ``queued`` before anything is sent, moved to ``sending`` (committed) before
the outside system is called, then to ``sent`` or back to ``queued`` with a backoff, or to
``failed``. A row found in ``sending`` after a restart is ``unknown``: the call may or may
not have gone out, so it is never re-sent by itself. These rules are pure; the engine
(``responder.engine``) applies them.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from otklik.domain.mentions import RateLimited, TransientError

MAX_ATTEMPTS = 5
FIRST_BACKOFF_SECONDS = 30
INTERRUPTED = "the sender stopped while sending; check the other side before retrying"


class OutboxState(enum.StrEnum):
    """Where an outgoing item is."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the process died while sending: a person must check before retrying


class NotRetryable(ValueError):
    """The item is not in a state that may be sent again."""


def is_transient(exc: Exception) -> bool:
    """A rate limit, 5xx, timeout or reset: worth another attempt later."""
    return isinstance(exc, RateLimited | TransientError)


def next_attempt(exc: Exception, attempts: int, now: datetime) -> datetime | None:
    """When to try again after ``attempts`` attempts failed with ``exc``; None: give up."""
    if not is_transient(exc) or attempts >= MAX_ATTEMPTS:
        return None
    if isinstance(exc, RateLimited):
        return now + timedelta(seconds=exc.retry_after)
    return now + timedelta(seconds=FIRST_BACKOFF_SECONDS * 2 ** (attempts - 1))


def check_requeue(state: str, checked_other_side: bool) -> None:
    """Raise NotRetryable unless a person may queue this item again.

    ``failed`` may be retried; ``unknown`` only once someone checked that it did not go out;
    queued, sending or sent never (a double-clicked retry cannot queue a second copy).
    """
    if state == OutboxState.UNKNOWN and not checked_other_side:
        raise NotRetryable("check on the platform that the reply was not posted, then retry")
    if state not in (OutboxState.FAILED, OutboxState.UNKNOWN):
        raise NotRetryable(f"the reply is {state}; only a failed reply can be retried")
