"""JSON for the console scripts: presence heartbeats (who is viewing or typing), reply states."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, g, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from otklik.store.models import Conversation, Reply, utcnow

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.post("/conversations/<int:conversation_id>/presence")
def presence(conversation_id: int) -> ResponseReturnValue:
    """Record a heartbeat; answer who else is here and the states of the replies.

    The body is a JSON object (``typing``, ``leaving``), or nothing: a plain heartbeat.
    """
    try:
        payload = request.get_json(silent=True) if request.get_data() else {}
    except RecursionError:  # nesting deeper than the parser goes; not a ValueError
        payload = None
    if not isinstance(payload, dict):
        return {"error": "the body must be a JSON object"}, 400
    typing = bool(payload.get("typing"))
    board = current_app.extensions["otklik.presence"]
    now = utcnow()
    runtime = current_app.extensions["otklik"]
    with runtime.sessions() as session:
        if session.get(Conversation, conversation_id) is None:
            abort(404)
        replies = session.execute(
            select(Reply.id, Reply.state, Reply.error)
            .where(Reply.conversation_id == conversation_id)
            .order_by(Reply.id)
        ).all()
    if payload.get("leaving"):
        board.leave(conversation_id, g.user.id)
    else:
        board.beat(conversation_id, g.user.id, g.user.username, typing, now)
    others = board.others(conversation_id, g.user.id, now)
    return {
        "others": [{"username": p.username, "typing": p.typing} for p in others],
        "replies": [{"id": r.id, "state": r.state, "error": r.error} for r in replies],
    }
