"""Ingestion: dedup on (platform, external_id), edits, threads, our own posts, reopening."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from otklik.cases.ingest import store_page
from otklik.domain import RawMention
from otklik.store import db
from otklik.store.models import Brand, CaseEvent, Conversation, Mention, Status

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def raw(
    external_id: str,
    text: str = "hello",
    *,
    parent: str | None = None,
    author: str = "u1",
    handle: str = "mira",
    minutes: int = 0,
) -> RawMention:
    return RawMention(
        platform="demo",
        external_id=external_id,
        url=f"https://x.invalid/{external_id}",
        author_external_id=author,
        author_handle=handle,
        text=text,
        created_at=T0 + timedelta(minutes=minutes),
        parent_external_id=parent,
    )


def store(runtime, mentions, now=T0):
    with db.transaction(runtime.sessions) as session:
        brand = session.scalar(select(Brand))
        return store_page(session, None, brand, mentions, now)


def count(runtime, model) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_a_refetched_page_and_a_repeat_inside_a_page_store_nothing_twice(runtime) -> None:
    first = store(runtime, [raw("1"), raw("2"), raw("2")])
    again = store(runtime, [raw("1"), raw("2"), raw("3")])
    assert (first.new, first.unchanged) == (2, 0)
    assert (again.new, again.unchanged) == (1, 2)
    assert count(runtime, Mention) == 3
    assert count(runtime, Conversation) == 3


def test_an_edited_post_updates_the_stored_text(runtime) -> None:
    store(runtime, [raw("1", "first version")])
    result = store(runtime, [raw("1", "edited version")], now=T0 + timedelta(hours=1))
    assert result.updated == 1
    with runtime.sessions() as session:
        mention = session.scalar(select(Mention))
        assert mention.text == "edited version"
        assert mention.edited_at == T0 + timedelta(hours=1)


def test_a_reply_joins_its_parents_conversation(runtime) -> None:
    store(runtime, [raw("1", "order late")])
    store(runtime, [raw("2", "still late", parent="1", minutes=5)])
    with runtime.sessions() as session:
        conversations = session.scalars(select(Conversation)).all()
        assert len(conversations) == 1
        assert [m.external_id for m in conversations[0].mentions] == ["1", "2"]
        assert conversations[0].last_customer_at == T0 + timedelta(minutes=5)
        kinds = session.scalars(select(CaseEvent.kind).order_by(CaseEvent.id)).all()
        assert kinds == ["opened", "customer_posted"]


def test_a_reply_stored_before_its_parent_still_shares_one_conversation(runtime) -> None:
    store(runtime, [raw("2", "still late", parent="1", minutes=5)])
    store(runtime, [raw("1", "order late")])
    assert count(runtime, Conversation) == 1


def test_the_brands_own_post_counts_as_a_response_not_a_new_case(runtime) -> None:
    store(runtime, [raw("1", "where is my order")])
    store(runtime, [raw("2", "sorry!", parent="1", author="b", handle="LadogaCoffee", minutes=7)])
    with runtime.sessions() as session:
        conversation = session.scalar(select(Conversation))
        assert count(runtime, Conversation) == 1
        assert conversation.first_response_at == T0 + timedelta(minutes=7)
        ours = session.scalar(select(Mention).where(Mention.external_id == "2"))
        assert ours.is_ours


def test_a_new_customer_post_reopens_a_resolved_conversation(runtime) -> None:
    store(runtime, [raw("1", "broken")])
    with db.transaction(runtime.sessions) as session:
        session.scalar(select(Conversation)).status = Status.RESOLVED
    store(runtime, [raw("2", "still broken", parent="1", minutes=60)])
    with runtime.sessions() as session:
        assert session.scalar(select(Conversation)).status == Status.OPEN
        assert "reopened" in session.scalars(select(CaseEvent.kind)).all()


def test_a_failing_page_stores_nothing(runtime) -> None:
    bad = RawMention.__new__(RawMention)  # bypasses validation, as a buggy connector might
    object.__setattr__(bad, "platform", "demo")
    for name in ("external_id", "url", "author_external_id", "author_handle", "text"):
        object.__setattr__(bad, name, "x")
    object.__setattr__(bad, "created_at", datetime(2026, 1, 1))  # naive: refused by the store
    object.__setattr__(bad, "parent_external_id", None)
    object.__setattr__(bad, "author_followers", None)
    object.__setattr__(bad, "raw", {})
    with pytest.raises((TypeError, ValueError)):
        store(runtime, [raw("1"), bad])
    assert count(runtime, Mention) == 0


def test_merging_moves_everything_that_points_at_the_merged_conversation(runtime) -> None:
    from otklik.store.models import ConversationTag, Note

    store(runtime, [raw("3", "tail", parent="2", minutes=10)])  # opens conversation X
    store(runtime, [raw("1", "head")])  # opens conversation Y (older)
    with db.transaction(runtime.sessions) as session:
        x, y = (
            session.scalar(select(Mention.conversation_id).where(Mention.external_id == i))
            for i in ("3", "1")
        )
        session.add_all(
            [
                ConversationTag(conversation_id=x, tag="vip"),
                ConversationTag(conversation_id=y, tag="vip"),
                ConversationTag(conversation_id=x, tag="refund"),
                Note(conversation_id=x, body="called the courier"),
            ]
        )
        session.get(Conversation, y).status = Status.RESOLVED
    store(runtime, [raw("2", "middle", parent="1", minutes=5)])  # links the two halves
    with runtime.sessions() as session:
        (survivor,) = session.scalars(select(Conversation)).all()
        assert survivor.id == y and survivor.status == Status.NEW  # X was still open
        assert [m.external_id for m in survivor.mentions] == ["1", "2", "3"]
        tags = session.scalars(select(ConversationTag.tag).order_by(ConversationTag.tag)).all()
        assert tags == ["refund", "vip"]
        assert session.scalar(select(Note.conversation_id)) == y
        assert session.scalar(select(CaseEvent.data).where(CaseEvent.kind == "merged")) == {
            "merged": x
        }


def test_a_customer_answer_moves_a_pending_conversation_back_to_open(runtime) -> None:
    store(runtime, [raw("1", "order late")])
    with db.transaction(runtime.sessions) as session:
        session.scalar(select(Conversation)).status = Status.PENDING
    store(runtime, [raw("2", "here is my order number", parent="1", minutes=3)])
    with runtime.sessions() as session:
        assert session.scalar(select(Conversation)).status == Status.OPEN
        change = session.scalar(select(CaseEvent).where(CaseEvent.kind == "status_changed"))
        assert change.data == {"from": "pending", "to": "open"} and change.actor == "system"
