"""The periodic jobs: each takes the runtime, hands the use cases plain values and sessions.

These are what the scheduler runs now and what Celery tasks will run later; none of them
sleeps (rate limits and backoff are stored as the row's next run time).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from otklik.cases import scoring
from otklik.cases.collect import RunOutcome, SourceJob
from otklik.cases.collect import run_source as collect_source
from otklik.domain.noise import NoiseRules
from otklik.store import db, locks
from otklik.store.models import utcnow
from responder.replies import recover_interrupted_replies, send_due_replies
from workers.runtime import Runtime


def noise_rules(runtime: Runtime, name: str) -> NoiseRules:
    """The noise rules configured for source ``name``."""
    conf = runtime.settings.source(name)
    return NoiseRules(
        include_reposts=conf.include_reposts,
        exclude_keywords=tuple(conf.exclude_keywords),
        exclude_authors=tuple(conf.exclude_authors),
        languages=tuple(conf.languages),
        brand_handles=tuple(runtime.connector_settings(conf)["brand_handles"]),
    )


def run_source(
    runtime: Runtime, name: str, now: datetime | None = None, force: bool = False
) -> RunOutcome:
    """Fetch and store one page of source ``name``; never raises for platform trouble."""
    job = SourceJob(
        name=name,
        connector=runtime.connector(name),
        noise=noise_rules(runtime, name),
        max_backoff_seconds=runtime.settings.scheduler.max_backoff_seconds,
        diagnostics_dir=runtime.var_path / "diagnostics",
    )
    return collect_source(runtime.sessions, job, now or utcnow(), force=force)


def score_pending(runtime: Runtime, limit: int | None = None) -> int:
    """Score up to ``limit`` customer posts that have no score yet; return how many."""
    limit = limit or runtime.settings.nlp.score_batch_limit
    with db.transaction(runtime.sessions) as session:
        pending = scoring.pending_mentions(session, limit)
        if not pending:
            return 0
        results = runtime.scorer.score([m.text for m in pending])
        scoring.store_scores(session, pending, results)
    return len(pending)


def send_due(runtime: Runtime, now: datetime | None = None) -> int:
    """Send every queued reply that is due; return how many were sent."""
    return send_due_replies(runtime.sessions, runtime.replier, now or utcnow())


def recover_interrupted(runtime: Runtime) -> int:
    """Replies left in ``sending`` by a dead worker become ``unknown``; return how many."""
    return recover_interrupted_replies(runtime.sessions)


def take_lock(
    runtime: Runtime, name: str, owner: str, ttl: timedelta, now: datetime | None = None
) -> bool:
    """Take (or keep) lock ``name`` for ``owner`` in a transaction of its own."""
    with db.transaction(runtime.sessions) as session:
        return locks.acquire(session, name, owner, now or utcnow(), ttl)


def renew_lock(
    runtime: Runtime, name: str, owner: str, ttl: timedelta, now: datetime | None = None
) -> bool:
    """Push back the expiry of ``owner``'s lock ``name``; False when it is not theirs."""
    with db.transaction(runtime.sessions) as session:
        return locks.renew(session, name, owner, now or utcnow(), ttl)


def release_lock(runtime: Runtime, name: str, owner: str) -> bool:
    """Drop ``owner``'s lock ``name``."""
    with db.transaction(runtime.sessions) as session:
        return locks.release(session, name, owner)


def lock_holder(runtime: Runtime, name: str) -> locks.Holder | None:
    """Who holds lock ``name`` (for messages)."""
    with runtime.sessions() as session:
        return locks.holder(session, name)
