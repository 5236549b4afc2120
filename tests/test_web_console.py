"""The console's inbox and conversation page: filters, views, keyset pages, case actions."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from otklik.cases.ingest import store_page
from otklik.domain import RawMention
from otklik.domain.sla import cycle_from_events
from otklik.store import db, projections
from otklik.store.inbox_query import SORTS, InboxFilter, fetch_page, parse_filter
from otklik.store.models import (
    AuditEntry,
    CaseEvent,
    Conversation,
    Mention,
    Note,
    Reply,
    ReplyState,
    ScoreCorrection,
    utcnow,
)
from otklik.store.projections import cycle_of
from tests.conftest import login
from tests.web_support import fast_password_hashing  # noqa: F401
from workers.jobs import run_source, score_pending, send_due


@pytest.fixture
def demo(runtime) -> dict[str, int]:
    """Six scored demo conversations; returns {author handle: conversation id}."""
    run_source(runtime, "demo")
    score_pending(runtime)
    with runtime.sessions() as session:
        rows = session.execute(select(Mention.conversation_id, Mention.id, Mention.author_id))
        found = {}
        for conversation_id, mention_id, _author in rows:
            mention = session.get(Mention, mention_id)
            found[mention.author.handle] = conversation_id
        return found


def _rows(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'class="conversation-row[^"]*" data-id="(\d+)"', html)]


def test_inbox_filters_narrow_the_list(client, demo) -> None:
    login(client)
    everything = _rows(client.get("/").get_data(as_text=True))
    assert sorted(everything) == sorted(demo.values())
    complaints = _rows(client.get("/?complaint=1").get_data(as_text=True))
    assert set(complaints) == {demo["andrey.petrov"], demo["dev_tim"]}
    russian = _rows(client.get("/?language=ru").get_data(as_text=True))
    assert set(russian) == {demo["andrey.petrov"], demo["olga_v"], demo["nastya_m"]}
    questions = _rows(client.get("/?question=1&language=en").get_data(as_text=True))
    assert questions == [demo["mira_k"]]
    negative = _rows(client.get("/?sentiment=negative&platform=demo").get_data(as_text=True))
    assert set(negative) == set(complaints)
    high = _rows(client.get("/?band=high").get_data(as_text=True))
    assert set(high) == set(complaints)  # priority 84 and 81
    assert _rows(client.get("/?platform=vk").get_data(as_text=True)) == []
    today = utcnow().date()
    dated = f"/?date_from={today}&date_to={today}"
    assert len(_rows(client.get(dated).get_data(as_text=True))) == 6
    old = f"/?date_to={today - timedelta(days=2)}"
    assert _rows(client.get(old).get_data(as_text=True)) == []
    assert client.get("/?sentiment=<script>&band=nope&date_from=x").status_code == 200


def test_priority_order_puts_complaints_first(client, demo) -> None:
    login(client)
    order = _rows(client.get("/").get_data(as_text=True))
    assert order[:2] == [demo["dev_tim"], demo["andrey.petrov"]]
    assert set(order[2:4]) == {demo["mira_k"], demo["olga_v"]}  # questions next


def test_saved_views_built_in_and_personal(client, demo, users) -> None:
    login(client)
    client.post(f"/conversations/{demo['dev_tim']}/assign", data={"assignee": "me"})
    mine = _rows(client.get("/?view=mine").get_data(as_text=True))
    assert mine == [demo["dev_tim"]]
    unassigned = _rows(client.get("/?view=unassigned-complaints").get_data(as_text=True))
    assert unassigned == [demo["andrey.petrov"]]
    client.post("/views", data={"name": "Russian", "language": "ru"})
    page = client.get("/").get_data(as_text=True)
    assert 'href="/?language=ru">Russian</a>' in page


def test_breaching_soon_view_and_sla_sort(runtime, client, demo) -> None:
    with db.transaction(runtime.sessions) as session:
        late = session.get(Conversation, demo["olga_v"])
        late.opened_at = late.cycle_started_at = utcnow() - timedelta(hours=5)
        projections.refresh_due(session, late)  # columns set by hand: refresh explicitly
    login(client)
    breaching = client.get("/?view=breaching").get_data(as_text=True)
    assert _rows(breaching) == [demo["olga_v"]]  # normal band: 240 min, 5 h ago
    assert "sla sla-breached" in breaching and "overdue" in breaching
    by_sla = _rows(client.get("/?sort=sla").get_data(as_text=True))
    assert by_sla[0] == demo["olga_v"] and len(by_sla) == 6


@pytest.mark.parametrize("sort", list(SORTS))
def test_keyset_pages_cover_everything_once(runtime, demo, sort) -> None:
    run_source(runtime, "demo")  # 12 conversations in all, some with equal priority
    score_pending(runtime)
    now = utcnow()
    with runtime.sessions() as session:
        seen, cursor = [], None
        while True:
            page = fetch_page(session, InboxFilter(sort=sort), 1, now, cursor, size=5)
            seen.extend(c.id for c in page.conversations)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        whole = fetch_page(session, InboxFilter(sort=sort), 1, now, None, size=100)
    assert seen == [c.id for c in whole.conversations]
    assert len(seen) == len(set(seen)) >= 9


def test_a_forged_cursor_is_refused(client, demo) -> None:
    login(client)
    assert client.get("/?after=not-a-cursor").status_code == 400
    assert client.get("/?after=WyJ4Il0").status_code == 400  # ["x"]


def test_parse_filter_ignores_nonsense() -> None:
    parsed = parse_filter({"status": "deleted", "assignee": "1 OR 1=1", "sort": "sla"})
    assert parsed == InboxFilter(sort="sla")


def test_status_flow_and_reopen_on_a_new_customer_post(runtime, client, demo) -> None:
    conversation_id = demo["mira_k"]
    login(client)
    client.post(f"/conversations/{conversation_id}/status", data={"status": "pending"})
    client.post(f"/conversations/{conversation_id}/status", data={"status": "resolved"})
    with runtime.sessions() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation.status == "resolved" and conversation.resolved_at is not None
        assert conversation.sla_due_at is None
        first = session.scalar(select(Mention).where(Mention.conversation_id == conversation_id))
    follow_up = RawMention(
        platform="demo",
        external_id="demo-follow-up",
        url="",
        author_external_id="u101",
        author_handle="mira_k",
        text="Still waiting, any news?",
        created_at=utcnow(),
        parent_external_id=first.external_id,
    )
    with db.transaction(runtime.sessions) as session:
        store_page(session, None, None, [follow_up], utcnow())
    with runtime.sessions() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation.status == "open" and conversation.resolved_at is None
        assert conversation.cycle_started_at == follow_up.created_at
        assert conversation.sla_due_at is not None
        events = session.scalars(
            select(CaseEvent)
            .where(CaseEvent.conversation_id == conversation_id)
            .order_by(CaseEvent.at, CaseEvent.id)
        ).all()
        kinds = [e.kind for e in events]
        assert kinds.count("status_changed") == 2 and "reopened" in kinds
        from_events = cycle_from_events((e.kind, e.at, e.data) for e in events)
        assert from_events == cycle_of(conversation)  # the cached cycle agrees with the log


def test_first_response_is_the_first_sent_reply(runtime, client, demo) -> None:
    conversation_id = demo["dev_tim"]
    with runtime.sessions() as session:
        target = session.scalar(select(Mention).where(Mention.conversation_id == conversation_id))
        due_before = session.get(Conversation, conversation_id).sla_due_at
    login(client)
    client.post(
        f"/conversations/{conversation_id}/reply",
        data={"body": "Looking into it", "idempotency_key": "fr1", "in_reply_to": target.id},
    )
    with runtime.sessions() as session:
        queued = session.get(Conversation, conversation_id)
        assert queued.cycle_responded_at is None and queued.sla_due_at == due_before
    send_due(runtime)
    with runtime.sessions() as session:
        sent = session.get(Conversation, conversation_id)
        reply = session.scalar(select(Reply))
        assert sent.cycle_responded_at == reply.sent_at == sent.first_response_at
        assert sent.sla_due_at > due_before  # now the resolution target
    page = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert "first response</span>" not in page and "met" in page


def test_assignment_notes_tags_and_event_log(runtime, client, demo, users) -> None:
    conversation_id = demo["olga_v"]
    login(client)
    client.post(f"/conversations/{conversation_id}/assign", data={"assignee": "me"})
    client.post(f"/conversations/{conversation_id}/notes", data={"body": "Asked the shop"})
    client.post(f"/conversations/{conversation_id}/tags", data={"tag": "Lactose Free"})
    client.post(f"/conversations/{conversation_id}/tags", data={"tag": "<b>bad</b>"})
    with runtime.sessions() as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation.assignee_id == users["agent"]
        assert session.scalar(select(Note.body)) == "Asked the shop"
        kinds = session.scalars(
            select(CaseEvent.kind).where(CaseEvent.conversation_id == conversation_id)
        ).all()
        assert {"assigned", "note_added", "tagged"} <= set(kinds)
    page = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert "Asked the shop" in page and "lactose free" in page
    assert "a tag is 1-40 letters" in page
    assert _rows(client.get("/?tag=lactose+free").get_data(as_text=True)) == [conversation_id]
    client.post(f"/conversations/{conversation_id}/tags/remove", data={"tag": "lactose free"})
    assert _rows(client.get("/?tag=lactose+free").get_data(as_text=True)) == []


def test_score_corrections_are_stored_and_move_the_filters(runtime, client, demo) -> None:
    conversation_id = demo["coffeelover_spb"]
    with runtime.sessions() as session:
        mention = session.scalar(select(Mention).where(Mention.conversation_id == conversation_id))
    login(client)
    url = f"/conversations/{conversation_id}/mentions/{mention.id}/correct"
    client.post(url, data={"field": "sentiment", "value": "positive"})
    client.post(url, data={"field": "is_complaint", "value": "true"})
    assert client.post(url, data={"field": "model_version", "value": "x"}).status_code == 302
    with runtime.sessions() as session:
        corrections = session.scalars(select(ScoreCorrection).order_by(ScoreCorrection.id)).all()
        assert [(c.field, c.old_value, c.new_value) for c in corrections] == [
            ("sentiment", "neutral", "positive"),
            ("is_complaint", "false", "true"),
        ]
        assert corrections[0].model_version == "fixed-test-scorer"
    assert conversation_id in _rows(client.get("/?complaint=1").get_data(as_text=True))
    assert conversation_id in _rows(client.get("/?sentiment=positive").get_data(as_text=True))


def test_customer_history_across_conversations(runtime, client, demo) -> None:
    elsewhere = RawMention(
        platform="vk",
        external_id="vk-1",
        url="https://vk.com/wall-1_1",
        author_external_id="id777",
        author_handle="andrey.petrov",  # the same person on another platform
        text="Пишу и сюда: деньги так и не вернули",
        created_at=utcnow(),
    )
    with db.transaction(runtime.sessions) as session:
        store_page(session, None, None, [elsewhere], utcnow())
        new_id = session.scalar(select(Mention.conversation_id).where(Mention.platform == "vk"))
    login(client)
    page = client.get(f"/conversations/{new_id}").get_data(as_text=True)
    old_id = demo["andrey.petrov"]
    assert f'href="/conversations/{old_id}">#{old_id}</a> demo' in page
    back = client.get(f"/conversations/{old_id}").get_data(as_text=True)
    assert f'href="/conversations/{new_id}">#{new_id}</a> vk' in back


def test_reply_longer_than_the_platform_limit_is_refused(runtime, client, demo) -> None:
    conversation_id = demo["mira_k"]
    with runtime.sessions() as session:
        target = session.scalar(select(Mention).where(Mention.conversation_id == conversation_id))
    login(client)
    page = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert 'data-limit="280"' in page
    client.post(
        f"/conversations/{conversation_id}/reply",
        data={"body": "x" * 281, "idempotency_key": "long", "in_reply_to": target.id},
    )
    assert "longer than 280" in client.get(f"/conversations/{conversation_id}").get_data(
        as_text=True
    )
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Reply)) == 0


def test_a_failed_reply_can_be_retried_once(runtime, client, demo) -> None:
    conversation_id = demo["mira_k"]
    with runtime.sessions() as session:
        target = session.scalar(select(Mention).where(Mention.conversation_id == conversation_id))
    outbox = runtime.settings.var_path / "demo-outbox.jsonl"
    outbox.mkdir(parents=True)  # the platform refuses: a permanent failure
    login(client)
    client.post(
        f"/conversations/{conversation_id}/reply",
        data={"body": "Hello", "idempotency_key": "r1", "in_reply_to": target.id},
    )
    send_due(runtime)
    page = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert "IsADirectoryError" in page and 'class="retry"' in page
    with runtime.sessions() as session:
        reply_id = session.scalar(select(Reply.id))
    outbox.rmdir()
    retry = f"/conversations/{conversation_id}/replies/{reply_id}/retry"
    client.post(retry)
    client.post(retry)  # a double click
    assert "only a failed reply can be retried" in client.get(
        f"/conversations/{conversation_id}"
    ).get_data(as_text=True)
    assert send_due(runtime) == 1
    assert outbox.read_text().count("\n") == 1


def test_an_unknown_reply_needs_a_person_to_check_first(runtime, client, demo) -> None:
    conversation_id = demo["mira_k"]
    with runtime.sessions() as session:
        target = session.scalar(select(Mention).where(Mention.conversation_id == conversation_id))
    login(client)
    client.post(
        f"/conversations/{conversation_id}/reply",
        data={"body": "Hello", "idempotency_key": "u1", "in_reply_to": target.id},
    )
    with db.transaction(runtime.sessions) as session:
        reply = session.scalar(select(Reply))
        reply.state, reply_id = ReplyState.UNKNOWN, reply.id
    retry = f"/conversations/{conversation_id}/replies/{reply_id}/retry"
    client.post(retry)
    with runtime.sessions() as session:
        assert session.get(Reply, reply_id).state == ReplyState.UNKNOWN
    client.post(retry, data={"checked": "1"})
    with runtime.sessions() as session:
        assert session.get(Reply, reply_id).state == ReplyState.QUEUED


def test_bulk_assign_resolve_and_tag(runtime, client, demo) -> None:
    ids = [demo["mira_k"], demo["olga_v"]]
    login(client)
    client.post("/bulk", data={"action": "assign_me", "ids": ids})
    client.post("/bulk", data={"action": "tag", "tag": "shop", "ids": ids})
    response = client.post("/bulk", data={"action": "resolve", "ids": ids, "back": "/?view=mine"})
    assert response.headers["Location"] == "/?view=mine"
    with runtime.sessions() as session:
        rows = session.scalars(select(Conversation).where(Conversation.id.in_(ids))).all()
        assert {c.status for c in rows} == {"resolved"}
        assert all(c.assignee is not None and c.assignee.username == "agent" for c in rows)
        assert (
            session.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "status")
            )
            == 2
        )
    assert set(_rows(client.get("/?status=resolved&tag=shop").get_data(as_text=True))) == set(ids)
    off_site = client.post("/bulk", data={"action": "resolve", "ids": ids, "back": "//evil.x"})
    assert off_site.headers["Location"] == "/"
    backslash = client.post("/bulk", data={"action": "resolve", "ids": ids, "back": "/\\evil.x"})
    assert backslash.headers["Location"] == "/"


def test_presence_shows_who_else_is_viewing_and_typing(app, demo) -> None:
    first, second = app.test_client(), app.test_client()
    login(first, "agent")
    login(second, "lead")
    url = f"/api/conversations/{demo['mira_k']}/presence"
    assert first.post(url, json={}).get_json()["others"] == []
    seen = second.post(url, json={"typing": True}).get_json()
    assert seen["others"] == [{"username": "agent", "typing": False}]
    assert first.post(url, json={}).get_json()["others"] == [{"username": "lead", "typing": True}]
    inbox = first.get("/").get_data(as_text=True)
    assert 'class="badge viewers"' in inbox and "👁 lead…" in inbox
    second.post(url, json={"leaving": True})
    assert first.post(url, json={}).get_json()["others"] == []
    assert first.post("/api/conversations/999999/presence", json={}).status_code == 404


def test_presence_board_expires_entries() -> None:
    from otklik.presence import PresenceBoard

    board = PresenceBoard()
    t0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    board.beat(1, 1, "ann", True, t0)
    assert [(p.username, p.typing) for p in board.others(1, 2, t0)] == [("ann", True)]
    assert board.others(1, 2, t0 + timedelta(seconds=9))[0].typing is False
    assert board.others(1, 2, t0 + timedelta(seconds=21)) == []


def test_an_inbox_row_shows_the_newest_customer_post_and_the_count(runtime, client, demo) -> None:
    run_source(runtime, "demo")  # sample 007: mira_k again, in reply to 001
    login(client)
    html = client.get("/").get_data(as_text=True)
    row = html.split(f'data-id="{demo["mira_k"]}"')[1].split("</tr>")[0]
    assert "Still nothing. 1h30 late" in row and "(2 posts)" in row


def _post(external_id: str, parent: str | None, minutes_ago: int, text: str) -> RawMention:
    return RawMention(
        platform="demo",
        external_id=external_id,
        url="",
        author_external_id="u-merge",
        author_handle="merge_me",
        text=text,
        created_at=utcnow() - timedelta(minutes=minutes_ago),
        parent_external_id=parent,
    )


def test_merged_halves_of_a_thread_keep_their_inbox_flags_and_sla_start(runtime) -> None:
    late_reply = _post("m-r2", "m-r1", 10, "I want a refund, still late")  # stored first
    root = _post("m-p", None, 30, "Hello Ladoga")
    with db.transaction(runtime.sessions) as session:
        store_page(session, None, None, [late_reply], utcnow())
        store_page(session, None, None, [root], utcnow())
    score_pending(runtime)  # the reply's half is a complaint, the root's is not
    with db.transaction(runtime.sessions) as session:  # the linking post arrives
        store_page(session, None, None, [_post("m-r1", "m-p", 20, "Any news?")], utcnow())
    with runtime.sessions() as session:
        (conversation,) = session.scalars(select(Conversation)).all()
        assert conversation.has_complaint and conversation.sentiment == "negative"
        assert conversation.cycle_started_at == conversation.opened_at == root.created_at
        events = session.scalars(
            select(CaseEvent)
            .where(CaseEvent.conversation_id == conversation.id)
            .order_by(CaseEvent.at, CaseEvent.id)
        ).all()
        assert cycle_from_events((e.kind, e.at, e.data) for e in events) == cycle_of(conversation)


def test_template_variables_are_plain_substitution() -> None:
    from otklik.templates_store import render, unknown_variables

    values = {"author": "{brand}", "brand": "Ladoga"}
    assert render("Hi {author}, {brand} {author.__class__} {0} {x}", values) == (
        "Hi {brand}, Ladoga {author.__class__} {0} {x}"
    )
    assert unknown_variables("{author} {agent} {secret_key}") == ["secret_key"]


def test_a_platform_that_cannot_reply_shows_no_reply_box_and_refuses_a_reply(
    runtime, client
) -> None:
    feed_post = RawMention(
        platform="rss",
        external_id="https://blog.invalid/p/1",
        url="https://blog.invalid/p/1",
        author_external_id="blog",
        author_handle="coffee blog",
        text="Ladoga's new roast is too bitter",
        created_at=utcnow() - timedelta(hours=1),
    )
    with db.transaction(runtime.sessions) as session:
        store_page(session, None, None, [feed_post], utcnow())
        target = session.scalar(select(Mention).where(Mention.platform == "rss"))
        ids = (target.conversation_id, target.id)
    login(client)
    page = client.get(f"/conversations/{ids[0]}").get_data(as_text=True)
    assert "Otklik cannot answer on rss" in page and 'class="send"' not in page
    client.post(
        f"/conversations/{ids[0]}/reply",
        data={"body": "Thanks!", "idempotency_key": "rss-1", "in_reply_to": ids[1]},
    )
    assert "cannot answer on rss" in client.get(f"/conversations/{ids[0]}").get_data(as_text=True)
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Reply)) == 0


def test_a_post_deleted_on_the_platform_is_marked_in_the_thread(runtime, client) -> None:
    post = RawMention(
        platform="demo",
        external_id="gone-1",
        url="",
        author_external_id="c1",
        author_handle="mira",
        text="my order is late",
        created_at=utcnow() - timedelta(hours=1),
    )
    with db.transaction(runtime.sessions) as session:
        store_page(session, None, None, [post], utcnow())
        store_page(session, None, None, [replace(post, deleted=True)], utcnow())
        conversation_id = session.scalar(select(Mention.conversation_id))
    login(client)
    page = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert "deleted on the platform" in page and "my order is late" in page
