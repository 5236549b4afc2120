"""Who is viewing or typing in a conversation: an in-memory board fed by heartbeats.

The console's JavaScript posts a heartbeat every few seconds while a conversation is open
(with ``typing`` while the reply box changes); entries expire on their own, so a closed tab
disappears within ``ttl``. The board lives in the web process (waitress serves with threads
in one process); a deployment with several web processes would need a shared store.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

VIEW_TTL = timedelta(seconds=20)
TYPING_TTL = timedelta(seconds=8)


@dataclass(frozen=True, slots=True)
class Presence:
    """Someone on a conversation page."""

    user_id: int
    username: str
    typing: bool
    seen_at: datetime


class PresenceBoard:
    """Thread-safe heartbeats per conversation; times are passed in, never read here."""

    def __init__(self, view_ttl: timedelta = VIEW_TTL, typing_ttl: timedelta = TYPING_TTL):
        self._view_ttl, self._typing_ttl = view_ttl, typing_ttl
        self._lock = threading.Lock()
        self._beats: dict[int, dict[int, tuple[str, datetime, datetime | None]]] = {}

    def beat(
        self, conversation_id: int, user_id: int, username: str, typing: bool, now: datetime
    ) -> None:
        """Record that ``user_id`` is on the page (and typing) at ``now``."""
        with self._lock:
            viewers = self._beats.setdefault(conversation_id, {})
            previous = viewers.get(user_id)
            typed_at = now if typing else (previous[2] if previous else None)
            viewers[user_id] = (username, now, typed_at)
            self._expire(now)

    def leave(self, conversation_id: int, user_id: int) -> None:
        """Forget ``user_id`` on this conversation (the page was closed)."""
        with self._lock:
            self._beats.get(conversation_id, {}).pop(user_id, None)

    def others(self, conversation_id: int, user_id: int, now: datetime) -> list[Presence]:
        """Everyone but ``user_id`` seen on the conversation within the TTL, by name."""
        with self._lock:
            viewers = dict(self._beats.get(conversation_id, {}))
        found = []
        for other_id, (username, seen_at, typed_at) in viewers.items():
            if other_id == user_id or now - seen_at > self._view_ttl:
                continue
            typing = typed_at is not None and now - typed_at <= self._typing_ttl
            found.append(Presence(other_id, username, typing, seen_at))
        return sorted(found, key=lambda p: p.username)

    def _expire(self, now: datetime) -> None:
        for conversation_id in list(self._beats):
            viewers = self._beats[conversation_id]
            for user_id in [u for u, v in viewers.items() if now - v[1] > self._view_ttl]:
                del viewers[user_id]
            if not viewers:
                del self._beats[conversation_id]
