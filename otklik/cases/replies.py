"""Replies as case work: queue one, queue a failed one again, record how sending ended.

Each function takes the caller's session; the outbox engine (``responder``) decides when to
call :func:`record_sent` / :func:`record_failed` and commits around the platform call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from otklik import audit
from otklik.cases import journal
from otklik.cases.ingest import upsert_author
from otklik.domain import RawMention
from otklik.domain.events import EventKind
from otklik.domain.outbox import NotRetryable, OutboxState, check_requeue
from otklik.store.models import Brand, Conversation, Mention, Reply, Source, Status, User
from otklik.store.outbox import compare_and_set


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
    ip: str = "",
) -> Reply:
    """Queue ``body`` as a reply to ``to``; a repeated key raises DuplicateReply."""
    body = body.strip()
    if not body:
        raise ValueError("the reply is empty")
    if "\x00" in body:  # PostgreSQL refuses NUL in text, and no platform takes one
        raise ValueError("the reply contains a NUL character")
    existing = session.scalar(select(Reply).where(Reply.idempotency_key == idempotency_key))
    if existing is not None:
        raise DuplicateReply(existing.id)
    reply = Reply(
        conversation_id=conversation.id,
        in_reply_to_id=to.id,
        user_id=user.id,
        body=body,
        state=OutboxState.QUEUED,
        idempotency_key=idempotency_key,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(reply)
    except IntegrityError:  # a concurrent request with the same key won the race
        winner = session.scalar(select(Reply).where(Reply.idempotency_key == idempotency_key))
        raise DuplicateReply(winner.id if winner else 0) from None
    journal.append(session, conversation, EventKind.REPLY_QUEUED, now, user=user, reply_id=reply.id)
    if conversation.status == Status.NEW:
        change: dict[str, Any] = {"from": str(conversation.status), "to": str(Status.OPEN)}
        journal.append(session, conversation, EventKind.STATUS_CHANGED, now, user=user, **change)
        conversation.status = Status.OPEN
    target = f"conversation:{conversation.id}"
    audit.record(session, user, "reply", target, {"reply_id": reply.id}, ip=ip, at=now)
    return reply


def retry_reply(
    session: Session,
    reply: Reply,
    user: User,
    now: datetime,
    checked_platform: bool = False,
    ip: str = "",
) -> None:
    """Queue a ``failed`` reply again; an ``unknown`` one only once a person checked.

    A compare-and-set from the state ``reply`` was read in: when another retry or the outbox
    moved the row meanwhile (parallel clicks, a click timed with the send), this one raises
    NotRetryable and writes nothing, so a reply is re-queued once and never after it was sent.
    The event and the audit entry are written only by the retry that won.
    """
    seen = OutboxState(reply.state)
    check_requeue(seen, checked_platform)
    requeued = compare_and_set(
        session,
        Reply,
        reply.id,
        [seen],
        OutboxState.QUEUED,
        next_attempt_at=None,
        error=None,
        attempts=0,
    )
    if not requeued:
        current = session.scalar(select(Reply.state).where(Reply.id == reply.id))
        check_requeue(current or "gone", checked_platform)  # the usual refusal when it applies
        raise NotRetryable("the reply changed meanwhile; reload the page and try again")
    session.refresh(reply)
    conversation = session.get(Conversation, reply.conversation_id)
    assert conversation is not None  # replies belong to a conversation (foreign key)
    journal.append(
        session, conversation, EventKind.REPLY_RETRIED, now, user=user, reply_id=reply.id
    )
    target = f"conversation:{conversation.id}"
    audit.record(session, user, "reply_retry", target, {"reply_id": reply.id}, ip=ip, at=now)


def as_raw(mention: Mention) -> RawMention:
    """The stored post as a connector sees it (what a replier answers)."""
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


def record_sent(session: Session, reply: Reply, external_id: str, now: datetime) -> None:
    """The platform took the reply: journal it and keep our post as a mention of the thread."""
    conversation = session.get(Conversation, reply.conversation_id)
    assert conversation is not None
    if conversation.first_response_at is None:
        conversation.first_response_at = now
    journal.append(
        session,
        conversation,
        EventKind.REPLIED,
        now,
        user=reply.user,
        reply_id=reply.id,
        external_id=external_id,
    )
    _store_own_post(session, reply, external_id, now)


def record_failed(session: Session, reply: Reply, now: datetime) -> None:
    """The reply will not be sent without a person: journal the failure.

    ``reply_failed`` holds ``{reply_id, error}``, plus ``unknown: true`` when the reply is
    ``unknown`` (it may have been posted: the platform's answer was lost, or the sender
    stopped while sending); the outbox engine calls this once per such transition.
    """
    conversation = session.get(Conversation, reply.conversation_id)
    assert conversation is not None
    data: dict[str, Any] = {"reply_id": reply.id, "error": reply.error}
    if reply.state == OutboxState.UNKNOWN:
        data["unknown"] = True
    journal.append(session, conversation, EventKind.REPLY_FAILED, now, **data)


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
