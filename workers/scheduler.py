"""APScheduler jobs: one per enabled source, plus scoring and the reply outbox.

Jobs are defined as data with stable ids (``collect:<source>``, ``score``,
``outbox``), ``coalesce=True`` and ``max_instances=1``; none of them sleeps:
rate limits and backoff are persisted as the source's ``next_run_at``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from workers.jobs import recover_interrupted, run_source, score_pending, send_due
from workers.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A periodic job as data."""

    id: str
    seconds: int
    func: Callable[[], object]


def job_specs(runtime: Runtime) -> list[JobSpec]:
    """Every periodic job the configuration asks for."""
    specs = [
        JobSpec(f"collect:{s.name}", s.interval_seconds, _collect_job(runtime, s.name))
        for s in runtime.settings.sources
        if s.enabled
    ]
    sched = runtime.settings.scheduler
    specs.append(JobSpec("score", sched.score_interval_seconds, _guarded(score_pending, runtime)))
    specs.append(JobSpec("outbox", sched.outbox_interval_seconds, _guarded(send_due, runtime)))
    return specs


def _collect_job(runtime: Runtime, name: str) -> Callable[[], object]:
    def job() -> object:
        return run_source(runtime, name)

    return _guarded(lambda _rt: job(), runtime)


def _guarded(func: Callable[[Runtime], object], runtime: Runtime) -> Callable[[], object]:
    """Log and swallow any error so one broken job never stops the scheduler."""

    def job() -> object:
        try:
            return func(runtime)
        except Exception:
            log.exception("scheduled job %s failed", getattr(func, "__name__", func))
            return None

    return job


def build_scheduler(runtime: Runtime, blocking: bool = False) -> BaseScheduler:
    """A scheduler with every job registered; the first run of each job is immediate."""
    scheduler: BaseScheduler = (
        BlockingScheduler(timezone="UTC") if blocking else BackgroundScheduler(timezone="UTC")
    )
    for spec in job_specs(runtime):
        scheduler.add_job(
            spec.func,
            "interval",
            seconds=spec.seconds,
            id=spec.id,
            name=spec.id,
            coalesce=True,
            max_instances=1,
            replace_existing=True,
            next_run_time=datetime.now(UTC),
        )
    return scheduler


def start(runtime: Runtime, blocking: bool = False) -> BaseScheduler:
    """Recover interrupted replies, then start the scheduler."""
    recovered = recover_interrupted(runtime)
    if recovered:
        log.warning("%d replies were interrupted while sending; marked 'unknown'", recovered)
    scheduler = build_scheduler(runtime, blocking=blocking)
    log.info("scheduler starting with jobs: %s", ", ".join(j.id for j in scheduler.get_jobs()))
    scheduler.start()
    return scheduler
