"""Crash points for tests of crash-safety (like a database's failpoints).

``crash_point("after-page-commit")`` ends the process at once, without
cleanup, when ``OTKLIK_CRASH_AT`` names that point. Production never sets it.
"""

from __future__ import annotations

import os

CRASH_EXIT_CODE = 137


def crash_point(name: str) -> None:
    """Die here (like SIGKILL) when ``OTKLIK_CRASH_AT`` equals ``name``."""
    if os.environ.get("OTKLIK_CRASH_AT") == name:
        os._exit(CRASH_EXIT_CODE)
