"""The inbox: open conversations, most urgent (or newest, or most negative) first."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, current_app, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from otklik.models import Conversation, Mention, Status

bp = Blueprint("inbox", __name__)
PAGE_SIZE = 50
SORTS = {
    "priority": (Conversation.priority.desc(), Conversation.last_customer_at.desc()),
    "newest": (Conversation.last_customer_at.desc(),),
    "negative": (Conversation.peak_negative.desc(), Conversation.last_customer_at.desc()),
}
OPEN_STATUSES = (Status.NEW, Status.OPEN, Status.PENDING)


@dataclass(frozen=True, slots=True)
class InboxRow:
    """What one inbox line shows."""

    conversation: Conversation
    latest: Mention | None
    customer_posts: int


@bp.get("/")
def index():  # type: ignore[no-untyped-def]
    """List open conversations."""
    sort = request.args.get("sort", "priority")
    if sort not in SORTS:
        sort = "priority"
    runtime = current_app.extensions["otklik"]
    with runtime.sessions() as session:
        rows = _rows(session, sort)
        return render_template("inbox.html", rows=rows, sort=sort, sorts=list(SORTS))


def _rows(session: Session, sort: str) -> list[InboxRow]:
    conversations = session.scalars(
        select(Conversation)
        .where(Conversation.status.in_(OPEN_STATUSES))
        .order_by(*SORTS[sort], Conversation.id.desc())
        .limit(PAGE_SIZE)
        .options(
            selectinload(Conversation.mentions).selectinload(Mention.score),
            selectinload(Conversation.mentions).selectinload(Mention.author),
        )
    )
    rows = []
    for conversation in conversations:
        customer = [m for m in conversation.mentions if not m.is_ours]
        rows.append(InboxRow(conversation, customer[-1] if customer else None, len(customer)))
    return rows
