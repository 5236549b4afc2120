"""Deterministic reproductions of the bugs the soak test found (fixed; kept as regressions).

1. Thread split in ingest (soak: ``test_replies_joined_their_parents_conversation``).
   A Twitter backlog is delivered newest page first, so the tail of a thread A <- B <- C can
be stored before its head: C first (page 1), then A and B together (page 2). C opens its
own conversation (its parent B is unknown); when B arrives it has a stored parent A *and*
a stored child C, and ``otklik.cases.ingest._insert`` only follows the parent, so C stays in a
separate conversation from B and A.

2. Reddit comments lost by the connector (soak: ``test_stored_set_equals_served_set[reddit]``),
   run here against the soak's fake Reddit (``soak_platforms``):
   a. the comment high-water mark ``t1`` is global, but the watched threads are read one
      after the other: a comment posted on a thread already read in this fetch, followed
      by a comment on a thread read later, leaves the first one below ``t1`` for good;
   b. only the newest ``watch_submissions`` threads are read, even on the first run or
      when one search page brings more new submissions than that: comments on the others
      are never read (the module docstring promises "the submissions found in this page").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests.adapters
from soak_platforms import FakePlatforms, route_to
from sqlalchemy import select

from otklik.cases.ingest import store_page
from otklik.connectors import Registry
from otklik.domain import RawMention
from otklik.store import db
from otklik.store.models import CaseEvent, Conversation, Mention

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _tweet(n: int, parent: int | None) -> RawMention:
    return RawMention(
        platform="twitter",
        external_id=str(n),
        url=f"https://x.com/u/status/{n}",
        author_external_id=f"a{n}",
        author_handle=f"user{n}",
        text=f"ladoga #{n}",
        created_at=T0 + timedelta(minutes=n),
        parent_external_id=str(parent) if parent else None,
    )


def test_a_thread_stored_tail_first_ends_in_one_conversation(runtime) -> None:
    a, b, c = _tweet(1, None), _tweet(2, 1), _tweet(3, 2)
    with db.transaction(runtime.sessions) as session:
        store_page(session, None, None, [c], T0)  # page 1 of the backlog: the newest
    with db.transaction(runtime.sessions) as session:
        store_page(session, None, None, [a, b], T0)  # page 2: the older ones
    with runtime.sessions() as session:
        query = select(Mention.external_id, Mention.conversation_id)
        conversations = {external_id: conv for external_id, conv in session.execute(query)}
        events = session.scalars(select(CaseEvent.kind).order_by(CaseEvent.id)).all()
        survivors = session.scalars(select(Conversation.id)).all()
    assert conversations["3"] == conversations["2"] == conversations["1"]
    assert survivors == [conversations["1"]]
    assert events.count("merged") == 1 and events.count("opened") == 2


@pytest.fixture
def fake_reddit(monkeypatch):
    for name, value in {
        "CLIENT_ID": "reddit-soak-id",
        "CLIENT_SECRET": "reddit-soak-secret",
        "USERNAME": "soak_user",
        "PASSWORD": "soak-password",
    }.items():
        monkeypatch.setenv(f"OTKLIK_REDDIT_{name}", value)
    fake = FakePlatforms(seed=1, slow_seconds=2)
    fake.latency = (0.0, 0.0)
    fake.start(initial=0)
    adapter = requests.adapters.HTTPAdapter
    monkeypatch.setattr(adapter, "send", route_to(fake, adapter.send))
    yield fake
    fake.close()


def _reddit():
    return Registry().load("source", "reddit").from_settings({"subreddits": "ladoga", "timeout": 1})


def test_reddit_comment_posted_on_an_already_read_thread_during_a_fetch(fake_reddit) -> None:
    older, newer = fake_reddit.add_reddit(), fake_reddit.add_reddit()
    connector = _reddit()
    first = connector.fetch("ladoga", None)
    assert {m.external_id for m in first.mentions} == {older.external_id, newer.external_id}
    late: list[str] = []

    def meanwhile(platform: str, path: str) -> None:
        # the fetch has read the newer thread and now asks for the older one
        if path == f"/comments/{older.data['id']}/" and not late:
            late.append(fake_reddit.add_reddit(newer).external_id)  # too late for this fetch
            fake_reddit.add_reddit(older)  # a higher id, read in this fetch

    fake_reddit.on_request = meanwhile
    second = connector.fetch("ladoga", first.cursor)
    fake_reddit.on_request = None
    third = connector.fetch("ladoga", second.cursor)
    collected = {m.external_id for page in (first, second, third) for m in page.mentions}
    served = {p.external_id for p in fake_reddit.snapshot("reddit")}
    assert late and served - collected == set()


def test_reddit_reads_the_threads_of_every_submission_found(fake_reddit) -> None:
    for _ in range(12):  # more than watch_submissions (10), each with one comment
        fake_reddit.add_reddit(fake_reddit.add_reddit())
    connector = _reddit()
    page = connector.fetch("ladoga", None)
    again = connector.fetch("ladoga", page.cursor)
    collected = {m.external_id for p in (page, again) for m in p.mentions}
    served = {p.external_id for p in fake_reddit.snapshot("reddit")}
    assert served - collected == set()
