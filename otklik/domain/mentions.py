"""Values that cross the boundary between connectors and the core: mentions, pages, errors.

Everything here is a frozen dataclass or a plain exception: collectors never
see ORM objects and the storage layer never sees a platform client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class RawMention:
    """One post as a collector saw it; ``created_at`` is timezone-aware UTC."""

    platform: str
    external_id: str
    url: str
    author_external_id: str
    author_handle: str
    text: str
    created_at: datetime
    parent_external_id: str | None = None
    author_followers: int | None = None
    deleted: bool = False  # the platform says the post was deleted or removed
    edit_of: tuple[str, ...] = ()  # earlier ids of this post (an edit that got a new id)
    raw: Mapping[str, object] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise ValueError(
                f"RawMention {self.platform}:{self.external_id}: created_at must be timezone-aware"
            )


@dataclass(frozen=True, slots=True)
class Page:
    """A page of mentions and the cursor to persist once the page is committed."""

    mentions: Sequence[RawMention]
    cursor: str | None


class ConnectorError(Exception):
    """Base class for errors a connector reports to the scheduler."""


class RateLimited(ConnectorError):
    """The platform asked us to wait; the job is rescheduled, never slept in."""

    def __init__(self, retry_after: float, message: str = "rate limited") -> None:
        super().__init__(f"{message} (retry after {retry_after:.0f}s)")
        self.retry_after = retry_after


class TransientError(ConnectorError):
    """A 5xx, timeout or reset: retry with backoff."""


class OutcomeUnknown(ConnectorError):
    """A write may have reached the platform (read timeout, 5xx, connection dropped after the
    request left): it must not be sent again blindly; a person checks (state ``unknown``)."""


class AuthError(ConnectorError):
    """Credentials rejected: the source is marked failing until fixed."""


class MalformedResponse(ConnectorError):
    """The platform sent something we cannot parse; ``body`` is kept for diagnosis."""

    def __init__(self, message: str, body: str | bytes = "") -> None:
        super().__init__(message)
        self.body = body
