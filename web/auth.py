"""Login, logout, roles, and the rule that every page needs a login."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
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
from otklik.users import username_key

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


SESSION_KEY = "sid"  # the session token in the signed cookie (the server keeps its SHA-256)


def session_rules(app: Flask) -> accounts.SessionRules:
    """The session lifetimes configured on ``app`` (``SESSION_*_SECONDS``)."""
    return accounts.SessionRules(
        idle=timedelta(seconds=int(app.config["SESSION_IDLE_SECONDS"])),
        max_age=timedelta(seconds=int(app.config["SESSION_MAX_AGE_SECONDS"])),
        touch=timedelta(seconds=int(app.config["SESSION_TOUCH_SECONDS"])),
    )


def require_login() -> ResponseReturnValue | None:
    """Before every request: load the user of a live session or send them to the login page."""
    g.user = None
    if request.endpoint == "static":
        return None
    token = session.get(SESSION_KEY)
    if isinstance(token, str) and token:
        runtime = current_app.extensions["otklik"]
        rules = session_rules(current_app)
        with db.transaction(runtime.sessions) as db_session:
            # the pages' automatic JSON heartbeats (/api/) do not count as activity
            activity = not request.path.startswith("/api/")
            user = accounts.session_user(db_session, token, utcnow(), rules, activity)
            if user is not None:
                db_session.expunge(user)
        g.user = user
        if user is None:
            session.clear()  # ended on the server: drop the cookie too
    if g.user is None and request.endpoint not in PUBLIC_ENDPOINTS:
        if request.path.startswith("/api/"):
            return {"error": "login required"}, 401
        target = request.full_path if request.query_string else request.path
        return redirect(url_for("auth.login", next=target))
    return None


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Show the login form; on success start a fresh session.

    The attempt is counted against the username and the address before the password is checked
    (``web.throttle``), so parallel guesses cannot outrun the lock.
    """
    if request.method != "POST":
        return render_template("login.html")
    username = request.form.get("username", "").strip()
    password, ip = request.form.get("password", ""), request.remote_addr or ""
    throttle = current_app.extensions["otklik.throttle"]
    attempt = throttle.reserve(username_key(username), ip, utcnow())
    if attempt is None:
        runtime = current_app.extensions["otklik"]
        with db.transaction(runtime.sessions) as db_session:
            accounts.record_access(db_session, None, "login_throttled", username, ip)
        flash(_("Too many failed attempts. Wait a few minutes and try again."), "error")
        return render_template("login.html"), 429
    try:
        token = _log_in(username, password, ip)
    except BaseException:
        throttle.release(attempt)
        raise
    if token is None:
        throttle.failed(attempt)
        flash(_("Wrong username or password."), "error")
        return render_template("login.html")
    throttle.succeeded(attempt)
    session.clear()
    session[SESSION_KEY] = token
    return redirect(safe_next(request.args.get("next")))


def _log_in(username: str, password: str, ip: str) -> str | None:
    """Check the credentials; on success a new session's token (replacing this browser's)."""
    runtime = current_app.extensions["otklik"]
    previous = session.get(SESSION_KEY)
    with db.transaction(runtime.sessions) as db_session:
        user = accounts.log_in(db_session, username, password, ip)
        if user is None:
            return None
        return accounts.start_session(
            db_session,
            user,
            ip,
            utcnow(),
            session_rules(current_app),
            replaces=previous if isinstance(previous, str) else None,
        )


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session, on the server as in the browser."""
    runtime = current_app.extensions["otklik"]
    with db.transaction(runtime.sessions) as db_session:
        ip = request.remote_addr or ""
        accounts.log_out(db_session, db_user(db_session), session[SESSION_KEY], ip, utcnow())
    session.clear()
    return redirect(url_for("auth.login"))


def safe_next(target: str | None) -> str:
    r"""``target`` when it is a path on this site, else the inbox.

    Browsers (and Werkzeug, on the Location header) drop tabs and line breaks and read ``\`` as
    ``/``, so ``/<TAB>/evil.example`` or ``/\evil.example`` would leave the site: any whitespace,
    control or invisible character and any backslash is refused, as is anything ``urlsplit``
    finds a scheme or a host in. ``web.inbox`` checks the bulk actions' ``back`` with it too.
    """
    return target if target and is_local_path(target) else url_for("inbox.index")


def is_local_path(target: str) -> bool:
    """Whether ``target`` is a same-site absolute path (``/...``, never ``//...``)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return False
    if any(ch.isspace() or not ch.isprintable() for ch in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def db_user(db_session: Any) -> User:
    """The logged-in user, attached to ``db_session``."""
    user = db_session.get(User, g.user.id)
    if user is None:
        abort(403)
    return user
