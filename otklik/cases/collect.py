"""One collector run: fetch a page, store it, then advance the cursor.

The page is stored in one transaction; the cursor is saved in a second one
only after the first committed. A crash between the two re-fetches the same
page next time, and dedup on (platform, external_id) makes that harmless.
Failures never escape: they are recorded on the source and rescheduled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from otklik.cases.ingest import StoreResult, store_page
from otklik.connectors import SourceConnector
from otklik.domain import (
    AuthError,
    ConnectorError,
    MalformedResponse,
    RateLimited,
    RawMention,
    TransientError,
)
from otklik.domain.backoff import backoff_seconds
from otklik.domain.noise import NoiseRules, split_noise
from otklik.faults import crash_point
from otklik.store import db
from otklik.store.models import Brand, Source

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What one run of a source did."""

    source: str
    status: str  # "ok" | "skipped" | "rate_limited" | "failed"
    stored: StoreResult | None = None
    message: str = ""
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class SourceJob:
    """What one run of a source needs: its name, connector, noise rules and limits."""

    name: str
    connector: SourceConnector
    noise: NoiseRules
    max_backoff_seconds: int
    diagnostics_dir: Path  # malformed responses are kept here for diagnosis


def run_source(
    sessions: sessionmaker[Session], job: SourceJob, now: datetime, force: bool = False
) -> RunOutcome:
    """Fetch and store one page for ``job``; never raises for platform trouble."""
    name = job.name
    with db.transaction(sessions) as session:
        source = _source(session, name)
        if not force and source.next_run_at is not None and source.next_run_at > now:
            return RunOutcome(name, "skipped", message=f"next run at {source.next_run_at:%H:%M:%S}")
        query, cursor = source.query, source.cursor
    try:
        page = job.connector.fetch(query, cursor)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, none kills the scheduler
        return _record_failure(sessions, job, exc, now)
    kept, dropped = split_noise(job.noise, page.mentions)
    try:
        stored = _store(sessions, name, kept, now)
    except (IntegrityError, OperationalError) as exc:  # still colliding: try again later
        return _record_failure(sessions, job, TransientError(f"storing the page: {exc}"), now)
    crash_point("after-page-commit")
    newest = max((m.created_at for m in page.mentions), default=None)
    with db.transaction(sessions) as session:
        source = _source(session, name)
        source.cursor = page.cursor
        source.last_run_at = source.last_success_at = now
        source.consecutive_failures, source.next_run_at = 0, None
        if newest is not None and (
            source.newest_mention_at is None or newest > source.newest_mention_at
        ):
            source.newest_mention_at = newest
    log.info(
        "source %s: %d new, %d updated, %d dropped as noise",
        name,
        stored.new,
        stored.updated,
        len(dropped),
    )
    return RunOutcome(name, "ok", stored=stored, dropped=len(dropped))


def _store(
    sessions: sessionmaker[Session], name: str, mentions: list[RawMention], now: datetime
) -> StoreResult:
    """Store a page in one transaction, retried once if another source stored the same post.

    Two sources on one platform (overlapping queries) can store the same post at the same
    moment; the loser's transaction rolls back on the unique key (PostgreSQL) or on a stale
    snapshot (SQLite: "database is locked") and the retry dedups.
    """
    for attempt in (1, 2):
        try:
            with db.transaction(sessions) as session:
                source = _source(session, name)
                brand = session.get(Brand, source.brand_id) if source.brand_id else None
                return store_page(session, source, brand, mentions, now)
        except (IntegrityError, OperationalError):
            if attempt == 2:
                raise
            log.info("source %s: a concurrent store won a race; storing the page again", name)
    raise AssertionError("unreachable")


def _source(session: Session, name: str) -> Source:
    source = session.scalar(select(Source).where(Source.name == name))
    if source is None:
        raise LookupError(f"source {name!r} is not in the database; run `otklik init` first")
    return source


def _record_failure(
    sessions: sessionmaker[Session], job: SourceJob, exc: Exception, now: datetime
) -> RunOutcome:
    name = job.name
    with db.transaction(sessions) as session:
        source = _source(session, name)
        source.last_run_at = source.last_error_at = now
        source.consecutive_failures += 1
        if isinstance(exc, RateLimited):
            source.next_run_at = now + timedelta(seconds=max(1.0, exc.retry_after))
            status = "rate_limited"
        else:
            cap = job.max_backoff_seconds
            source.next_run_at = now + timedelta(
                seconds=backoff_seconds(source.consecutive_failures, cap=cap)
            )
            status = "failed"
        source.last_error = _describe(exc)
    if isinstance(exc, MalformedResponse):
        _keep_body(job.diagnostics_dir, name, now, exc)
    level = logging.WARNING if isinstance(exc, ConnectorError) else logging.ERROR
    log.log(
        level, "source %s: %s", name, _describe(exc), exc_info=not isinstance(exc, ConnectorError)
    )
    return RunOutcome(name, status, message=_describe(exc))


def _describe(exc: Exception) -> str:
    kind = "authentication failed" if isinstance(exc, AuthError) else type(exc).__name__
    return f"{kind}: {exc}"


def _keep_body(folder: Path, name: str, now: datetime, exc: MalformedResponse) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    body = exc.body if isinstance(exc.body, bytes) else str(exc.body).encode("utf-8")
    path = folder / f"{name}-{now:%Y%m%dT%H%M%S}.body"
    path.write_bytes(body)
    log.warning("source %s: malformed response kept in %s", name, path)
