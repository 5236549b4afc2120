"""Hostile and malformed input gets a clear 4xx from the console, never a 500 (issue 16, item 4).

Also: user-supplied text is isolated with ``<bdi>`` / ``dir="auto"`` so right-to-left override
characters cannot disguise a name or reverse the text beside it (issue 16, item 6).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask, url_for
from flask.testing import FlaskClient
from sqlalchemy import select

import otklik.users
from config import load_settings
from otklik.cases.ingest import store_page
from otklik.domain import RawMention
from otklik.store import db, inbox_query
from otklik.store.inbox_query import SORTS, BadFilter, decode_cursor, parse_filter
from otklik.store.models import Conversation, Mention, Note, ReplyTemplate, Role, utcnow
from otklik.users import create_user
from tests.conftest import PASSWORD, KeywordScorer, hermetic_environ, login, write_config
from tests.web_support import fast_password_hashing  # noqa: F401
from web import views
from workers.jobs import run_source, score_pending
from workers.runtime import Runtime

MAX_ID = 2**63 - 1  # the largest id a SQLite / PostgreSQL BIGINT holds
HUGE = str(2**64)
OVER = str(MAX_ID + 1)
ENORMOUS = "9" * 5000  # past Python's int-from-string digit limit too


@pytest.fixture
def app(runtime, users):
    """The console (create_app installs the bounded id converter)."""
    from web import create_app

    return create_app(runtime, {"TESTING": True, "WTF_CSRF_ENABLED": False})


def test_create_app_bounds_every_int_route(runtime, users) -> None:
    from web import create_app

    built = create_app(runtime, {"TESTING": True, "WTF_CSRF_ENABLED": False})
    assert built.url_map.converters["int"] is views.IdConverter


def test_register_converters_bounds_ids_and_refuses_a_late_call() -> None:
    bare = Flask("bare")
    views.register_converters(bare)
    bare.add_url_rule("/things/<int:thing_id>", "thing", lambda thing_id: str(thing_id))
    client = bare.test_client()
    assert client.get(f"/things/{MAX_ID}").get_data(as_text=True) == str(MAX_ID)
    assert client.get("/things/007").get_data(as_text=True) == "7"
    for bad in (OVER, HUGE, ENORMOUS, "\u0661\u0662", "-1", "1.0", "²"):
        assert client.get(f"/things/{bad}").status_code == 404, bad
    assert views.IdConverter.regex == f"[0-9]{{1,{len(str(MAX_ID))}}}"
    with pytest.raises(RuntimeError, match="before|after"):
        views.register_converters(bare)


@pytest.fixture
def ids(runtime) -> dict[str, int]:
    """A scored demo conversation: its id and its first customer post."""
    return _demo(runtime)


def _demo(runtime: Runtime) -> dict[str, int]:
    run_source(runtime, "demo")
    score_pending(runtime)
    with runtime.sessions() as session:
        mention = session.scalars(select(Mention).order_by(Mention.id)).first()
        return {"c": mention.conversation_id, "m": mention.id}


@dataclass
class Console:
    """One console for the whole table (a runtime per row would cost seconds each)."""

    app: Flask
    ids: dict[str, int]
    admin: FlaskClient


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    from web import create_app

    tmp = tmp_path_factory.mktemp("bad-input")
    settings = load_settings(write_config(tmp), environ=hermetic_environ())
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(otklik.users, "_hasher", cheap)
        runtime = Runtime.from_settings(settings, scorer_factory=lambda _s: KeywordScorer())
        runtime.prepare_database()
        with db.transaction(runtime.sessions) as session:
            for role in Role:
                create_user(session, role.value, PASSWORD, role=role.value)
        app = create_app(runtime, {"TESTING": True, "WTF_CSRF_ENABLED": False})
        admin = app.test_client()
        login(admin, "admin")
        yield Console(app, _demo(runtime), admin)
    runtime.engine.dispose()


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _reply(in_reply_to: str) -> dict[str, str]:
    return {"body": "hello", "idempotency_key": "k" * 32, "in_reply_to": in_reply_to}


BULK_ASSIGN = {"action": "assign", "ids": "{c}"}
PRESENCE = "/api/conversations/{c}/presence"
LAST = "9999-12-31"
YEAR_1 = "0001-01-01T00:00:00+01:00"  # before the first moment a datetime holds, in UTC
DEEP = _cursor("[" * 5000 + "]" * 5000)
NOW = "2026-01-01T00:00:00+00:00"

# (what, method, path, form or JSON body, expected status); {c} conversation, {m} its post
BAD_INPUTS: list[tuple[str, str, str, dict[str, Any] | str | None, int]] = [
    # ids above 2^63 (and far above) in every kind of <int:...> route
    ("conversation id 2^64", "GET", f"/conversations/{HUGE}", None, 404),
    ("conversation id 2^63", "GET", f"/conversations/{OVER}", None, 404),
    ("conversation id 5000 digits", "GET", f"/conversations/{ENORMOUS}", None, 404),
    ("conversation id in Arabic-Indic digits", "GET", "/conversations/{c_arabic}", None, 404),
    ("next after 2^64", "GET", f"/conversations/{HUGE}/next", None, 404),
    ("reply on 2^64", "POST", f"/conversations/{HUGE}/reply", _reply("{m}"), 404),
    ("status of 2^64", "POST", f"/conversations/{HUGE}/status", {"status": "open"}, 404),
    ("assign 2^64", "POST", f"/conversations/{HUGE}/assign", {"assignee": "me"}, 404),
    ("note on 2^64", "POST", f"/conversations/{HUGE}/notes", {"body": "x"}, 404),
    ("tag 2^64", "POST", f"/conversations/{HUGE}/tags", {"tag": "x"}, 404),
    ("untag 2^64", "POST", f"/conversations/{HUGE}/tags/remove", {"tag": "x"}, 404),
    ("retry reply 2^64", "POST", f"/conversations/{{c}}/replies/{HUGE}/retry", {}, 404),
    ("correct post 2^64", "POST", f"/conversations/{{c}}/mentions/{HUGE}/correct", {}, 404),
    ("delete view 2^64", "POST", f"/views/{HUGE}/delete", {}, 404),
    ("presence on 2^64", "POST", f"/api/conversations/{HUGE}/presence", {}, 404),
    ("delete template 2^64", "POST", f"/admin/templates/{HUGE}/delete", {}, 404),
    ("update user 2^64", "POST", f"/admin/users/{HUGE}", {"role": "agent"}, 404),
    # int form fields: huge, Unicode digits that pass str.isdigit(), not numbers
    ("reply to post 2^64", "POST", "/conversations/{c}/reply", _reply(HUGE), 400),
    ("reply to post ²", "POST", "/conversations/{c}/reply", _reply("²"), 400),
    ("reply to post 'x'", "POST", "/conversations/{c}/reply", _reply("x"), 400),
    ("assign to user 2^64", "POST", "/conversations/{c}/assign", {"assignee": HUGE}, 400),
    ("assign to user ²", "POST", "/conversations/{c}/assign", {"assignee": "²"}, 400),
    ("assign to user '١'", "POST", "/conversations/{c}/assign", {"assignee": "\u0661"}, 400),
    ("bulk ids 2^64", "POST", "/bulk", {"action": "resolve", "ids": HUGE}, 400),
    ("bulk ids ²", "POST", "/bulk", {"action": "resolve", "ids": "²"}, 400),
    ("bulk assignee 2^64", "POST", "/bulk", {**BULK_ASSIGN, "assignee": HUGE}, 400),
    ("bulk assignee ²", "POST", "/bulk", {**BULK_ASSIGN, "assignee": "²"}, 400),
    # inbox filters: numbers and days the database cannot hold
    ("brand_id 2^64", "GET", f"/?brand_id={HUGE}", None, 400),
    ("assignee 2^64", "GET", f"/?assignee={HUGE}", None, 400),
    ("date_to 9999-12-31", "GET", "/?date_to=9999-12-31", None, 400),
    ("date_from 0001-01-01", "GET", "/?date_from=0001-01-01", None, 400),
    ("saved view date_to 9999-12-31", "POST", "/views", {"name": "x", "date_to": LAST}, 400),
    ("saved view brand_id 2^64", "POST", "/views", {"name": "x", "brand_id": HUGE}, 400),
    # malformed keyset cursors
    ("cursor nested 5000 deep", "GET", f"/?after={DEEP}", None, 400),
    ("cursor Infinity", "GET", "/?after=" + _cursor(f'[Infinity, "{NOW}", 1]'), None, 400),
    ("cursor NaN", "GET", "/?after=" + _cursor(f'[NaN, "{NOW}", 1]'), None, 400),
    ("cursor 1e20", "GET", "/?after=" + _cursor(f'[1e20, "{NOW}", 1]'), None, 400),
    ("cursor id 2^64", "GET", "/?after=" + _cursor(f'[1, "{NOW}", {HUGE}]'), None, 400),
    ("cursor priority true", "GET", "/?after=" + _cursor(f'[true, "{NOW}", 1]'), None, 400),
    ("cursor object", "GET", "/?after=" + _cursor('{"a": 1}'), None, 400),
    ("cursor too short", "GET", "/?after=" + _cursor("[1]"), None, 400),
    ("cursor year 1 at +01:00", "GET", "/?after=" + _cursor(f'[1, "{YEAR_1}", 1]'), None, 400),
    ("cursor huge", "GET", "/?after=" + "A" * 100_000, None, 400),
    # non-object JSON bodies on the presence API
    ("presence body a list", "POST", PRESENCE, "[1, 2]", 400),
    ("presence body a string", "POST", PRESENCE, '"typing"', 400),
    ("presence body a number", "POST", PRESENCE, "7", 400),
    ("presence body nested", "POST", PRESENCE, "[" * 5000 + "]" * 5000, 400),
    ("presence body not JSON", "POST", PRESENCE, "{typing: yes", 400),
]


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, str):
        arabic = str(ids["c"]).translate({ord(d): 0x0660 + int(d) for d in "0123456789"})
        value = value.replace("{c_arabic}", arabic)
        return value.replace("{c}", str(ids["c"])).replace("{m}", str(ids["m"]))
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [row[1:] for row in BAD_INPUTS],
    ids=[row[0] for row in BAD_INPUTS],
)
def test_bad_input_gets_a_clear_4xx(console, method, path, body, expected) -> None:
    path, body = _fill(path, console.ids), _fill(body, console.ids)
    if isinstance(body, str):
        response = console.admin.open(
            path, method=method, data=body, content_type="application/json"
        )
    else:
        response = console.admin.open(path, method=method, data=body)
    assert response.status_code == expected, response.get_data(as_text=True)[-400:]


@pytest.mark.parametrize("template_id", ["²", HUGE])
def test_a_bad_template_id_is_a_400(console, template_id) -> None:
    data = {"id": template_id, "name": "n", "language": "en", "body": "b"}
    assert console.admin.post("/admin/templates", data=data).status_code == 400


def test_the_bad_input_table_is_the_issues_thirty_and_more() -> None:
    assert len(BAD_INPUTS) >= 30


@pytest.mark.parametrize("field", ["next", "back"])
@pytest.mark.parametrize("value", ["/\r\nSet-Cookie: x=1", "/%0d%0aX-Evil: 1", "/\n", "/\x00"])
def test_line_breaks_in_next_and_back_never_give_a_500(console, field, value) -> None:
    client = console.app.test_client()
    if field == "next":
        response = client.post(
            "/login",
            query_string={"next": value},
            data={"username": "agent", "password": PASSWORD},
        )
    else:
        login(client)
        data = {"action": "tag", "tag": "x", "ids": console.ids["c"], "back": value}
        response = client.post("/bulk", data=data)
    assert response.status_code < 500
    location = response.headers.get("Location", "")
    assert "\r" not in location and "\n" not in location and "\x00" not in location


def test_a_valid_presence_body_and_an_empty_one_still_work(client, ids) -> None:
    login(client)
    url = f"/api/conversations/{ids['c']}/presence"
    typing = client.post(url, json={"typing": True})
    assert typing.status_code == 200 and set(typing.get_json()) == {"others", "replies"}
    assert client.post(url).status_code == 200  # no body: a plain heartbeat


def test_unicode_digits_are_not_ids_in_filters_or_forms(runtime, client, ids, users) -> None:
    assert parse_filter({"brand_id": "²", "assignee": "\u0661"}) == parse_filter({})
    login(client, "lead")
    url = f"/conversations/{ids['c']}/assign"
    assert client.post(url, data={"assignee": str(users["agent"])}).status_code == 302
    assert client.post(url, data={"assignee": "\uff11"}).status_code == 400  # fullwidth 1
    with runtime.sessions() as session:
        assert session.get(Conversation, ids["c"]).assignee_id == users["agent"]


def test_the_largest_id_is_a_plain_404_and_the_converter_still_builds_urls(app, client) -> None:
    login(client)
    assert client.get(f"/conversations/{MAX_ID}").status_code == 404
    with app.test_request_context():
        assert url_for("conversations.show", conversation_id=7) == "/conversations/7"


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 5000 + "]" * 5000,
        '[Infinity, "2026-01-01T00:00:00+00:00", 1]',
        '[-Infinity, "2026-01-01T00:00:00+00:00", 1]',
        '[NaN, "2026-01-01T00:00:00+00:00", 1]',
        '[1e20, "2026-01-01T00:00:00+00:00", 1]',
        '[1.5, "2026-01-01T00:00:00+00:00", 1]',
        '[false, "2026-01-01T00:00:00+00:00", 1]',
        f'[1, "2026-01-01T00:00:00+00:00", {2**63}]',
        f'[1, "2026-01-01T00:00:00+00:00", {-(2**63) - 1}]',
        '[1, "2026-01-01T00:00:00", 1]',
        '[1, "9999-12-31T23:59:59-01:00", 1]',
        "[1, 20260101, 1]",
        '[1, "2026-01-01T00:00:00+00:00"]',
        '"x"',
        "1",
        "null",
    ],
)
def test_malformed_cursors_raise_a_clear_value_error(raw) -> None:
    with pytest.raises(ValueError, match="bad cursor"):
        decode_cursor(_cursor(raw), SORTS["priority"])


def test_nesting_past_the_recursion_limit_is_a_value_error(monkeypatch) -> None:
    """The length cap stops deep nesting first; without it the parser's RecursionError is caught."""
    monkeypatch.setattr(inbox_query, "MAX_CURSOR", 10**6)
    with pytest.raises(ValueError, match="RecursionError"):
        decode_cursor(_cursor("[" * 100_000 + "]" * 100_000), SORTS["priority"])


def test_a_good_cursor_still_decodes() -> None:
    values = decode_cursor(_cursor(f'[84, "{NOW}", 12]'), SORTS["priority"])
    assert values == [84, datetime(2026, 1, 1, tzinfo=UTC), 12]
    sla = decode_cursor(_cursor(f"[null, {MAX_ID}]"), SORTS["sla"])
    assert sla == [None, MAX_ID]


@pytest.mark.parametrize(
    "args", [{"date_to": "9999-12-31"}, {"date_from": "0001-01-01"}, {"brand_id": HUGE}]
)
def test_out_of_range_filters_are_refused_not_ignored(args) -> None:
    with pytest.raises(BadFilter):
        parse_filter(args)


def test_edge_days_that_fit_still_filter(client, ids) -> None:
    login(client)
    today = utcnow().date()
    tomorrow = today + timedelta(days=1)
    assert client.get(f"/?date_from=1970-01-01&date_to={tomorrow}").status_code == 200
    assert client.get("/?date_to=9999-12-30").status_code == 200


# --- item 6: right-to-left override characters are isolated -------------------------------------

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE
SPOOF = f"admin{RLO}gnp.exe"


def _isolated(html: str, text: str) -> bool:
    """``text`` appears only inside a <bdi> or an element with dir="auto"."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    found = [m.start() for m in re.finditer(re.escape(escaped), html)]
    if not found:
        return False
    for at in found:
        opening = html.rfind("<", 0, at)
        tag = html[opening : html.find(">", opening) + 1]
        if 'type="hidden"' in tag:
            continue
        if not (tag.startswith("<bdi") or 'dir="auto"' in tag):
            return False
    return True


def test_right_to_left_overrides_are_isolated_on_every_page(runtime, client, users) -> None:
    post = RawMention(
        platform="demo",
        external_id="rlo-1",
        url="https://example.com/1",
        author_external_id="rlo",
        author_handle=f"{SPOOF}-handle",
        text=f"{RLO}text reversed",
        created_at=utcnow(),
    )
    with db.transaction(runtime.sessions) as session:
        store_page(session, None, None, [post], utcnow())
        conversation_id = session.scalar(select(Mention.conversation_id))
        session.add(ReplyTemplate(name=f"{SPOOF}-template", language="en", body="hi"))
    login(client, "admin")
    client.post(f"/conversations/{conversation_id}/notes", data={"body": f"{RLO}note body"})
    client.post(f"/conversations/{conversation_id}/tags", data={"tag": "tag\u05d0\u05d1"})
    client.post("/views", data={"name": f"{SPOOF}-view"})
    with runtime.sessions() as session:
        assert session.scalar(select(Note.body)) == f"{RLO}note body"
    page = client.get(f"/conversations/{conversation_id}").get_data(as_text=True)
    inbox = client.get("/").get_data(as_text=True)
    templates = client.get("/admin/templates").get_data(as_text=True)
    for html, text in [
        (page, f"{SPOOF}-handle"),
        (page, f"{RLO}text reversed"),
        (page, f"{RLO}note body"),
        (page, "tag\u05d0\u05d1"),
        (inbox, f"{SPOOF}-handle"),
        (inbox, f"{RLO}text reversed"),
        (inbox, "tag\u05d0\u05d1"),
        (inbox, f"{SPOOF}-view"),
        (templates, f"{SPOOF}-template"),
    ]:
        assert _isolated(html, text), text
    # usernames too: the event log's actor
    assert re.search(r"<bdi[^>]*>admin</bdi>", page)


def test_no_page_renders_a_raw_override_outside_an_isolate(runtime, client) -> None:
    """The RLO in a handle must not leak into the timestamp's line unisolated."""
    post = RawMention(
        platform="demo",
        external_id="rlo-2",
        url="https://example.com/2",
        author_external_id="rlo2",
        author_handle=f"x{RLO}y",
        text="hello",
        created_at=utcnow(),
    )
    with db.transaction(runtime.sessions) as session:
        store_page(session, None, None, [post], utcnow())
        conversation_id = session.scalar(select(Mention.conversation_id))
    login(client)
    for url in ("/", f"/conversations/{conversation_id}"):
        html = client.get(url).get_data(as_text=True)
        assert _isolated(html, f"x{RLO}y"), url
