"""The praw side of the Reddit connector: a client that never sleeps, and error mapping.

praw/prawcore quirks, disabled here (we never sleep, the scheduler owns all waiting):
prawcore retries 5xx/timeouts twice with a 2-4 s sleep, sleeps to spread requests over the
x-ratelimit window, and praw sleeps on short RATELIMIT API errors (``ratelimit_seconds``).
Every praw call goes through :func:`guarded`, which turns praw/prawcore exceptions into the
``otklik.domain`` errors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import praw
import praw.exceptions
import prawcore
from prawcore.rate_limit import RateLimiter
from prawcore.sessions import FiniteRetryStrategy

from collectors._http import DEFAULT_RETRY_AFTER, TimeoutSession, require_secret
from otklik.domain import (
    AuthError,
    ConnectorError,
    MalformedResponse,
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
        ratelimit_seconds=0,  # praw sleeps on RATELIMIT errors shorter than this
    )
    _no_sleeping(reddit)
    return reddit


# --- errors ------------------------------------------------------------------------------


def guarded(call: Callable[[], T]) -> T:
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
