"""Every state change of an outbox row is a compare-and-set: races change a row at most once.

A person's Retry that read the reply before the outbox moved it, and two senders claiming the
same queued row, must lose at the database (``UPDATE ... WHERE state = :seen``), not post twice.
The platform is a recording double at the replier seam (``responder.replies``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select

from config import load_settings
from otklik.cases import replies
from otklik.domain import RawMention
from otklik.domain.outbox import NotRetryable
from otklik.store import db
from otklik.store.models import (
    AuditEntry,
    CaseEvent,
    Conversation,
    Mention,
    Reply,
    ReplyState,
    Role,
    User,
    utcnow,
)
from otklik.users import create_user
from responder.replies import send_due_replies
from tests.conftest import PASSWORD, KeywordScorer, hermetic_environ
from tests.test_migrations import needs_postgres, pg_schema_url  # noqa: F401 - fixture
from tests.web_support import fast_password_hashing  # noqa: F401 - autouse fixture
from workers.jobs import run_source
from workers.runtime import Runtime


class RecordingReplier:
    """The platform at the replier seam: records every call, may block, may raise.

    ``outcomes`` are consumed one per call: an exception is raised, anything else returns a
    new post id. ``gate`` (when set) holds each call until the test opens it; ``entered`` is
    set once a call is in progress.
    """

    platform = "demo"
    reply_limit = 280

    def __init__(
        self,
        outcomes: Sequence[object] = (),
        delay: float = 0.0,
        gate: threading.Event | None = None,
    ) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.outcomes = list(outcomes)
        self.delay = delay
        self.gate = gate
        self.entered = threading.Event()
        self._lock = threading.Lock()

    @classmethod
    def reply_length(cls, text: str) -> int:
        return len(text)

    def reply(self, to: RawMention, text: str, idempotency_key: str) -> str:
        with self._lock:
            self.calls.append((to.external_id, text, idempotency_key))
            number = len(self.calls)
            outcome = self.outcomes.pop(0) if self.outcomes else None
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(20), "the test never opened the gate"
        time.sleep(self.delay)
        if isinstance(outcome, Exception):
            raise outcome
        return f"posted-{number}"


def send(runtime: Runtime, replier: RecordingReplier, now: datetime | None = None) -> int:
    """One outbox run against ``replier``; returns how many replies were sent."""
    return send_due_replies(runtime.sessions, lambda _source: replier, now or utcnow())


def queue_one(runtime: Runtime, user_id: int, key: str = "race-1") -> tuple[int, int]:
    """Collect the demo page and queue one reply; returns (reply id, conversation id)."""
    run_source(runtime, "demo")
    with db.transaction(runtime.sessions) as session:
        conversation = session.scalar(select(Conversation).order_by(Conversation.id))
        user = session.get(User, user_id)
        reply = replies.queue_reply(
            session, conversation, conversation.mentions[-1], "We are on it", user, key, utcnow()
        )
        return reply.id, conversation.id


def make_failed(runtime: Runtime, user_id: int) -> tuple[int, int]:
    """A reply the platform refused for good (state ``failed``)."""
    from otklik.domain import ConnectorError

    reply_id, conversation_id = queue_one(runtime, user_id)
    assert send(runtime, RecordingReplier([ConnectorError("403 forbidden")])) == 0
    assert state_of(runtime, reply_id) == ReplyState.FAILED
    return reply_id, conversation_id


def state_of(runtime: Runtime, reply_id: int) -> str:
    with runtime.sessions() as session:
        return session.get(Reply, reply_id).state


def events(runtime: Runtime, kind: str) -> list[CaseEvent]:
    with runtime.sessions() as session:
        return list(session.scalars(select(CaseEvent).where(CaseEvent.kind == kind)))


def audit_count(runtime: Runtime, action: str) -> int:
    with runtime.sessions() as session:
        query = select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
        return session.scalar(query)


def our_posts(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(Mention).where(Mention.is_ours))


def retry(runtime: Runtime, user_id: int, reply_id: int, stale: Reply | None = None, **kw) -> None:
    """A person's Retry; ``stale`` is the reply as that person's request read it earlier."""
    with db.transaction(runtime.sessions) as session:
        reply = session.merge(stale, load=False) if stale is not None else None
        reply = reply or session.get(Reply, reply_id)
        replies.retry_reply(session, reply, session.get(User, user_id), utcnow(), **kw)


def read_early(runtime: Runtime, reply_id: int) -> Reply:
    """The reply as a request loaded it before the outbox moved it (a detached snapshot)."""
    with runtime.sessions() as session:
        reply = session.get(Reply, reply_id)
        session.expunge(reply)
        return reply


# --- a Retry racing the outbox -------------------------------------------------------------


def test_a_retry_that_read_failed_cannot_requeue_a_reply_being_sent(runtime, users) -> None:
    reply_id, _conversation = make_failed(runtime, users["agent"])
    early = read_early(runtime, reply_id)  # a second click read "failed" ...
    retry(runtime, users["lead"], reply_id)  # ... while the first click re-queued it
    gate = threading.Event()
    platform = RecordingReplier(gate=gate)
    sender = threading.Thread(target=send, args=(runtime, platform))
    sender.start()
    try:
        assert platform.entered.wait(10)
        assert state_of(runtime, reply_id) == ReplyState.SENDING
        with pytest.raises(NotRetryable):  # the late click writes now: it must lose
            retry(runtime, users["agent"], reply_id, stale=early)
        assert state_of(runtime, reply_id) == ReplyState.SENDING
    finally:
        gate.set()
        sender.join(10)
    assert state_of(runtime, reply_id) == ReplyState.SENT
    assert send(runtime, platform, utcnow() + timedelta(hours=1)) == 0
    assert len(platform.calls) == 1 and our_posts(runtime) == 1
    assert len(events(runtime, "reply_retried")) == 1 == audit_count(runtime, "reply_retry")
    assert len(events(runtime, "replied")) == 1


def test_a_retry_that_read_failed_cannot_requeue_a_reply_just_sent(runtime, users) -> None:
    reply_id, _conversation = make_failed(runtime, users["agent"])
    early = read_early(runtime, reply_id)
    retry(runtime, users["lead"], reply_id)
    platform = RecordingReplier()
    assert send(runtime, platform) == 1
    with pytest.raises(NotRetryable):
        retry(runtime, users["agent"], reply_id, stale=early)
    assert state_of(runtime, reply_id) == ReplyState.SENT
    assert send(runtime, platform, utcnow() + timedelta(hours=1)) == 0
    assert len(platform.calls) == 1 and our_posts(runtime) == 1
    assert len(events(runtime, "reply_retried")) == 1 == audit_count(runtime, "reply_retry")


def test_a_sent_or_queued_reply_cannot_be_retried(runtime, users) -> None:
    reply_id, _conversation = queue_one(runtime, users["agent"])
    with pytest.raises(NotRetryable):
        retry(runtime, users["agent"], reply_id)
    assert send(runtime, RecordingReplier()) == 1
    for checked in (False, True):
        with pytest.raises(NotRetryable):
            retry(runtime, users["agent"], reply_id, checked_platform=checked)
    assert state_of(runtime, reply_id) == ReplyState.SENT
    assert events(runtime, "reply_retried") == []


# --- two senders, one queued row ---------------------------------------------------------------


@pytest.fixture
def claim_barrier(request) -> Callable[[Runtime], None]:
    """Make each sender thread wait at its first UPDATE of ``replies`` until both are there.

    Both senders have then read the row as ``queued`` before either writes: the claim itself
    must decide, at the database. (A sender that never writes breaks the barrier after 5 s.)
    """
    installed: list[tuple[Any, Any]] = []

    def install(runtime: Runtime) -> None:
        barrier, waited = threading.Barrier(2, timeout=5), threading.local()

        def before(_conn, _cursor, statement: str, *_args: Any) -> None:
            if statement.lstrip().upper().startswith("UPDATE REPLIES") and not getattr(
                waited, "done", False
            ):
                waited.done = True
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait()

        event.listen(runtime.engine, "before_cursor_execute", before)
        installed.append((runtime.engine, before))

    yield install
    for engine, listener in installed:
        event.remove(engine, "before_cursor_execute", listener)


def _two_senders_send_once(runtime: Runtime, user_id: int, install: Callable) -> None:
    reply_id, _conversation = queue_one(runtime, user_id)
    platform = RecordingReplier(delay=0.3)
    install(runtime)
    sent: list[int] = []
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            sent.append(send(runtime, platform))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(sent) == [0, 1]
    assert len(platform.calls) == 1
    assert state_of(runtime, reply_id) == ReplyState.SENT
    with runtime.sessions() as session:
        assert session.get(Reply, reply_id).attempts == 1
    assert len(events(runtime, "replied")) == 1 and our_posts(runtime) == 1


def test_two_senders_on_sqlite_post_a_queued_reply_once(runtime, users, claim_barrier) -> None:
    _two_senders_send_once(runtime, users["agent"], claim_barrier)


@pytest.fixture
def pg_runtime(config_path, pg_schema_url) -> Iterator[Runtime]:  # noqa: F811
    settings = load_settings(
        config_path, environ=hermetic_environ(OTKLIK_DATABASE_URL=pg_schema_url)
    )
    runtime = Runtime.from_settings(settings, scorer_factory=lambda _s: KeywordScorer())
    runtime.prepare_database()
    yield runtime
    runtime.engine.dispose()


@pytest.mark.postgres
@needs_postgres
def test_two_senders_on_postgres_post_a_queued_reply_once(pg_runtime, claim_barrier) -> None:
    with db.transaction(pg_runtime.sessions) as session:
        user_id = create_user(session, "agent", PASSWORD, role=Role.AGENT).id
    _two_senders_send_once(pg_runtime, user_id, claim_barrier)


@pytest.mark.postgres
@needs_postgres
def test_a_stale_retry_loses_on_postgres(pg_runtime) -> None:
    with db.transaction(pg_runtime.sessions) as session:
        user_id = create_user(session, "agent", PASSWORD, role=Role.AGENT).id
    reply_id, _conversation = make_failed(pg_runtime, user_id)
    early = read_early(pg_runtime, reply_id)
    retry(pg_runtime, user_id, reply_id)
    platform = RecordingReplier()
    assert send(pg_runtime, platform) == 1
    with pytest.raises(NotRetryable):
        retry(pg_runtime, user_id, reply_id, stale=early)
    assert state_of(pg_runtime, reply_id) == ReplyState.SENT
    assert len(platform.calls) == 1
    assert len(events(pg_runtime, "reply_retried")) == 1
