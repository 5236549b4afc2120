"""Storing a page of collected mentions: dedup, threading, case events.

``store_page`` runs inside the caller's transaction, so a page is stored all
or nothing; uniqueness on (platform, external_id) makes a re-fetched page a
no-op, and an edited post updates the stored text.

Deleted posts (``RawMention.deleted``): one never creates a mention; a stored one gets
``deleted_at`` and keeps its text (what the customer wrote stays readable in the case); a
stored one that comes back not deleted (a moderator restored it) loses ``deleted_at``.

Edits that get a new id (``RawMention.edit_of``, the post's earlier ids, as on X): the
stored mention of an earlier id becomes the edit. It takes the new id as ``external_id``
(the id the platform now shows, and the one a reply should answer), the new text and
``edited_at``, and keeps the ids it had in ``raw["edit_history"]``, oldest first; a later
fetch of the new id finds it like any stored post. An earlier version fetched again is
recognised when it names the current id (``edit_of`` or ``edit_history``) and changes
nothing. Limits: a reply naming an earlier id as its parent, fetched after the edit, no
longer finds that parent by id (it opens a conversation of its own unless it names the
current id); and an earlier version naming none of the current ids would be stored again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
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
    """What a page did to the store.

    A stored mention marked deleted (or restored) counts as updated; a deleted post that was
    never stored counts as unchanged (nothing was stored).
    """

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
    unique = [_without_nul(m) for m in _dedupe_in_page(mentions)]
    existing = _existing(session, unique)
    new = updated = 0
    for raw in sorted(unique, key=lambda m: m.created_at):
        stored = _stored(existing, raw)
        if stored is None:
            if not raw.deleted:  # a deleted post is never a new mention
                existing[(raw.platform, raw.external_id)] = _insert(
                    session, source, brand, raw, now
                )
                new += 1
        elif raw.deleted:
            if stored.deleted_at is None:
                stored.deleted_at = now  # the text stays as it was
                updated += 1
        elif _refresh(existing, stored, raw, now):
            updated += 1
    session.flush()
    return StoreResult(new=new, updated=updated, unchanged=len(unique) - new - updated)


def _stored(existing: dict[tuple[str, str], Mention], raw: RawMention) -> Mention | None:
    """The stored mention ``raw`` is: by its id, else by an earlier id of an edit."""
    for external_id in (raw.external_id, *raw.edit_of):
        stored = existing.get((raw.platform, external_id))
        if stored is not None:
            return stored
    return None


def _refresh(
    existing: dict[tuple[str, str], Mention], stored: Mention, raw: RawMention, now: datetime
) -> bool:
    """Bring ``stored`` up to ``raw`` (an edit, a restored post); True when it changed."""
    history = [str(i) for i in (stored.raw or {}).get("edit_history") or []]
    renamed = stored.external_id != raw.external_id  # found by an id in raw.edit_of
    if renamed:
        if raw.external_id in history:  # an earlier version fetched again
            return False
        history.append(stored.external_id)  # the edit takes the new id; the old ones stay
        del existing[(stored.platform, stored.external_id)]
        existing[(raw.platform, raw.external_id)] = stored
        stored.external_id, stored.url = raw.external_id, raw.url
    elif stored.text == raw.text and stored.deleted_at is None:
        return False
    if renamed or stored.text != raw.text:
        stored.text, stored.edited_at = raw.text, now
    stored.deleted_at = None  # it is there: not deleted, or restored
    stored.raw = {**raw.raw, "edit_history": history} if history else dict(raw.raw)
    return True


def _without_nul(raw: RawMention) -> RawMention:
    """NUL characters become U+FFFD: PostgreSQL refuses them in text, and one hostile post must
    not stop its source (the page would fail to store on every run)."""
    if "\x00" not in raw.text + raw.author_handle + raw.url:
        return raw
    return replace(
        raw,
        text=raw.text.replace("\x00", "\ufffd"),
        author_handle=raw.author_handle.replace("\x00", "\ufffd"),
        url=raw.url.replace("\x00", "\ufffd"),
    )


def _dedupe_in_page(mentions: Iterable[RawMention]) -> list[RawMention]:
    by_key: dict[tuple[str, str], RawMention] = {}
    for raw in mentions:
        by_key[(raw.platform, raw.external_id)] = raw  # the last copy of a post in a page wins
    return list(by_key.values())


def _existing(session: Session, mentions: Sequence[RawMention]) -> dict[tuple[str, str], Mention]:
    found: dict[tuple[str, str], Mention] = {}
    by_platform: dict[str, list[str]] = {}
    for raw in mentions:
        by_platform.setdefault(raw.platform, []).extend((raw.external_id, *raw.edit_of))
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
