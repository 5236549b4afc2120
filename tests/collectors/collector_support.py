"""Helpers for the connector tests: recorded bodies, shared samples, sent timeouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import responses

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# Real responses recorded by the client libraries' own test suites. They live next to
# the repository on the development machine only; tests that use them skip elsewhere.
SAMPLES = (Path(__file__).resolve().parents[2] / ".." / "shared" / "api-samples").resolve()


def fixture_text(platform: str, name: str) -> str:
    """Return the text of ``tests/fixtures/<platform>/<name>``."""
    return (FIXTURES / platform / name).read_text(encoding="utf-8")


def fixture_json(platform: str, name: str) -> object:
    """Return the parsed JSON of ``tests/fixtures/<platform>/<name>``."""
    return json.loads(fixture_text(platform, name))


def sample_path(*parts: str) -> Path:
    """Path inside the shared api-samples folder; skip the test when it is absent."""
    path = SAMPLES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared API samples not available ({path} missing; only on the dev host)")
    return path


def sent_timeouts(mock: responses.RequestsMock) -> list[object]:
    """The ``timeout`` argument each intercepted request was sent with."""
    return [call.request.req_kwargs.get("timeout") for call in mock.calls]
