"""Login, logout, and the rule that every page needs a login."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from otklik import db
from otklik.models import User
from otklik.users import authenticate

bp = Blueprint("auth", __name__)
PUBLIC_ENDPOINTS = {"auth.login", "static"}


def require_login():  # type: ignore[no-untyped-def]
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
def login():  # type: ignore[no-untyped-def]
    """Show the login form; on success start a fresh session."""
    if request.method == "POST":
        runtime = current_app.extensions["otklik"]
        with db.transaction(runtime.sessions) as db_session:
            user = authenticate(
                db_session, request.form.get("username", ""), request.form.get("password", "")
            )
            user_id = user.id if user else None
        if user_id is not None:
            session.clear()
            session["user_id"] = user_id
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong username or password.", "error")
    return render_template("login.html")


@bp.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    """End the session."""
    session.clear()
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths; anything else goes to the inbox."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("inbox.index")
