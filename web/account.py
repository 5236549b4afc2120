"""The logged-in user's own settings: the console language and the password."""

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
from flask.typing import ResponseReturnValue
from flask_babel import force_locale
from flask_babel import gettext as _

from otklik import accounts
from otklik.store import db
from otklik.store.models import utcnow
from otklik.users import MIN_PASSWORD_LENGTH, UserError, username_key
from web.auth import SESSION_KEY, db_user, session_rules
from web.i18n import LOCALES

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.get("/")
def show() -> ResponseReturnValue:
    """The account page."""
    return render_template("account.html", min_password_length=MIN_PASSWORD_LENGTH)


@bp.post("/locale")
def set_locale() -> ResponseReturnValue:
    """Choose the console language (English or Russian)."""
    locale = request.form.get("locale", "")
    if locale not in LOCALES:
        flash(_("Unknown language."), "error")
        return redirect(url_for("account.show"))
    runtime = current_app.extensions["otklik"]
    with db.transaction(runtime.sessions) as db_session:
        accounts.set_locale(db_session, db_user(db_session), locale, ip=request.remote_addr or "")
    with force_locale(locale):
        flash(_("Language saved."), "ok")
    return redirect(url_for("account.show"))


@bp.post("/password")
def change_password() -> ResponseReturnValue:
    """Change one's own password: every other session ends, this browser gets a fresh one.

    A wrong current password counts as a failed login (the same throttle), so a borrowed
    session cannot be used to guess it.
    """
    ip, now = request.remote_addr or "", utcnow()
    throttle = current_app.extensions["otklik.throttle"]
    attempt = throttle.reserve(username_key(g.user.username), ip, now)
    if attempt is None:
        flash(_("Too many failed attempts. Wait a few minutes and try again."), "error")
        return redirect(url_for("account.show"))
    runtime = current_app.extensions["otklik"]
    try:
        with db.transaction(runtime.sessions) as db_session:
            token = accounts.change_password(
                db_session,
                db_user(db_session),
                request.form.get("current_password", ""),
                request.form.get("new_password", ""),
                now,
                ip=ip,
                rules=session_rules(current_app),
            )
    except UserError as exc:
        throttle.succeeded(attempt)  # the current password was right; the new one will not do
        flash(str(exc), "error")
        return redirect(url_for("account.show"))
    except BaseException:
        throttle.release(attempt)
        raise
    if token is None:
        throttle.failed(attempt)
        flash(_("Your current password is wrong."), "error")
        return redirect(url_for("account.show"))
    throttle.succeeded(attempt)
    session.clear()
    session[SESSION_KEY] = token
    flash(_("Password changed. Your other sessions have ended."), "ok")
    return redirect(url_for("account.show"))
