"""Twitter connector against recorded API v2 responses (tweepy's own HTTP calls intercepted)."""

from __future__ import annotations

import json
import socket
import struct
import threading
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
    OutcomeUnknown,
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
    add(rsps, TWEETS, "error_403_reply_restricted.json", status=403, method=responses.POST)
    to = RawMention("twitter", "1", "u", "1", "a", "t", datetime(2024, 5, 13, tzinfo=UTC))
    with pytest.raises(AuthError, match="not allowed because you have not been mentioned"):
        connector().reply(to, "hi", "reply-1")


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


# --- replies whose outcome is unknown (issue 16, items 8 and 9) ---------------------------

TO = RawMention(
    "twitter", "1790001000000000003", "u", "1001", "dana_k", "t", datetime(2024, 5, 13, tzinfo=UTC)
)


def transport_error(kind: str) -> requests.RequestException:
    """The exception requests really raises when a POST meets ``kind`` on a local socket."""
    if kind == "refused":
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nothing listens there now
    else:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        def serve() -> None:
            conn, _ = server.accept()
            conn.recv(65536)  # the whole request arrived
            if kind == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif kind == "read_timeout":
                time.sleep(0.5)
            conn.close()
            server.close()

        threading.Thread(target=serve, daemon=True).start()
    try:
        requests.post(f"http://127.0.0.1:{port}/2/tweets", json={"text": "hi"}, timeout=(2, 0.2))
    except requests.RequestException as exc:
        return exc
    raise AssertionError(f"{kind}: the request did not fail")


@pytest.mark.parametrize("kind", ["read_timeout", "closed", "reset"])
def test_reply_whose_answer_was_lost_is_outcome_unknown(kind):
    """Item 8: the POST left; a retry could post the reply twice, so a person checks."""
    error = transport_error(kind)
    timeout = kind == "read_timeout"
    assert type(error) is (requests.exceptions.ReadTimeout if timeout else requests.ConnectionError)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, TWEETS, body=error)
        with pytest.raises(OutcomeUnknown) as info:
            connector().reply(TO, "@dana_k Sorry! We have sent you a DM.", "reply-1")
        assert len(rsps.calls) == 1
    assert not isinstance(info.value, TransientError)


@pytest.mark.parametrize("name", ["error_503.json", "error_500_internal.json"])
def test_reply_5xx_is_outcome_unknown_but_a_read_5xx_stays_transient(rsps, name):
    status = 503 if "503" in name else 500
    add(rsps, TWEETS, name, status=status, method=responses.POST)
    with pytest.raises(OutcomeUnknown, match=f"HTTP {status}"):
        connector().reply(TO, "@dana_k Sorry! We have sent you a DM.", "reply-1")
    add(rsps, SEARCH, name, status=status)
    with pytest.raises(TransientError):
        connector().fetch("acme", None)


def test_reply_that_never_left_is_transient():
    """Item 8: refused connection / connect timeout: nothing reached X, a retry is safe."""
    for error in (transport_error("refused"), requests.exceptions.ConnectTimeout("connect")):
        with responses.RequestsMock() as rsps:
            rsps.add(responses.POST, TWEETS, body=error)
            with pytest.raises(TransientError):
                connector().reply(TO, "@dana_k Sorry! We have sent you a DM.", "reply-1")


def test_reply_accepted_without_an_id_is_outcome_unknown(rsps):
    rsps.add(responses.POST, TWEETS, status=201, body='{"data": {"text": "@dana_k Sorr')
    with pytest.raises(OutcomeUnknown, match="HTTP 201"):
        connector().reply(TO, "@dana_k Sorry! We have sent you a DM.", "reply-1")


def test_retry_refused_as_duplicate_content_is_outcome_unknown():
    """Item 9: the first POST timed out after X took it; the retry gets 403 duplicate content
    (the real v2 body), which means the reply is probably there, not that it failed."""
    lost = transport_error("read_timeout")  # made before the mock intercepts requests
    assert isinstance(lost, requests.exceptions.ReadTimeout)
    with responses.RequestsMock() as rsps:
        rsps.add(responses.POST, TWEETS, body=lost)
        add(rsps, TWEETS, "error_403_reply.json", status=403, method=responses.POST)
        add(rsps, TWEETS, "error_187_duplicate.json", status=403, method=responses.POST)
        outcomes = []
        for _ in range(3):  # the first try, then two retries (v2 body, then v1.1 code 187)
            with pytest.raises(OutcomeUnknown) as info:
                connector().reply(TO, "@dana_k Sorry! We have sent you a DM.", "reply-1")
            outcomes.append(str(info.value))
        assert len(rsps.calls) == 3
    assert "answer was lost" in outcomes[0]
    assert "HTTP 403 You are not allowed to create a Tweet with duplicate content" in outcomes[1]
    assert "Status is a duplicate" in outcomes[2]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("error_403_reply.json", "You are not allowed to create a Tweet with duplicate content"),
        ("error_187_duplicate.json", "Status is a duplicate"),
    ],
)
def test_duplicate_content_answer_is_outcome_unknown_not_auth_error(rsps, name, words):
    add(rsps, TWEETS, name, status=403, method=responses.POST)
    with pytest.raises(OutcomeUnknown, match=words):
        connector().reply(TO, "@dana_k Sorry! We have sent you a DM.", "reply-1")


# --- X's weighted length (item 12) --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("Hello, world! 👋", 16),  # docs.x.com/fundamentals/counting-characters
        ("english text 日本語 😷 https://example.com", 46),
        ("故" * 140, 280),
        ("故" * 141, 282),
        ("Доставка задерживается", 22),  # Cyrillic weighs 1
        ("👨\u200d👩\u200d👧\u200d👦 🙋🏽 🇷🇺 1️⃣ ❤️", 14),  # each emoji 2, however built
        ("cafe\u0301", 4),  # NFC first
        ("see https://acme.example.com/help/orders?id=5521 now", 31),
        ("see acme.com/help.", 28),  # a URL without scheme, the full stop outside it
        ("write to help@acme.com", 22),  # an e-mail address is not a URL
        ("\u2018quoted\u2019 \u2014 dash", 15),  # general punctuation weighs 1
    ],
)
def test_reply_length_is_x_weighted(text, length):
    assert Registry().reply_length("twitter", text) == length


def test_reply_over_x_limit_is_refused_before_sending(rsps):
    cjk = "ご連絡ありがとうございます。" * 10 + "よろしく"  # 144 characters, weighs 288
    with pytest.raises(ConnectorError, match="288") as info:
        connector().reply(TO, cjk, "reply-1")
    assert type(info.value) is ConnectorError  # permanent: not retried, not "unknown"
    assert len(rsps.calls) == 0


def test_reply_longer_in_characters_but_within_x_limit_is_sent(rsps):
    add(rsps, TWEETS, "create_tweet.json", status=201, method=responses.POST)
    url = "https://acme.example.com/help/" + "orders/" * 40
    text = f"@dana_k {'Sorry about the delay. ' * 10}{url}"
    assert len(text) > 280 and connector().reply_length(text) <= 280
    assert connector().reply(TO, text, "reply-1") == "1790003000000000001"


# --- reposts, long posts and edits (items 17 and 18) --------------------------------------


def test_repost_text_is_the_full_text_of_the_reposted_post(rsps):
    add(rsps, SEARCH, "search_reposts.json")
    page = connector(include_reposts=True).fetch("acme", "1790003999999999990")
    q = query_of(rsps.calls[0])
    assert {"note_tweet", "referenced_tweets"} <= set(q["tweet.fields"][0].split(","))
    assert "referenced_tweets.id" in q["expansions"][0].split(",")
    lost, short, long = page.mentions
    assert short.text == (
        "RT @maria_v: Three weeks waiting for an Acme refund and support keeps closing my ticket "
        "without an answer. If you bought the Acme X2 blender, check your card statement: they "
        "charged me twice."
    )
    assert long.text.startswith("RT @leo_k: Long post about Acme delivery: ordered on Monday")
    assert long.text.endswith("@acme_support please look into it.")  # note_tweet, not text
    assert short.author_handle == "pat_r" and long.author_handle == "kim_s"
    assert long.raw["reposted"]["id"] == "1790004000000000002"
    assert lost.text.endswith("opened on Tues\u2026")  # reposted post not included: as sent


def test_edited_post_names_its_earlier_ids(rsps):
    add(rsps, SEARCH, "search_edited.json")
    page = connector().fetch("acme", "1790004999999999999")
    assert "edit_history_tweet_ids" in query_of(rsps.calls[0])["tweet.fields"][0].split(",")
    unedited, edited = page.mentions
    assert edited.external_id == "1790005000000000007"
    assert edited.edit_of == ("1790005000000000001",)
    assert edited.text.startswith("@acme_support my order #7731 arrived damaged")
    assert unedited.edit_of == ()


def test_tweepy_recorded_bodies_have_no_edits():
    recorded = json.loads(
        sample_path("tweepy", "decoded", "test_client_get_users_mentions.0.json").read_text()
    )
    mentions = parse_tweets(recorded["response_json"])
    assert mentions and all(m.edit_of == () for m in mentions)
