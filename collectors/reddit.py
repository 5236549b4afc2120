"""Reddit connector (``praw.Reddit``, script-app credentials).

Collects, for the query, the newest submissions in the configured subreddits
(``GET /r/{a+b}/search?sort=new``) and the comments on matching submissions: each fetch
reads ``/comments/{id}?sort=new`` for every submission found in this page plus the watch
list, the most recent earlier matches (setting ``watch_submissions``, default 10), so
comments arriving later on a matching thread are collected too. Only the watch list is
capped, not the threads read: a first run or a page bringing many new submissions reads
all their threads (one request each).

Replies: ``reply()`` on the submission or comment (``POST /api/comment``); the new
comment's fullname is returned.

Secrets: ``OTKLIK_REDDIT_CLIENT_ID``, ``OTKLIK_REDDIT_CLIENT_SECRET``,
``OTKLIK_REDDIT_USERNAME``, ``OTKLIK_REDDIT_PASSWORD``. Settings: ``subreddits``
(list or "a,b"; default "all"), ``user_agent``, ``backfill_hours`` (24),
``watch_submissions`` (10), ``timeout`` (20 s).

external_id and parent_external_id are Reddit fullnames (``t3_`` submission, ``t1_``
comment; a comment's parent is its ``parent_id``).

Cursor: JSON ``{"t3": newest submission fullname delivered, "t1": {submission id:
highest comment fullname delivered on that thread}, "watch": [submission ids]}``.
Submissions are paged with ``before=<t3>``, which returns the items just newer than it, so
a backlog drains oldest-first and nothing is skipped; comment ids are base-36 counters, so
"newer" is "larger id". The comment mark is kept per thread because the threads are read
one after the other: a comment posted on a thread already read in this fetch can have a
lower id than one read later on another thread. A thread without a mark has had no comment
delivered, so all its comments are new. The older cursor forms (``"t3_..."``, and ``t1``
as one fullname for every watched thread) are still read. Limits: if the ``t3`` anchor is
deleted, Reddit answers ``before=`` with an empty listing (reset the cursor to recover); a
thread gaining more than 100 comments between two fetches loses the oldest of them;
replies hidden behind "load more" are not expanded (that would need extra requests).

praw/prawcore quirks, disabled here (we never sleep, see ``_no_sleeping``): prawcore
retries 5xx/timeouts twice with a 2-4 s sleep, sleeps to spread requests over the
x-ratelimit window, and praw sleeps on short RATELIMIT API errors (``ratelimit_seconds``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

import praw
import praw.exceptions
import praw.models
import prawcore
from praw.models import Comment, Submission
from prawcore.rate_limit import RateLimiter
from prawcore.sessions import FiniteRetryStrategy

from collectors._http import (
    DEFAULT_RETRY_AFTER,
    DEFAULT_TIMEOUT,
    TimeoutSession,
    from_epoch,
    require_secret,
    setting_float,
    setting_list,
    setting_str,
)
from otklik.domain import (
    AuthError,
    ConnectorError,
    MalformedResponse,
    Page,
    RateLimited,
    RawMention,
    TransientError,
)

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = "python:otklik:0.1 (social listening)"


@dataclass(frozen=True)
class _NoRetry(FiniteRetryStrategy):
    """prawcore retry strategy with no retries and therefore no sleeping."""

    retries: int = 0

    def _sleep_seconds(self) -> float | None:
        return None


class _NoSleepRateLimiter(RateLimiter):
    """Tracks Reddit's x-ratelimit headers like prawcore, but raises instead of sleeping."""

    def delay(self) -> None:
        """Raise ``RateLimited`` when the window is used up; never pace requests by sleeping."""
        if self.remaining is None or self.remaining > 0 or self.next_request_timestamp_ns is None:
            return
        wait = (self.next_request_timestamp_ns - time.monotonic_ns()) / 1e9
        if wait > 0:
            raise RateLimited(wait, "reddit: x-ratelimit-remaining is 0")


class _Requestor(prawcore.Requestor):
    """Applies the connector's timeout to every call (prawcore passes its own 16 s default)."""

    def request(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Send through prawcore's requestor with ``self.timeout``."""
        return super().request(*args, timeout=self.timeout, **kwargs)


def _no_sleeping(reddit: praw.Reddit) -> None:
    # prawcore has no public switch for these; the attributes are those of prawcore 2.x-4.x
    # sessions.py (https://github.com/praw-dev/prawcore/blob/main/prawcore/sessions.py).
    for core in (reddit._authorized_core, reddit._read_only_core):
        if core is not None:
            core._retry_strategy_class = _NoRetry
            core._rate_limiter = _NoSleepRateLimiter(window_size=core._rate_limiter.window_size)


class RedditConnector:
    """Searches subreddits for the query and follows comments on matching threads."""

    platform: ClassVar[str] = "reddit"
    can_reply: ClassVar[bool] = True

    def __init__(
        self,
        *,
        subreddits: list[str] | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        backfill_hours: float = 24.0,
        watch_submissions: int = 10,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.subreddits = [s.removeprefix("r/") for s in subreddits or ["all"]]
        self.user_agent = user_agent
        self.backfill_hours = backfill_hours
        self.watch_submissions = max(0, watch_submissions)
        self.timeout = timeout
        self._reddit: praw.Reddit | None = None

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> Self:
        """Build from source settings; credentials are read from the environment when used."""
        return cls(
            subreddits=setting_list(settings, "subreddits", ["all"]),
            user_agent=setting_str(settings, "user_agent", DEFAULT_USER_AGENT),
            backfill_hours=setting_float(settings, "backfill_hours", 24.0),
            watch_submissions=int(setting_float(settings, "watch_submissions", 10)),
            timeout=setting_float(settings, "timeout", DEFAULT_TIMEOUT),
        )

    @property
    def reddit(self) -> praw.Reddit:
        """The praw client (built once, so its OAuth token is reused between fetches)."""
        if self._reddit is None:
            reddit = praw.Reddit(
                client_id=require_secret("OTKLIK_REDDIT_CLIENT_ID"),
                client_secret=require_secret("OTKLIK_REDDIT_CLIENT_SECRET"),
                username=require_secret("OTKLIK_REDDIT_USERNAME"),
                password=require_secret("OTKLIK_REDDIT_PASSWORD"),
                user_agent=self.user_agent,
                requestor_class=_Requestor,
                requestor_kwargs={"session": TimeoutSession(self.timeout), "timeout": self.timeout},
                check_for_updates=False,
                check_for_async=False,
                ratelimit_seconds=0,  # praw sleeps on RATELIMIT errors shorter than this
            )
            _no_sleeping(reddit)
            self._reddit = reddit
        return self._reddit

    # --- protocol ------------------------------------------------------------------------

    def check(self) -> None:
        """``GET /api/v1/me`` (after the token request): proves all four credentials."""
        _guarded(lambda: self.reddit.user.me())

    def fetch(self, query: str, cursor: str | None) -> Page:
        """Return new matching submissions and new comments on watched threads."""
        state = _parse_cursor(cursor)
        since = datetime.now(UTC) - timedelta(hours=self.backfill_hours)
        submissions = _guarded(lambda: self._search(query, state["t3"]))
        if not state["t3"]:
            submissions = [s for s in submissions if s.created_at >= since]
        new_ids = [s.external_id[3:] for s in reversed(submissions)]  # newest first
        threads = list(dict.fromkeys(new_ids + state["watch"]))  # all read, none cut
        comments, marks, gone = _guarded(lambda: self._comments(threads, state["t1"]))
        watch = [t for t in threads if t not in gone][: self.watch_submissions]
        t3 = submissions[-1].external_id if submissions else state["t3"]
        next_state = {"t3": t3, "t1": {t: marks[t] for t in watch if t in marks}, "watch": watch}
        mentions = sorted(submissions + comments, key=lambda m: m.created_at)
        return Page(mentions, json.dumps(next_state, sort_keys=True))

    def reply(self, to: RawMention, text: str) -> str:
        """Reply under the submission or comment ``to``; return the new comment's fullname."""
        kind, _, thing_id = to.external_id.partition("_")
        if kind == "t3":
            target = self.reddit.submission(id=thing_id)
        elif kind == "t1":
            target = self.reddit.comment(id=thing_id)
        else:
            raise ValueError(f"not a reddit fullname: {to.external_id!r}")
        created = _guarded(lambda: target.reply(text))
        if not isinstance(created, Comment):
            raise MalformedResponse("reddit: reply returned no comment", repr(created))
        return created.fullname

    # --- reading -------------------------------------------------------------------------

    def _search(self, query: str, before: str | None) -> list[RawMention]:
        params: dict[str, Any] = {"q": query, "sort": "new", "limit": 100, "t": self._window()}
        if self.subreddits != ["all"]:
            params["restrict_sr"] = "on"
        if before:
            params["before"] = before
        listing = self.reddit.get(f"r/{'+'.join(self.subreddits)}/search/", params=params)
        if not isinstance(listing, praw.models.Listing):
            raise MalformedResponse("reddit search: not a listing", repr(listing))
        found = [submission_mention(s) for s in listing.children if isinstance(s, Submission)]
        return sorted(found, key=lambda m: _base36(m.external_id))

    def _window(self) -> str:
        """The smallest search time filter covering the backfill window."""
        for name, hours in (("hour", 1), ("day", 24), ("week", 168), ("month", 720)):
            if self.backfill_hours <= hours:
                return name
        return "year" if self.backfill_hours <= 8760 else "all"

    def _comments(
        self, threads: list[str], marks: Mapping[str, str]
    ) -> tuple[list[RawMention], dict[str, str], set[str]]:
        """Read each thread's comments above its mark (all of them when it has none).

        Returns the new comments (by id), the threads' marks moved past them, and the
        threads that are gone (404/403).
        """
        found: dict[str, RawMention] = {}
        next_marks = dict(marks)
        gone: set[str] = set()
        for submission_id in threads:
            after = _base36(marks.get(submission_id))
            submission = self.reddit.submission(id=submission_id)
            submission.comment_sort = "new"
            submission.comment_limit = 100
            try:
                forest = submission.comments.list()  # MoreComments are not expanded
            except (prawcore.NotFound, prawcore.Forbidden):  # deleted, or subreddit went private
                log.info("reddit: thread %s is gone; no longer watched", submission_id)
                gone.add(submission_id)
                continue
            for comment in forest:
                if not isinstance(comment, Comment):
                    continue
                mention = comment_mention(comment)
                if _base36(mention.external_id) > after:
                    found[mention.external_id] = mention
                    if _base36(mention.external_id) > _base36(next_marks.get(submission_id)):
                        next_marks[submission_id] = mention.external_id
        return sorted(found.values(), key=lambda m: _base36(m.external_id)), next_marks, gone


# --- errors ------------------------------------------------------------------------------


def _guarded(call: Any) -> Any:
    """Run a praw call, translating praw/prawcore exceptions into domain errors."""
    try:
        return call()
    except prawcore.TooManyRequests as exc:
        raise RateLimited(_reddit_retry_after(exc.response.headers), "reddit: HTTP 429") from exc
    except (prawcore.InvalidToken, prawcore.Forbidden, prawcore.InsufficientScope) as exc:
        raise AuthError(f"reddit: {_describe(exc)}") from exc
    except prawcore.OAuthException as exc:
        raise AuthError(f"reddit: {exc}") from exc
    except prawcore.BadJSON as exc:
        raise MalformedResponse(f"reddit: {exc}", exc.response.content) from exc
    except prawcore.ServerError as exc:
        raise TransientError(f"reddit: {_describe(exc)}") from exc
    except prawcore.RequestException as exc:  # timeouts, connection errors
        raise TransientError(f"reddit: {exc.original_exception}") from exc
    except prawcore.ResponseException as exc:
        status = exc.response.status_code
        error = AuthError if status in (401, 403) else TransientError if status >= 500 else None
        raise (error or ConnectorError)(f"reddit: {_describe(exc)}") from exc
    except praw.exceptions.RedditAPIException as exc:
        for item in exc.items:
            if item.error_type == "RATELIMIT":
                raise RateLimited(DEFAULT_RETRY_AFTER, f"reddit: {item.message}") from exc
        raise ConnectorError(f"reddit: {exc}") from exc


def _describe(exc: prawcore.ResponseException) -> str:
    response = exc.response
    try:
        body = response.json()
        detail = body.get("message") or body.get("reason") or body.get("error") or ""
    except (ValueError, AttributeError):
        detail = response.text[:200]
    return f"HTTP {response.status_code} {detail}".strip()


def _reddit_retry_after(headers: Mapping[str, str]) -> float:
    # Reddit's x-ratelimit-reset is seconds until the window resets (not an epoch).
    # https://support.reddithelp.com/hc/en-us/articles/16160319875092-Reddit-Data-API-Wiki
    for name in ("retry-after", "x-ratelimit-reset"):
        value = headers.get(name)
        if value:
            try:
                return max(float(value), 1.0)
            except ValueError:
                continue
    return DEFAULT_RETRY_AFTER


# --- parsing -----------------------------------------------------------------------------


def _parse_cursor(cursor: str | None) -> dict[str, Any]:
    """``{"t3": fullname or None, "t1": {submission id: comment fullname}, "watch": [ids]}``.

    Also reads the older forms: a bare ``"t3_..."``, and ``t1`` as one comment fullname
    (the former global mark), which becomes the mark of every watched thread.
    """
    if not cursor:
        return {"t3": None, "t1": {}, "watch": []}
    if cursor.startswith("t3_"):
        return {"t3": cursor, "t1": {}, "watch": []}
    try:
        state = json.loads(cursor)
        if not isinstance(state, dict):
            raise ValueError
        t3, t1, watch = state.get("t3"), state.get("t1"), state.get("watch") or []
        if not isinstance(watch, list) or not all(isinstance(w, str) for w in watch):
            raise ValueError
        if t1 is None:
            marks = {}
        elif isinstance(t1, str):  # the global mark of earlier versions
            marks = dict.fromkeys(watch, t1)
        elif isinstance(t1, dict) and all(isinstance(v, str) for v in t1.values()):
            marks = dict(t1)
        else:
            raise ValueError
        if t3 is not None and not isinstance(t3, str):
            raise ValueError
        return {"t3": t3, "t1": marks, "watch": watch}
    except ValueError:
        raise ValueError(f"unreadable reddit cursor {cursor!r}") from None


def _base36(fullname: str | None) -> int:
    return int(fullname.partition("_")[2] or "0", 36) if fullname else 0


def _fields(thing: object) -> dict[str, Any]:
    """The object's JSON fields, read without triggering praw's lazy fetch."""
    return {k: v for k, v in vars(thing).items() if not k.startswith("_")}


def _raw(fields: Mapping[str, Any]) -> dict[str, Any]:
    primitive = (str, int, float, bool, type(None))
    raw = {k: v for k, v in fields.items() if isinstance(v, primitive)}
    raw["author"] = str(fields["author"]) if fields.get("author") is not None else None
    return raw


def _common(fields: Mapping[str, Any], fullname: str) -> dict[str, Any]:
    try:
        author = fields.get("author")
        return {
            "platform": "reddit",
            "external_id": fullname,
            "url": "https://www.reddit.com" + str(fields.get("permalink") or ""),
            "author_external_id": str(fields.get("author_fullname") or author or ""),
            "author_handle": str(author) if author is not None else "[deleted]",
            "created_at": from_epoch(fields["created_utc"]),
            "raw": _raw(fields),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedResponse(f"reddit {fullname}: {exc}", json.dumps(_raw(fields))) from exc


def submission_mention(submission: object) -> RawMention:
    """Turn a praw ``Submission`` into a mention (title and self text)."""
    fields = _fields(submission)
    text = "\n\n".join(p for p in (fields.get("title"), fields.get("selftext")) if p)
    return RawMention(text=text, **_common(fields, f"t3_{fields.get('id')}"))


def comment_mention(comment: object) -> RawMention:
    """Turn a praw ``Comment`` into a mention; its parent is the ``parent_id`` fullname."""
    fields = _fields(comment)
    if not fields.get("permalink") and fields.get("link_id"):  # older responses lack it
        fields["permalink"] = f"/comments/{fields['link_id'][3:]}/_/{fields.get('id')}/"
    common = _common(fields, f"t1_{fields.get('id')}")
    return RawMention(
        text=str(fields.get("body") or ""),
        parent_external_id=fields.get("parent_id"),
        **common,
    )
