"""An [sla] section with business hours and a platform override, as the console shows it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from otklik.domain.sla import BusinessHours, add_business_time
from otklik.store.models import Conversation
from tests.conftest import login, write_config
from tests.web_support import fast_password_hashing  # noqa: F401
from workers.jobs import run_source

SLA = """
[sla]
timezone = "Europe/Moscow"
business_hours = "Mon-Fri 09:00-18:00"
at_risk_percent = 20
first_response_minutes = { high = 30, normal = 120, low = 480 }
resolution_minutes = { high = 240, normal = 960, low = 2880 }

[[sla.platforms]]
platform = "demo"
first_response_minutes = { high = 15 }
"""


@pytest.fixture
def config_path(tmp_path):
    return write_config(tmp_path, extra=SLA)


def test_the_sla_page_shows_the_configured_policy(client) -> None:
    login(client)
    page = client.get("/admin/sla").get_data(as_text=True)
    assert "Mon-Fri 09:00-18:00" in page and "Europe/Moscow" in page
    assert "less than 20% of a target" in page
    assert "<td>demo</td><td>high (60 and above)</td><td>15 min</td><td>240 min</td>" in page
    assert "<td>demo</td><td>normal (30 to 59)</td><td>120 min</td>" in page


def test_new_conversations_are_due_in_business_time(runtime) -> None:
    run_source(runtime, "demo")
    hours = BusinessHours.parse("Mon-Fri 09:00-18:00", "Europe/Moscow")
    with runtime.sessions() as session:
        for conversation in session.scalars(select(Conversation)):
            minutes = 480  # unscored: priority 0, low band
            due = add_business_time(conversation.opened_at, minutes, hours)
            assert conversation.sla_due_at == due


def test_a_changed_policy_reaches_every_open_conversation_at_start(tmp_path, runtime, app) -> None:
    from config import load_settings
    from tests.conftest import KeywordScorer, hermetic_environ
    from web import create_app
    from workers.runtime import Runtime

    run_source(runtime, "demo")
    around_the_clock = write_config(tmp_path, extra="")  # the same var/ and database
    settings = load_settings(around_the_clock, environ=hermetic_environ())
    changed = Runtime.from_settings(settings, scorer_factory=lambda _s: KeywordScorer())
    create_app(changed, {"TESTING": True})
    with changed.sessions() as session:
        for conversation in session.scalars(select(Conversation)):
            assert conversation.sla_due_at == conversation.opened_at + timedelta(minutes=480)
    changed.engine.dispose()
