"""Administration: reply templates (leads, admins), users (admins), the audit log."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select

from otklik import accounts, audit, templates_store
from otklik.domain.sla import BANDS
from otklik.store import db
from otklik.store.models import Role, User, utcnow
from otklik.users import MIN_PASSWORD_LENGTH, UserError
from web.auth import db_user, requires, session_rules
from web.views import form_id

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/templates")
@requires("manage_templates")
def templates() -> ResponseReturnValue:
    """List and edit reply templates."""
    runtime = current_app.extensions["otklik"]
    with runtime.sessions() as session:
        return render_template(
            "templates.html",
            templates=templates_store.all_templates(session),
            variables=templates_store.VARIABLES,
            languages=templates_store.LANGUAGES,
        )


@bp.post("/templates")
@requires("manage_templates")
def save_template() -> ResponseReturnValue:
    """Create or update a template."""
    runtime = current_app.extensions["otklik"]
    template_id = request.form.get("id", "")
    try:
        with db.transaction(runtime.sessions) as session:
            user = db_user(session)
            templates_store.save_template(
                session,
                request.form.get("name", ""),
                request.form.get("language", ""),
                request.form.get("body", ""),
                user,
                utcnow(),
                form_id(template_id, "the template") if template_id else None,
                ip=request.remote_addr or "",
            )
        flash(_("Template saved."), "ok")
    except templates_store.TemplateError as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.templates"))


@bp.post("/templates/<int:template_id>/delete")
@requires("manage_templates")
def delete_template(template_id: int) -> ResponseReturnValue:
    """Delete a template."""
    runtime = current_app.extensions["otklik"]
    with db.transaction(runtime.sessions) as session:
        ip = request.remote_addr or ""
        deleted = templates_store.delete_template(session, template_id, db_user(session), ip)
        if deleted is None:
            abort(404)
    flash(_("Template deleted."), "ok")
    return redirect(url_for("admin.templates"))


@bp.get("/users")
@requires("manage_users")
def users() -> ResponseReturnValue:
    """List users and their roles."""
    runtime = current_app.extensions["otklik"]
    with runtime.sessions() as session:
        rows = list(session.scalars(select(User).order_by(User.username)))
        live = accounts.live_sessions(session, utcnow(), session_rules(current_app))
    return render_template(
        "users.html",
        users=rows,
        roles=[r.value for r in Role],
        live_sessions=live,
        min_password_length=MIN_PASSWORD_LENGTH,
    )


@bp.post("/users")
@requires("manage_users")
def add_user() -> ResponseReturnValue:
    """Add a user."""
    runtime = current_app.extensions["otklik"]
    try:
        with db.transaction(runtime.sessions) as session:
            accounts.add_user(
                session,
                db_user(session),
                request.form.get("username", ""),
                request.form.get("password", ""),
                request.form.get("role", ""),
                ip=request.remote_addr or "",
            )
        flash(_("User added."), "ok")
    except UserError as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>")
@requires("manage_users")
def update_user(user_id: int) -> ResponseReturnValue:
    """Change a user's role or deactivate / reactivate them."""
    runtime = current_app.extensions["otklik"]
    with db.transaction(runtime.sessions) as session:
        user, actor = session.get(User, user_id), db_user(session)
        if user is None:
            abort(404)
        role, active = request.form.get("role", user.role), request.form.get("active") == "1"
        if role not in {r.value for r in Role}:
            abort(400, "unknown role")
        try:
            ip = request.remote_addr or ""
            accounts.change_user(session, actor, user, role, active, ip=ip, now=utcnow())
        except accounts.SelfLockout:
            flash(_("You cannot demote or deactivate yourself."), "error")
            return redirect(url_for("admin.users"))
    flash(_("User updated."), "ok")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/sign-out")
@requires("manage_users")
def sign_out_user(user_id: int) -> ResponseReturnValue:
    """End every session of a user ("sign out everywhere")."""
    runtime = current_app.extensions["otklik"]
    with db.transaction(runtime.sessions) as session:
        user = session.get(User, user_id)
        if user is None:
            abort(404)
        ended = accounts.sign_out_everywhere(
            session, db_user(session), user, utcnow(), ip=request.remote_addr or ""
        )
    flash(_("Signed out of %(n)d session(s).", n=ended), "ok")
    return redirect(url_for("admin.users"))


@bp.get("/audit")
@requires("view_audit")
def audit_log() -> ResponseReturnValue:
    """The newest audit entries."""
    runtime = current_app.extensions["otklik"]
    with runtime.sessions() as session:
        entries = audit.recent(session, 300, request.args.get("action") or None)
    return render_template("audit.html", entries=entries)


@bp.get("/sla")
def sla_policy() -> ResponseReturnValue:
    """The SLA policy in force (read-only: it comes from the ``[sla]`` configuration section)."""
    runtime = current_app.extensions["otklik"]
    return render_template(
        "sla.html",
        sla=runtime.settings.sla,
        policy=current_app.extensions["otklik.sla_policy"],
        bands=BANDS,
    )
