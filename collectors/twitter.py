"""Twitter/X connector (API v2 through ``tweepy.Client``).

Collects either the recent-search results for the source query (``mode = "search"``,
the default) or the brand account's mentions timeline (``mode = "mentions"``, setting
``user_id``). Replies are created with ``POST /2/tweets`` and ``in_reply_to_tweet_id``.

Settings: ``mode``, ``user_id``, ``exclude_retweets`` (default: the opposite of the
common ``include_reposts`` key, i.e. true; appends ``-is:retweet`` to search queries),
``backfill_hours`` (default 24), ``max_results`` (10..100, default 100), ``timeout``
(seconds, default 20).

Secrets (environment only): ``OTKLIK_TWITTER_BEARER_TOKEN`` for reading;
``OTKLIK_TWITTER_CONSUMER_KEY``, ``OTKLIK_TWITTER_CONSUMER_SECRET``,
``OTKLIK_TWITTER_ACCESS_TOKEN``, ``OTKLIK_TWITTER_ACCESS_TOKEN_SECRET`` for replying
(OAuth 1.0a user context, required by ``POST /2/tweets``).

Cursor: when caught up, the newest tweet id already delivered (used as ``since_id``).
Both endpoints return newest first and page with a token, so while a backlog is being
drained the cursor is a small JSON object ``{"since_id"|"start_time", "next", "top"}``:
the same query is re-sent with the pagination token, and only once the last page is
consumed does ``since_id`` move to ``top`` (the newest id of the first page). Nothing
is ever skipped, at the cost of one backlog being delivered newest-page-first.

external_id: the tweet id (a decimal string); parent_external_id is the id of the
tweet it replies to (``referenced_tweets`` of type ``replied_to``); edit_of, the earlier
ids of an edited post; text, the full text (``collectors._text.x_post_text``). Replies are
measured as X counts (``x_weighted_length``). X takes no idempotency key: a reply whose answer
was lost (timeout, dropped connection, 5xx) or refused as "duplicate content" is OutcomeUnknown.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

import requests
import tweepy

from collectors._http import (
    DEFAULT_TIMEOUT,
    TimeoutSession,
    from_iso,
    json_body,
    require_secret,
    retry_after_seconds,
    setting_bool,
    setting_float,
    setting_str,
    snowflake_time,
    write_failure,
)
from collectors._text import x_post_text, x_weighted_length
from otklik.connectors import Setting
from otklik.domain import (
    AuthError,
    ConnectorError,
    MalformedResponse,
    OutcomeUnknown,
    Page,
    RateLimited,
    RawMention,
    TransientError,
)

TWEET_FIELDS = [
    "author_id",
    "conversation_id",
    "created_at",
    "edit_history_tweet_ids",  # earlier ids of an edited post (a default field; asked anyway)
    "in_reply_to_user_id",
    "lang",
    "note_tweet",  # the full text of a post over 280 characters
    "referenced_tweets",
]
EXPANSIONS = ["author_id", "referenced_tweets.id"]  # includes.tweets: replied-to, reposted
USER_FIELDS = ["username", "name", "public_metrics"]
X_LIMIT = 280  # weighted characters, see collectors._text.x_weighted_length
_OAUTH = {  # the OAuth 1.0a user-context secrets POST /2/tweets needs (replying)
    "consumer_key": "consumer key",
    "consumer_secret": "consumer secret",
    "access_token": "access token of the brand account",
    "access_token_secret": "access token secret",
}


def _env(key: str) -> str:
    return f"OTKLIK_TWITTER_{key.upper()}"


@dataclass(frozen=True)
class _Cursor:
    """Decoded cursor: where the query starts and, mid-backlog, the page token."""

    since_id: str | None = None
    start_time: str | None = None
    next_token: str | None = None
    top: str | None = None

    @classmethod
    def parse(cls, cursor: str | None) -> _Cursor:
        if not cursor:
            return cls()
        if not cursor.startswith("{"):
            return cls(since_id=cursor)
        try:
            data = json.loads(cursor)
            return cls(data.get("since_id"), data.get("start_time"), data["next"], data["top"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValueError(f"unreadable twitter cursor {cursor!r}") from None

    def dump(self) -> str | None:
        if self.next_token is None:
            return self.since_id
        data = {"next": self.next_token, "top": self.top}
        if self.since_id:
            data["since_id"] = self.since_id
        else:
            data["start_time"] = self.start_time
        return json.dumps(data, sort_keys=True)


class TwitterConnector:
    """Reads recent search or the mentions timeline; replies with a new tweet."""

    platform: ClassVar[str] = "twitter"
    reply_limit: ClassVar[int | None] = X_LIMIT
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("mode", "'search' (recent search for the query) or 'mentions'", default="search"),
        Setting("user_id", "the brand account's numeric id (needed by mode 'mentions')"),
        Setting(
            "exclude_retweets",
            "append -is:retweet to search queries (default: not include_reposts)",
            default=True,
        ),
        Setting("include_reposts", "common key: default of exclude_retweets", default=False),
        Setting("backfill_hours", "how far back the first run reads", default=24.0),
        Setting("max_results", "tweets per request (10..100)", default=100),
        Setting("timeout", "seconds per HTTP call", default=DEFAULT_TIMEOUT),
        Setting(
            "bearer_token",
            "app bearer token (reading)",
            required=True,
            secret=True,
            env="OTKLIK_TWITTER_BEARER_TOKEN",
        ),
        *(
            Setting(key, f"OAuth 1.0a {what} (replying)", secret=True, env=_env(key))
            for key, what in _OAUTH.items()
        ),
    )

    def __init__(
        self,
        *,
        mode: str = "search",
        user_id: str = "",
        exclude_retweets: bool = True,
        backfill_hours: float = 24.0,
        max_results: int = 100,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if mode not in {"search", "mentions"}:
            raise ValueError(f"twitter mode must be 'search' or 'mentions', got {mode!r}")
        if mode == "mentions" and not user_id:
            raise ValueError("twitter mode 'mentions' needs the 'user_id' setting")
        self.mode = mode
        self.user_id = user_id
        self.exclude_retweets = exclude_retweets
        self.backfill_hours = backfill_hours
        self.max_results = max(10, min(100, max_results))
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> Self:
        """Build from source settings; secrets are read from the environment when used."""
        return cls(
            mode=setting_str(settings, "mode", "search"),
            user_id=setting_str(settings, "user_id"),
            # the common source key include_reposts sets the default; exclude_retweets wins
            exclude_retweets=setting_bool(
                settings, "exclude_retweets", not setting_bool(settings, "include_reposts", False)
            ),
            backfill_hours=setting_float(settings, "backfill_hours", 24.0),
            max_results=int(setting_float(settings, "max_results", 100)),
            timeout=setting_float(settings, "timeout", DEFAULT_TIMEOUT),
        )

    # --- clients -------------------------------------------------------------------------

    def _client(self, **credentials: str | None) -> tweepy.Client:
        # wait_on_rate_limit=False: tweepy would otherwise sleep until x-rate-limit-reset.
        client = tweepy.Client(
            **credentials, return_type=requests.Response, wait_on_rate_limit=False
        )
        client.session = TimeoutSession(self.timeout)  # tweepy sets no timeout itself
        return client

    def _reader(self) -> tweepy.Client:
        return self._client(bearer_token=require_secret("OTKLIK_TWITTER_BEARER_TOKEN"))

    def _writer(self) -> tweepy.Client:
        return self._client(**{key: require_secret(_env(key)) for key in _OAUTH})

    # --- protocol ------------------------------------------------------------------------

    def check(self) -> None:
        """One-result search (or mentions read): proves the bearer token works."""
        client = self._reader()
        if self.mode == "mentions":
            _call(client.get_users_mentions, self.user_id, max_results=5)
        else:
            _call(client.search_recent_tweets, "a", max_results=10)

    def fetch(self, query: str, cursor: str | None) -> Page:
        """Return tweets newer than ``cursor`` (see the module docstring for the format)."""
        state = _Cursor.parse(cursor)
        if state.since_id is None and state.start_time is None:
            start = datetime.now(UTC) - timedelta(hours=self.backfill_hours)
            state = _Cursor(start_time=start.strftime("%Y-%m-%dT%H:%M:%SZ"))
        body = self._request_page(query, state)
        mentions = parse_tweets(body)
        meta = body.get("meta") or {}
        newest = max((m.external_id for m in mentions), key=int, default=None)
        top = state.top or newest
        if meta.get("next_token"):
            next_state = _Cursor(state.since_id, state.start_time, meta["next_token"], top)
            return Page(mentions, next_state.dump())
        return Page(mentions, top or state.since_id)

    def _request_page(self, query: str, state: _Cursor) -> dict[str, Any]:
        client = self._reader()
        params: dict[str, Any] = {
            "max_results": self.max_results,
            "expansions": EXPANSIONS,
            "tweet_fields": TWEET_FIELDS,
            "user_fields": USER_FIELDS,
        }
        if state.since_id:
            params["since_id"] = state.since_id
        else:
            params["start_time"] = state.start_time
        if self.mode == "mentions":
            if state.next_token:
                params["pagination_token"] = state.next_token
            return _call(client.get_users_mentions, self.user_id, **params)
        if state.next_token:
            params["next_token"] = state.next_token
        return _call(client.search_recent_tweets, self.search_query(query), **params)

    def search_query(self, query: str) -> str:
        """The query sent to recent search (``-is:retweet`` appended when configured)."""
        query = query.strip()
        if self.exclude_retweets and "is:retweet" not in query:
            return f"{query} -is:retweet" if query else "-is:retweet"
        return query

    @classmethod
    def reply_length(cls, text: str) -> int:
        """X's weighted length: CJK and emoji count 2, any URL 23 (see ``_text``)."""
        return x_weighted_length(text)

    def reply(self, to: RawMention, text: str, idempotency_key: str = "") -> str:
        """Post ``text`` in reply to ``to``; return its id (X takes no ``idempotency_key``)."""
        if (length := self.reply_length(text)) > X_LIMIT:
            raise ConnectorError(f"twitter: {length} X characters, over {X_LIMIT}; not sent")
        client = self._writer()
        params = {"text": text, "in_reply_to_tweet_id": to.external_id, "user_auth": True}
        response = _send(client.create_tweet, params, write=True)
        try:
            return str(json.loads(response.content)["data"]["id"])
        except (ValueError, KeyError, TypeError):
            status = response.status_code
            raise OutcomeUnknown(f"twitter: HTTP {status} without the new post's id") from None


# --- HTTP and parsing ------------------------------------------------------------------


def _call(method: Callable[..., requests.Response], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run one tweepy read and return its JSON object."""
    response = _send(lambda **kw: method(*args, **kw), kwargs, write=False)
    body = json_body(response)
    if not isinstance(body, dict):
        raise MalformedResponse("twitter: expected a JSON object", response.content)
    return body


def _send(
    method: Callable[..., requests.Response], kwargs: dict[str, Any], *, write: bool
) -> requests.Response:
    """Run one tweepy call, turning its failures into domain errors; a ``write`` that may
    have landed (5xx, lost answer, "duplicate content") is ``OutcomeUnknown``, never retried."""
    try:
        return method(**kwargs)
    except tweepy.TooManyRequests as exc:
        wait = retry_after_seconds(exc.response.headers)
        raise RateLimited(wait, f"twitter: {_message(exc)}") from exc
    except tweepy.Forbidden as exc:
        if write and _is_duplicate(exc):
            raise OutcomeUnknown(  # most likely this very reply, posted by a lost attempt
                f"twitter: {_message(exc)} (this account posted the same text recently)"
            ) from exc
        raise AuthError(f"twitter: {_message(exc)}") from exc
    except tweepy.Unauthorized as exc:
        raise AuthError(f"twitter: {_message(exc)}") from exc
    except tweepy.TwitterServerError as exc:
        raise (OutcomeUnknown if write else TransientError)(f"twitter: {_message(exc)}") from exc
    except tweepy.HTTPException as exc:
        raise ConnectorError(f"twitter: {_message(exc)}") from exc
    except requests.RequestException as exc:
        if write:
            raise write_failure(exc, "twitter") from exc
        if isinstance(exc, requests.Timeout | requests.ConnectionError):
            raise TransientError(f"twitter: {exc}") from exc
        raise


def _is_duplicate(exc: tweepy.HTTPException) -> bool:
    """X's refusal of a repeated post: API v2 says it in ``detail``, v1.1 as code 187."""
    # {"detail": "You are not allowed to create a Tweet with duplicate content.", "status": 403}
    return 187 in exc.api_codes or "duplicate content" in _message(exc).lower()


def _message(exc: tweepy.HTTPException) -> str:
    """HTTP status plus the API's own words (``errors[].message`` or the RFC 7807 detail)."""
    status = exc.response.status_code
    details = "; ".join(str(m) for m in exc.api_messages)
    if not details:
        try:
            problem = exc.response.json()
            details = str(problem.get("detail") or problem.get("title") or "")
        except (ValueError, AttributeError):
            details = ""
    return f"HTTP {status} {details or exc.response.reason or ''}".strip()


def parse_tweets(body: Mapping[str, Any]) -> list[RawMention]:
    """Turn an API v2 tweet-list body (data + includes) into mentions, oldest first."""
    data = body.get("data") or []
    includes = body.get("includes") or {}
    if not isinstance(data, list) or not isinstance(includes, dict):
        raise MalformedResponse("twitter: data is not a list", json.dumps(body))
    # keyed by the user's id as sent (a string in API v2; a user without one is never looked up)
    users: dict[Any, Mapping[str, Any]] = {
        u.get("id"): u for u in includes.get("users") or [] if isinstance(u, dict)
    }
    tweets = {t["id"]: t for t in includes.get("tweets") or [] if isinstance(t, dict) and "id" in t}
    mentions = [parse_tweet(tweet, users, tweets) for tweet in data]
    return sorted(mentions, key=lambda m: int(m.external_id))


def parse_tweet(
    tweet: Any, users: Mapping[Any, Mapping[str, Any]], tweets: Mapping[Any, Any] | None = None
) -> RawMention:
    """Turn one API v2 tweet object into a ``RawMention`` (``tweets``: ``includes.tweets``)."""
    if not isinstance(tweet, dict) or not str(tweet.get("id", "")).isdigit():
        raise MalformedResponse("twitter: tweet without a numeric id", json.dumps(tweet))
    tweet_id = str(tweet["id"])
    author_id = str(tweet.get("author_id") or "")
    user = users.get(author_id) or {}
    handle = str(user.get("username") or "")
    reposted = (tweets or {}).get(_referenced(tweet, "retweeted"))
    created = tweet.get("created_at")
    try:
        created_at = from_iso(created) if created else snowflake_time(tweet_id)
    except ValueError:
        raise MalformedResponse("twitter: bad created_at", json.dumps(tweet)) from None
    url_user = handle or "i/web"
    return RawMention(
        platform="twitter",
        external_id=tweet_id,
        url=f"https://x.com/{url_user}/status/{tweet_id}",
        author_external_id=author_id,
        author_handle=handle,
        text=x_post_text(tweet, reposted),
        created_at=created_at,
        parent_external_id=_referenced(tweet, "replied_to"),
        author_followers=(user.get("public_metrics") or {}).get("followers_count"),
        edit_of=_earlier_versions(tweet, tweet_id),
        raw={"tweet": tweet, "author": user or None, "reposted": reposted},
    )


def _referenced(tweet: Mapping[str, Any], kind: str) -> str | None:
    """The id of the post ``tweet`` refers to as ``kind`` (replied_to, retweeted, quoted)."""
    for ref in tweet.get("referenced_tweets") or []:
        if isinstance(ref, dict) and ref.get("type") == kind:
            return str(ref.get("id"))
    return None


def _earlier_versions(tweet: Mapping[str, Any], tweet_id: str) -> tuple[str, ...]:
    """Ids of the earlier versions of an edited post (its edit history, oldest first)."""
    history = tweet.get("edit_history_tweet_ids")
    ids = [str(i) for i in history if str(i).isdigit()] if isinstance(history, list) else []
    return tuple(i for i in ids if int(i) < int(tweet_id))
