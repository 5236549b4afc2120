"""APScheduler jobs: one per enabled source, plus scoring and the reply outbox.

Jobs are defined as data with stable ids (``collect:<source>``, ``score``,
``outbox``), ``coalesce=True`` and ``max_instances=1``; none of them sleeps:
rate limits and backoff are persisted as the source's ``next_run_at``.

One scheduler per database: :func:`start` takes the ``scheduler`` lock
(``otklik.store.locks``) before anything runs, a ``scheduler-lock`` job renews it every
:data:`RENEW_SECONDS`, the work jobs run only while this process holds it, and shutting the
scheduler down releases it. A process killed without a shutdown leaves the lock to run out
after :data:`LOCK_TTL`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from otklik.store.locks import Holder
from workers.jobs import (
    lock_holder,
    recover_interrupted,
    release_lock,
    renew_lock,
    run_source,
    score_pending,
    send_due,
    take_lock,
)
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


def build_scheduler(
    runtime: Runtime, blocking: bool = False, lease: Lease | None = None
) -> BaseScheduler:
    """A scheduler with every job registered; the first run of each job is immediate.

    With a ``lease``, the work jobs run only while it is held, and a ``scheduler-lock`` job
    keeps it (or, in standby, takes it once it is free).
    """
    scheduler: BaseScheduler = (
        BlockingScheduler(timezone="UTC") if blocking else BackgroundScheduler(timezone="UTC")
    )
    specs = job_specs(runtime)
    if lease is not None:
        work = [spec.id for spec in specs]
        specs = [JobSpec(s.id, s.seconds, lease.guard(s.func)) for s in specs]

        def keep_lock(_runtime: Runtime) -> bool:
            return lease.keep(lambda: _taken(runtime, scheduler, work))

        # its own thread: slow collections filling the pool must not starve the renewals
        scheduler.add_executor(ThreadPoolExecutor(1), LOCK_JOB)
        _add(scheduler, JobSpec(LOCK_JOB, RENEW_SECONDS, _guarded(keep_lock, runtime)), LOCK_JOB)
    for spec in specs:
        _add(scheduler, spec)
    return scheduler


def _add(scheduler: BaseScheduler, spec: JobSpec, executor: str = "default") -> None:
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
        executor=executor,
    )


def start(
    runtime: Runtime,
    blocking: bool = False,
    on_busy: Callable[[SchedulerBusy], object] | None = None,
) -> BaseScheduler:
    """Take the scheduler lock, recover interrupted replies, then start the scheduler.

    When another scheduler holds the lock: raise :class:`SchedulerBusy`, or, given
    ``on_busy``, tell it and start in standby (nothing runs until the lock is free).
    Shutting the returned scheduler down releases the lock.
    """
    lease = Lease(runtime)
    if not lease.take(lambda: _recover(runtime)):
        busy = SchedulerBusy(lock_holder(runtime, LOCK_NAME))
        if on_busy is None:
            raise busy
        on_busy(busy)
    scheduler = build_scheduler(runtime, blocking=blocking, lease=lease)
    scheduler.add_listener(lambda _event: lease.release(), EVENT_SCHEDULER_SHUTDOWN)
    log.info("scheduler starting with jobs: %s", ", ".join(j.id for j in scheduler.get_jobs()))
    try:
        scheduler.start()  # blocking: returns after the shutdown
    except BaseException:
        if not scheduler.running:  # failed to start: nothing will release the lock otherwise
            lease.release()
        raise
    return scheduler


def _recover(runtime: Runtime) -> None:
    recovered = recover_interrupted(runtime)
    if recovered:
        log.warning("%d replies were interrupted while sending; marked 'unknown'", recovered)


def _taken(runtime: Runtime, scheduler: BaseScheduler, work: list[str]) -> None:
    """The lock came (back) to this process: recover, then run every work job now."""
    _recover(runtime)
    for job_id in work:
        scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))


# --- The scheduler lock --------------------------------------------------------------------

LOCK_NAME = "scheduler"
LOCK_JOB = "scheduler-lock"
LOCK_TTL = timedelta(seconds=60)
RENEW_SECONDS = 10  # five chances to renew before the lock runs out
MARGIN = timedelta(seconds=15)  # stop starting work this long before the lock would run out


def owner_id() -> str:
    """Who this scheduler is, for the lock row and for the message another one shows."""
    return f"pid {os.getpid()} on {socket.gethostname()[:120]} [{uuid.uuid4().hex[:8]}]"


class SchedulerBusy(Exception):
    """Another scheduler holds this database's scheduler lock."""

    def __init__(self, holder: Holder | None) -> None:
        self.holder = holder
        if holder is None:  # released between our attempt and the look-up
            text = "another Otklik scheduler held this database's lock a moment ago"
        else:
            text = (
                f"another Otklik scheduler works this database: {holder.owner}, since "
                f"{_clock(holder.acquired_at)}; its lock runs until {_clock(holder.expires_at)} "
                f"and is renewed every {RENEW_SECONDS} s while it runs"
            )
        super().__init__(text)


def _clock(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Lease:
    """This process's hold on a lock, with a local deadline its work checks before each run.

    The deadline is :data:`MARGIN` before the expiry stored in the database, so work stops
    starting here before anyone else may take the lock over.
    """

    def __init__(
        self, runtime: Runtime, name: str = LOCK_NAME, ttl: timedelta | None = None
    ) -> None:
        self.runtime, self.name, self.ttl = runtime, name, ttl or LOCK_TTL
        self.owner = owner_id()
        self._deadline = 0.0  # time.monotonic() until which work may start
        self._mine = False  # the row is ours as far as we know
        self._ready = False  # on_taken has run since we took it
        self._closed = False
        self._lock = threading.Lock()

    def holds(self) -> bool:
        """Whether work may start now."""
        return time.monotonic() < self._deadline

    def take(self, on_taken: Callable[[], object] = lambda: None) -> bool:
        """Take the lock; ``on_taken`` runs after the take and before any guarded work."""
        with self._lock:
            return self._take(on_taken)

    def keep(self, on_taken: Callable[[], object]) -> bool:
        """The periodic job: renew while ours; once lost (or never had), take it when free."""
        with self._lock:
            if self._closed:
                return False
            if self._mine:
                started = time.monotonic()
                if renew_lock(self.runtime, self.name, self.owner, self.ttl):
                    self._work_until(started, on_taken)
                    return True
                self._mine, self._ready, self._deadline = False, False, 0.0
                holder = lock_holder(self.runtime, self.name)
                log.error(
                    "lost the %s lock to %s; work paused until it is free",
                    self.name,
                    holder.owner if holder else "nobody",
                )
            if not self._take(on_taken):
                return False
            log.warning("took the %s lock (%s); starting work", self.name, self.owner)
            return True

    def _take(self, on_taken: Callable[[], object]) -> bool:
        started = time.monotonic()
        if self._closed or not take_lock(self.runtime, self.name, self.owner, self.ttl):
            return False
        self._mine, self._ready = True, False
        self._work_until(started, on_taken)
        return True

    def _work_until(self, started: float, on_taken: Callable[[], object]) -> None:
        if not self._ready:  # again at the next renewal if it failed
            on_taken()
            self._ready = True
        self._deadline = started + (self.ttl - MARGIN).total_seconds()

    def release(self) -> None:
        """Stop working and give the lock up (on a clean shutdown)."""
        with self._lock:
            self._closed, self._deadline = True, 0.0
            if self._mine:
                self._mine = False
                try:
                    release_lock(self.runtime, self.name, self.owner)
                except Exception:  # the lock then runs out by itself after the ttl
                    log.exception("could not release the %s lock", self.name)

    def guard(self, func: Callable[[], object]) -> Callable[[], object]:
        """``func`` run only while the lock is held."""

        def job() -> object:
            return func() if self.holds() else None

        return job
