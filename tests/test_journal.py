"""The case journal: one writer, explicit projections that match a replay, readers by position."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from otklik.cases import casework, journal, replies, scoring
from otklik.cases.ingest import store_page
from otklik.domain import RawMention
from otklik.domain.events import EventKind
from otklik.domain.sla import Cycle, cycle_from_events, due_and_risk, next_cycle
from otklik.store import db
from otklik.store.models import Brand, CaseEvent, Conversation, Mention, Reply, Status, User
from tests.conftest import FixedScore

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def post(external_id: str, minutes: float, *, parent: str | None = None, ours: bool = False):
    return RawMention(
        platform="demo",
        external_id=external_id,
        url="",
        author_external_id="brand" if ours else "customer",
        author_handle="ladogacoffee" if ours else "mira",
        text="we are on it" if ours else "my order is late",
        created_at=T0 + timedelta(minutes=minutes),
        parent_external_id=parent,
    )


def store(session, mentions, now):
    brand = session.scalar(select(Brand))
    return store_page(session, None, brand, mentions, now)


def replayed(session, conversation: Conversation) -> Cycle:
    return cycle_from_events(
        (e.kind, e.at, e.data) for e in journal.events_of(session, conversation.id)
    )


def assert_projection_matches_replay(session, policy) -> None:
    for conversation in session.scalars(select(Conversation)):
        cycle = replayed(session, conversation)
        assert conversation.cycle_started_at == cycle.started_at
        assert conversation.cycle_responded_at == cycle.first_response_at
        found = due_and_risk(cycle, policy, conversation.platform, conversation.priority)
        assert (conversation.sla_due_at, conversation.sla_risk_at) == (found or (None, None))


@pytest.mark.parametrize("seed", range(12))
def test_the_inbox_projection_always_equals_a_replay_of_the_journal(runtime, users, seed) -> None:
    """Random ingestion (out of order too), replies, resolutions and reopenings, one rule."""
    rng = random.Random(seed)
    now, posts, minutes = T0 + timedelta(hours=1), ["root"], 0.0
    with db.transaction(runtime.sessions) as session:
        store(session, [post("root", 0)], now)
    for step in range(14):
        now += timedelta(minutes=rng.randint(1, 90))
        with db.transaction(runtime.sessions) as session:
            agent = session.get(User, users["agent"])
            conversation = session.scalar(select(Conversation).order_by(Conversation.id))
            action = rng.choice(("post", "late post", "brand post", "reply", "resolve", "reopen"))
            if action in ("post", "late post"):
                minutes = (now - T0).total_seconds() / 60
                if action == "late post":  # an older post of the thread, delivered only now
                    minutes = rng.uniform(-120, minutes)
                posts.append(f"p{step}")
                store(session, [post(posts[-1], minutes, parent=rng.choice(posts[:-1]))], now)
            elif action == "brand post":
                at = (now - T0).total_seconds() / 60 - rng.randint(0, 30)
                store(session, [post(f"b{step}", at, parent=rng.choice(posts), ours=True)], now)
            elif action == "reply":
                to = conversation.mentions[-1]
                reply = replies.queue_reply(
                    session, conversation, to, "on it", agent, f"k{seed}-{step}", now
                )
                session.flush()
                reply.state = "sent"
                replies.record_sent(session, reply, f"sent-{seed}-{step}", now)
            elif action == "resolve":
                casework.change_status(session, conversation, Status.RESOLVED, agent, now)
            else:
                casework.change_status(session, conversation, Status.OPEN, agent, now)
        with runtime.sessions() as session:
            assert_projection_matches_replay(session, runtime.sla_policy)


def test_scoring_and_corrections_derive_the_flags_one_way(runtime, users) -> None:
    now = T0 + timedelta(minutes=5)
    with db.transaction(runtime.sessions) as session:
        store(session, [post("a", 0), post("b", 1, parent="a")], now)
        mentions = list(session.scalars(select(Mention).order_by(Mention.created_at)))
        late = FixedScore(
            "negative", {"negative": 0.9, "neutral": 0.05, "positive": 0.05}, 0.9, True
        )
        scoring.store_scores(session, mentions, [late, FixedScore(is_question=True)])
    with db.transaction(runtime.sessions) as session:
        conversation = session.scalar(select(Conversation))
        assert (conversation.has_complaint, conversation.has_question) == (True, True)
        assert conversation.sentiment == "neutral"  # of the newest scored customer post
        assert conversation.priority >= 60 and conversation.sla_due_at is not None
        agent = session.get(User, users["agent"])
        first = conversation.mentions[0]
        casework.correct_score(session, first, "is_complaint", "false", agent, now)
        newest = conversation.mentions[1]
        casework.correct_score(session, newest, "sentiment", "positive", agent, now)
    with runtime.sessions() as session:
        conversation = session.scalar(select(Conversation))
        assert (conversation.has_complaint, conversation.has_question) == (False, True)
        assert conversation.sentiment == "positive"


def test_append_refuses_a_kind_outside_the_vocabulary(runtime) -> None:
    with db.transaction(runtime.sessions) as session:
        store(session, [post("a", 0)], T0)
        conversation = session.scalar(select(Conversation))
        with pytest.raises(ValueError, match="unknown case event kind 'poked'"):
            journal.append(session, conversation, "poked", T0)  # type: ignore[arg-type]


def test_next_cycle_is_the_rule_cycle_from_events_folds() -> None:
    opened = next_cycle(None, EventKind.OPENED, T0, {}, T0)
    assert opened == Cycle(T0)
    answered = next_cycle(opened, EventKind.REPLIED, T0 + timedelta(minutes=3), {}, T0)
    assert answered == Cycle(T0, T0 + timedelta(minutes=3))
    resolved = next_cycle(
        answered, EventKind.STATUS_CHANGED, T0 + timedelta(hours=1), {"to": "resolved"}, T0
    )
    assert resolved.resolved_at == T0 + timedelta(hours=1)
    later = T0 + timedelta(hours=2)
    assert next_cycle(
        resolved, EventKind.REOPENED, later, {}, later - timedelta(minutes=5)
    ) == Cycle(later - timedelta(minutes=5))
    assert next_cycle(resolved, EventKind.STATUS_CHANGED, later, {"from": "resolved"}, T0) == Cycle(
        later
    )
    assert (
        next_cycle(answered, EventKind.STATUS_CHANGED, later, {"from": "pending"}, T0) == answered
    )


def _journal_of(runtime, n: int) -> list[int]:
    with db.transaction(runtime.sessions) as session:
        store(session, [post(f"m{i}", i) for i in range(n)], T0)
    with runtime.sessions() as session:
        return list(session.scalars(select(CaseEvent.id).order_by(CaseEvent.id)))


def test_a_reader_follows_the_journal_by_its_saved_position(runtime) -> None:
    ids = _journal_of(runtime, 4)
    now = datetime.now(UTC)
    with db.transaction(runtime.sessions) as session:
        events, examined = journal.read_window(session, "alerts", now, limit=3)
        assert [e.id for e in events] == ids[:3] and examined == ids[2]
        journal.advance(session, "alerts", examined, now)
    with pytest.raises(RuntimeError), db.transaction(runtime.sessions) as session:
        events = journal.read(session, "alerts", now)
        journal.advance(session, "alerts", events[-1].id, now)
        raise RuntimeError("the reader crashed before its transaction committed")
    with db.transaction(runtime.sessions) as session:
        assert [e.id for e in journal.read(session, "alerts", now)] == ids[3:]  # read again
        journal.advance(session, "alerts", ids[3], now)
        journal.advance(session, "alerts", ids[0], now)  # never backwards
    with runtime.sessions() as session:
        assert journal.position(session, "alerts") == ids[3]
        assert journal.read(session, "alerts", now) == []
        assert journal.position(session, "rollups") == 0  # readers are independent


def test_kinds_filter_what_is_returned_not_how_far_the_reader_may_go(runtime) -> None:
    ids = _journal_of(runtime, 3)
    with runtime.sessions() as session:
        events, examined = journal.read_window(
            session, "r", datetime.now(UTC), kinds=[EventKind.REOPENED]
        )
    assert events == [] and examined == ids[-1]


def test_a_gap_in_the_ids_waits_until_it_settles(runtime) -> None:
    """A lower id may belong to a transaction that commits later (PostgreSQL sequences)."""
    ids = _journal_of(runtime, 4)
    with db.transaction(runtime.sessions) as session:
        session.execute(delete(CaseEvent).where(CaseEvent.id == ids[1]))
        recorded = session.get(CaseEvent, ids[2]).recorded_at
    with runtime.sessions() as session:
        fresh = journal.read(session, "r", recorded + timedelta(seconds=1))
        settled = journal.read(session, "r", recorded + journal.SETTLE)
    assert [e.id for e in fresh] == ids[:1]
    assert [e.id for e in settled] == [ids[0], ids[2], ids[3]]


def test_only_the_journal_constructs_case_events() -> None:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    writers = set()
    for package in ("config", "nlp", "otklik", "collectors", "responder", "web", "workers"):
        for path in (root / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "CaseEvent":
                    writers.add(path.relative_to(root).as_posix())
    assert writers == {"otklik/cases/journal.py"}


def test_replies_are_sent_once_through_the_outbox_engine(runtime, users) -> None:
    with db.transaction(runtime.sessions) as session:
        store(session, [post("a", 0)], T0)
        conversation = session.scalar(select(Conversation))
        agent = session.get(User, users["agent"])
        replies.queue_reply(session, conversation, conversation.mentions[0], "hi", agent, "k", T0)
    from workers.jobs import send_due

    assert send_due(runtime, T0) == 0  # the post came from no source: nothing to reply through
    with runtime.sessions() as session:
        reply = session.scalar(select(Reply))
        assert reply.state == "failed" and "has no source" in reply.error
        kinds = [e.kind for e in journal.events_of(session, reply.conversation_id)]
        assert kinds[-1] == EventKind.REPLY_FAILED
