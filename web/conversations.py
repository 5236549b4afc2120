"""A conversation: the thread, its scores and events, and the reply box."""

from __future__ import annotations

import uuid

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from otklik import db
from otklik.models import CaseEvent, Conversation, Mention, Reply, User, utcnow
from responder import DuplicateReply, queue_reply

bp = Blueprint("conversations", __name__, url_prefix="/conversations")


@bp.get("/<int:conversation_id>")
def show(conversation_id: int):  # type: ignore[no-untyped-def]
    """The whole thread in order, with scores, replies and the event log."""
    runtime = current_app.extensions["otklik"]
    with runtime.sessions() as session:
        conversation = session.get(
            Conversation,
            conversation_id,
            options=[selectinload(Conversation.mentions).selectinload(Mention.score)],
        )
        if conversation is None:
            abort(404)
        replies = session.scalars(
            select(Reply).where(Reply.conversation_id == conversation_id).order_by(Reply.id)
        ).all()
        events = session.scalars(
            select(CaseEvent)
            .where(CaseEvent.conversation_id == conversation_id)
            .order_by(CaseEvent.at, CaseEvent.id)
        ).all()
        customer = [m for m in conversation.mentions if not m.is_ours]
        return render_template(
            "conversation.html",
            conversation=conversation,
            replies=replies,
            events=events,
            reply_to=customer[-1] if customer else None,
            idempotency_key=uuid.uuid4().hex,
        )


@bp.post("/<int:conversation_id>/reply")
def reply(conversation_id: int):  # type: ignore[no-untyped-def]
    """Queue a reply to the newest customer post; the outbox job sends it."""
    runtime = current_app.extensions["otklik"]
    body = request.form.get("body", "")
    key = request.form.get("idempotency_key", "")
    if not key or len(key) > 64:
        abort(400, "missing idempotency key")
    try:
        with db.transaction(runtime.sessions) as session:
            conversation = session.get(Conversation, conversation_id)
            if conversation is None:
                abort(404)
            to = session.get(Mention, int(request.form.get("in_reply_to", 0)))
            if to is None or to.conversation_id != conversation_id:
                abort(400, "the post to reply to is not in this conversation")
            user = session.get(User, g.user.id)
            queue_reply(session, conversation, to, body, user, key, utcnow())
        flash("Reply queued; it is sent within seconds.", "ok")
    except DuplicateReply:
        flash("This reply was already queued; it is sent only once.", "ok")
    except ValueError as exc:
        flash(str(exc), "error")
    return redirect(url_for("conversations.show", conversation_id=conversation_id))
