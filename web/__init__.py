"""The moderation console: a Flask application factory, one blueprint per feature."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from otklik.runtime import Runtime

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
csrf = CSRFProtect()


def create_app(runtime: Runtime, test_config: dict[str, Any] | None = None) -> Flask:
    """Build the console for ``runtime`` (settings, database, scorer)."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_secret_key(runtime.settings.var_path),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=runtime.settings.web.session_cookie_secure,
        WTF_CSRF_TIME_LIMIT=None,
    )
    if test_config:
        app.config.update(test_config)
    app.extensions["otklik"] = runtime
    csrf.init_app(app)

    from web import auth, conversations, inbox, sources

    app.register_blueprint(auth.bp)
    app.register_blueprint(inbox.bp)
    app.register_blueprint(conversations.bp)
    app.register_blueprint(sources.bp)
    app.before_request(auth.require_login)
    app.after_request(_security_headers)
    app.jinja_env.filters["ago"] = _ago
    return app


def runtime_of(app: Flask) -> Runtime:
    """The Runtime the app was built with."""
    return app.extensions["otklik"]


def _secret_key(var_dir: Path) -> str:
    """OTKLIK_SECRET_KEY, or a random key kept in var/secret_key (mode 0600)."""
    if key := os.environ.get("OTKLIK_SECRET_KEY"):
        return key
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def _security_headers(response):  # type: ignore[no-untyped-def]
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _ago(value) -> str:  # type: ignore[no-untyped-def]
    """'5 min', '3 h', '2 d' since ``value`` (aware datetime)."""
    from otklik.models import utcnow

    if value is None:
        return ""
    seconds = max(0, int((utcnow() - value).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d"
