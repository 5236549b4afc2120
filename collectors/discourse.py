"""Discourse connector (plain ``requests`` against the forum's JSON API).

Modes (setting ``mode``):

* ``"latest"`` (default): ``GET /posts.json`` (the forum's newest posts, paged backwards
  with ``before=<post id>``), filtered client-side with the query
  (``collectors._text.KeywordFilter``; an empty query keeps every post).
* ``"search"``: ``GET /search.json?q=<query> order:latest`` (paged with ``page``); search
  results only carry a blurb, so the full posts are then read per topic with
  ``GET /t/{topic_id}/posts.json?post_ids[]=...``.

Threads: ``parent_external_id`` is the post answered (``reply_to_post_number``), else the
topic's first post. Discourse gives the parent's *number*, so its id is taken from the
same page when present, else from ``GET /posts/by_number/{topic_id}/{n}.json`` (cached;
at most ``parent_lookups`` calls per fetch, after which the parent is left unknown).

Replies: ``POST /posts.json`` with ``topic_id``, ``raw`` and ``reply_to_post_number``;
returns the new post's id. A reply whose outcome is unknown (read timeout, dropped
connection, 5xx, an unreadable answer) raises ``OutcomeUnknown``, as does a 422 "Body is
too similar to what you recently posted" (a retry refused because the first copy went
through; only the English text is recognised). Lengths are counted in characters. Needs
``OTKLIK_DISCOURSE_API_KEY`` and ``OTKLIK_DISCOURSE_API_USERNAME`` (sent as
``Api-Key``/``Api-Username`` headers on every call when set, so private forums can be read
too).

Settings: ``base_url`` (required), ``mode``, ``backfill_hours`` (24), ``parent_lookups``
(20), ``timeout`` (20 s).

external_id: the post id (decimal string). Cursor: when caught up, the highest post id
delivered (post ids only grow, forum-wide). While a backlog spans several pages (results
are newest first) it is JSON ``{"since"|"after", "before"|"page", "top"}``; the position
moves to ``top`` only after the last page, so nothing is skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

import requests

from collectors._http import (
    DEFAULT_TIMEOUT,
    from_iso,
    json_body,
    never_sent,
    raise_for_status,
    require_secret,
    secret,
    send,
    setting_float,
    setting_str,
)
from collectors._text import KeywordFilter, html_to_text
from otklik.connectors import Setting
from otklik.domain import (
    ConnectorError,
    MalformedResponse,
    OutcomeUnknown,
    Page,
    RateLimited,
    RawMention,
    TransientError,
)

log = logging.getLogger(__name__)


class DiscourseConnector:
    """Reads a Discourse forum's latest posts or search results; replies in topics."""

    platform: ClassVar[str] = "discourse"
    reply_limit: ClassVar[int | None] = 32000
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("base_url", "the forum's address, e.g. https://forum.example.org", required=True),
        Setting(
            "mode", "'latest' (newest posts, filtered by the query) or 'search'", default="latest"
        ),
        Setting("backfill_hours", "how far back the first run reads", default=24.0),
        Setting("parent_lookups", "API calls per fetch to resolve reply parents", default=20),
        Setting("timeout", "seconds per HTTP call", default=DEFAULT_TIMEOUT),
        Setting(
            "api_key",
            "API key (needed to reply; also used to read private forums)",
            secret=True,
            env="OTKLIK_DISCOURSE_API_KEY",
        ),
        Setting(
            "api_username",
            "user the API key acts as (needed to reply)",
            secret=True,
            env="OTKLIK_DISCOURSE_API_USERNAME",
        ),
    )

    def __init__(
        self,
        *,
        base_url: str,
        mode: str = "latest",
        backfill_hours: float = 24.0,
        parent_lookups: int = 20,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"discourse setting 'base_url' must be an http(s) URL: {base_url!r}")
        if mode not in {"latest", "search"}:
            raise ValueError(f"discourse mode must be 'latest' or 'search', got {mode!r}")
        self.base_url = base_url.rstrip("/")
        self.mode = mode
        self.backfill_hours = backfill_hours
        self.parent_lookups = parent_lookups
        self.timeout = timeout
        self.session = requests.Session()
        self._post_ids: dict[tuple[int, int], int] = {}  # (topic_id, post_number) -> post id

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> Self:
        """Build from source settings (``base_url`` is required)."""
        return cls(
            base_url=setting_str(settings, "base_url"),
            mode=setting_str(settings, "mode", "latest"),
            backfill_hours=setting_float(settings, "backfill_hours", 24.0),
            parent_lookups=int(setting_float(settings, "parent_lookups", 20)),
            timeout=setting_float(settings, "timeout", DEFAULT_TIMEOUT),
        )

    # --- HTTP ----------------------------------------------------------------------------

    def _headers(self, write: bool = False) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        key_name, user_name = "OTKLIK_DISCOURSE_API_KEY", "OTKLIK_DISCOURSE_API_USERNAME"
        key = require_secret(key_name) if write else secret(key_name)
        user = require_secret(user_name) if write else secret(user_name)
        if key:
            # https://docs.discourse.org/#tag/Authentication (header names are exact)
            headers["Api-Key"] = key
            if user:
                headers["Api-Username"] = user
        return headers

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}{path}"
        headers = self._headers(write=method != "GET")
        response = send(
            self.session, method, url, check=False, headers=headers, timeout=self.timeout, **kwargs
        )
        _raise_for_discourse(response)
        return json_body(response)

    # --- protocol ------------------------------------------------------------------------

    def check(self) -> None:
        """``/session/current.json`` with an API key (proves it), else ``/site.json``."""
        self._request(
            "GET", "/session/current.json" if secret("OTKLIK_DISCOURSE_API_KEY") else "/site.json"
        )

    def fetch(self, query: str, cursor: str | None) -> Page:
        """Return the next page of posts after ``cursor`` (see the module docstring)."""
        state = _parse_cursor(cursor)
        if not state:
            start = datetime.now(UTC) - timedelta(hours=self.backfill_hours)
            state = {"after": start.isoformat()}
        if self.mode == "search":
            posts, more, position = self._search_page(query, state)
        else:
            posts, more, position = self._latest_page(state)
        self._remember(posts)
        fresh = [p for p in posts if _is_new(p, state)]
        more = more and bool(posts) and len(fresh) == len(posts)
        top = state.get("top") or max((p["id"] for p in fresh), default=None)
        if self.mode == "latest":
            wanted = KeywordFilter(query)
            fresh = [p for p in fresh if wanted.matches(_post_text(p))]
        mentions = self.mentions_from_posts(sorted(fresh, key=lambda p: p["id"]))
        if more:
            next_state = {k: v for k, v in state.items() if k in ("since", "after")}
            next_state.update(position, top=top)
            return Page(mentions, json.dumps(next_state, sort_keys=True))
        if top is None:
            return Page(mentions, str(state["since"]) if "since" in state else None)
        return Page(mentions, str(top))

    @classmethod
    def reply_length(cls, text: str) -> int:
        """Characters, as Discourse counts a post against ``max_post_length``."""
        return len(text)

    def reply(self, to: RawMention, text: str, idempotency_key: str = "") -> str:
        """Post ``text`` in ``to``'s topic as a reply to it; return the new post id.

        ``idempotency_key`` is not sent: Discourse has no such parameter.
        """
        topic_id, number = to.raw.get("topic_id"), to.raw.get("post_number")
        if topic_id is None or number is None:
            post = _checked_post(self._request("GET", f"/posts/{int(to.external_id)}.json"))
            topic_id, number = post["topic_id"], post["post_number"]
        payload = {"topic_id": topic_id, "raw": text, "reply_to_post_number": number}
        try:
            created = self._request("POST", "/posts.json", json=payload)
            return str(_checked_post(created)["id"])
        except TransientError as exc:  # a timeout, a dropped connection or a 5xx
            cause = exc.__cause__
            if isinstance(cause, requests.RequestException) and never_sent(cause):
                raise
            raise OutcomeUnknown(f"{exc}; the reply may have been posted") from exc
        except MalformedResponse as exc:  # a 2xx we cannot read
            raise OutcomeUnknown(f"{exc}; the reply may have been posted") from exc
        except ConnectorError as exc:
            if type(exc) is ConnectorError and _TOO_SIMILAR in str(exc):
                raise OutcomeUnknown(
                    f"{exc}: probably posted by an earlier attempt whose answer was lost"
                ) from exc
            raise

    # --- pages ---------------------------------------------------------------------------

    def _latest_page(self, state: Mapping[str, Any]) -> tuple[list[dict], bool, dict]:
        params = {"before": state["before"]} if state.get("before") else {}
        body = self._request("GET", "/posts.json", params=params)
        if not isinstance(body, dict) or not isinstance(body.get("latest_posts"), list):
            raise MalformedResponse("discourse /posts.json: no latest_posts", json.dumps(body))
        posts = [_checked_post(p) for p in body["latest_posts"]]
        oldest = min((p["id"] for p in posts), default=None)
        return posts, oldest is not None and oldest > 1, {"before": oldest}

    def _search_page(self, query: str, state: Mapping[str, Any]) -> tuple[list[dict], bool, dict]:
        page = int(state.get("page") or 1)
        terms = f"{query} order:latest"
        if "after" in state:
            terms += f" after:{from_iso(state['after']).date().isoformat()}"
        body = self._request("GET", "/search.json", params={"q": terms, "page": page})
        if not isinstance(body, dict) or not isinstance(body.get("posts", []), list):
            raise MalformedResponse("discourse /search.json: unexpected shape", json.dumps(body))
        hits = [_checked_post(p) for p in body.get("posts") or []]
        grouped = body.get("grouped_search_result") or {}
        more = bool(grouped.get("more_full_page_results") or grouped.get("more_posts"))
        wanted = [hit for hit in hits if _is_new(hit, state)]
        return self._full_posts(wanted), more and len(wanted) == len(hits), {"page": page + 1}

    def _full_posts(self, hits: list[dict]) -> list[dict]:
        """Replace search hits (blurbs) by full posts, one request per topic."""
        by_topic: dict[int, list[int]] = {}
        for hit in hits:
            by_topic.setdefault(hit["topic_id"], []).append(hit["id"])
        full: list[dict] = []
        for topic_id, ids in by_topic.items():
            body = self._request("GET", f"/t/{topic_id}/posts.json", params={"post_ids[]": ids})
            stream = body.get("post_stream") if isinstance(body, dict) else None
            if not isinstance(stream, dict) or not isinstance(stream.get("posts"), list):
                raise MalformedResponse("discourse topic posts: no post_stream", json.dumps(body))
            full.extend(_checked_post(p) for p in stream["posts"] if p.get("id") in ids)
        return full

    # --- mentions and parents ------------------------------------------------------------

    def _remember(self, posts: list[dict]) -> None:
        for post in posts:
            self._post_ids[(post["topic_id"], post["post_number"])] = post["id"]
        while len(self._post_ids) > 5000:  # a bounded cache: drop the oldest entries
            del self._post_ids[next(iter(self._post_ids))]

    def mentions_from_posts(self, posts: list[dict]) -> list[RawMention]:
        """Turn full post objects into mentions, resolving parent ids (may call the API)."""
        posts = [_checked_post(p) for p in posts]
        self._remember(posts)
        budget = [self.parent_lookups]
        return [self._mention(post, budget) for post in posts]

    def _parent_id(self, post: Mapping[str, Any], budget: list[int]) -> str | None:
        number = post.get("reply_to_post_number") or (1 if post["post_number"] > 1 else None)
        if number is None:
            return None
        key = (post["topic_id"], int(number))
        if key not in self._post_ids:
            if budget[0] <= 0:
                log.warning(
                    "discourse: parent lookup budget spent; parent of %s unknown", post["id"]
                )
                return None
            budget[0] -= 1
            try:
                found = self._request("GET", f"/posts/by_number/{key[0]}/{key[1]}.json")
            except ConnectorError as exc:
                if type(exc) is not ConnectorError:  # only a plain 4xx such as 404 is skipped
                    raise
                log.warning("discourse: parent %s not found: %s", key, exc)  # e.g. deleted: 404
                return None
            self._post_ids[key] = _checked_post(found)["id"]
        return str(self._post_ids[key])

    def _mention(self, post: Mapping[str, Any], budget: list[int]) -> RawMention:
        path = (
            post.get("post_url")
            or f"/t/{post.get('topic_slug') or '-'}/{post['topic_id']}/{post['post_number']}"
        )
        try:
            created_at = from_iso(str(post["created_at"]))
        except (KeyError, ValueError):
            raise MalformedResponse("discourse post: bad created_at", json.dumps(post)) from None
        return RawMention(
            platform="discourse",
            external_id=str(post["id"]),
            url=f"{self.base_url}{path}",
            author_external_id=str(post.get("user_id") or post.get("username") or ""),
            author_handle=str(post.get("username") or ""),
            text=_post_text(post),
            created_at=created_at,
            parent_external_id=self._parent_id(post, budget),
            raw=dict(post),
        )


# --- helpers -----------------------------------------------------------------------------

# Discourse's PostValidator refuses a post whose raw equals one the user made in the last
# ``unique_posts_mins`` (5): "Body is too similar to what you recently posted" (422).
_TOO_SIMILAR = "is too similar to what you recently posted"


def _parse_cursor(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {}
    if cursor.isdigit():
        return {"since": int(cursor)}
    try:
        state = json.loads(cursor)
        if not isinstance(state, dict) or not ({"since", "after"} & state.keys()):
            raise ValueError
        return state
    except ValueError:
        raise ValueError(f"unreadable discourse cursor {cursor!r}") from None


def _is_new(post: Mapping[str, Any], state: Mapping[str, Any]) -> bool:
    if "since" in state:
        return post["id"] > int(state["since"])
    return from_iso(str(post.get("created_at"))) >= from_iso(state["after"])


def _checked_post(post: Any) -> dict[str, Any]:
    """A post object with integer id, topic_id and post_number, else ``MalformedResponse``."""
    if not isinstance(post, dict) or not all(
        isinstance(post.get(k), int) for k in ("id", "topic_id", "post_number")
    ):
        raise MalformedResponse("discourse: post without id/topic_id/post_number", json.dumps(post))
    return post


def _post_text(post: Mapping[str, Any]) -> str:
    markup = post.get("cooked") or post.get("blurb") or post.get("excerpt") or ""
    text = html_to_text(str(markup)) or str(post.get("raw") or "")
    title = post.get("topic_title")
    if title and post.get("post_number") == 1:
        return f"{title}\n\n{text}"
    return text


def _raise_for_discourse(response: requests.Response) -> None:
    """Map an error status, quoting Discourse's ``errors`` and honouring ``wait_seconds``."""
    if response.ok:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    errors = body.get("errors")
    text = "; ".join(map(str, errors)) if isinstance(errors, list) else body.get("error")
    detail = f"discourse HTTP {response.status_code}: {text or response.text[:300]}"
    if response.status_code == 429 and "retry-after" not in response.headers:
        # Discourse puts the wait in the body: {"extras": {"wait_seconds": 10}}
        wait = (body.get("extras") or {}).get("wait_seconds")
        if isinstance(wait, int | float):
            raise RateLimited(float(wait), detail)
    raise_for_status(response, detail)
