"""Twitter connector against recorded API v2 responses (tweepy's own HTTP calls intercepted)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import responses
from collector_support import fixture_text, sample_path, sent_timeouts

from collectors.twitter import parse_tweets, snowflake_time
from otklik.connectors import Registry
from otklik.domain import (
    AuthError,
    ConnectorError,
    MalformedResponse,
    RateLimited,
    RawMention,
    TransientError,
)

SEARCH = "https://api.twitter.com/2/tweets/search/recent"
MENTIONS = "https://api.twitter.com/2/users/2002/mentions"
TWEETS = "https://api.twitter.com/2/tweets"


@pytest.fixture(autouse=True)
def _secrets(monkeypatch):
    monkeypatch.setenv("OTKLIK_TWITTER_BEARER_TOKEN", "bearer-test")
    for name in ("CONSUMER_KEY", "CONSUMER_SECRET", "ACCESS_TOKEN", "ACCESS_TOKEN_SECRET"):
        monkeypatch.setenv(f"OTKLIK_TWITTER_{name}", f"{name.lower()}-test")


def connector(**settings):
    return Registry().load("source", "twitter").from_settings(settings)


def query_of(call) -> dict[str, list[str]]:
    return parse_qs(urlparse(call.request.url).query)


def add(rsps, url, name, status=200, method=responses.GET, **kwargs):
    rsps.add(
        method,
        url,
        body=fixture_text("twitter", name),
        status=status,
        content_type="application/json",
        **kwargs,
    )


def test_first_run_backfills_and_drains_pages_without_skipping(rsps):
    add(rsps, SEARCH, "search_page1.json")
    add(rsps, SEARCH, "search_page2.json")
    conn = connector(backfill_hours=6)

    first = conn.fetch("acme OR @acme_support", None)
    q = query_of(rsps.calls[0])
    assert q["query"] == ["acme OR @acme_support -is:retweet"]
    start = datetime.strptime(q["start_time"][0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - start).total_seconds() - 6 * 3600) < 120
    assert "since_id" not in q
    assert set(q["expansions"][0].split(",")) == {"author_id", "referenced_tweets.id"}
    assert "public_metrics" in q["user.fields"][0]
    assert [m.external_id for m in first.mentions] == ["1790001000000000002", "1790001000000000003"]
    state = json.loads(first.cursor)
    assert state["top"] == "1790001000000000003"
    assert state["next"] == "b26v89c19zqg8o3fpz5m4ux2v1bqsvvq5vwh9gkjgmnrh"

    second = conn.fetch("acme OR @acme_support", first.cursor)
    q2 = query_of(rsps.calls[1])
    assert q2["next_token"] == ["b26v89c19zqg8o3fpz5m4ux2v1bqsvvq5vwh9gkjgmnrh"]
    assert q2["start_time"] == q["start_time"]  # same query while the token is in use
    assert [m.external_id for m in second.mentions] == ["1790001000000000000"]
    assert second.cursor == "1790001000000000003"  # caught up: since_id = newest seen
    assert sent_timeouts(rsps) == [20.0, 20.0]


def test_mention_fields_thread_parent_and_followers(rsps):
    add(rsps, SEARCH, "search_page1.json")
    page = connector().fetch("acme", None)
    (reply,) = [m for m in page.mentions if m.external_id == "1790001000000000003"]
    assert isinstance(reply, RawMention)
    assert reply.platform == "twitter"
    assert reply.parent_external_id == "1790001000000000001"
    assert reply.author_external_id == "1001"
    assert reply.author_handle == "dana_k"
    assert reply.author_followers == 312
    assert reply.url == "https://x.com/dana_k/status/1790001000000000003"
    assert reply.created_at == datetime(2024, 5, 13, 10, 15, tzinfo=UTC)
    assert reply.raw["tweet"]["conversation_id"] == "1790001000000000001"
    (ru,) = [m for m in page.mentions if m.external_id == "1790001000000000002"]
    assert ru.text.startswith("Acme доставка")
    assert ru.parent_external_id is None


def test_since_id_cursor_and_long_tweet_text(rsps):
    add(rsps, SEARCH, "search_page2.json")
    page = connector(exclude_retweets="false").fetch("acme", "1789999999999999999")
    q = query_of(rsps.calls[0])
    assert q["since_id"] == ["1789999999999999999"]
    assert "start_time" not in q
    assert q["query"] == ["acme"]
    assert page.mentions[0].text.endswith("courier called before arriving.")
    assert page.mentions[0].author_followers == 15000
    assert page.cursor == "1790001000000000000"


def test_include_reposts_keeps_retweets_in_the_query(rsps):
    add(rsps, SEARCH, "empty.json")
    connector(include_reposts=True).fetch("acme", "1789999999999999999")
    assert query_of(rsps.calls[0])["query"] == ["acme"]


def test_empty_page_keeps_cursor(rsps):
    add(rsps, SEARCH, "empty.json")
    page = connector().fetch("acme", "1789999999999999999")
    assert page.mentions == []
    assert page.cursor == "1789999999999999999"


def test_mentions_mode_uses_user_timeline(rsps):
    add(rsps, MENTIONS, "mentions.json")
    page = connector(mode="mentions", user_id="2002").fetch("ignored", "1790002000000000001")
    q = query_of(rsps.calls[0])
    assert q["since_id"] == ["1790002000000000001"]
    assert [m.external_id for m in page.mentions] == ["1790002000000000009", "1790002000000000010"]
    assert page.mentions[0].parent_external_id is None  # a quote is not a reply
    assert page.mentions[1].parent_external_id == "1790002000000000007"
    assert page.cursor == "1790002000000000010"


def test_mentions_mode_requires_user_id():
    with pytest.raises(ValueError, match="user_id"):
        connector(mode="mentions")


def test_reply_creates_tweet_in_reply(rsps):
    add(rsps, TWEETS, "create_tweet.json", status=201, method=responses.POST)
    to = RawMention(
        "twitter",
        "1790001000000000003",
        "u",
        "1001",
        "dana_k",
        "t",
        datetime(2024, 5, 13, tzinfo=UTC),
    )
    new_id = connector().reply(to, "@dana_k Sorry about that! We have sent you a DM.")
    assert new_id == "1790003000000000001"
    sent = json.loads(rsps.calls[0].request.body)
    assert sent["reply"] == {"in_reply_to_tweet_id": "1790001000000000003"}
    assert rsps.calls[0].request.headers["Authorization"].startswith("OAuth ")


def test_reply_forbidden_is_auth_error_with_platform_message(rsps):
    add(rsps, TWEETS, "error_403_reply.json", status=403, method=responses.POST)
    to = RawMention("twitter", "1", "u", "1", "a", "t", datetime(2024, 5, 13, tzinfo=UTC))
    with pytest.raises(AuthError, match="duplicate content"):
        connector().reply(to, "hi")


def test_reply_without_user_secrets_is_auth_error(monkeypatch):
    monkeypatch.delenv("OTKLIK_TWITTER_ACCESS_TOKEN")
    to = RawMention("twitter", "1", "u", "1", "a", "t", datetime(2024, 5, 13, tzinfo=UTC))
    with pytest.raises(AuthError, match="OTKLIK_TWITTER_ACCESS_TOKEN"):
        connector().reply(to, "hi")


def test_401_is_auth_error(rsps):
    add(rsps, SEARCH, "error_401.json", status=401)
    with pytest.raises(AuthError, match="401"):
        connector().fetch("acme", None)


def test_429_uses_reset_epoch_and_does_not_sleep(rsps, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail("connector slept"))
    reset = int(time.time()) + 300
    add(
        rsps,
        SEARCH,
        "error_429.json",
        status=429,
        headers={
            "x-rate-limit-limit": "450",
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(reset),
        },
    )
    with pytest.raises(RateLimited) as info:
        connector().fetch("acme", None)
    assert 290 <= info.value.retry_after <= 301


def test_500_is_transient(rsps):
    rsps.add(responses.GET, SEARCH, status=503, body="upstream unavailable")
    with pytest.raises(TransientError):
        connector().fetch("acme", None)


def test_timeout_is_transient(rsps):
    rsps.add(responses.GET, SEARCH, body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(TransientError):
        connector().fetch("acme", None)


def test_truncated_json_is_malformed_and_keeps_body(rsps):
    add(rsps, SEARCH, "truncated.json")
    with pytest.raises(MalformedResponse) as info:
        connector().fetch("acme", None)
    assert info.value.body.startswith(b'{"data": [{"id": "1790001000000000003"')


def test_unexpected_shape_is_malformed(rsps):
    rsps.add(responses.GET, SEARCH, json={"data": {"id": "1"}})
    with pytest.raises(MalformedResponse):
        connector().fetch("acme", None)


def test_invalid_since_id_is_connector_error_with_message(rsps):
    add(rsps, SEARCH, "error_400_since_id.json", status=400)
    with pytest.raises(ConnectorError, match="since_id"):
        connector().fetch("acme", "1")


def test_missing_bearer_token_is_auth_error(monkeypatch):
    monkeypatch.delenv("OTKLIK_TWITTER_BEARER_TOKEN")
    with pytest.raises(AuthError, match="OTKLIK_TWITTER_BEARER_TOKEN"):
        connector().fetch("acme", None)


def test_check_makes_one_search(rsps):
    add(rsps, SEARCH, "empty.json")
    connector().check()
    assert rsps.calls[0].request.headers["Authorization"] == "Bearer bearer-test"


# --- real responses recorded by tweepy's test suite ---------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "test_client_search_recent_tweets.0.json",
        "test_client_get_users_mentions.0.json",
        "test_asyncclient_get_users_mentions.0.json",
    ],
)
def test_parses_tweepy_recorded_bodies(name):
    recorded = json.loads(sample_path("tweepy", "decoded", name).read_text(encoding="utf-8"))
    body = recorded["response_json"]
    mentions = parse_tweets(body)
    assert len(mentions) == len(body["data"])
    ids = [m.external_id for m in mentions]
    assert ids == sorted(ids, key=int)
    for mention in mentions:
        # the recordings asked for no tweet.fields: time comes from the snowflake id
        assert mention.created_at == snowflake_time(mention.external_id)
        assert mention.created_at.year == 2022
        assert mention.url.endswith(mention.external_id)


def test_replays_tweepy_search_cassette_through_the_connector(rsps):
    recorded = json.loads(
        sample_path("tweepy", "decoded", "test_client_search_recent_tweets.0.json").read_text()
    )
    rsps.add(responses.GET, SEARCH, json=recorded["response_json"])
    page = connector().fetch("Tweepy", None)
    assert len(page.mentions) == 10
    assert json.loads(page.cursor)["next"] == recorded["response_json"]["meta"]["next_token"]


def test_reply_against_tweepy_recorded_create(rsps):
    recorded = json.loads(
        sample_path("tweepy", "decoded", "test_client_create_and_delete_tweet.0.json").read_text()
    )
    rsps.add(responses.POST, TWEETS, json=recorded["response_json"], status=201)
    to = RawMention("twitter", "1", "u", "1", "a", "t", datetime(2021, 11, 3, tzinfo=UTC))
    assert connector().reply(to, "Test Tweet") == "1456012973835788293"
