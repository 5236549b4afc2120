"""Login throttling: after a few failures a username (and the address it came from) waits."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from flask import Flask


class LoginThrottle:
    """Counts failures per key within a window; locked keys are refused until the lock ends."""

    def __init__(self, max_failures: int, lock: timedelta) -> None:
        self.max_failures, self.lock = max_failures, lock
        self._failures: dict[str, list[datetime]] = {}
        self._guard = threading.Lock()

    def locked_until(self, keys: list[str], now: datetime) -> datetime | None:
        """When the first locked key unlocks, or None if none is locked."""
        with self._guard:
            until = [self._until(key, now) for key in keys]
        locked = [u for u in until if u is not None]
        return max(locked) if locked else None

    def failed(self, keys: list[str], now: datetime) -> None:
        """Record a failed attempt under every key."""
        with self._guard:
            for key in keys:
                recent = [t for t in self._failures.get(key, []) if now - t < self.lock]
                self._failures[key] = [*recent, now]

    def succeeded(self, keys: list[str]) -> None:
        """Forget the failures of these keys."""
        with self._guard:
            for key in keys:
                self._failures.pop(key, None)

    def _until(self, key: str, now: datetime) -> datetime | None:
        recent = [t for t in self._failures.get(key, []) if now - t < self.lock]
        if len(recent) < self.max_failures:
            return None
        return recent[-1] + self.lock


def init_app(app: Flask) -> None:
    """One throttle per app; ``LOGIN_MAX_FAILURES`` per ``LOGIN_LOCK_SECONDS``."""
    app.extensions["otklik.throttle"] = LoginThrottle(
        int(app.config["LOGIN_MAX_FAILURES"]),
        timedelta(seconds=int(app.config["LOGIN_LOCK_SECONDS"])),
    )
