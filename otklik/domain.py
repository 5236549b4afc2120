"""Values that cross boundaries between collectors, storage, NLP and the console.

Everything here is a frozen dataclass or a plain exception: collectors never
see ORM objects and the storage layer never sees a platform client.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol, Self


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


class AuthError(ConnectorError):
    """Credentials rejected: the source is marked failing until fixed."""


class MalformedResponse(ConnectorError):
    """The platform sent something we cannot parse; ``body`` is kept for diagnosis."""

    def __init__(self, message: str, body: str | bytes = "") -> None:
        super().__init__(message)
        self.body = body


class Connector(Protocol):
    """What every platform connector provides (see ``collectors.get``)."""

    platform: ClassVar[str]
    can_reply: ClassVar[bool]

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> Self:
        """Build the connector from its source settings (secrets come from the environment)."""
        ...

    def check(self) -> None:
        """Make a cheap authenticated call; raise ``ConnectorError`` on failure."""
        ...

    def fetch(self, query: str, cursor: str | None) -> Page:
        """Return the next page of mentions after ``cursor``."""
        ...

    def reply(self, to: RawMention, text: str) -> str:
        """Post ``text`` in reply to ``to``; return the new post's external id."""
        ...
