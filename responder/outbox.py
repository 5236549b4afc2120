"""The reply outbox: queued -> sending -> sent / failed (or unknown after a crash).

A reply row is committed as ``sending`` before the platform is called, so a
worker that dies mid-call leaves ``sending`` behind; such rows become
``unknown`` and are never re-sent automatically: posting twice on a customer's
thread is worse than asking a person to check.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from otklik import db
from otklik.casework import log_event
from otklik.domain import ConnectorError, RateLimited, RawMention, TransientError
from otklik.faults import crash_point
from otklik.ingest import upsert_author
from otklik.models import (
    Brand,
    Conversation,
    EventKind,
    Mention,
    Reply,
    ReplyState,
    Source,
    Status,
    User,
    utcnow,
)
from otklik.runtime import Runtime

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5


class DuplicateReply(Exception):
    """The same reply (same idempotency key) was already queued."""

    def __init__(self, reply_id: int) -> None:
        super().__init__(f"reply already queued as #{reply_id}")
        self.reply_id = reply_id


def queue_reply(
    session: Session,
    conversation: Conversation,
    to: Mention,
    body: str,
    user: User,
    idempotency_key: str,
    now: datetime,
) -> Reply:
    """Queue ``body`` as a reply to ``to``; a repeated key raises DuplicateReply."""
    body = body.strip()
    if not body:
        raise ValueError("the reply is empty")
    existing = session.scalar(select(Reply).where(Reply.idempotency_key == idempotency_key))
    if existing is not None:
        raise DuplicateReply(existing.id)
    reply = Reply(
        conversation_id=conversation.id,
        in_reply_to_id=to.id,
        user_id=user.id,
        body=body,
        state=ReplyState.QUEUED,
        idempotency_key=idempotency_key,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(reply)
    except IntegrityError:  # a concurrent request with the same key won the race
        winner = session.scalar(select(Reply).where(Reply.idempotency_key == idempotency_key))
        raise DuplicateReply(winner.id if winner else 0) from None
    log_event(session, conversation, EventKind.REPLY_QUEUED, user, now, reply_id=reply.id)
    if conversation.status == Status.NEW:
        _change_status(session, conversation, Status.OPEN, now, user)
    return reply


def _change_status(
    session: Session, conversation: Conversation, status: Status, now: datetime, user: User | None
) -> None:
    changed = {"from": conversation.status, "to": str(status)}
    log_event(session, conversation, EventKind.STATUS_CHANGED, user, now, **changed)
    conversation.status = status


class NotRetryable(ValueError):
    """The reply is not in a state that may be sent again."""


def retry_reply(reply: Reply, checked_platform: bool = False) -> None:
    """Queue a ``failed`` reply again; an ``unknown`` one only once a person checked the platform.

    A reply already queued, sending or sent is refused, so a double-clicked retry button
    cannot queue a second copy.
    """
    if reply.state == ReplyState.UNKNOWN and not checked_platform:
        raise NotRetryable("check on the platform that the reply was not posted, then retry")
    if reply.state not in (ReplyState.FAILED, ReplyState.UNKNOWN):
        raise NotRetryable(f"the reply is {reply.state}; only a failed reply can be retried")
    reply.state, reply.next_attempt_at, reply.error, reply.attempts = (
        ReplyState.QUEUED,
        None,
        None,
        0,
    )


def recover_interrupted(runtime: Runtime) -> int:
    """Mark replies left in ``sending`` by a dead worker as ``unknown``; return how many."""
    with db.transaction(runtime.sessions) as session:
        stuck = list(session.scalars(select(Reply).where(Reply.state == ReplyState.SENDING)))
        for reply in stuck:
            reply.state = ReplyState.UNKNOWN
            reply.error = "the sender stopped while posting; check the platform before retrying"
    return len(stuck)


def send_due(runtime: Runtime, now: datetime | None = None) -> int:
    """Send every queued reply that is due; return how many were sent."""
    now = now or utcnow()
    with db.transaction(runtime.sessions) as session:
        due = [
            r.id
            for r in session.scalars(
                select(Reply).where(Reply.state == ReplyState.QUEUED).order_by(Reply.id)
            )
            if r.next_attempt_at is None or r.next_attempt_at <= now
        ]
    return sum(1 for reply_id in due if _send_one(runtime, reply_id, now))


def _send_one(runtime: Runtime, reply_id: int, now: datetime) -> bool:
    with db.transaction(runtime.sessions) as session:
        reply = session.get(Reply, reply_id)
        if reply is None or reply.state != ReplyState.QUEUED:
            return False  # another worker took it
        reply.state, reply.attempts = ReplyState.SENDING, reply.attempts + 1
        target = reply.in_reply_to
        source_name = target.source.name if target.source else None
        raw = _as_raw(target)
        body = reply.body
    crash_point("after-reply-sending")
    try:
        if source_name is None:
            raise ConnectorError(f"mention {raw.external_id} has no source to reply through")
        external_id = runtime.connector(source_name).reply(raw, body)
    except Exception as exc:  # noqa: BLE001 - recorded on the reply, shown in the console
        _record_send_failure(runtime, reply_id, exc, now)
        return False
    _record_sent(runtime, reply_id, external_id, now)
    return True


def _as_raw(mention: Mention) -> RawMention:
    return RawMention(
        platform=mention.platform,
        external_id=mention.external_id,
        url=mention.url,
        author_external_id=mention.author.external_id,
        author_handle=mention.author.handle,
        text=mention.text,
        created_at=mention.created_at,
        parent_external_id=mention.parent_external_id,
        raw=mention.raw,
    )


def _record_sent(runtime: Runtime, reply_id: int, external_id: str, now: datetime) -> None:
    with db.transaction(runtime.sessions) as session:
        reply = session.get(Reply, reply_id)
        assert reply is not None
        reply.state, reply.external_id, reply.sent_at, reply.error = (
            ReplyState.SENT,
            external_id,
            now,
            None,
        )
        conversation = session.get(Conversation, reply.conversation_id)
        assert conversation is not None
        if conversation.first_response_at is None:
            conversation.first_response_at = now
        user = reply.user
        log_event(
            session,
            conversation,
            EventKind.REPLIED,
            user,
            now,
            reply_id=reply.id,
            external_id=external_id,
        )
        _store_own_post(session, reply, external_id, now)


def _store_own_post(session: Session, reply: Reply, external_id: str, now: datetime) -> None:
    """Keep our sent reply as a mention, so collecting it later is a no-op, not a new case."""
    target = reply.in_reply_to
    source: Source | None = target.source
    handle = _brand_handle(session, source) or "brand"
    own = RawMention(
        platform=target.platform,
        external_id=external_id,
        url="",
        author_external_id=f"self:{handle}",
        author_handle=handle,
        text=reply.body,
        created_at=now,
        parent_external_id=target.external_id,
    )
    session.add(
        Mention(
            platform=own.platform,
            external_id=own.external_id,
            source=source,
            url="",
            text=own.text,
            created_at=now,
            fetched_at=now,
            author=upsert_author(session, own),
            parent_external_id=target.external_id,
            parent=target,
            conversation_id=reply.conversation_id,
            is_ours=True,
            raw={"reply_id": reply.id},
        )
    )


def _brand_handle(session: Session, source: Source | None) -> str | None:
    if source is None or source.brand_id is None:
        return None
    brand = session.get(Brand, source.brand_id)
    return brand.handles[0] if brand is not None and brand.handles else None


def _record_send_failure(runtime: Runtime, reply_id: int, exc: Exception, now: datetime) -> None:
    with db.transaction(runtime.sessions) as session:
        reply = session.get(Reply, reply_id)
        assert reply is not None
        reply.error = f"{type(exc).__name__}: {exc}"
        retryable = isinstance(exc, RateLimited | TransientError)
        if retryable and reply.attempts < MAX_ATTEMPTS:
            delay = (
                exc.retry_after if isinstance(exc, RateLimited) else 30 * 2 ** (reply.attempts - 1)
            )
            reply.state, reply.next_attempt_at = ReplyState.QUEUED, now + timedelta(seconds=delay)
            return
        reply.state = ReplyState.FAILED
        conversation = session.get(Conversation, reply.conversation_id)
        log_event(
            session,
            conversation,
            EventKind.REPLY_FAILED,
            None,
            now,
            reply_id=reply.id,
            error=reply.error,
        )
    log.warning("reply %s failed: %s: %s", reply_id, type(exc).__name__, exc)
