"""English and Russian: Flask-Babel with the locale chosen per user (``User.locale``)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, g, request
from flask_babel import Babel, get_locale

LOCALES = {"en": "English", "ru": "Русский"}
TRANSLATIONS = Path(__file__).with_name("translations")


def N_(message: str) -> str:
    """Mark ``message`` for ``pybabel extract`` without translating it here."""
    return message


# Values the templates show through ``_(value)``: sentiments, conversation statuses, priority
# bands, corrected flags and reply states. Extraction cannot see a variable's value, so they are
# marked here to reach messages.pot (and so messages.po) like every other string.
DYNAMIC_MESSAGES = (
    N_("negative"),
    N_("neutral"),
    N_("positive"),
    N_("open"),
    N_("new"),
    N_("pending"),
    N_("resolved"),
    N_("all"),
    N_("high"),
    N_("normal"),
    N_("low"),
    N_("true"),
    N_("false"),
    N_("queued"),
    N_("sending"),
    N_("sent"),
    N_("failed"),
    N_("unknown"),
)


def select_locale() -> str:
    """The logged-in user's language, else the browser's best match, else English."""
    user = getattr(g, "user", None)
    if user is not None and user.locale in LOCALES:
        return user.locale
    return request.accept_languages.best_match(list(LOCALES)) or "en"


def init_app(app: Flask) -> None:
    """Install Flask-Babel (``_()`` in templates and code)."""
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals.update(LOCALES=LOCALES, get_locale=get_locale)
