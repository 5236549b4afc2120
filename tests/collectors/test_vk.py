"""VK connector against recorded VK API responses (vk_api's own HTTP calls intercepted)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from http.client import RemoteDisconnected
from urllib.parse import parse_qs

import pytest
import requests
import responses
from collector_support import fixture_text, sample_path, sent_timeouts
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from collectors.vk import parse_comments, parse_search, split_external_id
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

API = "https://api.vk.ru/method/"


@pytest.fixture(autouse=True)
def _token(monkeypatch):
    monkeypatch.setenv("OTKLIK_VK_TOKEN", "vk-test-token")
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail(f"connector slept {s}s"))


def connector(**settings):
    return Registry().load("source", "vk").from_settings(settings)


def add(rsps, method, name, status=200):
    rsps.add(
        responses.POST,
        API + method,
        body=fixture_text("vk", name),
        status=status,
        content_type="application/json; charset=utf-8",
    )


def form(call) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def mention(external_id: str) -> RawMention:
    return RawMention("vk", external_id, "u", "1", "h", "t", datetime(2024, 5, 13, tzinfo=UTC))


def test_search_first_run_backfill_then_drains_next_from(rsps):
    add(rsps, "newsfeed.search", "search_page1.json")
    add(rsps, "newsfeed.search", "search_page2.json")
    conn = connector(backfill_hours=12)

    first = conn.fetch("акме", None)
    sent = form(rsps.calls[0])
    assert sent["q"] == "акме"
    assert sent["extended"] == "1"
    assert sent["access_token"] == "vk-test-token"
    assert abs(time.time() - 12 * 3600 - int(sent["start_time"])) < 120
    assert "start_from" not in sent
    assert [m.external_id for m in first.mentions] == ["-170000222_881", "52000111_5120"]
    state = json.loads(first.cursor)
    assert state == {
        "start_time": int(sent["start_time"]),
        "next_from": "2/-170000222_881",
        "top": 1715594400,
    }

    second = conn.fetch("акме", first.cursor)
    sent2 = form(rsps.calls[1])
    assert sent2["start_from"] == "2/-170000222_881"
    assert sent2["start_time"] == sent["start_time"]
    assert [m.external_id for m in second.mentions] == ["61000333_77"]
    assert second.cursor == "1715594400"  # caught up: newest post time seen
    assert sent_timeouts(rsps) == [20.0, 20.0]


def test_search_fields_russian_text_and_authors(rsps):
    add(rsps, "newsfeed.search", "search_page1.json")
    page = connector().fetch("акме", "1715580000")
    assert form(rsps.calls[0])["start_time"] == "1715580000"
    post = page.mentions[1]
    assert post.text == 'Заказал в Акме "быструю доставку", жду уже неделю.\nПоддержка молчит.'
    assert post.author_handle == "olga.smirnova"
    assert post.author_followers == 153
    assert post.url == "https://vk.com/wall52000111_5120"
    assert post.created_at == datetime(2024, 5, 13, 10, 0, tzinfo=UTC)
    group_post = page.mentions[0]
    assert group_post.author_external_id == "-170000222"
    assert group_post.author_handle == "tech_reviews"
    assert group_post.author_followers == 48211


def test_bare_reposts_are_dropped_unless_include_reposts(rsps):
    add(rsps, "newsfeed.search", "search_page2.json")
    add(rsps, "newsfeed.search", "search_page2.json")
    dropped = connector().fetch("акме", "1715580000")
    kept = connector(include_reposts=True).fetch("акме", "1715580000")
    assert [m.external_id for m in dropped.mentions] == ["61000333_77"]
    assert [m.external_id for m in kept.mentions] == ["61000333_77", "61000333_78"]
    assert dropped.cursor == kept.cursor == "1715587300"


def test_search_empty_keeps_cursor(rsps):
    add(rsps, "newsfeed.search", "search_empty.json")
    page = connector().fetch("акме", "1715580000")
    assert page.mentions == [] and page.cursor == "1715580000"


def test_wall_comments_threads_and_comment_cursor(rsps):
    add(rsps, "wall.get", "wall_get.json")
    add(rsps, "execute", "wall_execute.json")
    page = connector(mode="wall", owner_id="-123456").fetch("", "9010")
    assert form(rsps.calls[0])["owner_id"] == "-123456"
    code = form(rsps.calls[1])["code"]
    assert code.count("API.wall.getComments(") == 2  # the post without comments is skipped
    assert '"post_id": 9001' in code and '"post_id": 8950' in code
    ids = [m.external_id for m in page.mentions]
    assert ids == ["-123456_9001_c9012", "-123456_9001_c9015"]  # 9003 <= cursor, 9005 deleted
    top, reply = page.mentions
    assert top.parent_external_id == "-123456_9001"
    assert reply.parent_external_id == "-123456_9001_c9012"
    assert reply.author_handle == "acme_ru" and reply.author_followers == 90210
    assert reply.url == "https://vk.com/wall-123456_9001?reply=9015&thread=9012"
    assert page.cursor == "9015"


def test_wall_first_run_uses_backfill_window(rsps, monkeypatch):
    add(rsps, "wall.get", "wall_get.json")
    add(rsps, "execute", "wall_execute.json")
    monkeypatch.setattr("collectors.vk.datetime", _FrozenDatetime)
    page = connector(mode="wall", owner_id="-123456", backfill_hours=3).fetch("", None)
    # now = 2024-05-13 11:00 UTC; 3 h back = 08:00 (1715587200): 9003 (07:30) is too old
    assert [m.external_id for m in page.mentions] == ["-123456_9001_c9012", "-123456_9001_c9015"]


class _FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2024, 5, 13, 11, 0, tzinfo=tz)


def test_wall_mode_requires_owner_id():
    with pytest.raises(ValueError, match="owner_id"):
        connector(mode="wall")


def test_reply_to_comment_as_community(rsps):
    add(rsps, "wall.createComment", "create_comment.json")
    new_id = connector(mode="wall", owner_id=-123456).reply(
        mention("-123456_9001_c9012"), "Ольга, уточнили: скидка действует."
    )
    sent = form(rsps.calls[0])
    assert sent["owner_id"] == "-123456" and sent["post_id"] == "9001"
    assert sent["reply_to_comment"] == "9012"
    assert sent["from_group"] == "123456"
    assert sent["message"] == "Ольга, уточнили: скидка действует."
    assert new_id == "-123456_9001_c9020"


def test_reply_to_post_on_someone_elses_wall(rsps):
    add(rsps, "wall.createComment", "create_comment.json")
    new_id = connector().reply(mention("52000111_5120"), "Здравствуйте! Напишите нам в личку.")
    sent = form(rsps.calls[0])
    assert "reply_to_comment" not in sent and "from_group" not in sent
    assert new_id == "52000111_5120_c9020"


def test_flood_control_on_reply_is_rate_limited(rsps):
    add(rsps, "wall.createComment", "error_9.json")
    with pytest.raises(RateLimited, match="Flood control"):
        connector().reply(mention("52000111_5120"), "again")


def test_error_5_is_auth_error_with_vk_message(rsps):
    add(rsps, "newsfeed.search", "error_5.json")
    with pytest.raises(AuthError, match="invalid access_token"):
        connector().fetch("акме", None)


def test_error_6_is_rate_limited_without_vk_api_sleep_and_retry(rsps):
    add(rsps, "newsfeed.search", "error_6.json")  # fired exactly once: no retry
    with pytest.raises(RateLimited) as info:
        connector().fetch("акме", None)
    assert info.value.retry_after == 1.0


def test_http_401_is_auth_error(rsps):
    rsps.add(responses.POST, API + "newsfeed.search", status=401, body="Unauthorized")
    with pytest.raises(AuthError):
        connector().fetch("акме", None)


def test_http_429_uses_retry_after(rsps):
    rsps.add(
        responses.POST, API + "newsfeed.search", status=429, body="", headers={"Retry-After": "42"}
    )
    with pytest.raises(RateLimited) as info:
        connector().fetch("акме", None)
    assert info.value.retry_after == 42


def test_http_500_is_transient(rsps):
    rsps.add(responses.POST, API + "newsfeed.search", status=502, body="Bad Gateway")
    with pytest.raises(TransientError):
        connector().fetch("акме", None)


def test_timeout_is_transient(rsps):
    rsps.add(
        responses.POST,
        API + "newsfeed.search",
        body=requests.exceptions.ConnectTimeout("connect timed out"),
    )
    with pytest.raises(TransientError):
        connector().fetch("акме", None)


def test_truncated_json_is_malformed_with_body(rsps):
    add(rsps, "newsfeed.search", "truncated.json")
    with pytest.raises(MalformedResponse) as info:
        connector().fetch("акме", None)
    assert "Заказал в Ак" in info.value.body


def test_unexpected_shape_is_malformed(rsps):
    rsps.add(responses.POST, API + "newsfeed.search", json={"response": {"posts": []}})
    with pytest.raises(MalformedResponse):
        connector().fetch("акме", None)


def test_missing_token_is_auth_error(monkeypatch):
    monkeypatch.delenv("OTKLIK_VK_TOKEN")
    with pytest.raises(AuthError, match="OTKLIK_VK_TOKEN"):
        connector().fetch("акме", None)


def test_check_uses_groups_get_by_id_for_a_community(rsps):
    add(rsps, "groups.getById", "groups_get_by_id.json")
    connector(mode="wall", owner_id=-123456).check()
    assert form(rsps.calls[0])["group_id"] == "123456"


def test_check_uses_users_get_otherwise(rsps):
    add(rsps, "users.get", "users_get.json")
    connector().check()


def test_split_external_id():
    assert split_external_id("-1_2") == (-1, 2, None)
    assert split_external_id("-1_2_c3") == (-1, 2, 3)
    with pytest.raises(ValueError):
        split_external_id("wall-1_2")


# --- real response shapes from the VkNet test suite ----------------------------------------


def _sample(name: str) -> dict:
    return json.loads(sample_path("vk", name).read_text(encoding="utf-8-sig"))


def test_parses_vknet_newsfeed_search():
    body = _sample("NewsFeed__Search_NextFrom_NotNull.json")["response"]
    mentions = parse_search(body)
    assert len(mentions) == len(body["items"]) == 3
    assert mentions[-1].external_id == "388444282_11454"
    assert mentions[-1].text.startswith("\u2757Принимаю заказы")  # &#10071; unescaped
    assert all(m.created_at.tzinfo is not None for m in mentions)
    assert body["next_from"] == "3/-184898883_177"


def test_parses_vknet_comments_with_deleted_and_threads():
    body = _sample("Wall__GetComments802.json")["response"]
    mentions = parse_comments(body, -69459624, 482121)
    assert [m.external_id for m in mentions] == [
        "-69459624_482121_c482124",
        "-69459624_482121_c482418",
    ]
    assert mentions[0].text == "Текст 1го комментария"
    assert mentions[0].parent_external_id == "-69459624_482121"


def test_parses_vknet_comment_reply_with_profiles():
    body = _sample("Wall__GetComment_ReturnCorrectResults.json")["response"]
    (mention_,) = parse_comments(body, -1, 73000)
    assert mention_.parent_external_id == "-1_73000_c73673"


def test_vknet_error_5_maps_to_auth_error(rsps):
    rsps.add(responses.POST, API + "users.get", json=_sample("Errors__5.json"))
    with pytest.raises(AuthError, match="another ip address"):
        connector().check()


def test_vknet_captcha_error_is_rate_limited(rsps):
    rsps.add(responses.POST, API + "users.get", json=_sample("Errors__14.json"))
    with pytest.raises(RateLimited):
        connector().check()


# --- replies: as the community, once (issue 16, items 8 and 11) ------------------------------


def test_reply_sends_the_idempotency_key_as_guid(rsps):
    add(rsps, "wall.createComment", "create_comment.json")
    connector().reply(mention("52000111_5120"), "Здравствуйте!", "3f1c0de4a9b84d7e")
    assert form(rsps.calls[0])["guid"] == "3f1c0de4a9b84d7e"


def test_reply_to_a_post_found_by_search_is_posted_as_the_community(rsps):
    """from_group is the community's id on any wall, not only on the community's own."""
    add(rsps, "wall.createComment", "create_comment.json")
    new_id = connector(mode="search", owner_id="-123456").reply(
        mention("52000111_5120"), "Здравствуйте! Напишите нам в личку.", "k1"
    )
    sent = form(rsps.calls[0])
    assert sent["owner_id"] == "52000111" and sent["post_id"] == "5120"
    assert sent["from_group"] == "123456"
    assert new_id == "52000111_5120_c9020"


def test_reply_as_the_user_when_reply_from_group_is_off_or_owner_is_a_user(rsps):
    add(rsps, "wall.createComment", "create_comment.json")
    add(rsps, "wall.createComment", "create_comment.json")
    connector(owner_id="-123456", reply_from_group="false").reply(mention("5_1"), "a", "k1")
    connector(owner_id="52000111").reply(mention("5_1"), "b", "k2")
    assert all("from_group" not in form(call) for call in rsps.calls)


def test_the_settings_say_replies_go_out_as_the_community():
    settings = {s.name: s.help for s in Registry().settings_of("source", "vk")}
    assert "replies" in settings["owner_id"] and "every wall" in settings["reply_from_group"]


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
        {"status": 200, "body": fixture_text("vk", "error_10.json")},
        {"status": 200, "body": '{"response": {"comment_id": 90'},
        {"status": 200, "body": '{"response": 1}'},
    ],
    ids=["read-timeout", "dropped-after-sending", "502", "vk-error-10", "cut-off", "no-id"],
)
def test_reply_whose_outcome_is_unknown_is_outcome_unknown(rsps, answer):
    rsps.add(responses.POST, API + "wall.createComment", **answer)
    with pytest.raises(OutcomeUnknown):
        connector().reply(mention("52000111_5120"), "Здравствуйте!", "k1")
    assert len(rsps.calls) == 1


def test_reply_that_could_not_connect_is_transient(rsps):
    reason = NewConnectionError(None, "Failed to establish a new connection: [Errno 111]")
    refused = requests.ConnectionError(MaxRetryError(None, API, reason))
    rsps.add(responses.POST, API + "wall.createComment", body=refused)
    with pytest.raises(TransientError) as info:
        connector().reply(mention("52000111_5120"), "Здравствуйте!", "k1")
    assert not isinstance(info.value, OutcomeUnknown)


def test_reply_length_counts_characters():
    assert Registry().load("replier", "vk").reply_length("Спасибо! 🙂") == 10


# --- execute answering null with execute_errors (issue 16, item 19) --------------------------


def test_execute_null_with_access_denied_is_auth_error_with_vk_message(rsps):
    add(rsps, "wall.get", "wall_get.json")
    add(rsps, "execute", "execute_error_15.json")
    with pytest.raises(AuthError, match="vk error 15: Access denied: this wall available only"):
        connector(mode="wall", owner_id="-123456").fetch("", "9010")


@pytest.mark.parametrize(
    ("code", "error"),
    [(10, TransientError), (6, RateLimited), (5, AuthError), (100, ConnectorError)],
)
def test_execute_errors_are_mapped_by_vk_code(rsps, code, error):
    add(rsps, "wall.get", "wall_get.json")
    failure = {"method": "wall.getComments", "error_code": code, "error_msg": "VK said why"}
    rsps.add(responses.POST, API + "execute", json={"response": None, "execute_errors": [failure]})
    with pytest.raises(error, match=f"vk error {code}: VK said why") as info:
        connector(mode="wall", owner_id="-123456").fetch("", "9010")
    assert not isinstance(info.value, MalformedResponse)


def test_execute_null_without_a_reason_is_malformed(rsps):
    add(rsps, "wall.get", "wall_get.json")
    rsps.add(responses.POST, API + "execute", json={"response": None})
    with pytest.raises(MalformedResponse, match="one result per post"):
        connector(mode="wall", owner_id="-123456").fetch("", "9010")


def test_execute_with_one_failed_call_keeps_the_others(rsps):
    add(rsps, "wall.get", "wall_get.json")
    answer = json.loads(fixture_text("vk", "wall_execute.json"))
    answer["response"][1] = False
    answer["execute_errors"] = [
        {"method": "wall.getComments", "error_code": 15, "error_msg": "Access denied"}
    ]
    rsps.add(responses.POST, API + "execute", json=answer)
    page = connector(mode="wall", owner_id="-123456").fetch("", "9010")
    assert [m.external_id for m in page.mentions] == ["-123456_9001_c9012", "-123456_9001_c9015"]
