"""Small helpers shared by the platform connectors.

Everything here is about the boundary with the outside world: a ``requests``
session that always has a timeout, reading settings and secrets, turning HTTP
failures into the ``otklik.domain`` errors, and time conversions.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, cast

import requests
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from otklik.domain import (
    AuthError,
    ConnectorError,
    MalformedResponse,
    OutcomeUnknown,
    RateLimited,
    TransientError,
)

DEFAULT_TIMEOUT = 20.0
"""Seconds for connect and read on every outgoing HTTP call."""

DEFAULT_RETRY_AFTER = 60.0
"""Used when a platform says "slow down" without saying for how long."""


class TimeoutSession(requests.Session):
    """A ``requests.Session`` that applies a default timeout to every request.

    Client libraries (tweepy, vk_api) call ``session.request`` without a timeout;
    handing them this session guarantees no call can hang forever.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send a request, filling in ``timeout`` when the caller did not."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)


# --- settings and secrets -------------------------------------------------------------


def secret(name: str) -> str | None:
    """Return the environment variable ``name`` stripped, or ``None`` when unset/empty."""
    value = os.environ.get(name, "").strip()
    return value or None


def require_secret(name: str) -> str:
    """Return the secret ``name`` or raise ``AuthError`` saying which variable is missing."""
    value = secret(name)
    if value is None:
        raise AuthError(f"environment variable {name} is not set")
    return value


def setting_str(settings: Mapping[str, object], key: str, default: str = "") -> str:
    """Return ``settings[key]`` as a stripped string (``default`` when absent or empty)."""
    value = settings.get(key)
    if value is None:
        return default
    text = str(value).strip()
    return text or default


def setting_float(settings: Mapping[str, object], key: str, default: float) -> float:
    """Return ``settings[key]`` as a float; ``ValueError`` names the key when invalid."""
    value = settings.get(key)
    if value is None or value == "":
        return default
    try:
        # any TOML value may come in: float() raises TypeError for those it cannot take
        return float(cast(Any, value))
    except (TypeError, ValueError):
        raise ValueError(f"setting {key!r} must be a number, got {value!r}") from None


def setting_bool(settings: Mapping[str, object], key: str, default: bool) -> bool:
    """Return ``settings[key]`` as a bool, accepting true/false/yes/no/1/0 strings."""
    value = settings.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"setting {key!r} must be true or false, got {value!r}")


def setting_list(settings: Mapping[str, object], key: str, default: list[str]) -> list[str]:
    """Return ``settings[key]`` as a list of strings (a list, or a comma/space separated string)."""
    value = settings.get(key)
    if value is None or value == "":
        return list(default)
    items = value if isinstance(value, list | tuple) else str(value).replace(",", " ").split()
    cleaned = [str(item).strip() for item in items if str(item).strip()]
    return cleaned or list(default)


# --- time ------------------------------------------------------------------------------


def from_epoch(seconds: float | int | str) -> datetime:
    """Convert Unix seconds to an aware UTC datetime."""
    return datetime.fromtimestamp(float(seconds), tz=UTC)


def from_iso(text: str) -> datetime:
    """Parse an ISO-8601 timestamp (``Z`` allowed); naive values are taken as UTC."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


# Tweet ids are snowflakes: the top bits are milliseconds since the Twitter epoch.
# Used only when a response lacks created_at. https://developer.x.com/en/docs/x-ids
_TWITTER_EPOCH_MS = 1288834974657


def snowflake_time(tweet_id: str) -> datetime:
    """Return the creation time encoded in a tweet id."""
    millis = (int(tweet_id) >> 22) + _TWITTER_EPOCH_MS
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float:
    """Seconds to wait according to ``Retry-After`` or an epoch ``x-rate-limit-reset``.

    ``Retry-After`` may be seconds or an HTTP date (RFC 9110 section 10.2.3). Twitter's
    ``x-rate-limit-reset`` is a Unix epoch. Falls back to ``DEFAULT_RETRY_AFTER``.
    """
    now = time.time() if now is None else now
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            try:
                return max(parsedate_to_datetime(value).timestamp() - now, 0.0)
            except (TypeError, ValueError):
                pass
    reset = lowered.get("x-rate-limit-reset")
    if reset:
        try:
            return max(float(reset) - now, 0.0)
        except ValueError:
            pass
    return DEFAULT_RETRY_AFTER


# --- writes: did the request leave? ------------------------------------------------------


def never_sent(exc: requests.RequestException) -> bool:
    """True when ``exc`` proves the request never reached the server.

    Only a failure to open the connection proves it: a connect timeout, a refused
    connection or a failed DNS look-up (urllib3 wraps these as ``NewConnectionError`` /
    ``ConnectTimeoutError`` in a ``MaxRetryError``). A read timeout, a connection closed or
    reset after the request was written, a broken TLS stream or a cut-off body all leave
    open whether the server acted on it.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        return isinstance(reason.reason, NewConnectionError | ConnectTimeoutError)
    return False


def write_failure(exc: requests.RequestException, what: str) -> ConnectorError:
    """The error for a write (a reply, a comment) that failed in transport.

    ``TransientError`` (retry) only when the request surely did not leave; otherwise
    ``OutcomeUnknown``: the platform may have acted on it, and a blind retry could post twice.
    """
    if never_sent(exc):
        return TransientError(f"{what}: not sent: {exc}")
    return OutcomeUnknown(f"{what}: the request was sent but its answer was lost: {exc}")


# --- plain-requests connectors (RSS, Discourse) ------------------------------------------


def send(
    session: requests.Session, method: str, url: str, *, check: bool = True, **kwargs: Any
) -> requests.Response:
    """Send one request and map transport failures (and, if ``check``, error statuses)."""
    kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
    try:
        response = session.request(method, url, **kwargs)
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise TransientError(f"{method} {url}: {exc}") from exc
    except requests.RequestException as exc:
        raise ConnectorError(f"{method} {url}: {exc}") from exc
    if check:
        raise_for_status(response)
    return response


def raise_for_status(response: requests.Response, message: str | None = None) -> None:
    """Raise the domain error for a non-2xx ``response``; ``message`` overrides the text."""
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = message or f"HTTP {status}: {response.text[:300]}"
    if status == 429:
        raise RateLimited(retry_after_seconds(response.headers), detail)
    if status in (401, 403):
        raise AuthError(detail)
    if status >= 500 or status == 408:
        raise TransientError(detail)
    raise ConnectorError(detail)


def json_body(response: requests.Response) -> Any:
    """Decode a JSON body, raising ``MalformedResponse`` (keeping the body) when it is not."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(
            f"invalid JSON from {response.url}: {exc}", response.content
        ) from exc
