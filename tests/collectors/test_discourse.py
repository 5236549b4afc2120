"""Discourse connector against recorded JSON API responses (requests intercepted)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from http.client import RemoteDisconnected

import pytest
import requests
import responses
from collector_support import fixture_text, sample_path, sent_timeouts
from responses import matchers
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from otklik.connectors import Registry
from otklik.domain import (
    AuthError,
    ConnectorError,
    MalformedResponse,
    OutcomeUnknown,
    RateLimited,
    RawMention,
    TransientError,
)

BASE = "https://forum.example.com"


@pytest.fixture(autouse=True)
def _secrets(monkeypatch):
    monkeypatch.setenv("OTKLIK_DISCOURSE_API_KEY", "key-test")
    monkeypatch.setenv("OTKLIK_DISCOURSE_API_USERNAME", "AcmeSupport")


def connector(**settings):
    return (
        Registry().load("source", "discourse").from_settings({"base_url": BASE + "/", **settings})
    )


def add(rsps, path, name, status=200, method=responses.GET, params=None, **kwargs):
    match = [matchers.query_param_matcher(params or {})] if method == responses.GET else []
    rsps.add(
        method,
        BASE + path,
        body=fixture_text("discourse", name),
        status=status,
        content_type="application/json; charset=utf-8",
        match=match,
        **kwargs,
    )


class _FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2024, 5, 13, 10, 0, tzinfo=tz)


def test_latest_pages_backwards_filters_query_and_resolves_parents(rsps):
    add(rsps, "/posts.json", "posts_latest.json")
    add(rsps, "/posts/by_number/77/1.json", "by_number_77_1.json")
    add(rsps, "/posts.json", "posts_before_1046.json", params={"before": "1046"})
    conn = connector()

    first = conn.fetch("acme -pizza", "1044")
    assert [m.external_id for m in first.mentions] == ["1046", "1047", "1049", "1050"]
    parents = {m.external_id: m.parent_external_id for m in first.mentions}
    assert parents == {"1046": "990", "1047": "990", "1049": "1046", "1050": "1049"}
    assert json.loads(first.cursor) == {"since": 1044, "before": 1046, "top": 1050}

    second = conn.fetch("acme -pizza", first.cursor)
    assert [m.external_id for m in second.mentions] == ["1045"]
    assert second.mentions[0].parent_external_id is None  # first post of its topic
    assert second.cursor == "1050"
    assert rsps.calls[0].request.headers["Api-Key"] == "key-test"
    assert rsps.calls[0].request.headers["Api-Username"] == "AcmeSupport"
    assert sent_timeouts(rsps) == [20.0, 20.0, 20.0]


def test_mention_fields(rsps):
    add(rsps, "/posts.json", "posts_latest.json")
    page = connector(parent_lookups=0).fetch("", "1049")
    (post,) = page.mentions
    assert post.external_id == "1050"
    assert post.url == "https://forum.example.com/t/acme-delivery/77/5"
    assert post.author_handle == "olga" and post.author_external_id == "31"
    assert post.text == "Ответ поддержки Acme пришёл через час, спасибо."
    assert post.created_at == datetime(2024, 5, 13, 10, 40, tzinfo=UTC)
    assert post.parent_external_id == "1049"
    assert page.cursor == "1050"


def test_first_run_uses_backfill_window(rsps, monkeypatch):
    monkeypatch.setattr("collectors.discourse.datetime", _FrozenDatetime)
    add(rsps, "/posts.json", "posts_latest.json")
    add(rsps, "/posts/by_number/77/1.json", "by_number_77_1.json")
    page = connector(backfill_hours=0.25).fetch("", None)  # since 09:45
    assert [m.external_id for m in page.mentions] == ["1047", "1048", "1049", "1050"]
    assert page.mentions[1].text == "Pizza\n\nBest pizza in town?"  # a topic's first post
    assert page.cursor == "1050"


def test_nothing_new_keeps_cursor(rsps):
    add(rsps, "/posts.json", "posts_latest.json")
    page = connector().fetch("", "1050")
    assert page.mentions == [] and page.cursor == "1050"


def test_search_mode_reads_full_posts_and_pages(rsps):
    q1 = {"q": "acme order:latest", "page": "1"}
    add(rsps, "/search.json", "search_page1.json", params=q1)
    add(rsps, "/t/77/posts.json", "topic_77_posts.json", params={"post_ids[]": "1050"})
    add(rsps, "/t/79/posts.json", "topic_79_posts.json", params={"post_ids[]": "1045"})
    add(rsps, "/search.json", "search_page2.json", params={**q1, "page": "2"})
    conn = connector(mode="search", parent_lookups=0)

    first = conn.fetch("acme", "1040")
    assert [m.external_id for m in first.mentions] == ["1045", "1050"]
    assert first.mentions[1].text.startswith("Ответ поддержки Acme")  # full text, not blurb
    assert json.loads(first.cursor) == {"since": 1040, "page": 2, "top": 1050}
    second = conn.fetch("acme", first.cursor)
    assert second.mentions == [] and second.cursor == "1050"


def test_search_first_run_adds_after_date(rsps, monkeypatch):
    monkeypatch.setattr("collectors.discourse.datetime", _FrozenDatetime)
    add(
        rsps,
        "/search.json",
        "search_page2.json",
        params={"q": "acme order:latest after:2024-05-12", "page": "1"},
    )
    page = connector(mode="search").fetch("acme", None)
    assert page.mentions == [] and page.cursor is None


def _to(raw=None):
    return RawMention(
        "discourse",
        "1050",
        "u",
        "31",
        "olga",
        "t",
        datetime(2024, 5, 13, tzinfo=UTC),
        raw=raw or {},
    )


def test_reply_posts_in_topic(rsps):
    add(rsps, "/posts.json", "create_post.json", method=responses.POST)
    new_id = connector().reply(
        _to({"topic_id": 77, "post_number": 5}),
        "We have refunded the delivery fee, sorry for the wait.",
    )
    assert new_id == "1051"
    sent = json.loads(rsps.calls[0].request.body)
    assert sent == {
        "topic_id": 77,
        "reply_to_post_number": 5,
        "raw": "We have refunded the delivery fee, sorry for the wait.",
    }
    assert rsps.calls[0].request.headers["Api-Key"] == "key-test"


def test_reply_looks_up_topic_when_raw_is_missing(rsps):
    rsps.add(
        responses.GET,
        BASE + "/posts/1050.json",
        json={"id": 1050, "topic_id": 77, "post_number": 5, "username": "olga"},
    )
    add(rsps, "/posts.json", "create_post.json", method=responses.POST)
    assert connector().reply(_to(), "We have refunded the delivery fee.") == "1051"
    assert json.loads(rsps.calls[1].request.body)["reply_to_post_number"] == 5


def test_reply_validation_error_keeps_discourse_message(rsps):
    add(rsps, "/posts.json", "error_422.json", status=422, method=responses.POST)
    with pytest.raises(ConnectorError, match="Body is too short") as info:
        connector().reply(_to({"topic_id": 77, "post_number": 5}), "ok")
    assert type(info.value) is ConnectorError  # a refusal, not an unknown outcome


def test_reply_needs_api_key(monkeypatch):
    monkeypatch.delenv("OTKLIK_DISCOURSE_API_KEY")
    with pytest.raises(AuthError, match="OTKLIK_DISCOURSE_API_KEY"):
        connector().reply(_to({"topic_id": 77, "post_number": 5}), "hello there, we are on it")


def test_403_is_auth_error_with_message(rsps):
    add(rsps, "/posts.json", "error_403.json", status=403)
    with pytest.raises(AuthError, match="API username or key is invalid"):
        connector().fetch("", "1")


def test_401_is_auth_error(rsps):
    rsps.add(responses.GET, BASE + "/posts.json", status=401, body="")
    with pytest.raises(AuthError):
        connector().fetch("", "1")


def test_429_uses_wait_seconds_from_body(rsps):
    add(rsps, "/posts.json", "error_429.json", status=429)
    with pytest.raises(RateLimited, match="too many times") as info:
        connector().fetch("", "1")
    assert info.value.retry_after == 10


def test_429_prefers_retry_after_header(rsps):
    add(rsps, "/posts.json", "error_429.json", status=429, headers={"Retry-After": "37"})
    with pytest.raises(RateLimited) as info:
        connector().fetch("", "1")
    assert info.value.retry_after == 37


def test_500_is_transient(rsps):
    rsps.add(responses.GET, BASE + "/posts.json", status=500, body="<html>oops</html>")
    with pytest.raises(TransientError):
        connector().fetch("", "1")


def test_timeout_is_transient(rsps):
    rsps.add(responses.GET, BASE + "/posts.json", body=requests.exceptions.ConnectionError("reset"))
    with pytest.raises(TransientError):
        connector().fetch("", "1")


def test_truncated_json_is_malformed_with_body(rsps):
    add(rsps, "/posts.json", "truncated.json")
    with pytest.raises(MalformedResponse) as info:
        connector().fetch("", "1")
    assert info.value.body.startswith(b'{"latest_posts": [{"id": 1050')


def test_check_with_key_reads_current_session(rsps):
    add(rsps, "/session/current.json", "session_current.json")
    connector().check()


def test_check_without_key_reads_site(rsps, monkeypatch):
    monkeypatch.delenv("OTKLIK_DISCOURSE_API_KEY")
    rsps.add(responses.GET, BASE + "/site.json", json={"categories": []})
    connector().check()
    assert "Api-Key" not in rsps.calls[0].request.headers


# --- real responses: a live forum and the discourse_api gem's fixtures ----------------------


def _sample(*parts):
    return json.loads(sample_path("discourse", *parts).read_text(encoding="utf-8"))


def test_live_posts_json_parents_resolved_within_the_page(rsps):
    body = _sample("live_criticalfallibilism", "posts.json")
    rsps.add(responses.GET, BASE + "/posts.json", json=body)
    page = connector(parent_lookups=0).fetch("", "20210")
    by_id = {m.external_id: m for m in page.mentions}
    assert list(by_id) == [str(i) for i in range(20211, 20219)]
    assert by_id["20217"].parent_external_id == "20213"  # topic 2144: #31 answers #28
    assert by_id["20218"].parent_external_id is None  # #1 of topic 2148
    assert by_id["20218"].text.startswith("People Being Bad at Logic\n\nI was talking")
    assert page.cursor == "20218"


def test_live_topic_posts_threading():
    body = _sample("live_criticalfallibilism", "t_2144_posts.json")
    mentions = connector(parent_lookups=0).mentions_from_posts(body["post_stream"]["posts"])
    parents = {m.external_id: m.parent_external_id for m in mentions}
    assert parents["20128"] == "20127"  # #9 answers #8
    assert parents["20102"] == "20089"  # #2 hangs under the topic's first post
    assert parents["20089"] is None


def test_gem_posts_before_and_post_fixtures(rsps):
    latest = _sample("discourse_api_gem", "posts_before.json")
    rsps.add(responses.GET, BASE + "/posts.json", json=latest)
    page = connector(parent_lookups=0).fetch("", "1")
    assert [m.external_id for m in page.mentions] == ["2", "10", "14"]
    post = _sample("discourse_api_gem", "post.json")
    (mention,) = connector(parent_lookups=0).mentions_from_posts([post])
    assert mention.external_id == str(post["id"])


def test_gem_legacy_search_format_is_malformed(rsps):
    rsps.add(responses.GET, BASE + "/search.json", json=_sample("discourse_api_gem", "search.json"))
    with pytest.raises(MalformedResponse):
        connector(mode="search").fetch("test", "1")


# --- the reply path: outcomes (issue 16, items 8 and 9) -------------------------------------

TOPIC_77 = {"topic_id": 77, "post_number": 5}


def _dropped_after_sending() -> requests.ConnectionError:
    return requests.ConnectionError(
        ProtocolError("Connection aborted.", RemoteDisconnected("Remote end closed connection"))
    )


@pytest.mark.parametrize(
    "answer",
    [
        {"body": requests.exceptions.ReadTimeout("read timed out")},
        {"body": _dropped_after_sending()},
        {"status": 502, "body": "<html>502 Bad Gateway</html>"},
        {"status": 500, "json": {"status": 500, "error": "Internal Server Error"}},
        {"status": 200, "body": '{"id": 1051, "name": "", "username": "AcmeSup'},
    ],
    ids=["read-timeout", "dropped-after-sending", "502", "500", "cut-off-200"],
)
def test_reply_whose_outcome_is_unknown_is_outcome_unknown(rsps, answer):
    rsps.add(responses.POST, BASE + "/posts.json", **answer)
    with pytest.raises(OutcomeUnknown, match="may have been posted"):
        connector().reply(_to(TOPIC_77), "We have refunded the delivery fee.", "k1")
    assert len(rsps.calls) == 1


def test_retry_refused_as_too_similar_is_outcome_unknown_probably_posted(rsps):
    """After a lost answer, the retry is refused: the first attempt went through."""
    add(rsps, "/posts.json", "error_422_too_similar.json", status=422, method=responses.POST)
    with pytest.raises(OutcomeUnknown, match="too similar.*probably posted"):
        connector().reply(_to(TOPIC_77), "We have refunded the delivery fee.", "k1")


def test_reply_that_could_not_connect_is_transient(rsps):
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")
    refused = requests.ConnectionError(MaxRetryError(None, BASE, reason))
    rsps.add(responses.POST, BASE + "/posts.json", body=refused)
    with pytest.raises(TransientError) as info:
        connector().reply(_to(TOPIC_77), "We have refunded the delivery fee.", "k1")
    assert not isinstance(info.value, OutcomeUnknown)


def test_reply_rate_limited_is_rate_limited(rsps):
    add(rsps, "/posts.json", "error_429.json", status=429, method=responses.POST)
    with pytest.raises(RateLimited) as info:
        connector().reply(_to(TOPIC_77), "We have refunded the delivery fee.", "k1")
    assert info.value.retry_after == 10


def test_reply_length_counts_characters():
    assert Registry().load("replier", "discourse").reply_length("Готово ✅") == 8
