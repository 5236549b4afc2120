"""Login, logout, roles, and the rule that every page needs a login."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from otklik import accounts
from otklik.store import db
from otklik.store.models import Role, User, utcnow

bp = Blueprint("auth", __name__)
PUBLIC_ENDPOINTS = {"auth.login", "static"}

# What each role may do beyond reading and answering conversations (which every role may).
PERMISSIONS: dict[str, frozenset[str]] = {
    Role.AGENT: frozenset(),
    Role.LEAD: frozenset({"assign_others", "manage_templates", "view_audit"}),
    Role.ADMIN: frozenset({"assign_others", "manage_templates", "view_audit", "manage_users"}),
}


def can(permission: str, user: User | None = None) -> bool:
    """Whether ``user`` (default: the logged-in user) has ``permission``."""
    user = user if user is not None else g.get("user")
    return user is not None and permission in PERMISSIONS.get(user.role, frozenset())


def requires(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Refuse the view with 403 unless the logged-in user has ``permission``."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not can(permission):
                abort(403)
            return view(*args, **kwargs)

        return guarded

    return decorate


def require_login() -> ResponseReturnValue | None:
    """Before every request: load the user or send them to the login page."""
    g.user = None
    user_id = session.get("user_id")
    if user_id is not None:
        runtime = current_app.extensions["otklik"]
        with runtime.sessions() as db_session:
            user = db_session.get(User, user_id)
            if user is not None and user.active:
                db_session.expunge(user)
                g.user = user
    if g.user is None and request.endpoint not in PUBLIC_ENDPOINTS:
        if request.path.startswith("/api/"):
            return {"error": "login required"}, 401
        target = request.full_path if request.query_string else request.path
        return redirect(url_for("auth.login", next=target))
    return None


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Show the login form; on success start a fresh session."""
    if request.method != "POST":
        return render_template("login.html")
    username = request.form.get("username", "").strip()
    throttle = current_app.extensions["otklik.throttle"]
    keys, now = [f"user:{username.lower()}"], utcnow()
    if throttle.locked_until(keys, now) is not None:
        _audit_login(None, "login_throttled", username)
        flash(_("Too many failed attempts. Wait a few minutes and try again."), "error")
        return render_template("login.html"), 429
    runtime = current_app.extensions["otklik"]
    with db.transaction(runtime.sessions) as db_session:
        password, ip = request.form.get("password", ""), request.remote_addr or ""
        user = accounts.log_in(db_session, username, password, ip)
        user_id = user.id if user else None
    if user_id is None:
        throttle.failed(keys, now)
        flash(_("Wrong username or password."), "error")
        return render_template("login.html")
    throttle.succeeded(keys)
    session.clear()
    session["user_id"] = user_id
    return redirect(safe_next(request.args.get("next")))


def _audit_login(user: User | None, action: str, username: str) -> None:
    runtime = current_app.extensions["otklik"]
    with db.transaction(runtime.sessions) as db_session:
        accounts.record_access(db_session, user, action, username, request.remote_addr or "")


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session."""
    _audit_login(g.user, "logout", g.user.username)
    session.clear()
    return redirect(url_for("auth.login"))


def safe_next(target: str | None) -> str:
    """Only same-site relative paths (no '//' or '\\' tricks); anything else: the inbox."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("inbox.index")


def db_user(db_session: Any) -> User:
    """The logged-in user, attached to ``db_session``."""
    user = db_session.get(User, g.user.id)
    if user is None:
        abort(403)
    return user
