"""The console on PostgreSQL: filters, keyset pages, case actions and the SLA columns."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from config import load_settings
from otklik.store.models import Conversation, Mention
from tests.conftest import KeywordScorer, hermetic_environ, login
from tests.test_migrations import needs_postgres, pg_schema_url  # noqa: F401 - fixture
from tests.web_support import fast_password_hashing  # noqa: F401
from workers.jobs import run_source, score_pending, send_due
from workers.runtime import Runtime

pytestmark = [pytest.mark.postgres, needs_postgres]


@pytest.fixture
def pg_client(config_path, pg_schema_url):  # noqa: F811
    from otklik.store import db
    from otklik.users import create_user
    from web import create_app

    settings = load_settings(
        config_path, environ=hermetic_environ(OTKLIK_DATABASE_URL=pg_schema_url)
    )
    runtime = Runtime.from_settings(settings, scorer_factory=lambda _s: KeywordScorer())
    runtime.prepare_database()
    with db.transaction(runtime.sessions) as session:
        create_user(session, "agent", "long enough password", role="lead")
    for _ in range(3):
        run_source(runtime, "demo")
    score_pending(runtime)
    client = create_app(runtime, {"TESTING": True, "WTF_CSRF_ENABLED": False}).test_client()
    login(client, "agent", "long enough password")
    yield runtime, client
    runtime.engine.dispose()


def _ids(client, path: str) -> list[str]:
    html = client.get(path).get_data(as_text=True)
    return re.findall(r'class="conversation-row[^"]*" data-id="(\d+)"', html)


def test_inbox_filters_views_and_pages_on_postgres(pg_client) -> None:
    runtime, client = pg_client
    everything = _ids(client, "/")
    assert len(everything) >= 14
    complaints = _ids(client, "/?view=unassigned-complaints")
    assert complaints and set(complaints) < set(everything)
    assert _ids(client, "/?language=ru&question=1&sentiment=neutral")
    with runtime.sessions() as session:
        from otklik.store.inbox_query import InboxFilter, fetch_page
        from otklik.store.models import utcnow

        first = fetch_page(session, InboxFilter(sort="sla"), 1, utcnow(), size=5)
        second = fetch_page(session, InboxFilter(sort="sla"), 1, utcnow(), first.next_cursor, 5)
        assert not {c.id for c in first.conversations} & {c.id for c in second.conversations}


def test_case_actions_and_sla_columns_on_postgres(pg_client) -> None:
    runtime, client = pg_client
    with runtime.sessions() as session:
        target = session.scalar(select(Mention).order_by(Mention.id))
        conversation_id = target.conversation_id
    base = f"/conversations/{conversation_id}"
    client.post(f"{base}/assign", data={"assignee": "me"})
    client.post(f"{base}/tags", data={"tag": "late"})
    client.post(f"{base}/notes", data={"body": "called the courier"})
    client.post(
        f"{base}/mentions/{target.id}/correct", data={"field": "is_question", "value": "false"}
    )
    client.post(
        f"{base}/reply", data={"body": "Hi", "idempotency_key": "pg", "in_reply_to": target.id}
    )
    assert send_due(runtime) == 1
    client.post(f"{base}/status", data={"status": "resolved"})
    with runtime.sessions() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation.status == "resolved" and conversation.sla_due_at is None
        assert conversation.cycle_responded_at is not None and not conversation.has_question
    page = client.get(base).get_data(as_text=True)
    assert "called the courier" in page and "late" in page and "met" in page
