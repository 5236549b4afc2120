"""The whole loop offline: collect -> score -> case -> reply -> demo outbox, exactly once."""

from __future__ import annotations

from sqlalchemy import func, select

from collectors.demo import read_outbox
from otklik.store.models import CaseEvent, Conversation, Mention, Reply, ReplyState, Score
from tests.conftest import login
from workers.jobs import run_source, score_pending, send_due


def test_collect_score_reply_round_trip(runtime, client) -> None:
    outcome = run_source(runtime, "demo")
    assert outcome.status == "ok" and outcome.stored.new == 6
    assert score_pending(runtime) == 6
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Score)) == 6
        complaint = session.scalar(
            select(Conversation).order_by(Conversation.priority.desc()).limit(1)
        )
        target = complaint.mentions[-1]
        assert target.score.is_complaint and complaint.priority >= 45
        conversation_id, target_id = complaint.id, target.id

    login(client)
    inbox = client.get("/")
    assert inbox.status_code == 200 and target.text[:40] in inbox.get_data(as_text=True)
    form = {
        "body": "Sorry, Mira! Refund on its way.",
        "idempotency_key": "k" * 32,
        "in_reply_to": str(target_id),
    }
    first = client.post(f"/conversations/{conversation_id}/reply", data=form)
    second = client.post(f"/conversations/{conversation_id}/reply", data=form)  # a double click
    assert first.status_code == second.status_code == 302
    page = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    assert "already queued" in page

    assert send_due(runtime) == 1
    assert send_due(runtime) == 0
    outbox = read_outbox(runtime.settings.var_path / "demo-outbox.jsonl")
    assert len(outbox) == 1 and outbox[0]["in_reply_to"] == target.external_id
    with runtime.sessions() as session:
        reply = session.scalar(select(Reply))
        assert reply.state == ReplyState.SENT and reply.external_id == outbox[0]["id"]
        conversation = session.get(Conversation, conversation_id)
        assert conversation.first_response_at == reply.sent_at
        assert conversation.status == "open"
        kinds = session.scalars(
            select(CaseEvent.kind).where(CaseEvent.conversation_id == conversation_id)
        ).all()
        assert kinds.count("replied") == 1 and "reply_queued" in kinds
        ours = session.scalar(select(Mention).where(Mention.external_id == reply.external_id))
        assert ours.is_ours and ours.conversation_id == conversation_id


def test_our_sent_reply_is_not_scored_or_turned_into_a_case(runtime, client) -> None:
    run_source(runtime, "demo")
    score_pending(runtime)
    with runtime.sessions() as session:
        before = session.scalar(select(func.count()).select_from(Conversation))
        target = session.scalar(select(Mention).order_by(Mention.id))
    login(client)
    client.post(
        f"/conversations/{target.conversation_id}/reply",
        data={"body": "Thanks!", "idempotency_key": "a1", "in_reply_to": str(target.id)},
    )
    send_due(runtime)
    assert score_pending(runtime) == 0
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Conversation)) == before


def test_a_platform_failure_is_shown_on_the_reply_and_nothing_is_posted(runtime, client) -> None:
    run_source(runtime, "demo")
    with runtime.sessions() as session:
        target = session.scalar(select(Mention).order_by(Mention.id))
    outbox_path = runtime.settings.var_path / "demo-outbox.jsonl"
    outbox_path.mkdir(parents=True)  # the demo outbox cannot be written: a permanent failure
    login(client)
    client.post(
        f"/conversations/{target.conversation_id}/reply",
        data={"body": "Hello", "idempotency_key": "b2", "in_reply_to": str(target.id)},
    )
    assert send_due(runtime) == 0
    with runtime.sessions() as session:
        reply = session.scalar(select(Reply))
        assert reply.state == ReplyState.FAILED and "IsADirectoryError" in reply.error
    page = client.get(f"/conversations/{target.conversation_id}").get_data(as_text=True)
    assert "IsADirectoryError" in page
