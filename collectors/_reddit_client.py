"""The praw side of the Reddit connector: a client that never sleeps, and error mapping.

praw/prawcore quirks, disabled here (we never sleep, the scheduler owns all waiting):
prawcore retries 5xx/timeouts twice with a 2-4 s sleep, sleeps to spread requests over the
x-ratelimit window, and praw sleeps on short RATELIMIT API errors (``ratelimit_seconds``).
Every praw call goes through :func:`guarded`, which turns praw/prawcore exceptions into the
``otklik.domain`` errors: a RATELIMIT answer waits as long as its message says, a 429 (the
token request's too) honours Retry-After / x-ratelimit-reset, and a write whose outcome is
unknown is ``OutcomeUnknown``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import praw
import praw.exceptions
import prawcore
import requests
from prawcore.const import ACCESS_TOKEN_PATH as TOKEN_PATH
from prawcore.rate_limit import RateLimiter
from prawcore.sessions import FiniteRetryStrategy

from collectors._http import DEFAULT_RETRY_AFTER, TimeoutSession, never_sent, require_secret
from otklik.domain import (
    AuthError,
    ConnectorError,
    MalformedResponse,
    OutcomeUnknown,
    RateLimited,
    TransientError,
)

T = TypeVar("T")


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


def make_client(user_agent: str, timeout: float) -> praw.Reddit:
    """A script-app praw client (credentials from the environment) that never sleeps."""
    reddit = praw.Reddit(
        client_id=require_secret("OTKLIK_REDDIT_CLIENT_ID"),
        client_secret=require_secret("OTKLIK_REDDIT_CLIENT_SECRET"),
        username=require_secret("OTKLIK_REDDIT_USERNAME"),
        password=require_secret("OTKLIK_REDDIT_PASSWORD"),
        user_agent=user_agent,
        requestor_class=_Requestor,
        requestor_kwargs={"session": TimeoutSession(timeout), "timeout": timeout},
        check_for_updates=False,
        check_for_async=False,
        # praw sleeps on RATELIMIT errors not longer than this; -1, as "300 milliseconds"
        # counts as 0 s there (0 would still sleep 1 s and retry)
        ratelimit_seconds=-1,
    )
    _no_sleeping(reddit)
    return reddit


# --- errors ------------------------------------------------------------------------------

_PRAW_ERRORS = (
    prawcore.OAuthException,
    prawcore.RequestException,
    prawcore.ResponseException,
    praw.exceptions.RedditAPIException,
)


def guarded(call: Callable[[], T], *, write: bool = False) -> T:
    """Run a praw call, translating praw/prawcore exceptions into domain errors.

    With ``write`` (a reply), a failure after the request may have reached Reddit (a read
    timeout, a dropped connection, a 5xx, an unreadable 200) is ``OutcomeUnknown``: sending
    it again could post the comment twice. Failures of the token request that precedes it,
    and failures before the request left, are mapped as for a read.
    """
    try:
        return call()
    except _PRAW_ERRORS as exc:
        error = _domain_error(exc)
        if write and _may_have_landed(exc):
            raise OutcomeUnknown(f"{error}; the comment may have been posted") from exc
        raise error from exc


def _domain_error(exc: Exception) -> ConnectorError:
    """The domain error for a praw/prawcore exception."""
    if isinstance(exc, prawcore.TooManyRequests):
        return RateLimited(_reddit_retry_after(exc.response.headers), "reddit: HTTP 429")
    if isinstance(exc, prawcore.InvalidToken | prawcore.Forbidden | prawcore.InsufficientScope):
        return AuthError(f"reddit: {_describe(exc)}")
    if isinstance(exc, prawcore.OAuthException):
        return AuthError(f"reddit: {exc}")
    if isinstance(exc, prawcore.BadJSON):
        return MalformedResponse(f"reddit: {exc}", exc.response.content)
    if isinstance(exc, prawcore.ServerError):
        return TransientError(f"reddit: {_describe(exc)}")
    if isinstance(exc, prawcore.RequestException):  # timeouts, connection errors
        return TransientError(f"reddit: {exc.original_exception}")
    if isinstance(exc, prawcore.ResponseException):
        status = exc.response.status_code
        if status == 429:  # the token request answers 429 as a plain ResponseException
            return RateLimited(
                _reddit_retry_after(exc.response.headers), f"reddit: {_describe(exc)}"
            )
        error = AuthError if status in (401, 403) else TransientError if status >= 500 else None
        return (error or ConnectorError)(f"reddit: {_describe(exc)}")
    assert isinstance(exc, praw.exceptions.RedditAPIException)
    for item in exc.items:
        if item.error_type == "RATELIMIT":
            return RateLimited(ratelimit_wait(item.message), f"reddit: {item.message}")
    return ConnectorError(f"reddit: {exc}")


def _may_have_landed(exc: Exception) -> bool:
    """True when the failed request may have been carried out by Reddit."""
    if _is_token_request(exc):
        return False  # the token request precedes the write: the write never left
    if isinstance(exc, prawcore.RequestException):
        sent = exc.original_exception
        return not (isinstance(sent, requests.RequestException) and never_sent(sent))
    if isinstance(exc, prawcore.BadJSON):
        return True  # a 2xx whose body could not be read
    if isinstance(exc, prawcore.ResponseException):
        return exc.response.status_code >= 500
    return False  # a refusal Reddit explained (4xx, RATELIMIT, THREAD_LOCKED...)


def _is_token_request(exc: Exception) -> bool:
    if isinstance(exc, prawcore.RequestException):
        url = str(exc.request_args[1]) if len(exc.request_args) > 1 else ""
    elif isinstance(exc, prawcore.ResponseException | prawcore.OAuthException):
        url = str(exc.response.url or "")
    else:
        return False
    return url.endswith(TOKEN_PATH)


# "you are doing that too much. try again in 9 minutes." / "Take a break for 5 minutes before
# trying again." / "... 300 milliseconds ...": the wait Reddit asks for, in its own words.
_WAIT = re.compile(r"(\d+(?:\.\d+)?)\s*(millisecond|second|minute|hour)s?\b", re.IGNORECASE)
_UNIT_SECONDS = {"millisecond": 0.001, "second": 1.0, "minute": 60.0, "hour": 3600.0}


def ratelimit_wait(message: str | None) -> float:
    """Seconds to wait according to a RATELIMIT message (at least 1 s; 60 s if it says none)."""
    found = _WAIT.search(message or "")
    if found is None:
        return DEFAULT_RETRY_AFTER
    return max(float(found[1]) * _UNIT_SECONDS[found[2].lower()], 1.0)


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
