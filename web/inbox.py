"""The inbox: filters, built-in and saved views, SLA clocks, keyset pages, bulk actions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

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
from sqlalchemy.orm import Session

from otklik.cases import casework
from otklik.domain.sla import SlaClock
from otklik.store import db
from otklik.store.inbox_query import (
    BANDS,
    SENTIMENTS,
    SORTS,
    STATUS_CHOICES,
    VIEWS,
    BadFilter,
    InboxFilter,
    fetch_page,
    latest_posts,
    parse_filter,
    query_args,
    tags_for,
)
from otklik.store.models import Brand, Conversation, Mention, SavedView, User, utcnow
from web.auth import can, db_user, safe_next
from web.views import clock_for_row, form_id

bp = Blueprint("inbox", __name__)
BULK_ACTIONS = ("assign_me", "assign", "resolve", "tag")


@dataclass(frozen=True, slots=True)
class InboxRow:
    """What one inbox line shows."""

    conversation: Conversation
    latest: Mention | None
    customer_posts: int
    clock: SlaClock | None
    tags: list[str]
    viewers: list[str]  # other people on the conversation now (typing marked with …)


@bp.get("/")
def index() -> ResponseReturnValue:
    """One page of conversations for the filter in the query string."""
    inbox_filter = _filter(request.args)
    now = utcnow()
    runtime = current_app.extensions["otklik"]
    with runtime.sessions() as session:
        try:
            page = fetch_page(session, inbox_filter, g.user.id, now, request.args.get("after"))
        except ValueError:
            abort(400, "bad page cursor")
        ids = [c.id for c in page.conversations]
        tags, posts = tags_for(session, ids), latest_posts(session, ids)
        rows = [_row(c, tags[c.id], posts.get(c.id), now) for c in page.conversations]
        args = query_args(inbox_filter)
        return render_template(
            "inbox.html",
            rows=rows,
            f=inbox_filter,
            args=args,
            view=request.args.get("view", ""),
            next_url=_page_url(args, page.next_cursor),
            choices=_choices(session),
            saved_views=_saved_views(session, g.user.id),
        )


def _filter(args: Mapping[str, str]) -> InboxFilter:
    """The filter in ``args``; 400 for an id or a day beyond what the database holds."""
    try:
        return parse_filter(args)
    except BadFilter:
        abort(400, _("An id or a day in the filter is out of range."))


def _row(
    conversation: Conversation, tags: list[str], post: tuple[Mention, int] | None, now: datetime
) -> InboxRow:
    latest, count = post if post is not None else (None, 0)
    board = current_app.extensions["otklik.presence"]
    viewers = [
        p.username + ("…" if p.typing else "")
        for p in board.others(conversation.id, g.user.id, now)
    ]
    clock = clock_for_row(conversation, now)
    return InboxRow(conversation, latest, count, clock, tags, viewers)


def _page_url(args: dict[str, str], cursor: str | None) -> str | None:
    if cursor is None:
        return None
    return url_for("inbox.index") + "?" + urlencode({**args, "after": cursor})


def _choices(session: Session) -> dict[str, object]:
    return {
        "statuses": STATUS_CHOICES,
        "sentiments": SENTIMENTS,
        "bands": list(BANDS),
        "sorts": list(SORTS),
        "views": list(VIEWS),
        "platforms": sorted(
            {s.platform for s in current_app.extensions["otklik"].settings.sources}
        ),
        "brands": session.execute(select(Brand.id, Brand.name).order_by(Brand.name)).all(),
        "users": session.execute(
            select(User.id, User.username).where(User.active.is_(True)).order_by(User.username)
        ).all(),
    }


def _saved_views(session: Session, user_id: int) -> list[SavedView]:
    return list(
        session.scalars(
            select(SavedView).where(SavedView.user_id == user_id).order_by(SavedView.name)
        )
    )


@bp.post("/views")
def save_view() -> ResponseReturnValue:
    """Save the current filter under a name (per user)."""
    name = request.form.get("name", "").strip()[:80]
    inbox_filter = _filter(request.form)
    # Any: url_for's stub would otherwise match a key against its own ``_external`` flag
    filter_args: dict[str, Any] = query_args(inbox_filter)
    if not name:
        flash(_("Give the view a name."), "error")
        return redirect(url_for("inbox.index", **filter_args))
    runtime = current_app.extensions["otklik"]
    with db.transaction(runtime.sessions) as session:
        view = session.scalar(
            select(SavedView).where(SavedView.user_id == g.user.id, SavedView.name == name)
        ) or SavedView(user_id=g.user.id, name=name)
        view.query = urlencode(query_args(inbox_filter))
        session.add(view)
    flash(_("View saved."), "ok")
    return redirect(url_for("inbox.index", **filter_args))


@bp.post("/views/<int:view_id>/delete")
def delete_view(view_id: int) -> ResponseReturnValue:
    """Delete one of your saved views."""
    runtime = current_app.extensions["otklik"]
    with db.transaction(runtime.sessions) as session:
        view = session.get(SavedView, view_id)
        if view is None or view.user_id != g.user.id:
            abort(404)
        session.delete(view)
    return redirect(url_for("inbox.index"))


@bp.post("/bulk")
def bulk() -> ResponseReturnValue:
    """Assign, resolve or tag the selected conversations."""
    action = request.form.get("action", "")
    ids = [form_id(i, "a conversation") for i in request.form.getlist("ids")[:500]]
    if action not in BULK_ACTIONS or not ids:
        flash(_("Select conversations and an action."), "error")
        return redirect(_back())
    if action == "assign" and not can("assign_others"):
        abort(403)
    runtime = current_app.extensions["otklik"]
    try:
        with db.transaction(runtime.sessions) as session:
            changed = _apply_bulk(session, action, ids)
    except casework.CaseError as exc:
        flash(str(exc), "error")
        return redirect(_back())
    flash(_("%(n)d conversation(s) updated.", n=changed), "ok")
    return redirect(_back())


def _apply_bulk(session: Session, action: str, ids: list[int]) -> int:
    user, now, ip = db_user(session), utcnow(), request.remote_addr or ""
    assignee: User | None = user
    if action == "assign":
        target = request.form.get("assignee", "")
        assignee = session.get(User, form_id(target, "the assignee")) if target else None
        if target and assignee is None:
            abort(400, "no such user")
    tag = casework.normalise_tag(request.form.get("tag", "")) if action == "tag" else ""
    changed = 0
    for conversation in session.scalars(select(Conversation).where(Conversation.id.in_(ids))):
        if action in ("assign_me", "assign"):
            changed += casework.assign(session, conversation, assignee, user, now, ip=ip)
        elif action == "resolve":
            changed += casework.change_status(session, conversation, "resolved", user, now, ip=ip)
        else:
            changed += casework.add_tag(session, conversation, tag, user, now)
    return changed


def _back() -> str:
    """The inbox URL the form was posted from (same-site only)."""
    return safe_next(request.form.get("back"))
