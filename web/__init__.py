"""The moderation console: a Flask application factory, one blueprint per feature."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, current_app, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from otklik.domain.sla import SlaPolicy
from otklik.presence import PresenceBoard
from otklik.services import Services
from otklik.store import db, projections

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
csrf = CSRFProtect()


class _SessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure when configured so, or whenever the request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        secure = bool(app.config["SESSION_COOKIE_SECURE"])
        return secure or (bool(request) and request.is_secure)


def create_app(runtime: Services, test_config: dict[str, Any] | None = None) -> Flask:
    """Build the console for ``runtime`` (settings, database, connectors, SLA policy)."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_secret_key(runtime.settings.var_path),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=runtime.settings.web.session_cookie_secure,
        WTF_CSRF_TIME_LIMIT=None,
        LOGIN_MAX_FAILURES=5,  # per username ...
        LOGIN_MAX_FAILURES_PER_ADDRESS=20,  # ... and per address, within LOGIN_LOCK_SECONDS
        LOGIN_LOCK_SECONDS=300,
        SESSION_IDLE_SECONDS=8 * 3600,  # a console session ends after 8 hours unused
        SESSION_MAX_AGE_SECONDS=30 * 86400,  # and 30 days after the login in any case
        SESSION_TOUCH_SECONDS=60,  # its last-seen time is written at most once a minute
        MAX_CONTENT_LENGTH=1024 * 1024,  # a larger request body: 413
        STRICT_TRANSPORT_SECURITY="max-age=31536000",  # sent over https only; "" sends none
    )
    if test_config:
        app.config.update(test_config)
    # the cookie's signature expires with the session's absolute lifetime
    app.permanent_session_lifetime = int(app.config["SESSION_MAX_AGE_SECONDS"])
    app.session_interface = _SessionInterface()
    app.extensions["otklik"] = runtime
    app.extensions["otklik.sla_policy"] = runtime.sla_policy
    app.extensions["otklik.presence"] = PresenceBoard()
    csrf.init_app(app)

    from web import account, admin, api, auth, conversations, i18n, inbox, sources, throttle, views

    i18n.init_app(app)
    throttle.init_app(app)
    views.register_converters(app)  # bounded ids (404) before any <int:> route exists
    for blueprint in (
        auth.bp,
        inbox.bp,
        conversations.bp,
        sources.bp,
        admin.bp,
        account.bp,
        api.bp,
    ):
        app.register_blueprint(blueprint)
    app.before_request(_refuse_large_bodies)
    app.before_request(auth.require_login)
    app.after_request(_security_headers)
    views.register_filters(app)
    _backfill(runtime, app.extensions["otklik.sla_policy"])
    return app


def runtime_of(app: Flask) -> Services:
    """The services the app was built with."""
    services: Services = app.extensions["otklik"]
    return services


def _backfill(runtime: Services, policy: SlaPolicy | None) -> None:
    """Bring SLA due times in line with the policy (after an upgrade or a config change).

    Then refresh SQLite's statistics: without them SQLite filters the inbox through the status
    index and sorts every open conversation (~100 ms at 100,000); with them it walks the sort
    index and stops after one page. Only the conversations table is analysed (tens of ms per
    100,000 rows).
    """
    with db.transaction(runtime.sessions) as session:
        projections.sync_policy(session, policy, runtime.settings.var_path / "sla-policy.sha256")
    if runtime.engine.dialect.name == "sqlite":
        with runtime.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE conversations")


def _secret_key(var_dir: Path) -> str:
    """OTKLIK_SECRET_KEY, or a random key kept in var/secret_key (mode 0600)."""
    if key := os.environ.get("OTKLIK_SECRET_KEY"):
        return key
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def _refuse_large_bodies() -> None:
    """413 for a body over ``MAX_CONTENT_LENGTH``, whether or not the view reads it.

    The CSRF check, which runs first, gets the same 413 from Werkzeug when it reads the form;
    Werkzeug also stops reading a body without a length (chunked) at the limit.
    """
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if limit is not None and (request.content_length or 0) > int(limit):
        abort(413)


def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    if request.endpoint != "static":
        # pages, JSON and redirects carry a user's data or a CSRF token: never stored
        response.headers["Cache-Control"] = "no-store"
    hsts = current_app.config["STRICT_TRANSPORT_SECURITY"]
    if request.is_secure and hsts:
        response.headers["Strict-Transport-Security"] = hsts
    return response
