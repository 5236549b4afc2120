"""How a send ends: sent, retried with backoff, failed, or unknown (never re-sent blindly)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from otklik.domain import ConnectorError, OutcomeUnknown, RateLimited, TransientError
from otklik.domain.outbox import FIRST_BACKOFF_SECONDS, MAX_ATTEMPTS, NotRetryable, OutboxState
from otklik.store import db
from otklik.store.models import Reply, ReplyState, utcnow
from responder.replies import recover_interrupted_replies
from tests.test_outbox_races import (
    RecordingReplier,
    events,
    our_posts,
    queue_one,
    retry,
    send,
    state_of,
)
from tests.web_support import fast_password_hashing  # noqa: F401 - autouse fixture


def reply_row(runtime, reply_id: int) -> Reply:
    with runtime.sessions() as session:
        return session.get(Reply, reply_id)


def test_an_ambiguous_outcome_becomes_unknown_and_is_never_sent_again(runtime, users) -> None:
    reply_id, _conversation = queue_one(runtime, users["agent"])
    platform = RecordingReplier([OutcomeUnknown("read timeout after the POST was sent")])
    now = utcnow()
    assert send(runtime, platform, now) == 0

    row = reply_row(runtime, reply_id)
    assert row.state == ReplyState.UNKNOWN and row.attempts == 1
    assert row.error == "OutcomeUnknown: read timeout after the POST was sent"
    [failed] = events(runtime, "reply_failed")
    assert failed.data == {"reply_id": reply_id, "error": row.error, "unknown": True}
    for hours in (0, 1, 24):  # later outbox runs leave it alone
        assert send(runtime, platform, now + timedelta(hours=hours)) == 0
    assert len(platform.calls) == 1 and our_posts(runtime) == 0

    with pytest.raises(NotRetryable):  # a person must check the platform first
        retry(runtime, users["agent"], reply_id)
    assert state_of(runtime, reply_id) == ReplyState.UNKNOWN
    retry(runtime, users["agent"], reply_id, checked_platform=True)
    assert state_of(runtime, reply_id) == ReplyState.QUEUED
    assert send(runtime, platform, now + timedelta(hours=25)) == 1
    assert len(platform.calls) == 2 and state_of(runtime, reply_id) == ReplyState.SENT
    assert len(events(runtime, "reply_failed")) == 1


def test_a_transient_error_goes_back_to_the_queue_with_a_backoff(runtime, users) -> None:
    reply_id, _conversation = queue_one(runtime, users["agent"])
    platform = RecordingReplier([TransientError("connection refused"), RateLimited(120)])
    now = utcnow()
    assert send(runtime, platform, now) == 0
    row = reply_row(runtime, reply_id)
    assert row.state == ReplyState.QUEUED and row.attempts == 1
    assert row.next_attempt_at == now + timedelta(seconds=FIRST_BACKOFF_SECONDS)
    assert row.error == "TransientError: connection refused"
    assert send(runtime, platform, now + timedelta(seconds=FIRST_BACKOFF_SECONDS - 1)) == 0
    assert len(platform.calls) == 1  # not before the backoff is over

    later = now + timedelta(seconds=FIRST_BACKOFF_SECONDS)
    assert send(runtime, platform, later) == 0  # the platform asks to wait 120 s
    row = reply_row(runtime, reply_id)
    assert row.state == ReplyState.QUEUED and row.attempts == 2
    assert row.next_attempt_at == later + timedelta(seconds=120)
    assert send(runtime, platform, later + timedelta(seconds=120)) == 1
    assert state_of(runtime, reply_id) == ReplyState.SENT and len(platform.calls) == 3
    assert events(runtime, "reply_failed") == [] and len(events(runtime, "replied")) == 1


def test_transient_errors_past_max_attempts_fail_once(runtime, users) -> None:
    reply_id, _conversation = queue_one(runtime, users["agent"])
    platform = RecordingReplier([TransientError("503 before the body was read")] * 10)
    now = utcnow()
    for attempt in range(MAX_ATTEMPTS + 2):
        send(runtime, platform, now + timedelta(days=attempt))
    row = reply_row(runtime, reply_id)
    assert row.state == ReplyState.FAILED and row.attempts == MAX_ATTEMPTS
    assert len(platform.calls) == MAX_ATTEMPTS
    [failed] = events(runtime, "reply_failed")
    assert failed.data == {"reply_id": reply_id, "error": row.error}


def test_a_permanent_error_fails_at_once(runtime, users) -> None:
    reply_id, _conversation = queue_one(runtime, users["agent"])
    assert send(runtime, RecordingReplier([ConnectorError("403 forbidden")])) == 0
    row = reply_row(runtime, reply_id)
    assert row.state == ReplyState.FAILED and row.error == "ConnectorError: 403 forbidden"
    assert len(events(runtime, "reply_failed")) == 1


def test_a_row_left_sending_becomes_unknown_once(runtime, users) -> None:
    reply_id, _conversation = queue_one(runtime, users["agent"])
    with db.transaction(runtime.sessions) as session:
        session.get(Reply, reply_id).state = ReplyState.SENDING  # a worker died mid-call
    assert recover_interrupted_replies(runtime.sessions) == 1
    assert recover_interrupted_replies(runtime.sessions) == 0
    assert state_of(runtime, reply_id) == ReplyState.UNKNOWN
    [failed] = events(runtime, "reply_failed")
    assert failed.data["unknown"] is True


def test_a_send_that_ends_after_a_restart_marked_it_unknown_is_recorded_sent(
    runtime, users
) -> None:
    """The sender holds the proof the platform took it: unknown -> sent, journaled once."""
    reply_id, _conversation = queue_one(runtime, users["agent"])
    gate = threading.Event()
    platform = RecordingReplier(gate=gate)
    sender = threading.Thread(target=send, args=(runtime, platform))
    sender.start()
    try:
        assert platform.entered.wait(10)
        assert recover_interrupted_replies(runtime.sessions) == 1  # another process started
    finally:
        gate.set()
        sender.join(10)
    assert state_of(runtime, reply_id) == ReplyState.SENT
    assert len(events(runtime, "replied")) == 1 and our_posts(runtime) == 1


def test_the_pure_rules() -> None:
    from otklik.domain.outbox import after_failure, check_transition

    now = utcnow()
    assert after_failure(OutcomeUnknown("x"), 1, now) == (OutboxState.UNKNOWN, None)
    assert after_failure(OutcomeUnknown("x"), MAX_ATTEMPTS, now) == (OutboxState.UNKNOWN, None)
    assert after_failure(TransientError("x"), 2, now) == (
        OutboxState.QUEUED,
        now + timedelta(seconds=2 * FIRST_BACKOFF_SECONDS),
    )
    assert after_failure(TransientError("x"), MAX_ATTEMPTS, now) == (OutboxState.FAILED, None)
    assert after_failure(ValueError("x"), 1, now) == (OutboxState.FAILED, None)
    check_transition([OutboxState.QUEUED], OutboxState.SENDING)
    check_transition([OutboxState.FAILED, OutboxState.UNKNOWN], OutboxState.QUEUED)
    for seen, to in [
        (OutboxState.SENT, OutboxState.QUEUED),
        (OutboxState.SENDING, OutboxState.SENDING),
        (OutboxState.QUEUED, OutboxState.SENT),
        (OutboxState.FAILED, OutboxState.SENDING),
    ]:
        with pytest.raises(ValueError):
            check_transition([seen], to)
