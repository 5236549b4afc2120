"""The logged-in user's own settings: the console language."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import force_locale
from flask_babel import gettext as _

from otklik import accounts
from otklik.store import db
from web.auth import db_user
from web.i18n import LOCALES

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.get("/")
def show() -> ResponseReturnValue:
    """The account page."""
    return render_template("account.html")


@bp.post("/locale")
def set_locale() -> ResponseReturnValue:
    """Choose the console language (English or Russian)."""
    locale = request.form.get("locale", "")
    if locale not in LOCALES:
        flash(_("Unknown language."), "error")
        return redirect(url_for("account.show"))
    runtime = current_app.extensions["otklik"]
    with db.transaction(runtime.sessions) as session:
        accounts.set_locale(session, db_user(session), locale, ip=request.remote_addr or "")
    with force_locale(locale):
        flash(_("Language saved."), "ok")
    return redirect(url_for("account.show"))
