"""RSS/Atom connector against recorded feeds (requests intercepted, parsed by feedparser)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import requests
import responses
from collector_support import FIXTURES, sample_path, sent_timeouts

from collectors._text import KeywordFilter, html_to_text
from collectors.rss import parse_feed
from otklik.connectors import Registry, Replier
from otklik.domain import AuthError, MalformedResponse, RateLimited, TransientError

URL = "https://forum.example.ru/posts.rss"


def connector(**settings):
    return Registry().load("source", "rss").from_settings({"url": URL, **settings})


def add(rsps, name, url=URL, **kwargs):
    body = (FIXTURES / "rss" / name).read_bytes()
    rsps.add(responses.GET, url, body=body, content_type="application/rss+xml", **kwargs)


def cursor_at(iso: str, *seen: str) -> str:
    return json.dumps({"after": iso, "seen": list(seen)})


def test_filters_by_query_oldest_first_and_sets_cursor(rsps):
    add(rsps, "feed.xml")
    page = connector().fetch("акме OR acme -spam", cursor_at("2024-05-13T07:00:00+00:00"))
    assert [m.external_id for m in page.mentions] == [
        "forum.example.ru-post-3103",
        "forum.example.ru-post-3104",
    ]
    first = page.mentions[1]
    assert (
        first.text
        == "Акме: возврат денег\n\nВернули деньги за заказ в Акме за два дня.\n\nСпасибо!"
    )
    assert first.author_handle == "olga"
    assert first.url == "https://forum.example.ru/t/akme-vozvrat/311#post_4"
    assert first.created_at == datetime(2024, 5, 13, 10, 30, tzinfo=UTC)
    assert json.loads(page.cursor) == {
        "after": "2024-05-13T10:30:00+00:00",
        "seen": ["forum.example.ru-post-3103", "forum.example.ru-post-3104"],
    }
    assert rsps.calls[0].request.headers["User-Agent"].startswith("Otklik/")
    assert sent_timeouts(rsps) == [20.0]


def test_same_second_entries_are_not_repeated_or_skipped(rsps):
    add(rsps, "feed.xml")
    page = connector().fetch(
        "", cursor_at("2024-05-13T10:30:00+00:00", "forum.example.ru-post-3104")
    )
    assert [m.external_id for m in page.mentions] == ["forum.example.ru-post-3103"]
    assert set(json.loads(page.cursor)["seen"]) == {
        "forum.example.ru-post-3103",
        "forum.example.ru-post-3104",
    }


def test_nothing_new_keeps_cursor(rsps):
    add(rsps, "feed.xml")
    cursor = cursor_at(
        "2024-05-13T10:30:00+00:00", "forum.example.ru-post-3103", "forum.example.ru-post-3104"
    )
    page = connector().fetch("acme", cursor)
    assert page.mentions == [] and page.cursor == cursor


def test_first_run_uses_backfill_window(rsps):
    add(rsps, "feed.xml")
    page = connector(backfill_hours=1).fetch("", None)
    assert page.mentions == []  # the fixture entries are older than an hour
    assert page.cursor is None


def test_atom_content_and_timezone(rsps):
    add(rsps, "atom.xml")
    page = connector().fetch("blender", cursor_at("2024-05-01T00:00:00+00:00"))
    (entry,) = page.mentions
    assert entry.external_id == "tag:reviews.example.com,2024:review-77"
    assert entry.created_at == datetime(2024, 5, 13, 8, 0, tzinfo=UTC)
    assert entry.text == "Acme blender review\n\nThe Acme blender is loud but powerful."
    assert entry.author_handle == "Sam Reviewer"


def test_truncated_feed_is_malformed_with_body(rsps):
    add(rsps, "truncated.xml")
    with pytest.raises(MalformedResponse) as info:
        connector().fetch("", None)
    assert info.value.body.endswith(b"Acme was late ")


def test_html_page_is_malformed(rsps):
    add(rsps, "not_a_feed.html")
    with pytest.raises(MalformedResponse):
        connector().fetch("", None)


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        (401, {}, AuthError),
        (403, {}, AuthError),
        (429, {"Retry-After": "120"}, RateLimited),
        (500, {}, TransientError),
        (503, {}, TransientError),
    ],
)
def test_http_failures(rsps, status, headers, error):
    rsps.add(responses.GET, URL, status=status, body="nope", headers=headers)
    with pytest.raises(error) as info:
        connector().fetch("", None)
    if error is RateLimited:
        assert info.value.retry_after == 120


def test_timeout_is_transient(rsps):
    rsps.add(responses.GET, URL, body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(TransientError):
        connector().check()


def test_cannot_reply():
    assert not Registry().can_reply("rss")
    assert not hasattr(Registry().load("source", "rss"), "reply")
    assert not isinstance(connector(), Replier)


def test_bad_url_setting():
    with pytest.raises(ValueError, match="url"):
        Registry().load("source", "rss").from_settings({})


def test_keyword_filter_and_html_to_text():
    f = KeywordFilter('"fast delivery" acme -coupon')
    assert f.matches("ACME was great")
    assert f.matches("really fast delivery")
    assert not f.matches("acme coupon inside")
    assert not f.matches("nothing here")
    assert KeywordFilter("").matches("anything")
    assert (
        html_to_text("<p>a &amp; b</p><ul><li>one</li><li>two</li></ul>") == "a & b\n\none\n\ntwo"
    )


# --- real Discourse RSS recorded from a live forum ------------------------------------------


@pytest.mark.parametrize("name", ["posts.rss", "t_2144.rss"])
def test_parses_live_discourse_rss(name):
    body = sample_path("discourse", "live_criticalfallibilism", name).read_bytes()
    mentions = parse_feed(body, "application/rss+xml")
    assert len(mentions) == body.count(b"<item>")
    assert all(m.url.startswith("https://discuss.criticalfallibilism.com/t/") for m in mentions)
    assert all(m.author_handle and not m.author_handle.startswith("@") for m in mentions)
    assert len({m.external_id for m in mentions}) == len(mentions)


def test_live_posts_rss_first_item(rsps):
    body = sample_path("discourse", "live_criticalfallibilism", "posts.rss").read_bytes()
    rsps.add(responses.GET, URL, body=body, content_type="application/rss+xml")
    page = connector().fetch("logic", cursor_at("2026-01-01T00:00:00+00:00"))
    newest = page.mentions[-1]
    assert newest.text.startswith("People Being Bad at Logic\n\nI was talking with someone")
    assert newest.author_handle == "Elliot"
    assert newest.created_at == datetime(2026, 1, 21, 23, 29, 42, tzinfo=UTC)


# --- links relative to the feed, HTML titles (issue 16, items 13 and 14) -------------------


def test_relative_links_are_resolved_against_the_feeds_address(rsps):
    """Item 13: no xml:base, links relative to the feed; resolved against where the feed was
    really fetched from (after a redirect). Ids (guids) are kept as the feed gives them."""
    first, final = "https://blog.example.com/feed", "https://blog.example.com/blog/index.xml"
    rsps.add(responses.GET, first, status=301, headers={"Location": final})
    add(rsps, "relative_links.xml", url=final)
    page = connector(url=first).fetch("acme", cursor_at("2024-05-13T00:00:00+00:00"))
    assert {m.external_id: m.url for m in page.mentions} == {
        "https://forum.example.com/t/acme/77": "https://forum.example.com/t/acme/77",
        "acme-refund-2": "https://blog.example.com/blog/posts/acme-refund-2/",
        "/blog/posts/acme-courier/": "https://blog.example.com/blog/posts/acme-courier/",
    }


def test_atom_relative_links_and_xml_base(rsps):
    url = "https://reviews.example.org/reviews/feed.atom"
    rsps.add(
        responses.GET,
        url,
        body=(FIXTURES / "rss" / "relative_links.atom").read_bytes(),
        content_type="application/atom+xml",
    )
    page = connector(url=url).fetch("acme", cursor_at("2024-05-13T00:00:00+00:00"))
    assert [m.url for m in page.mentions] == [
        "https://cdn.example.net/mirror/acme-toaster.html",  # xml:base still wins
        "https://reviews.example.org/reviews/2024/05/acme-kettle",
    ]


def test_link_that_is_not_http_is_dropped():
    body = (FIXTURES / "rss" / "relative_links.xml").read_bytes()
    body = body.replace(b"posts/acme-refund-2/", b"javascript:alert(1)")
    urls = {m.external_id: m.url for m in parse_feed(body, "", "https://blog.example.com/")}
    assert urls["acme-refund-2"] == ""


def test_html_titles_become_plain_text(rsps):
    """Item 14: Google Alerts wraps the matched words of titles in <b> (type="html")."""
    add(rsps, "google_alerts.xml")
    page = connector().fetch("acme", cursor_at("2024-05-13T00:00:00+00:00"))
    delivery, recall = page.mentions
    assert recall.text.startswith("Acme recalls X2 blenders over overheating motor\n\nAcme said")
    assert recall.raw["title"] == "Acme recalls X2 blenders over overheating motor"
    assert delivery.text.startswith("Why Acme & Co. delivery times slipped in May\n\n")
    assert "<" not in delivery.text + recall.text
    assert recall.url.startswith("https://www.google.com/url?rct=j&sa=t&url=https://news.")


def test_plain_text_titles_keep_their_angle_brackets():
    feed = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>
    <title>Acme &lt;3 and a &lt; b</title><link>https://ex.com/1</link><guid>1</guid>
    <pubDate>Mon, 13 May 2024 10:30:00 +0000</pubDate><description>body</description></item>
    </channel></rss>"""
    (entry,) = parse_feed(feed, "application/rss+xml", "https://ex.com/feed")
    assert entry.text == "Acme <3 and a < b\n\nbody"
