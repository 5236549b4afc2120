"""RSS/Atom connector: one feed fetched with ``requests``, parsed by ``feedparser``.

Feeds have no server-side search or paging, so every fetch downloads the feed (setting
``url``), keeps the entries newer than the cursor and filters them with the query
(``collectors._text.KeywordFilter``: terms, "phrases", ``-exclusions``; empty = all).

Settings: ``url`` (required), ``backfill_hours`` (24: the first run only keeps entries
that recent), ``user_agent``, ``timeout`` (20 s). No secrets. Read-only: feeds cannot be
answered, so this connector has no ``reply`` and is not registered as a replier.

Cursor: JSON ``{"after": ISO time, "seen": [entry ids at that exact time]}``: the newest
entry time examined and the ids sharing it, so entries published in the same second
are neither repeated nor skipped. external_id: the entry's ``id``/``guid``, else its link.
Entries without any date are skipped (they cannot be ordered against the cursor).

Links are made absolute: feedparser applies ``xml:base``; what is still relative is resolved
against the address the feed was fetched from (after redirects); a link that is not http(s)
is dropped. Titles in HTML (``type="html"``, e.g. news alerts' ``<b>`` around matched words)
become plain text, as bodies do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import xml.sax
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self
from urllib.parse import urljoin, urlsplit

import feedparser
import requests

from collectors._http import DEFAULT_TIMEOUT, from_iso, send, setting_float, setting_str
from collectors._text import KeywordFilter, html_to_text
from otklik.connectors import Setting
from otklik.domain import MalformedResponse, Page, RawMention

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = "Otklik/0.1 (+https://github.com/otklik; feed reader)"
_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.8"
_CLOSING_TAGS = (b"</rss>", b"</feed>", b"</rdf:RDF>")


class RssConnector:
    """Reads one RSS or Atom feed and keeps the entries matching the query."""

    platform: ClassVar[str] = "rss"
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("url", "the feed's http(s) address", required=True),
        Setting("backfill_hours", "how far back the first run reads", default=24.0),
        Setting("user_agent", "User-Agent sent to the feed's server", default=DEFAULT_USER_AGENT),
        Setting("timeout", "seconds per HTTP call", default=DEFAULT_TIMEOUT),
    )

    def __init__(
        self,
        *,
        url: str,
        backfill_hours: float = 24.0,
        user_agent: str = DEFAULT_USER_AGENT,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"rss setting 'url' must be an http(s) URL, got {url!r}")
        self.url = url
        self.backfill_hours = backfill_hours
        self.user_agent = user_agent
        self.timeout = timeout
        self.session = requests.Session()

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> Self:
        """Build from source settings (``url`` is required)."""
        return cls(
            url=setting_str(settings, "url"),
            backfill_hours=setting_float(settings, "backfill_hours", 24.0),
            user_agent=setting_str(settings, "user_agent", DEFAULT_USER_AGENT),
            timeout=setting_float(settings, "timeout", DEFAULT_TIMEOUT),
        )

    def check(self) -> None:
        """Fetch and parse the feed once."""
        self._download()

    def fetch(self, query: str, cursor: str | None) -> Page:
        """Return matching entries newer than ``cursor``, oldest first."""
        after, seen = _parse_cursor(cursor)
        if after is None:
            after, seen = datetime.now(UTC) - timedelta(hours=self.backfill_hours), set()
        wanted = KeywordFilter(query)
        fresh = [
            m
            for m in self._download()
            if m.created_at > after or (m.created_at == after and m.external_id not in seen)
        ]
        fresh.sort(key=lambda m: (m.created_at, m.external_id))
        if not fresh:
            return Page([], cursor)
        newest = fresh[-1].created_at
        same_time = {m.external_id for m in fresh if m.created_at == newest}
        if newest == after:
            same_time |= seen
        state = {"after": newest.isoformat(), "seen": sorted(same_time)}
        mentions = [m for m in fresh if wanted.matches(m.text)]
        return Page(mentions, json.dumps(state, ensure_ascii=False))

    def _download(self) -> list[RawMention]:
        headers = {"User-Agent": self.user_agent, "Accept": _ACCEPT}
        response = send(self.session, "GET", self.url, headers=headers, timeout=self.timeout)
        content_type = response.headers.get("content-type", "")
        return parse_feed(response.content, content_type, base_url=response.url or self.url)


def _parse_cursor(cursor: str | None) -> tuple[datetime | None, set[str]]:
    if not cursor:
        return None, set()
    try:
        state = json.loads(cursor)
        return from_iso(state["after"]), set(state.get("seen") or [])
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"unreadable rss cursor {cursor!r}") from None


def parse_feed(body: bytes, content_type: str = "", base_url: str = "") -> list[RawMention]:
    """Parse feed bytes into mentions; ``MalformedResponse`` for truncated or non-feed bodies.

    ``base_url``, the feed's own address, resolves entry links left relative.
    """
    # No content-location for feedparser: it would also resolve ids (guids) as URLs, which
    # would change the external ids of entries already stored.
    feed = feedparser.parse(body, response_headers={"content-type": content_type})
    error = feed.get("bozo_exception")
    if feed.get("bozo") and isinstance(error, xml.sax.SAXException):
        # feedparser recovers what it can from broken XML; a cut-off document would
        # silently lose its last entries, so refuse it. https://feedparser.readthedocs.io/en/latest/bozo.html
        if not any(tag in body[-200:] for tag in _CLOSING_TAGS) or not feed.entries:
            raise MalformedResponse(f"rss: broken feed XML: {error}", body)
        log.warning("rss: feed has XML errors, using what feedparser recovered: %s", error)
    if not feed.get("version") and not feed.entries:
        raise MalformedResponse("rss: not an RSS or Atom feed", body)
    mentions = []
    for entry in feed.entries:
        mention = parse_entry(entry, base_url)
        if mention is not None:
            mentions.append(mention)
    return mentions


def parse_entry(entry: Mapping[str, Any], base_url: str = "") -> RawMention | None:
    """Turn one feedparser entry into a mention (``None`` when it carries no date)."""
    stamp: time.struct_time | None = entry.get("published_parsed") or entry.get("updated_parsed")
    if stamp is None:
        log.info("rss: skipping undated entry %r", entry.get("id") or entry.get("link"))
        return None
    link = _absolute(str(entry.get("link") or "").strip(), base_url)
    title = _plain_title(entry)
    contents = entry.get("content") or []
    markup = contents[0].get("value", "") if contents else entry.get("summary", "")
    body = html_to_text(str(markup or ""))
    external_id = str(entry.get("id") or link or _digest(title, body))
    author = str(entry.get("author") or "").strip().removeprefix("@")  # Discourse: "@name"
    return RawMention(
        platform="rss",
        external_id=external_id,
        url=link,
        author_external_id=author,
        author_handle=author,
        text=f"{title}\n\n{body}".strip() if title and title not in body else body or title,
        created_at=datetime(*stamp[:6], tzinfo=UTC),
        raw={
            "id": external_id,
            "title": title,
            "link": link,
            "author": author,
            "published": entry.get("published") or entry.get("updated"),
            "summary": entry.get("summary", ""),
            "tags": [t.get("term") for t in entry.get("tags") or []],
        },
    )


def _absolute(link: str, base_url: str) -> str:
    """``link`` resolved against the feed's address; "" unless it ends up http(s)."""
    absolute = urljoin(base_url, link) if base_url and link else link
    return absolute if urlsplit(absolute).scheme in ("http", "https") else ""


def _plain_title(entry: Mapping[str, Any]) -> str:
    """The entry's title as plain text (feedparser marks HTML titles ``text/html``)."""
    title = str(entry.get("title") or "")
    kind = str((entry.get("title_detail") or {}).get("type") or "")
    if "html" in kind:  # text/html, application/xhtml+xml
        title = html_to_text(title)
    return " ".join(title.split())


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]
