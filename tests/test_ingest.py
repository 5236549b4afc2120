"""Ingestion: dedup on (platform, external_id), edits, threads, our own posts, reopening."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from otklik.cases.ingest import store_page
from otklik.domain import RawMention
from otklik.store import db
from otklik.store.models import Author, Brand, CaseEvent, Conversation, Mention, Status

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def raw(
    external_id: str,
    text: str = "hello",
    *,
    parent: str | None = None,
    author: str = "u1",
    handle: str = "mira",
    minutes: int = 0,
    deleted: bool = False,
    edit_of: tuple[str, ...] = (),
    platform: str = "demo",
) -> RawMention:
    return RawMention(
        platform=platform,
        external_id=external_id,
        url=f"https://x.invalid/{external_id}",
        author_external_id=author,
        author_handle=handle,
        text=text,
        created_at=T0 + timedelta(minutes=minutes),
        parent_external_id=parent,
        deleted=deleted,
        edit_of=edit_of,
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
    object.__setattr__(bad, "deleted", False)
    object.__setattr__(bad, "edit_of", ())
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


# --- deleted posts (issue 16, item 16) -----------------------------------------------------


def test_a_deleted_post_never_becomes_a_mention(runtime) -> None:
    result = store(runtime, [raw("1", "[deleted]", deleted=True, handle="[deleted]")])
    assert (result.new, result.updated, result.unchanged) == (0, 0, 1)
    assert count(runtime, Mention) == count(runtime, Conversation) == count(runtime, Author) == 0


def test_a_stored_post_that_comes_back_deleted_is_marked_and_keeps_its_text(runtime) -> None:
    store(runtime, [raw("1", "order late")])
    later = T0 + timedelta(hours=1)
    gone = raw("1", "[removed]", deleted=True, handle="[deleted]")
    assert store(runtime, [gone], now=later).updated == 1
    again = store(runtime, [gone], now=later + timedelta(hours=1))
    assert (again.updated, again.unchanged) == (0, 1)
    with runtime.sessions() as session:
        mention = session.scalar(select(Mention))
        assert mention.deleted_at == later  # the first time it was seen deleted
        assert mention.text == "order late" and mention.edited_at is None
        assert mention.author.handle == "mira"
    assert count(runtime, Mention) == 1

    restored = store(runtime, [raw("1", "order late")], now=later + timedelta(hours=2))
    assert restored.updated == 1  # a moderator approved it again
    with runtime.sessions() as session:
        assert session.scalar(select(Mention.deleted_at)) is None


# --- edits that get a new id (issue 16, item 18's store side) ------------------------------


def test_an_edit_with_a_new_id_updates_the_stored_mention(runtime) -> None:
    store(runtime, [raw("1", "my order is lste")])
    edited_at = T0 + timedelta(minutes=10)
    result = store(runtime, [raw("2", "my order is late", edit_of=("1",), minutes=2)], edited_at)
    assert (result.new, result.updated) == (0, 1)
    with runtime.sessions() as session:
        (mention,) = session.scalars(select(Mention)).all()
        assert mention.external_id == "2" and mention.text == "my order is late"
        assert mention.url == "https://x.invalid/2"
        assert mention.edited_at == edited_at and mention.created_at == T0
        assert mention.raw["edit_history"] == ["1"]
        kinds = session.scalars(select(CaseEvent.kind)).all()
        assert kinds == ["opened"]  # an edit is no new customer post

    # the new id fetched again (with or without its history) is the same mention
    again = store(
        runtime, [raw("2", "my order is late", edit_of=("1",)), raw("2", "my order is late")]
    )
    assert (again.new, again.updated) == (0, 0)
    # a second edit names both earlier ids; a reply to the current id joins the conversation
    store(runtime, [raw("3", "my order is 2 days late", edit_of=("1", "2"), minutes=3)])
    store(runtime, [raw("4", "same here", parent="3", author="u2", handle="lev", minutes=4)])
    with runtime.sessions() as session:
        edited = session.scalar(select(Mention).where(Mention.external_id == "3"))
        assert edited.raw["edit_history"] == ["1", "2"]
        assert edited.text == "my order is 2 days late"
    assert count(runtime, Mention) == 2 and count(runtime, Conversation) == 1


def test_an_edit_arriving_in_the_same_page_as_the_original_is_one_mention(runtime) -> None:
    result = store(runtime, [raw("2", "fixed typo", edit_of=("1",), minutes=1), raw("1", "fixd")])
    assert (result.new, result.updated) == (1, 1)
    with runtime.sessions() as session:
        (mention,) = session.scalars(select(Mention)).all()
        assert (mention.external_id, mention.text) == ("2", "fixed typo")


def test_an_earlier_version_fetched_again_changes_nothing(runtime) -> None:
    store(runtime, [raw("1", "v1")])
    store(runtime, [raw("2", "v2", edit_of=("1",))])
    result = store(runtime, [raw("1", "v1", edit_of=("2",))])  # names the current id
    assert (result.new, result.updated, result.unchanged) == (0, 0, 1)
    with runtime.sessions() as session:
        assert session.scalars(select(Mention.external_id)).all() == ["2"]


def test_edit_of_only_matches_the_same_platform(runtime) -> None:
    store(runtime, [raw("1", "hello")])
    store(runtime, [raw("2", "hello!", edit_of=("1",), platform="other")])
    with runtime.sessions() as session:
        rows = session.scalars(select(Mention).order_by(Mention.id)).all()
        assert [(m.platform, m.external_id, m.text) for m in rows] == [
            ("demo", "1", "hello"),
            ("other", "2", "hello!"),
        ]


def test_a_deleted_edit_marks_the_stored_original(runtime) -> None:
    store(runtime, [raw("1", "v1")])
    result = store(runtime, [raw("2", "", edit_of=("1",), deleted=True)], T0 + timedelta(hours=1))
    assert result.updated == 1
    with runtime.sessions() as session:
        mention = session.scalar(select(Mention))
        assert (mention.external_id, mention.text) == ("1", "v1")
        assert mention.deleted_at == T0 + timedelta(hours=1)
