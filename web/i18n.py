"""English and Russian: Flask-Babel with the locale chosen per user (``User.locale``)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, g, request
from flask_babel import Babel, get_locale

LOCALES = {"en": "English", "ru": "Русский"}
TRANSLATIONS = Path(__file__).with_name("translations")


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
