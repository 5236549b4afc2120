"""The reply channel of the outbox engine: answers sent through the platform's replier."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from otklik.cases import replies
from otklik.connectors import Replier
from otklik.domain import ConnectorError, RawMention
from otklik.store.models import Reply
from responder import engine


@dataclass(frozen=True, slots=True)
class OutgoingReply:
    """What sending one reply needs, read while the row is claimed."""

    source_name: str | None
    to: RawMention
    body: str
    idempotency_key: str


def reply_channel(replier_for: Callable[[str], Replier]) -> engine.Channel[OutgoingReply]:
    """Replies, sent through ``replier_for(source name)`` of the post they answer."""

    def prepare(_session: Session, reply: Reply) -> OutgoingReply:
        target = reply.in_reply_to
        source_name = target.source.name if target.source else None
        return OutgoingReply(source_name, replies.as_raw(target), reply.body, reply.idempotency_key)

    def deliver(item: OutgoingReply) -> str:
        if item.source_name is None:
            raise ConnectorError(f"mention {item.to.external_id} has no source to reply through")
        return replier_for(item.source_name).reply(item.to, item.body, item.idempotency_key)

    return engine.Channel(
        name="reply",
        model=Reply,
        prepare=prepare,
        deliver=deliver,
        on_sent=replies.record_sent,
        on_failed=replies.record_failed,
    )


def send_due_replies(
    sessions: sessionmaker[Session], replier_for: Callable[[str], Replier], now: datetime
) -> int:
    """Send every due reply; return how many were sent."""
    return engine.send_due(sessions, reply_channel(replier_for), now)


def recover_interrupted_replies(
    sessions: sessionmaker[Session], now: datetime | None = None
) -> int:
    """Replies left in ``sending`` by a dead worker become ``unknown`` (journaled once each)."""
    return engine.recover_interrupted(sessions, Reply, replies.record_failed, now)
