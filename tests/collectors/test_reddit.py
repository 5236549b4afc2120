"""Reddit connector against recorded API responses (praw/prawcore's own HTTP calls intercepted)."""

from __future__ import annotations

import copy
import json
import re
import time
from datetime import UTC, datetime
from http.client import RemoteDisconnected
from urllib.parse import parse_qs, urlparse

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

TOKEN = "https://www.reddit.com/api/v1/access_token"
OAUTH = "https://oauth.reddit.com"
SEARCH = OAUTH + "/r/acme+russia/search/"


@pytest.fixture(autouse=True)
def _secrets(monkeypatch):
    for name, value in {
        "CLIENT_ID": "cid",
        "CLIENT_SECRET": "csecret",
        "USERNAME": "AcmeSupport",
        "PASSWORD": "pw",
    }.items():
        monkeypatch.setenv(f"OTKLIK_REDDIT_{name}", value)
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail(f"connector slept {s}s"))


def connector(**settings):
    return (
        Registry()
        .load("source", "reddit")
        .from_settings({"subreddits": "acme, r/russia", **settings})
    )


def add(rsps, method, url, name, status=200, **kwargs):
    rsps.add(
        method,
        url,
        body=fixture_text("reddit", name),
        status=status,
        content_type="application/json; charset=UTF-8",
        **kwargs,
    )


def add_token(rsps):
    add(rsps, responses.POST, TOKEN, "token.json")


def empty_thread(submission_id: str) -> list:
    thread = json.loads(fixture_text("reddit", "comments_1cqx2b.json"))
    thread[0]["data"]["children"][0]["data"].update(id=submission_id, name=f"t3_{submission_id}")
    thread[1]["data"]["children"] = []
    return thread


def thread_with(submission_id: str, *comment_ids: str) -> list:
    """The thread ``submission_id`` holding top-level comments ``comment_ids`` (sort=new)."""
    thread = empty_thread(submission_id)
    template = json.loads(fixture_text("reddit", "comments_1cqx2b.json"))[1]["data"]["children"][0]
    for n, comment_id in enumerate(sorted(comment_ids, key=lambda c: int(c, 36), reverse=True)):
        child = copy.deepcopy(template)
        child["data"].update(
            id=comment_id,
            name=f"t1_{comment_id}",
            link_id=f"t3_{submission_id}",
            parent_id=f"t3_{submission_id}",
            body=f"comment {comment_id}",
            created_utc=1715596000 - n * 60,
            permalink=f"/r/acme/comments/{submission_id}/slug/{comment_id}/",
        )
        thread[1]["data"]["children"].append(child)
    return thread


def with_comment(name: str, comment_id: str) -> list:
    """The recorded thread ``name`` with one more (newest) top-level comment."""
    thread = json.loads(fixture_text("reddit", name))
    submission_id = thread[0]["data"]["children"][0]["data"]["id"]
    extra = thread_with(submission_id, comment_id)[1]["data"]["children"]
    thread[1]["data"]["children"] = extra + thread[1]["data"]["children"]
    return thread


def query(call) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(call.request.url).query).items()}


class _FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2024, 5, 13, 11, 0, tzinfo=tz)


def test_first_run_collects_submissions_and_thread_comments(rsps, monkeypatch):
    monkeypatch.setattr("collectors.reddit.datetime", _FrozenDatetime)
    add_token(rsps)
    add(rsps, responses.GET, SEARCH, "search_new.json")
    add(rsps, responses.GET, OAUTH + "/comments/1cqx2b/", "comments_1cqx2b.json")
    rsps.add(responses.GET, OAUTH + "/comments/1cqx1a/", json=empty_thread("1cqx1a"))

    page = connector().fetch("acme OR акме", None)
    q = query(rsps.calls[1])
    assert q["q"] == "acme OR акме" and q["sort"] == "new" and q["t"] == "day"
    assert q["restrict_sr"] == "on" and "before" not in q
    assert query(rsps.calls[2])["sort"] == "new"
    assert [m.external_id for m in page.mentions] == [
        "t3_1cqx1a",
        "t3_1cqx2b",
        "t1_l3x0001",
        "t1_l3x0003",
        "t1_l3x0004",
    ]
    assert json.loads(page.cursor) == {
        "t3": "t3_1cqx2b",
        "t1": {"1cqx2b": "t1_l3x0004"},  # 1cqx1a had no comment: no mark yet
        "watch": ["1cqx2b", "1cqx1a"],
    }
    assert all(t == 20.0 for t in sent_timeouts(rsps))


def test_mention_fields_and_parents(rsps, monkeypatch):
    monkeypatch.setattr("collectors.reddit.datetime", _FrozenDatetime)
    add_token(rsps)
    add(rsps, responses.GET, SEARCH, "search_new.json")
    add(rsps, responses.GET, OAUTH + "/comments/1cqx2b/", "comments_1cqx2b.json")
    rsps.add(responses.GET, OAUTH + "/comments/1cqx1a/", json=empty_thread("1cqx1a"))
    by_id = {m.external_id: m for m in connector().fetch("acme", None).mentions}
    post = by_id["t3_1cqx2b"]
    assert isinstance(post, RawMention) and post.platform == "reddit"
    assert (
        post.text == "Acme support never answers\n\nOrdered on the 1st, still nothing. Anyone else?"
    )
    assert post.author_handle == "dana_k" and post.author_external_id == "t2_dana_k"
    assert post.url == "https://www.reddit.com/r/acme/comments/1cqx2b/slug/"
    assert post.created_at == datetime(2024, 5, 13, 10, 10, tzinfo=UTC)
    assert post.parent_external_id is None
    assert by_id["t3_1cqx1a"].text.startswith("Акме: отзывы")
    assert by_id["t1_l3x0001"].parent_external_id == "t3_1cqx2b"
    assert by_id["t1_l3x0003"].parent_external_id == "t1_l3x0001"  # nested reply
    assert by_id["t1_l3x0003"].raw["author"] == "lee"


def test_cursor_pages_with_before_and_only_new_comments(rsps):
    add_token(rsps)
    rsps.add(
        responses.GET,
        SEARCH,
        body=fixture_text("reddit", "search_empty.json"),
        match=[
            matchers.query_param_matcher(
                {
                    "before": "t3_1cqx2b",
                    "q": "acme",
                    "sort": "new",
                    "limit": "100",
                    "t": "day",
                    "restrict_sr": "on",
                    "raw_json": "1",
                }
            )
        ],
    )
    add(rsps, responses.GET, OAUTH + "/comments/1cqx2b/", "comments_1cqx2b.json")
    add(rsps, responses.GET, OAUTH + "/comments/1cpzzz/", "comments_1cpzzz.json")
    marks = {"1cqx2b": "t1_l3x0003", "1cpzzz": "t1_l3w0100"}
    cursor = json.dumps({"t3": "t3_1cqx2b", "t1": marks, "watch": ["1cqx2b", "1cpzzz"]})
    page = connector().fetch("acme", cursor)
    assert [m.external_id for m in page.mentions] == ["t1_l3x0004"]
    assert json.loads(page.cursor) == {
        "t3": "t3_1cqx2b",
        "t1": {"1cqx2b": "t1_l3x0004", "1cpzzz": "t1_l3w0100"},
        "watch": ["1cqx2b", "1cpzzz"],
    }


def test_cursor_with_one_global_t1_is_upgraded_to_per_thread_marks(rsps):
    add_token(rsps)
    add(rsps, responses.GET, SEARCH, "search_empty.json")
    add(rsps, responses.GET, OAUTH + "/comments/1cqx2b/", "comments_1cqx2b.json")
    add(rsps, responses.GET, OAUTH + "/comments/1cpzzz/", "comments_1cpzzz.json")
    cursor = json.dumps({"t3": "t3_1cqx2b", "t1": "t1_l3x0003", "watch": ["1cqx2b", "1cpzzz"]})
    page = connector().fetch("acme", cursor)
    assert query(rsps.calls[1])["before"] == "t3_1cqx2b"
    assert [m.external_id for m in page.mentions] == ["t1_l3x0004"]  # l3w0100 is below t1
    assert json.loads(page.cursor) == {
        "t3": "t3_1cqx2b",
        "t1": {"1cqx2b": "t1_l3x0004", "1cpzzz": "t1_l3x0003"},
        "watch": ["1cqx2b", "1cpzzz"],
    }


@pytest.mark.parametrize(
    "cursor", ['["t3_1cqx2b"]', '{"t1": ["t1_l3x0003"]}', '{"watch": "1cqx2b"}', "{nope"]
)
def test_unreadable_cursor_is_refused(cursor):
    with pytest.raises(ValueError, match="unreadable reddit cursor"):
        connector().fetch("acme", cursor)


def test_comment_on_a_thread_read_earlier_in_the_fetch_is_not_skipped(rsps):
    """The marks are per thread: a lower id on one thread survives a higher one on another.

    Fetch 1 reads 1cqx2b, then a comment l3x0005 is posted on it, then l3x0006 on 1cpzzz,
    which fetch 1 reads next. With one global mark (l3x0006) fetch 2 would skip l3x0005.
    """
    add_token(rsps)
    add(rsps, responses.GET, SEARCH, "search_empty.json")
    add(rsps, responses.GET, OAUTH + "/comments/1cqx2b/", "comments_1cqx2b.json")
    rsps.add(
        responses.GET,
        OAUTH + "/comments/1cpzzz/",
        json=with_comment("comments_1cpzzz.json", "l3x0006"),
    )
    add(rsps, responses.GET, SEARCH, "search_empty.json")
    rsps.add(
        responses.GET,
        OAUTH + "/comments/1cqx2b/",
        json=with_comment("comments_1cqx2b.json", "l3x0005"),
    )
    rsps.add(
        responses.GET,
        OAUTH + "/comments/1cpzzz/",
        json=with_comment("comments_1cpzzz.json", "l3x0006"),
    )
    reddit = connector()
    marks = {"1cqx2b": "t1_l3x0004", "1cpzzz": "t1_l3w0100"}
    cursor = json.dumps({"t3": "t3_1cqx2b", "t1": marks, "watch": ["1cqx2b", "1cpzzz"]})

    first = reddit.fetch("acme", cursor)
    assert [m.external_id for m in first.mentions] == ["t1_l3x0006"]
    assert json.loads(first.cursor)["t1"] == {"1cqx2b": "t1_l3x0004", "1cpzzz": "t1_l3x0006"}

    second = reddit.fetch("acme", first.cursor)
    assert [m.external_id for m in second.mentions] == ["t1_l3x0005"]
    assert json.loads(second.cursor) == {
        "t3": "t3_1cqx2b",
        "t1": {"1cqx2b": "t1_l3x0005", "1cpzzz": "t1_l3x0006"},
        "watch": ["1cqx2b", "1cpzzz"],
    }


def test_every_thread_found_is_read_and_only_the_watch_list_is_capped(rsps):
    """Two new submissions and one watched thread with watch_submissions=1: all three are read."""
    add_token(rsps)
    add(rsps, responses.GET, SEARCH, "search_new.json")
    add(rsps, responses.GET, OAUTH + "/comments/1cqx2b/", "comments_1cqx2b.json")
    rsps.add(responses.GET, OAUTH + "/comments/1cqx1a/", json=thread_with("1cqx1a", "l3x0002"))
    add(rsps, responses.GET, OAUTH + "/comments/1cpzzz/", "comments_1cpzzz.json")
    cursor = json.dumps({"t3": "t3_1cqx00", "t1": {"1cpzzz": "t1_l3w0001"}, "watch": ["1cpzzz"]})
    page = connector(watch_submissions=1).fetch("acme", cursor)
    read = [urlparse(c.request.url).path for c in rsps.calls[2:]]
    assert read == ["/comments/1cqx2b/", "/comments/1cqx1a/", "/comments/1cpzzz/"]
    assert sorted(m.external_id for m in page.mentions) == [
        "t1_l3w0100",  # the watched thread, read once more before it leaves the list
        "t1_l3x0001",
        "t1_l3x0002",  # the thread of the older new submission, beyond the cap
        "t1_l3x0003",
        "t1_l3x0004",
        "t3_1cqx1a",
        "t3_1cqx2b",
    ]
    assert json.loads(page.cursor) == {
        "t3": "t3_1cqx2b",
        "t1": {"1cqx2b": "t1_l3x0004"},
        "watch": ["1cqx2b"],
    }


def test_first_run_reads_the_threads_of_all_submissions_found(rsps, monkeypatch):
    monkeypatch.setattr("collectors.reddit.datetime", _FrozenDatetime)
    add_token(rsps)
    add(rsps, responses.GET, SEARCH, "search_new.json")
    add(rsps, responses.GET, OAUTH + "/comments/1cqx2b/", "comments_1cqx2b.json")
    rsps.add(responses.GET, OAUTH + "/comments/1cqx1a/", json=thread_with("1cqx1a", "l3x0002"))
    page = connector(watch_submissions=0).fetch("acme", None)
    assert "t1_l3x0002" in {m.external_id for m in page.mentions}
    assert json.loads(page.cursor) == {"t3": "t3_1cqx2b", "t1": {}, "watch": []}


def test_deleted_watched_thread_is_dropped_not_fatal(rsps):
    add_token(rsps)
    add(rsps, responses.GET, SEARCH, "search_empty.json")
    rsps.add(
        responses.GET,
        OAUTH + "/comments/1cpzzz/",
        status=404,
        json={"message": "Not Found", "error": 404},
    )
    add(rsps, responses.GET, OAUTH + "/comments/1cqx2b/", "comments_1cqx2b.json")
    marks = {"1cpzzz": "t1_l3w0100", "1cqx2b": "t1_l3x0003"}
    cursor = json.dumps({"t3": "t3_1cqx2b", "t1": marks, "watch": ["1cpzzz", "1cqx2b"]})
    page = connector().fetch("acme", cursor)
    assert [m.external_id for m in page.mentions] == ["t1_l3x0004"]
    assert json.loads(page.cursor)["watch"] == ["1cqx2b"]
    assert json.loads(page.cursor)["t1"] == {"1cqx2b": "t1_l3x0004"}


def test_reply_to_comment_returns_new_fullname(rsps):
    add_token(rsps)
    add(rsps, responses.POST, OAUTH + "/api/comment/", "reply.json")
    to = RawMention(
        "reddit", "t1_l3x0001", "u", "t2_sam", "sam", "t", datetime(2024, 5, 13, tzinfo=UTC)
    )
    assert connector().reply(to, "Hi! Please DM us your order number.") == "t1_l3x0010"
    sent = parse_qs(rsps.calls[1].request.body)
    assert sent["thing_id"] == ["t1_l3x0001"]
    assert sent["text"] == ["Hi! Please DM us your order number."]
    assert rsps.calls[1].request.headers["Authorization"] == "bearer reddit-access-token"


def test_reply_ratelimit_error_is_rate_limited_not_slept(rsps):
    add_token(rsps)
    add(rsps, responses.POST, OAUTH + "/api/comment/", "reply_ratelimit.json")
    to = RawMention("reddit", "t3_1cqx2b", "u", "t2_d", "d", "t", datetime(2024, 5, 13, tzinfo=UTC))
    with pytest.raises(RateLimited, match="Take a break"):
        connector().reply(to, "hello")


def test_check_reads_me(rsps):
    add_token(rsps)
    add(rsps, responses.GET, OAUTH + "/api/v1/me", "me.json")
    connector().check()
    assert parse_qs(rsps.calls[0].request.body)["grant_type"] == ["password"]


def test_wrong_password_is_auth_error(rsps):
    add(rsps, responses.POST, TOKEN, "token_invalid_grant.json")
    with pytest.raises(AuthError, match="invalid_grant"):
        connector().check()


def test_bad_client_credentials_401_is_auth_error(rsps):
    rsps.add(responses.POST, TOKEN, status=401, json={"message": "Unauthorized", "error": 401})
    with pytest.raises(AuthError, match="401"):
        connector().check()


def test_401_invalid_token_is_auth_error_without_retry(rsps):
    add_token(rsps)
    rsps.add(
        responses.GET,
        SEARCH,
        status=401,
        json={"message": "Unauthorized", "error": 401},
        headers={"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'},
    )
    with pytest.raises(AuthError):
        connector().fetch("acme", "t3_1cqx00")
    assert len(rsps.calls) == 2


def test_403_is_auth_error(rsps):
    add_token(rsps)
    add(rsps, responses.GET, SEARCH, "error_403.json", status=403)
    with pytest.raises(AuthError, match="Forbidden"):
        connector().fetch("acme", "t3_1cqx00")


def test_429_uses_reset_seconds(rsps):
    add_token(rsps)
    add(
        rsps,
        responses.GET,
        SEARCH,
        "error_429.json",
        status=429,
        headers={
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "100",
            "x-ratelimit-reset": "120",
        },
    )
    with pytest.raises(RateLimited) as info:
        connector().fetch("acme", "t3_1cqx00")
    assert info.value.retry_after == 120


def test_exhausted_window_raises_instead_of_sleeping(rsps):
    add_token(rsps)
    add(
        rsps,
        responses.GET,
        SEARCH,
        "search_new.json",
        headers={
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "100",
            "x-ratelimit-reset": "300",
        },
    )
    with pytest.raises(RateLimited) as info:
        connector().fetch("acme", "t3_1cqx00")  # the comments call must not go out
    assert 290 < info.value.retry_after <= 300


def test_500_is_transient_without_retry(rsps):
    add_token(rsps)
    rsps.add(responses.GET, SEARCH, status=500, body="<html>500</html>")
    with pytest.raises(TransientError):
        connector().fetch("acme", "t3_1cqx00")
    assert len(rsps.calls) == 2  # token + one search: prawcore's retries are off


def test_timeout_is_transient_without_retry(rsps):
    add_token(rsps)
    rsps.add(responses.GET, SEARCH, body=requests.exceptions.ReadTimeout("read timeout"))
    with pytest.raises(TransientError):
        connector().fetch("acme", "t3_1cqx00")
    assert len(rsps.calls) == 2


def test_truncated_json_is_malformed_with_body(rsps):
    add_token(rsps)
    add(rsps, responses.GET, SEARCH, "truncated.json")
    with pytest.raises(MalformedResponse) as info:
        connector().fetch("acme", "t3_1cqx00")
    assert info.value.body.startswith(b'{"kind": "Listing"')


def test_missing_secret_is_auth_error(monkeypatch):
    monkeypatch.delenv("OTKLIK_REDDIT_PASSWORD")
    with pytest.raises(AuthError, match="OTKLIK_REDDIT_PASSWORD"):
        connector().fetch("acme", None)


# --- real interactions recorded by PRAW's own test suite (betamax cassettes) ---------------


def _replay(rsps, cassette: str, *, skip_token: bool = False) -> list[dict]:
    recorded = json.loads(sample_path("praw", cassette).read_text(encoding="utf-8"))
    interactions = recorded["interactions"]
    for item in interactions[1:] if skip_token else interactions:
        request, response = item["request"], item["response"]
        url = request["uri"].split("?")[0]
        headers = {
            k: v[0] for k, v in response["headers"].items() if k.lower().startswith("x-ratelimit")
        }
        rsps.add(
            request["method"],
            url,
            body=response["body"]["string"],
            status=response["status"]["code"],
            headers=headers,
            content_type="application/json",
        )
    return interactions


def test_praw_cassette_search_listing(rsps):
    interactions = _replay(rsps, "TestSubreddit.test_search.json")
    found = re.compile(re.escape(OAUTH) + r"/comments/(\w+)/")  # every thread found is read
    rsps.add_callback(
        responses.GET,
        found,
        callback=lambda req: (200, {}, json.dumps(empty_thread(found.match(req.url)[1]))),
        content_type="application/json",
    )
    page = connector(subreddits="all", watch_submissions=0).fetch("praw oauth search", "t3_0")
    listing = json.loads(interactions[1]["response"]["body"]["string"])
    assert len(page.mentions) == len(listing["data"]["children"]) > 0
    assert {m.external_id[:3] for m in page.mentions} == {"t3_"}
    assert all(m.url.startswith("https://www.reddit.com/r/") for m in page.mentions)
    assert "restrict_sr" not in query(rsps.calls[1])


def test_praw_cassette_comment_tree(rsps):
    _replay(rsps, "TestSubmission.test_comments.json")
    rsps.add(
        responses.GET, OAUTH + "/r/all/search/", body=fixture_text("reddit", "search_empty.json")
    )
    cursor = json.dumps({"t3": "t3_0", "t1": {"2gmzqe": "t1_0"}, "watch": ["2gmzqe"]})
    page = connector(subreddits="all").fetch("praw", cursor)
    assert len(page.mentions) > 1
    ids = {m.external_id for m in page.mentions}
    for mention in page.mentions:
        assert mention.parent_external_id == "t3_2gmzqe" or mention.parent_external_id in ids
    assert any(m.parent_external_id != "t3_2gmzqe" for m in page.mentions)  # nested replies


def test_praw_cassette_comment_reply(rsps):
    _replay(rsps, "TestComment.test_reply.json")
    to = RawMention("reddit", "t1_d1616q2", "u", "x", "x", "t", datetime(2016, 3, 20, tzinfo=UTC))
    assert connector().reply(to, "Comment reply") == "t1_d1680wu"


# --- the reply path: outcomes (issue 16, items 8, 9, 10, 15) --------------------------------

REPLY = OAUTH + "/api/comment/"


def _target() -> RawMention:
    return RawMention(
        "reddit", "t1_l3x0001", "u", "t2_sam", "sam", "t", datetime(2024, 5, 13, tzinfo=UTC)
    )


def _refused_connection() -> requests.ConnectionError:
    """What requests raises when the connection cannot be opened (nothing was sent)."""
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")
    return requests.ConnectionError(MaxRetryError(None, REPLY, reason))


def _dropped_after_sending() -> requests.ConnectionError:
    """What requests raises when the server closes the connection without an answer."""
    return requests.ConnectionError(
        ProtocolError("Connection aborted.", RemoteDisconnected("Remote end closed connection"))
    )


@pytest.mark.parametrize(
    "answer",
    [
        {"body": requests.exceptions.ReadTimeout("read timeout")},
        {"body": _dropped_after_sending()},
        {"status": 503, "body": "<html>503 Service Unavailable</html>"},
        {"status": 500, "json": {"message": "Internal Server Error", "error": 500}},
        {"status": 200, "body": '{"json": {"errors": [], "data": {"things": [{"kind'},
    ],
    ids=["read-timeout", "dropped-after-sending", "503", "500", "cut-off-200"],
)
def test_reply_whose_outcome_is_unknown_is_never_retried_blindly(rsps, answer):
    add_token(rsps)
    rsps.add(responses.POST, REPLY, content_type="application/json", **answer)
    with pytest.raises(OutcomeUnknown, match="may have been posted"):
        connector().reply(_target(), "Hi! Please DM us your order number.", "key-1")
    assert len(rsps.calls) == 2  # token + one POST: no retry by prawcore either


def test_reply_that_could_not_connect_is_transient(rsps):
    add_token(rsps)
    rsps.add(responses.POST, REPLY, body=_refused_connection())
    with pytest.raises(TransientError) as info:
        connector().reply(_target(), "hello", "key-1")
    assert not isinstance(info.value, OutcomeUnknown)


def test_reply_whose_token_request_times_out_is_transient(rsps):
    """The token request goes first: when it fails the comment never left."""
    rsps.add(responses.POST, TOKEN, body=requests.exceptions.ReadTimeout("read timeout"))
    with pytest.raises(TransientError) as info:
        connector().reply(_target(), "hello", "key-1")
    assert not isinstance(info.value, OutcomeUnknown)
    assert len(rsps.calls) == 1


def test_reply_in_a_quarantined_subreddit_without_a_comment_is_outcome_unknown(rsps):
    """praw returns None for {"things": []}: the comment exists, Reddit just does not show it."""
    add_token(rsps)
    add(rsps, responses.POST, REPLY, "reply_quarantined.json")
    with pytest.raises(OutcomeUnknown, match="quarantined"):
        connector().reply(_target(), "Hi! Please DM us your order number.", "key-1")


A_LOT = "Looks like you've been doing that a lot."


@pytest.mark.parametrize(
    ("message", "wait"),
    [
        ("you are doing that too much. try again in 9 minutes.", 540),
        ("you are doing that too much. try again in 1 minute.", 60),
        (f"{A_LOT} Take a break for 5 minutes before trying again.", 300),
        (f"{A_LOT} Take a break for 42 seconds before trying again.", 42),
        ("Take a break for 300 milliseconds before trying again.", 1),  # praw slept 1 s here
        ("you are doing that too much.", 60),  # no wait given
    ],
)
def test_reply_ratelimit_waits_as_long_as_reddit_says(rsps, message, wait):
    add_token(rsps)
    rsps.add(
        responses.POST, REPLY, json={"json": {"errors": [["RATELIMIT", message, "ratelimit"]]}}
    )
    with pytest.raises(RateLimited) as info:
        connector().reply(_target(), "hello", "key-1")
    assert info.value.retry_after == wait
    assert len(rsps.calls) == 2  # praw did not sleep and retry


def test_reply_ratelimit_recorded_answer_is_nine_minutes(rsps):
    add_token(rsps)
    add(rsps, responses.POST, REPLY, "reply_ratelimit_minutes.json")
    with pytest.raises(RateLimited, match="try again in 9 minutes") as info:
        connector().reply(_target(), "hello", "key-1")
    assert info.value.retry_after == 9 * 60


def test_reply_refused_by_reddit_is_a_plain_failure(rsps):
    add_token(rsps)
    rsps.add(
        responses.POST,
        REPLY,
        json={"json": {"errors": [["THREAD_LOCKED", "Comments are locked.", "parent"]]}},
    )
    with pytest.raises(ConnectorError, match="THREAD_LOCKED") as info:
        connector().reply(_target(), "hello", "key-1")
    assert type(info.value) is ConnectorError


@pytest.mark.parametrize(
    ("headers", "wait"),
    [({"Retry-After": "42"}, 42), ({"x-ratelimit-reset": "120"}, 120), ({}, 60)],
)
def test_429_on_the_token_request_is_rate_limited(rsps, headers, wait):
    add(rsps, responses.POST, TOKEN, "error_429.json", status=429, headers=headers)
    with pytest.raises(RateLimited) as info:
        connector().fetch("acme", "t3_1cqx00")
    assert info.value.retry_after == wait
    assert len(rsps.calls) == 1


def test_reply_length_counts_characters():
    cls = Registry().load("replier", "reddit")
    assert cls.reply_length("Привет, 👋") == len("Привет, 👋") == 9


# --- deleted and removed posts (issue 16, item 16) ------------------------------------------


def _gone(thing: dict, text_field: str, text: str) -> None:
    """Change a recorded thing as Reddit shows it once deleted (author and text replaced)."""
    thing["data"].update({"author": "[deleted]", text_field: text})
    thing["data"].pop("author_fullname", None)


def test_deleted_and_removed_comments_come_out_deleted_whatever_the_mark(rsps):
    thread = with_comment("comments_1cqx2b.json", "l3x0006")
    thread = json.loads(json.dumps(thread))
    removed = thread_with("1cqx2b", "l3x0005")[1]["data"]["children"][0]
    _gone(removed, "body", "[removed]")
    children = thread[1]["data"]["children"]
    children.insert(1, removed)
    stored = next(c for c in children if c["data"]["id"] == "l3x0001")  # below the mark
    _gone(stored, "body", "[deleted]")
    add_token(rsps)
    add(rsps, responses.GET, SEARCH, "search_empty.json")
    rsps.add(responses.GET, OAUTH + "/comments/1cqx2b/", json=thread)
    cursor = json.dumps({"t3": "t3_1cqx2b", "t1": {"1cqx2b": "t1_l3x0004"}, "watch": ["1cqx2b"]})

    page = connector().fetch("acme", cursor)
    by_id = {m.external_id: m for m in page.mentions}
    assert set(by_id) == {"t1_l3x0001", "t1_l3x0005", "t1_l3x0006"}
    assert by_id["t1_l3x0001"].deleted and by_id["t1_l3x0005"].deleted
    assert by_id["t1_l3x0001"].author_handle == "[deleted]"
    assert not by_id["t1_l3x0006"].deleted and by_id["t1_l3x0006"].text == "comment l3x0006"
    assert json.loads(page.cursor)["t1"] == {"1cqx2b": "t1_l3x0006"}


def test_a_watched_submission_that_was_deleted_comes_out_deleted(rsps):
    thread = json.loads(fixture_text("reddit", "comments_1cqx2b.json"))
    submission = thread[0]["data"]["children"][0]
    _gone(submission, "selftext", "[deleted]")
    submission["data"]["removed_by_category"] = "deleted"
    add_token(rsps)
    add(rsps, responses.GET, SEARCH, "search_empty.json")
    rsps.add(responses.GET, OAUTH + "/comments/1cqx2b/", json=thread)
    cursor = json.dumps({"t3": "t3_1cqx2b", "t1": {"1cqx2b": "t1_l3x0004"}, "watch": ["1cqx2b"]})
    page = connector().fetch("acme", cursor)
    assert [(m.external_id, m.deleted) for m in page.mentions] == [("t3_1cqx2b", True)]
    assert json.loads(page.cursor)["watch"] == ["1cqx2b"]


@pytest.mark.parametrize(
    ("selftext", "category"), [("[removed]", "moderator"), ("", "deleted"), ("[deleted]", None)]
)
def test_removed_submission_found_by_search_is_deleted(rsps, monkeypatch, selftext, category):
    monkeypatch.setattr("collectors.reddit.datetime", _FrozenDatetime)
    listing = json.loads(fixture_text("reddit", "search_new.json"))
    removed = listing["data"]["children"][1]  # t3_1cqx1a
    removed["data"].update(selftext=selftext, removed_by_category=category)
    add_token(rsps)
    rsps.add(responses.GET, SEARCH, json=listing)
    add(rsps, responses.GET, OAUTH + "/comments/1cqx2b/", "comments_1cqx2b.json")
    rsps.add(responses.GET, OAUTH + "/comments/1cqx1a/", json=empty_thread("1cqx1a"))
    page = connector().fetch("acme", None)
    deleted = {m.external_id for m in page.mentions if m.deleted}
    assert "t3_1cqx1a" in deleted and "t3_1cqx2b" not in deleted


def test_an_account_deleted_with_its_text_left_is_no_deletion(rsps):
    thread = json.loads(fixture_text("reddit", "comments_1cqx2b.json"))
    kim = thread[1]["data"]["children"][0]  # l3x0004
    kim["data"]["author"] = "[deleted]"
    kim["data"].pop("author_fullname")
    add_token(rsps)
    add(rsps, responses.GET, SEARCH, "search_empty.json")
    rsps.add(responses.GET, OAUTH + "/comments/1cqx2b/", json=thread)
    cursor = json.dumps({"t3": "t3_1cqx2b", "t1": {"1cqx2b": "t1_l3x0003"}, "watch": ["1cqx2b"]})
    (mention,) = connector().fetch("acme", cursor).mentions
    assert mention.external_id == "t1_l3x0004" and not mention.deleted
    assert mention.text == "Try their Twitter, they answer there."
