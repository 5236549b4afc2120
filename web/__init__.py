"""The moderation console: a Flask application factory, one blueprint per feature."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
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
        LOGIN_MAX_FAILURES=5,
        LOGIN_LOCK_SECONDS=300,
    )
    if test_config:
        app.config.update(test_config)
    app.session_interface = _SessionInterface()
    app.extensions["otklik"] = runtime
    app.extensions["otklik.sla_policy"] = runtime.sla_policy
    app.extensions["otklik.presence"] = PresenceBoard()
    csrf.init_app(app)

    from web import account, admin, api, auth, conversations, i18n, inbox, sources, throttle, views

    i18n.init_app(app)
    throttle.init_app(app)
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
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"
    return response
