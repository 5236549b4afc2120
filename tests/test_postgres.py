"""The storage rules hold on PostgreSQL too (dedup, threading, the reply outbox)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from config import load_settings
from otklik.store.models import Conversation, Mention, Reply, ReplyState
from tests.conftest import KeywordScorer, hermetic_environ
from tests.test_migrations import needs_postgres, pg_schema_url  # noqa: F401 - fixture
from workers.jobs import run_source, score_pending, send_due
from workers.runtime import Runtime

pytestmark = [pytest.mark.postgres, needs_postgres]


@pytest.fixture
def pg_runtime(config_path, pg_schema_url):  # noqa: F811
    settings = load_settings(
        config_path, environ=hermetic_environ(OTKLIK_DATABASE_URL=pg_schema_url)
    )
    runtime = Runtime.from_settings(settings, scorer_factory=lambda _s: KeywordScorer())
    runtime.prepare_database()
    yield runtime
    runtime.engine.dispose()


def test_demo_loop_on_postgres(pg_runtime) -> None:
    from otklik.cases.replies import DuplicateReply, queue_reply
    from otklik.store import db
    from otklik.store.models import User, utcnow
    from otklik.users import create_user

    for _ in range(7):  # past the end of the sample set and into a second round
        assert run_source(pg_runtime, "demo").status == "ok"
    with pg_runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Mention)) == 42
        assert session.scalar(select(func.count(func.distinct(Mention.external_id)))) == 42
    assert score_pending(pg_runtime) == 41  # the brand's own post (sample 019) is not scored
    with db.transaction(pg_runtime.sessions) as session:
        user = create_user(session, "agent", "long enough password")
        conversation = session.scalar(select(Conversation).order_by(Conversation.id))
        queue_reply(session, conversation, conversation.mentions[0], "Hi", user, "pg-1", utcnow())
    with pytest.raises(DuplicateReply), db.transaction(pg_runtime.sessions) as session:
        conversation = session.scalar(select(Conversation).order_by(Conversation.id))
        user = session.scalar(select(User))
        queue_reply(session, conversation, conversation.mentions[0], "Hi", user, "pg-1", utcnow())
    assert send_due(pg_runtime) == 1
    with pg_runtime.sessions() as session:
        assert session.scalar(select(Reply.state)) == ReplyState.SENT


def test_a_journal_reader_never_skips_an_event_committed_late(pg_runtime) -> None:
    """Two writers: the lower id commits after the higher one; the reader waits for it."""
    from otklik.cases import journal
    from otklik.domain.events import EventKind
    from otklik.store import db
    from otklik.store.models import utcnow

    run_source(pg_runtime, "demo")
    with db.transaction(pg_runtime.sessions) as session:
        events = journal.read(session, "alerts", utcnow(), limit=10_000)
        journal.advance(session, "alerts", events[-1].id, utcnow())
    slow = pg_runtime.sessions()
    slow.begin()
    first = slow.scalar(select(Conversation).order_by(Conversation.id))
    early = journal.append(slow, first, EventKind.TAGGED, utcnow(), tag="slow")
    slow.flush()  # the lower id is taken, not yet committed
    with db.transaction(pg_runtime.sessions) as session:
        other = session.scalar(select(Conversation).order_by(Conversation.id.desc()))
        late = journal.append(session, other, EventKind.TAGGED, utcnow(), tag="fast")
    assert early.id < late.id
    with pg_runtime.sessions() as session:
        assert journal.read(session, "alerts", utcnow()) == []  # not past the open gap
    slow.commit()
    slow.close()
    with pg_runtime.sessions() as session:
        seen = [e.data["tag"] for e in journal.read(session, "alerts", utcnow())]
    assert seen == ["slow", "fast"]


def test_a_nul_character_never_reaches_postgresql(pg_runtime) -> None:
    """A hostile post is stored (NUL as U+FFFD); a note or reply with NUL is a clear error."""
    from dataclasses import replace

    from otklik.cases import casework
    from otklik.cases.ingest import store_page
    from otklik.cases.replies import queue_reply
    from otklik.domain import RawMention
    from otklik.store import db
    from otklik.store.models import utcnow
    from otklik.users import create_user

    post = RawMention("demo", "nul-1", "", "a1", "mi\x00ra", "bad\x00text", utcnow())
    with db.transaction(pg_runtime.sessions) as session:
        store_page(session, None, None, [post, replace(post, external_id="nul-2")], utcnow())
    with db.transaction(pg_runtime.sessions) as session:
        stored = session.scalar(select(Mention).where(Mention.external_id == "nul-1"))
        assert stored.text == "bad\ufffdtext" and stored.author.handle == "mi\ufffdra"
        user = create_user(session, "agent", "long enough password")
        with pytest.raises(casework.CaseError, match="NUL"):
            casework.add_note(session, stored.conversation, "x\x00y", user, utcnow())
        with pytest.raises(ValueError, match="NUL"):
            queue_reply(session, stored.conversation, stored, "x\x00y", user, "k", utcnow())
