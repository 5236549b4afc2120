"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from otklik.store import db
from otklik.store.models import Base

PG_URL = os.environ.get("OTKLIK_TEST_DATABASE_URL")
needs_postgres = pytest.mark.skipif(
    not PG_URL, reason="set OTKLIK_TEST_DATABASE_URL to a PostgreSQL database to run this test"
)


def _differences(engine) -> list:
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


def test_sqlite_schema_matches_the_models(tmp_path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    db.upgrade(engine)
    assert _differences(engine) == []
    db.upgrade(engine)  # idempotent


@pytest.fixture
def pg_schema_url():
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.postgres
@needs_postgres
def test_postgres_schema_matches_the_models(pg_schema_url) -> None:
    engine = db.make_engine(pg_schema_url)
    db.upgrade(engine)
    assert _differences(engine) == []
    engine.dispose()
