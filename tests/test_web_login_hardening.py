"""Issue 16, items 3, 5 and 7: the login throttle under parallel requests to a real server, open
redirects through ``next`` and ``back``, cache and transport headers, the request size limit, the
password policy, look-alike usernames, and the SQLite file's permissions.

The parallel tests hash with argon2's real costs (the others with the cheap ones of
``tests.web_support``): a check that takes tens of milliseconds is what opens the window
between "is it locked?" and "count the failure" that the throttle must close.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
from argon2 import PasswordHasher
from sqlalchemy import func, select

import otklik.users
from otklik.store import db
from otklik.store.models import AuditEntry, Conversation, Note, User, utcnow
from otklik.users import UserError, create_user, username_key
from tests.conftest import PASSWORD, login
from web.throttle import LoginThrottle
from workers.jobs import run_source

PARALLEL = 30


@pytest.fixture(autouse=True)
def cheap_hashing_unless_served(request: pytest.FixtureRequest, monkeypatch) -> None:
    """Minimal argon2 costs (as tests.web_support), except for the real-server tests."""
    if "serve" not in request.fixturenames:
        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        monkeypatch.setattr(otklik.users, "_hasher", cheap)


@pytest.fixture
def serve(runtime, users):
    """Start the console (with ``config``) under waitress on a free port; yields its base URL."""
    from waitress.server import create_server

    from web import create_app

    servers = []

    def start(config: dict | None = None) -> str:
        app = create_app(runtime, {"WTF_CSRF_ENABLED": False, **(config or {})})
        server = create_server(app, host="127.0.0.1", port=0, threads=PARALLEL)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.effective_port}"

    yield start
    for server, thread in servers:
        with contextlib.suppress(OSError, ValueError):  # waitress polling a closed socket
            server.close()
        thread.join(timeout=5)


def _parallel_logins(base: str, credentials: list[tuple[str, str]]) -> list[int]:
    """POST every (username, password) to /login at the same moment; the status codes."""
    barrier = threading.Barrier(len(credentials))
    statuses: list[int] = [0] * len(credentials)

    def attempt(index: int, username: str, password: str) -> None:
        with requests.Session() as http:
            barrier.wait(timeout=30)
            response = http.post(
                f"{base}/login",
                data={"username": username, "password": password},
                allow_redirects=False,
                timeout=60,
            )
            statuses[index] = response.status_code

    threads = [
        threading.Thread(target=attempt, args=(i, *pair)) for i, pair in enumerate(credentials)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return statuses


def _checked(runtime, action: str = "login_failed") -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == action))


def test_parallel_wrong_logins_check_at_most_five_passwords(runtime, serve) -> None:
    base = serve()
    statuses = _parallel_logins(base, [("agent", f"wrong guess {i}") for i in range(PARALLEL)])
    assert _checked(runtime) <= 5, statuses
    assert statuses.count(200) == _checked(runtime)  # each check answered "wrong password"
    assert statuses.count(429) == PARALLEL - _checked(runtime)
    assert _checked(runtime, "login_throttled") == PARALLEL - _checked(runtime)
    right = requests.post(
        f"{base}/login",
        data={"username": "agent", "password": PASSWORD},
        allow_redirects=False,
        timeout=30,
    )
    assert right.status_code == 429  # locked, even with the right password


def test_parallel_wrong_logins_for_many_names_are_throttled_per_address(runtime, serve) -> None:
    base = serve({"LOGIN_MAX_FAILURES_PER_ADDRESS": 10})
    statuses = _parallel_logins(base, [(f"user{i}", "wrong guess") for i in range(PARALLEL)])
    assert _checked(runtime) <= 10, statuses
    assert statuses.count(429) >= PARALLEL - 10


def test_a_success_releases_its_reservation_and_clears_the_username() -> None:
    throttle = LoginThrottle(5, timedelta(minutes=5), max_per_address=20)
    now = utcnow()
    for _ in range(4):
        assert throttle.reserve("agent", "10.0.0.1", now) is not None
    good = throttle.reserve("agent", "10.0.0.1", now)
    assert good is not None
    assert throttle.reserve("agent", "10.0.0.2", now) is None  # five in flight or failed
    throttle.succeeded(good)
    assert throttle.reserve("agent", "10.0.0.1", now) is not None
    later = now + timedelta(minutes=6)
    for _ in range(5):
        throttle.failed(throttle.reserve("lead", "10.0.0.3", later))
    assert throttle.reserve("lead", "10.0.0.4", later) is None
    assert throttle.reserve("lead", "10.0.0.4", later + timedelta(minutes=6)) is not None


def test_an_error_during_the_check_gives_the_attempt_back() -> None:
    throttle = LoginThrottle(1, timedelta(minutes=5), max_per_address=1)
    now = utcnow()
    throttle.release(throttle.reserve("agent", "10.0.0.1", now))
    assert throttle.reserve("agent", "10.0.0.1", now) is not None


def test_look_alike_names_share_one_throttle(client) -> None:
    for _ in range(5):
        assert login(client, "ADMIN", "wrong password").status_code == 200
    assert login(client, "admin", PASSWORD).status_code == 429


# --- item 5: open redirects ------------------------------------------------------------------

HOSTILE_TARGETS = [
    "/\t/evil.example",
    "/\r\n/evil.example",
    "/\n/evil.example",
    "/ /evil.example",
    "/\x00/evil.example",
    "/\u3000/evil.example",
    "/\u200b/evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "//evil.example",
    "///evil.example",
    "https://evil.example/",
    "https:/evil.example",
    "javascript:alert(1)",
    "evil.example",
    "",
]


def _location_is_local(location: str) -> bool:
    cleaned = "".join(ch for ch in location if ch.isprintable() and not ch.isspace())
    parts = urlsplit(cleaned.replace("\\", "/"))
    return location == "/" and not parts.scheme and not parts.netloc


@pytest.mark.parametrize("target", HOSTILE_TARGETS)
def test_login_next_never_leaves_the_site(client, target) -> None:
    response = client.post(
        "/login", query_string={"next": target}, data={"username": "agent", "password": PASSWORD}
    )
    assert response.status_code == 302
    assert _location_is_local(response.headers["Location"]), response.headers["Location"]


def test_the_reported_tab_payload_is_refused(client) -> None:
    response = client.post(
        "/login?next=/%09/evil.com", data={"username": "agent", "password": PASSWORD}
    )
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("target", HOSTILE_TARGETS)
def test_bulk_back_never_leaves_the_site(client, target) -> None:
    login(client)
    response = client.post("/bulk", data={"action": "resolve", "back": target})
    assert response.status_code == 302
    assert _location_is_local(response.headers["Location"]), response.headers["Location"]


def test_same_site_targets_are_kept(client) -> None:
    target = "/?status=all&tag=refund"
    response = client.post(
        "/login", query_string={"next": target}, data={"username": "agent", "password": PASSWORD}
    )
    assert response.headers["Location"] == target
    back = client.post("/bulk", data={"action": "resolve", "back": "/conversations/3"})
    assert back.headers["Location"] == "/conversations/3"


# --- item 7: headers, request size, passwords, usernames, file permissions -------------------


def test_logged_in_pages_are_not_cached(client) -> None:
    assert login(client).headers["Cache-Control"] == "no-store"
    for path in ("/", "/account/", "/sources/", "/admin/sla"):
        response = client.get(path)
        assert response.headers["Cache-Control"] == "no-store", path


def test_hsts_only_over_https(client) -> None:
    secure = client.get("/login", base_url="https://console.example")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Strict-Transport-Security" not in client.get("/login").headers


def test_large_requests_are_refused(runtime, client) -> None:
    run_source(runtime, "demo")
    with runtime.sessions() as session:
        url = f"/conversations/{session.scalar(select(func.min(Conversation.id)))}/notes"
    big = "x" * 2_000_000
    assert client.post("/login", data={"username": "agent", "password": big}).status_code == 413
    login(client)
    upload = (  # a multipart upload, encoded here (the test client would spool it to a file)
        '--b\r\nContent-Disposition: form-data; name="body"\r\n\r\nhello\r\n'
        '--b\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\n{big}\r\n--b--\r\n"
    ).encode()
    multipart = "multipart/form-data; boundary=b"
    assert client.post(url, data=upload, content_type=multipart).status_code == 413
    assert client.post(url, data={"body": big}).status_code == 413
    assert client.post(url, data={"body": "small"}).status_code == 302
    with runtime.sessions() as session:
        assert list(session.scalars(select(Note.body))) == ["small"]


def test_the_limit_is_an_app_setting(runtime, users) -> None:
    from web import create_app

    app = create_app(runtime, {"TESTING": True, "MAX_CONTENT_LENGTH": 1000})
    response = app.test_client().post("/login", data={"username": "agent", "password": "x" * 2000})
    assert response.status_code == 413


@pytest.mark.parametrize(
    "password",
    ["correct", "eleven char", "password1234", "PASSWORD1234", "administrator", "qwertyuiop123"],
)
def test_weak_new_passwords_are_refused(runtime, password) -> None:
    with db.transaction(runtime.sessions) as session, pytest.raises(UserError):
        create_user(session, "nina", password)


def test_the_admin_page_says_why_a_password_was_refused(runtime, client) -> None:
    login(client, "admin")
    client.post("/admin/users", data={"username": "nina", "password": "password", "role": "agent"})
    assert "at least 12 characters" in client.get("/admin/users").get_data(as_text=True)
    client.post(
        "/admin/users", data={"username": "nina", "password": "password1234", "role": "agent"}
    )
    assert "too common" in client.get("/admin/users").get_data(as_text=True)
    with runtime.sessions() as session:
        assert session.scalar(select(User).where(User.username == "nina")) is None


@pytest.mark.parametrize(
    "username",
    [
        "ADMIN",  # case
        "Admin",
        "\u0430dmin",  # Cyrillic а + Latin dmin: mixed scripts
        "\u04cf\u0435\u0430\u0501",  # all Cyrillic, looks like "lead"
        "\uff41\uff44\uff4d\uff49\uff4e",  # fullwidth "admin" (NFKC)
        "ni\x00na",
        "ni\u202ena",  # right-to-left override
        "ni\u200bna",  # zero-width space
        "ni na",
        "ni\nna",
        "ni/na",
        "<nina>",
        "",
        "a" * 81,
    ],
)
def test_look_alike_or_unprintable_usernames_are_refused(runtime, users, username) -> None:
    with db.transaction(runtime.sessions) as session, pytest.raises(UserError):
        create_user(session, username, PASSWORD)


@pytest.mark.parametrize(
    ("username", "stored"),
    [
        ("nina", "nina"),
        ("Иван", "Иван"),
        ("ivan.petrov_2", "ivan.petrov_2"),
        ("o-neil", "o-neil"),
        ("\ufb01ona", "fiona"),  # the ligature is stored as its NFKC form
        ("  nina.k ", "nina.k"),
    ],
)
def test_plain_usernames_are_accepted(runtime, users, username, stored) -> None:
    with db.transaction(runtime.sessions) as session:
        assert create_user(session, username, PASSWORD).username == stored


def test_the_username_key_folds_case_width_and_look_alikes() -> None:
    assert username_key("ADMIN") == username_key("admin") == username_key("\uff21dmin")
    assert username_key("\u0430dmin") == username_key("admin")
    assert username_key("adm1n") != username_key("admin")


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_sqlite_file_and_its_folder_are_private(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        folder = tmp_path / "var"
        engine = db.make_engine(f"sqlite:///{folder / 'otklik.db'}")
        db.upgrade(engine)
        assert _mode(folder) == 0o700
        assert _mode(folder / "otklik.db") == 0o600
        wal = folder / "otklik.db-wal"
        assert not wal.exists() or _mode(wal) == 0o600
        engine.dispose()
    finally:
        os.umask(old)


def test_the_runtime_var_folder_is_private(runtime) -> None:
    assert _mode(runtime.settings.var_path) == 0o700
    assert _mode(runtime.settings.var_path / "otklik.db") == 0o600
