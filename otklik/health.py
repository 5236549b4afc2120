"""Source health: is each collector alive, how far behind, how busy (for console and CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import Settings, SourceSettings
from otklik.store.models import Mention, Source

SILENT_INTERVALS = 10  # default gap warning: this many intervals without a new mention
RATE_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """One source's health at ``now``."""

    name: str
    platform: str
    enabled: bool
    state: str  # "ok" | "failing" | "waiting" | "never run" | "disabled"
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    lag_seconds: float | None  # age of the newest stored mention
    mentions_per_hour: float
    gap_warning: str | None
    next_run_at: datetime | None


def assess(
    conf: SourceSettings, source: Source | None, stored_last_day: int, now: datetime
) -> SourceHealth:
    """Pure: the health of one source from its stored row and its recent volume."""
    enabled = conf.enabled and source is not None and source.enabled
    lag = (
        (now - source.newest_mention_at).total_seconds()
        if source and source.newest_mention_at
        else None
    )
    return SourceHealth(
        name=conf.name,
        platform=conf.platform,
        enabled=enabled,
        state=_state(enabled, source, now),
        last_success_at=source.last_success_at if source else None,
        last_error_at=source.last_error_at if source else None,
        last_error=source.last_error if source else None,
        lag_seconds=lag,
        mentions_per_hour=round(stored_last_day / (RATE_WINDOW.total_seconds() / 3600), 2),
        gap_warning=_gap_warning(conf, source, lag, now) if enabled else None,
        next_run_at=source.next_run_at if source else None,
    )


def _state(enabled: bool, source: Source | None, now: datetime) -> str:
    if not enabled:
        return "disabled"
    if source is None or source.last_run_at is None:
        return "never run"
    failed_last = source.last_error_at is not None and (
        source.last_success_at is None or source.last_error_at > source.last_success_at
    )
    if not failed_last:
        return "ok"
    if source.last_error and source.last_error.startswith("RateLimited"):
        return "waiting"
    return "failing"


def _gap_warning(
    conf: SourceSettings, source: Source | None, lag: float | None, now: datetime
) -> str | None:
    limit = conf.expected_silence_hours * 3600 or conf.interval_seconds * SILENT_INTERVALS
    if source is None or source.last_success_at is None:
        return None
    if lag is None:
        return (
            f"no mention stored yet after collecting since {source.last_success_at:%Y-%m-%d %H:%M}"
        )
    if lag > limit:
        return f"silent for {_duration(lag)} (expected a mention within {_duration(limit)})"
    return None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 86400:
        return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 60} min" if seconds >= 60 else f"{seconds} s"


def all_health(session: Session, settings: Settings, now: datetime) -> list[SourceHealth]:
    """Health of every configured source."""
    rows = {s.name: s for s in session.scalars(select(Source))}
    since = now - RATE_WINDOW
    counts = dict(
        session.execute(
            select(Mention.source_id, func.count())
            .where(Mention.fetched_at >= since, Mention.source_id.is_not(None))
            .group_by(Mention.source_id)
        ).all()
    )
    result = []
    for conf in settings.sources:
        row = rows.get(conf.name)
        result.append(assess(conf, row, counts.get(row.id, 0) if row else 0, now))
    return result
