"""Two sources on one platform storing the same posts at the same moment: no error, no double."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from config import load_settings
from otklik.store.models import Mention
from tests.conftest import KeywordScorer, hermetic_environ, write_config
from tests.test_migrations import PG_URL, pg_schema_url  # noqa: F401 - fixture
from workers.jobs import run_source
from workers.runtime import Runtime

SECOND_SOURCE = """
[[sources]]
name = "demo-overlap"
platform = "demo"
brand = "Ladoga Coffee"
query = "ladoga coffee"
interval_seconds = 5
[sources.settings]
page_size = 6
"""


def _race(config_path, database_url: str | None) -> None:
    extra = {"OTKLIK_DATABASE_URL": database_url} if database_url else {}
    runtime = Runtime.from_settings(
        load_settings(config_path, environ=hermetic_environ(**extra)),
        scorer_factory=lambda _s: KeywordScorer(),
    )
    runtime.prepare_database()
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def collect(name: str) -> None:
        for _ in range(6):
            barrier.wait(timeout=30)
            outcomes.append(run_source(runtime, name, force=True).status)

    threads = [threading.Thread(target=collect, args=(n,)) for n in ("demo", "demo-overlap")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    with runtime.sessions() as session:
        rows = session.scalar(select(func.count()).select_from(Mention))
        distinct = session.scalar(select(func.count(func.distinct(Mention.external_id))))
    runtime.engine.dispose()
    assert outcomes.count("ok") + outcomes.count("failed") == 12
    assert rows == distinct == 36  # both walked the same 36 demo posts: each stored once


def test_overlapping_sources_on_sqlite(tmp_path) -> None:
    _race(write_config(tmp_path, extra=SECOND_SOURCE), None)


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="set OTKLIK_TEST_DATABASE_URL to run on PostgreSQL")
def test_overlapping_sources_on_postgres(tmp_path, pg_schema_url) -> None:  # noqa: F811
    _race(write_config(tmp_path, extra=SECOND_SOURCE), pg_schema_url)
