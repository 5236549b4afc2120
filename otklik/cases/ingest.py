"""Storing a page of collected mentions: dedup, threading, case events.

``store_page`` runs inside the caller's transaction, so a page is stored all
or nothing; uniqueness on (platform, external_id) makes a re-fetched page a
no-op, and an edited post updates the stored text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from otklik.cases import journal
from otklik.cases.merge import merge_conversations
from otklik.domain import RawMention
from otklik.domain.events import EventKind
from otklik.store.models import Author, Brand, Conversation, Mention, Source, Status


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What a page did to the store."""

    new: int
    updated: int
    unchanged: int


def store_page(
    session: Session,
    source: Source | None,
    brand: Brand | None,
    mentions: Sequence[RawMention],
    now: datetime,
) -> StoreResult:
    """Store ``mentions`` (oldest first) within the caller's transaction."""
    unique = _dedupe_in_page(mentions)
    existing = _existing(session, unique)
    new = updated = 0
    for raw in sorted(unique, key=lambda m: m.created_at):
        stored = existing.get((raw.platform, raw.external_id))
        if stored is None:
            _insert(session, source, brand, raw, now)
            new += 1
        elif stored.text != raw.text:
            stored.text, stored.edited_at, stored.raw = raw.text, now, dict(raw.raw)
            updated += 1
    session.flush()
    return StoreResult(new=new, updated=updated, unchanged=len(unique) - new - updated)


def _dedupe_in_page(mentions: Iterable[RawMention]) -> list[RawMention]:
    by_key: dict[tuple[str, str], RawMention] = {}
    for raw in mentions:
        by_key[(raw.platform, raw.external_id)] = raw  # the last copy of a post in a page wins
    return list(by_key.values())


def _existing(session: Session, mentions: Sequence[RawMention]) -> dict[tuple[str, str], Mention]:
    found: dict[tuple[str, str], Mention] = {}
    by_platform: dict[str, list[str]] = {}
    for raw in mentions:
        by_platform.setdefault(raw.platform, []).append(raw.external_id)
    for platform, ids in by_platform.items():
        for chunk in _chunks(ids, 500):
            rows = session.scalars(
                select(Mention).where(Mention.platform == platform, Mention.external_id.in_(chunk))
            )
            found.update({(m.platform, m.external_id): m for m in rows})
    return found


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def upsert_author(session: Session, raw: RawMention) -> Author:
    """The stored author of ``raw``, created or refreshed (handle, reach)."""
    author = session.scalar(
        select(Author).where(
            Author.platform == raw.platform, Author.external_id == raw.author_external_id
        )
    )
    if author is None:
        author = Author(platform=raw.platform, external_id=raw.author_external_id)
        session.add(author)
    author.handle = raw.author_handle
    if raw.author_followers is not None:
        author.followers = raw.author_followers
    return author


def is_brand_post(brand: Brand | None, raw: RawMention) -> bool:
    """True when the brand's own account wrote ``raw`` (it counts as a response)."""
    if brand is None:
        return False
    handles = {h.lower().lstrip("@") for h in brand.handles}
    return raw.author_handle.lower().lstrip("@") in handles


def _insert(
    session: Session, source: Source | None, brand: Brand | None, raw: RawMention, now: datetime
) -> Mention:
    parent = _find_parent(session, raw)
    mention = Mention(
        platform=raw.platform,
        external_id=raw.external_id,
        source=source,
        url=raw.url,
        text=raw.text,
        created_at=raw.created_at,
        fetched_at=now,
        author=upsert_author(session, raw),
        parent_external_id=raw.parent_external_id,
        parent=parent,
        is_ours=is_brand_post(brand, raw),
        raw=dict(raw.raw),
    )
    session.add(mention)
    session.flush()
    conversation = merge_conversations(
        session,
        [
            parent.conversation if parent is not None else None,
            *_orphans_conversations(session, raw),
        ],
        now,
    )
    if mention.is_ours:
        if conversation is not None:
            _attach_brand_post(session, conversation, mention, now)
        return mention
    _attach_customer_post(session, conversation, brand, mention, now)
    return mention


def _find_parent(session: Session, raw: RawMention) -> Mention | None:
    if not raw.parent_external_id:
        return None
    return session.scalar(
        select(Mention).where(
            Mention.platform == raw.platform, Mention.external_id == raw.parent_external_id
        )
    )


def _orphans_conversations(session: Session, raw: RawMention) -> list[Conversation]:
    """Replies stored before ``raw`` (their parent): ``raw`` joins their conversations."""
    children = session.scalars(
        select(Mention).where(
            Mention.platform == raw.platform,
            Mention.parent_external_id == raw.external_id,
            Mention.conversation_id.is_not(None),
        )
    )
    return [child.conversation for child in children if child.conversation is not None]


def _attach_customer_post(
    session: Session,
    conversation: Conversation | None,
    brand: Brand | None,
    mention: Mention,
    now: datetime,
) -> None:
    if conversation is None:
        conversation = Conversation(
            brand_id=brand.id if brand else None,
            platform=mention.platform,
            status=Status.NEW,
            opened_at=mention.created_at,
            last_customer_at=mention.created_at,
        )
        session.add(conversation)
        session.flush()
        mention.conversation = conversation
        _post_event(session, conversation, EventKind.OPENED, mention.created_at, mention, now)
        return
    mention.conversation = conversation
    conversation.opened_at = min(conversation.opened_at, mention.created_at)
    conversation.last_customer_at = max(conversation.last_customer_at, mention.created_at)
    _post_event(session, conversation, EventKind.CUSTOMER_POSTED, mention.created_at, mention, now)
    if conversation.status == Status.RESOLVED:
        conversation.status, conversation.resolved_at = Status.OPEN, None
        _post_event(session, conversation, EventKind.REOPENED, now, mention, now)
    elif conversation.status == Status.PENDING:  # we were waiting for the customer: they answered
        changed: dict[str, Any] = {"from": str(Status.PENDING), "to": str(Status.OPEN)}
        journal.append(session, conversation, EventKind.STATUS_CHANGED, now, **changed)
        conversation.status = Status.OPEN


def _attach_brand_post(
    session: Session, conversation: Conversation, mention: Mention, now: datetime
) -> None:
    """A reply the brand posted outside Otklik (e.g. in the platform's own app)."""
    mention.conversation = conversation
    if conversation.first_response_at is None:
        conversation.first_response_at = mention.created_at
    _post_event(
        session, conversation, EventKind.REPLIED, mention.created_at, mention, now, "platform"
    )


def _post_event(
    session: Session,
    conversation: Conversation,
    kind: EventKind,
    at: datetime,
    mention: Mention,
    now: datetime,
    actor: str = "system",
) -> None:
    data: dict[str, Any] = {"mention_id": mention.id, "external_id": mention.external_id}
    journal.append(session, conversation, kind, at, actor=actor, recorded_at=now, **data)
