"""A conversation: the thread, scores and corrections, history, notes, assignment, replies."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

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
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from otklik import templates_store
from otklik.cases import casework, replies
from otklik.domain.outbox import NotRetryable
from otklik.store import db
from otklik.store.inbox_query import SORTS, InboxFilter, encode_cursor, fetch_page
from otklik.store.models import (
    Author,
    Brand,
    CaseEvent,
    Conversation,
    ConversationTag,
    Mention,
    Note,
    Reply,
    User,
    utcnow,
)
from web.auth import can, db_user
from web.views import clock_from_events, form_id, reply_limit

bp = Blueprint("conversations", __name__, url_prefix="/conversations")


def _load(session: Session, conversation_id: int) -> Conversation:
    conversation = session.get(
        Conversation,
        conversation_id,
        options=[
            selectinload(Conversation.mentions).selectinload(Mention.score),
            selectinload(Conversation.mentions).selectinload(Mention.author),
        ],
    )
    if conversation is None:
        abort(404)
    return conversation


@bp.get("/<int:conversation_id>")
def show(conversation_id: int) -> ResponseReturnValue:
    """The whole thread in order, with scores, replies, notes, history and the event log."""
    runtime = current_app.extensions["otklik"]
    with runtime.sessions() as session:
        conversation = _load(session, conversation_id)
        customer = [m for m in conversation.mentions if not m.is_ours]
        reply_to = customer[-1] if customer else None
        return render_template(
            "conversation.html",
            **_records(session, conversation_id),
            conversation=conversation,
            corrections=casework.effective_scores(session, customer),
            history=_history(session, conversation),
            reply_to=reply_to,
            templates=_templates(session, conversation, reply_to),
            limit=reply_limit(conversation.platform),
            idempotency_key=uuid.uuid4().hex,
            can_assign_others=can("assign_others"),
            correctable=casework.CORRECTABLE,
        )


def _records(session: Session, conversation_id: int) -> dict[str, Any]:
    """Events (and the SLA clock computed from them), replies, notes, tags, users."""
    events = _all(
        session,
        select(CaseEvent)
        .where(CaseEvent.conversation_id == conversation_id)
        .order_by(CaseEvent.at, CaseEvent.id),
    )
    # the caller has loaded it (_load, 404 if missing): this comes from the identity map
    conversation = cast(Conversation, session.get(Conversation, conversation_id))
    return {
        "events": events,
        "clock": clock_from_events(conversation, events, utcnow()),
        "replies": _all(
            session,
            select(Reply).where(Reply.conversation_id == conversation_id).order_by(Reply.id),
        ),
        "notes": _all(
            session,
            select(Note)
            .where(Note.conversation_id == conversation_id)
            .options(selectinload(Note.user))
            .order_by(Note.created_at, Note.id),
        ),
        "tags": _all(
            session,
            select(ConversationTag.tag)
            .where(ConversationTag.conversation_id == conversation_id)
            .order_by(ConversationTag.tag),
        ),
        "users": _all(session, select(User).where(User.active.is_(True)).order_by(User.username)),
    }


def _all(session: Session, query: Any) -> list[Any]:
    return list(session.scalars(query))


def _history(session: Session, conversation: Conversation) -> list[Conversation]:
    """The customer's other conversations: same author, or the same handle on any platform."""
    customer = [m.author for m in conversation.mentions if not m.is_ours]
    if not customer:
        return []
    handles = {a.handle.lower().lstrip("@") for a in customer}
    authors = select(Author.id).where(
        Author.id.in_({a.id for a in customer})
        | Author.handle.in_(handles | {"@" + h for h in handles})
    )
    ids = select(Mention.conversation_id).where(
        Mention.author_id.in_(authors), Mention.conversation_id != conversation.id
    )
    return _all(
        session,
        select(Conversation)
        .where(Conversation.id.in_(ids))
        .order_by(Conversation.opened_at.desc())
        .limit(20),
    )


def _templates(
    session: Session, conversation: Conversation, reply_to: Mention | None
) -> list[dict[str, str]]:
    brand = session.get(Brand, conversation.brand_id) if conversation.brand_id else None
    variables = {
        "author": reply_to.author.handle if reply_to else "",
        "brand": brand.name if brand else "",
        "agent": g.user.username,
        "platform": conversation.platform,
    }
    return [
        {
            "id": str(t.id),
            "name": t.name,
            "language": t.language,
            "body": templates_store.render(t.body, variables),
        }
        for t in templates_store.for_language(session, conversation.language)
    ]


def _back(conversation_id: int) -> ResponseReturnValue:
    return redirect(url_for("conversations.show", conversation_id=conversation_id))


@bp.post("/<int:conversation_id>/reply")
def reply(conversation_id: int) -> ResponseReturnValue:
    """Queue a reply to the newest customer post; the outbox job sends it (once)."""
    runtime = current_app.extensions["otklik"]
    body = request.form.get("body", "")
    key = request.form.get("idempotency_key", "")
    if not key or len(key) > 64:
        abort(400, "missing idempotency key")
    in_reply_to = form_id(request.form.get("in_reply_to"), "the post to reply to")
    try:
        with db.transaction(runtime.sessions) as session:
            conversation = _load(session, conversation_id)
            to = session.get(Mention, in_reply_to)
            if to is None or to.conversation_id != conversation_id:
                abort(400, "the post to reply to is not in this conversation")
            if not runtime.registry.can_reply(conversation.platform):
                raise ValueError(
                    _(
                        "Otklik cannot answer on %(platform)s; answer on the site itself.",
                        platform=conversation.platform,
                    )
                )
            limit = reply_limit(conversation.platform)
            length = runtime.registry.reply_length(conversation.platform, body.strip())
            if limit is not None and length > limit:
                raise ValueError(_("The reply is longer than %(n)d characters.", n=limit))
            user, ip = db_user(session), request.remote_addr or ""
            replies.queue_reply(session, conversation, to, body, user, key, utcnow(), ip=ip)
        flash(_("Reply queued; it is sent within seconds."), "ok")
    except replies.DuplicateReply:
        flash(_("This reply was already queued; it is sent only once."), "ok")
    except ValueError as exc:
        flash(str(exc), "error")
    return _back(conversation_id)


@bp.post("/<int:conversation_id>/replies/<int:reply_id>/retry")
def retry(conversation_id: int, reply_id: int) -> ResponseReturnValue:
    """Send a failed reply again (an unknown one only after checking the platform)."""
    runtime = current_app.extensions["otklik"]
    try:
        with db.transaction(runtime.sessions) as session:
            reply_row = session.get(Reply, reply_id)
            if reply_row is None or reply_row.conversation_id != conversation_id:
                abort(404)
            replies.retry_reply(
                session,
                reply_row,
                db_user(session),
                utcnow(),
                checked_platform=request.form.get("checked") == "1",
                ip=request.remote_addr or "",
            )
        flash(_("Reply queued again."), "ok")
    except NotRetryable as exc:
        flash(str(exc), "error")
    return _back(conversation_id)


@bp.post("/<int:conversation_id>/status")
def status(conversation_id: int) -> ResponseReturnValue:
    """Move the conversation to open, pending or resolved."""
    runtime = current_app.extensions["otklik"]
    try:
        with db.transaction(runtime.sessions) as session:
            conversation = _load(session, conversation_id)
            casework.change_status(
                session,
                conversation,
                request.form.get("status", ""),
                db_user(session),
                utcnow(),
                ip=request.remote_addr or "",
            )
    except casework.CaseError as exc:
        flash(str(exc), "error")
    return _back(conversation_id)


@bp.post("/<int:conversation_id>/assign")
def assign(conversation_id: int) -> ResponseReturnValue:
    """Assign to me, to someone else (leads and admins) or to nobody."""
    runtime = current_app.extensions["otklik"]
    target = request.form.get("assignee", "")
    try:
        with db.transaction(runtime.sessions) as session:
            conversation = _load(session, conversation_id)
            user = db_user(session)
            assignee = _assignee(session, target, user)
            if not can("assign_others") and not _agent_may_assign(conversation, assignee, user):
                abort(403)
            ip = request.remote_addr or ""
            casework.assign(session, conversation, assignee, user, utcnow(), ip=ip)
    except casework.CaseError as exc:
        flash(str(exc), "error")
    return _back(conversation_id)


def _assignee(session: Session, target: str, user: User) -> User | None:
    """'me', '' (nobody) or a user id; 400 for anything else or a user who does not exist."""
    if target == "me":
        return user
    if not target:
        return None
    assignee = session.get(User, form_id(target, "the assignee"))
    if assignee is None:
        abort(400, "no such user")
    return assignee


def _agent_may_assign(conversation: Conversation, assignee: User | None, user: User) -> bool:
    """Agents take a conversation for themselves, or give back their own."""
    if assignee is not None:
        return assignee.id == user.id
    return conversation.assignee_id == user.id


@bp.post("/<int:conversation_id>/notes")
def add_note(conversation_id: int) -> ResponseReturnValue:
    """Add an internal note."""
    return _case_action(
        conversation_id,
        lambda s, c, u, now: casework.add_note(s, c, request.form.get("body", ""), u, now),
    )


@bp.post("/<int:conversation_id>/tags")
def add_tag(conversation_id: int) -> ResponseReturnValue:
    """Tag the conversation."""
    return _case_action(
        conversation_id,
        lambda s, c, u, now: casework.add_tag(s, c, request.form.get("tag", ""), u, now),
    )


@bp.post("/<int:conversation_id>/tags/remove")
def remove_tag(conversation_id: int) -> ResponseReturnValue:
    """Remove a tag."""
    return _case_action(
        conversation_id,
        lambda s, c, u, now: casework.remove_tag(s, c, request.form.get("tag", ""), u, now),
    )


@bp.post("/<int:conversation_id>/mentions/<int:mention_id>/correct")
def correct(conversation_id: int, mention_id: int) -> ResponseReturnValue:
    """Correct a model score of one post (kept for re-training)."""

    def apply(session: Session, conversation: Conversation, user: User, now: Any) -> None:
        mention = session.get(Mention, mention_id)
        if mention is None or mention.conversation_id != conversation.id or mention.is_ours:
            abort(404)
        casework.correct_score(
            session,
            mention,
            request.form.get("field", ""),
            request.form.get("value", ""),
            user,
            now,
        )

    return _case_action(conversation_id, apply, _("Correction saved; thank you."))


def _case_action(
    conversation_id: int,
    action: Callable[[Session, Conversation, User, datetime], object],
    done: str | None = None,
) -> ResponseReturnValue:
    runtime = current_app.extensions["otklik"]
    try:
        with db.transaction(runtime.sessions) as session:
            action(session, _load(session, conversation_id), db_user(session), utcnow())
        if done:
            flash(done, "ok")
    except casework.CaseError as exc:
        flash(str(exc), "error")
    return _back(conversation_id)


@bp.get("/<int:conversation_id>/next")
def next_conversation(conversation_id: int) -> ResponseReturnValue:
    """The conversation after this one in the default inbox order (keyboard: n)."""
    runtime = current_app.extensions["otklik"]
    with runtime.sessions() as session:
        conversation = _load(session, conversation_id)
        keys = SORTS["priority"]
        cursor = encode_cursor([getattr(conversation, column.key) for column, _d in keys])
        page = fetch_page(session, InboxFilter(), g.user.id, utcnow(), cursor, size=1)
    if not page.conversations:
        flash(_("No more open conversations."), "ok")
        return redirect(url_for("inbox.index"))
    return redirect(url_for("conversations.show", conversation_id=page.conversations[0].id))
