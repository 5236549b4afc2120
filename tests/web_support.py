"""Shared by the console tests: cheaper argon2 parameters, so fixtures do not dominate the run.

Import ``fast_password_hashing`` into a test module to use it (it is autouse there). The hashes
are still argon2id, verified by the same code; only the cost parameters are lower.
"""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

import otklik.users


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash test passwords with minimal argon2 costs."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(otklik.users, "_hasher", cheap)
