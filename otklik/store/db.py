"""Engines, sessions and schema migration (Alembic, also for SQLite)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import CursorResult, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from otklik.domain.sla import SlaPolicy

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
POLICY_KEY = "sla_policy"  # the key of the SLA policy in Session.info


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout, and a private file."""
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:" and not path.startswith("file:"):
            _private_file(Path(path))
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _private_file(path: Path) -> None:
    """Create the SQLite file (and its folder) readable by this user only: 0600 (0700).

    SQLite gives its -wal and -shm files the database file's mode. An existing file or folder
    keeps the mode it has.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def rows_changed(result: Any) -> int:
    """How many rows an executed UPDATE or DELETE changed (its ``CursorResult.rowcount``)."""
    return int(cast(CursorResult[Any], result).rowcount)


def make_session_factory(
    engine: Engine, sla_policy: SlaPolicy | None = None
) -> sessionmaker[Session]:
    """A plain session factory (no Flask-SQLAlchemy: jobs need no app context).

    ``sla_policy`` rides in each session's ``info``: the projections read it to keep the
    inbox's due times in step (``otklik.store.projections.policy_of``).
    """
    return sessionmaker(engine, expire_on_commit=False, info={POLICY_KEY: sla_policy})


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with factory() as session, session.begin():
        yield session


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
