"""Login throttling: after a few failures a username, or the address they come from, waits.

An attempt is counted *before* its password is checked: ``reserve`` takes a slot under every key
(the username's and the address's) in one step under a lock, so parallel requests cannot all
pass the "is it locked?" check before any failure is recorded. A wrong password keeps the slot
(it becomes the failure); a right one gives it back and clears the username's failures; an error
during the check gives the slot back. The counts live in the web process (one per app), which is
how the console is served (waitress, threads).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask

MAX_KEYS = 10_000  # past this many remembered keys, forget the ones without a recent failure


@dataclass(frozen=True)
class Attempt:
    """One reserved login attempt: the keys it counts under and when it was made."""

    user_key: str
    address_key: str
    at: datetime


class LoginThrottle:
    """Counts attempts per key within a window; a key with too many waits until the lock ends."""

    def __init__(self, max_failures: int, lock: timedelta, max_per_address: int = 20) -> None:
        self.max_failures, self.lock, self.max_per_address = max_failures, lock, max_per_address
        self._attempts: dict[str, list[datetime]] = {}
        self._guard = threading.Lock()

    def reserve(self, username_key: str, address: str, now: datetime) -> Attempt | None:
        """Count an attempt under the username and the address, or None when either is locked."""
        attempt = Attempt(f"user:{username_key[:100]}", f"ip:{address[:64]}", now)
        with self._guard:
            if len(self._attempts) > MAX_KEYS:
                self._forget_stale(now)
            limits = (
                (attempt.user_key, self.max_failures),
                (attempt.address_key, self.max_per_address),
            )
            if any(len(self._recent(key, now)) >= limit for key, limit in limits):
                return None
            for key, _limit in limits:
                self._attempts[key] = [*self._recent(key, now), now]
        return attempt

    def failed(self, attempt: Attempt | None) -> None:
        """A wrong password: the reserved slot stays counted as a failure."""

    def succeeded(self, attempt: Attempt) -> None:
        """A right password: forget the username's failures and give the address its slot back."""
        with self._guard:
            self._attempts.pop(attempt.user_key, None)
            self._remove(attempt.address_key, attempt.at)

    def release(self, attempt: Attempt | None) -> None:
        """The check could not be made (an error): give the slot back under every key."""
        if attempt is None:
            return
        with self._guard:
            self._remove(attempt.user_key, attempt.at)
            self._remove(attempt.address_key, attempt.at)

    def _recent(self, key: str, now: datetime) -> list[datetime]:
        return [t for t in self._attempts.get(key, []) if now - t < self.lock]

    def _remove(self, key: str, at: datetime) -> None:
        times = self._attempts.get(key)
        if times and at in times:
            times.remove(at)
        if not times:
            self._attempts.pop(key, None)

    def _forget_stale(self, now: datetime) -> None:
        for key in [k for k in self._attempts if not self._recent(k, now)]:
            del self._attempts[key]


def init_app(app: Flask) -> None:
    """One throttle per app: ``LOGIN_MAX_FAILURES`` per username and
    ``LOGIN_MAX_FAILURES_PER_ADDRESS`` per address within ``LOGIN_LOCK_SECONDS``."""
    app.extensions["otklik.throttle"] = LoginThrottle(
        int(app.config["LOGIN_MAX_FAILURES"]),
        timedelta(seconds=int(app.config["LOGIN_LOCK_SECONDS"])),
        int(app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"]),
    )
