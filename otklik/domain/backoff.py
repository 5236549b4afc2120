"""Exponential backoff, the one rule for a failing source and a failing outbox row."""

from __future__ import annotations


def backoff_seconds(failures: int, base: int = 30, cap: int = 900) -> int:
    """Seconds to wait after ``failures`` consecutive failures: base, 2 x base, ... up to cap."""
    return min(cap, base * 2 ** max(0, failures - 1))
