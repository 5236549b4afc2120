"""Fixtures for the connector tests."""

from __future__ import annotations

import pytest
import responses


@pytest.fixture
def rsps():
    """A ``responses`` mock that fails the test if any registered recording went unused."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock
