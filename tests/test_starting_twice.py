"""Starting Otklik twice: the port is checked before anything starts, one scheduler per database.

Issue 16, "Starting twice": a second `otklik run` on the same machine started its scheduler,
collected a page into the same database and only then died on the busy port with a traceback.
"""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from config import load_settings
from otklik.store import db, locks
from otklik.store.models import JobLock, Mention, Reply, ReplyState
from tests.conftest import REPO, KeywordScorer, hermetic_environ, write_config
from tests.test_migrations import needs_postgres, pg_schema_url  # noqa: F401 - fixture
from workers import scheduler as otklik_scheduler
from workers.runtime import Runtime

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=60)
QUIET = {"OTKLIK_SCHEDULER_SCORE_INTERVAL_SECONDS": "3600"}  # no model in these tests


def otklik_cmd(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "workers.cli", "--config", str(config), *args]


def otklik(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        otklik_cmd(config, *args),
        env=hermetic_environ(**QUIET),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def background(config: Path, *args: str, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            otklik_cmd(config, *args),
            env=hermetic_environ(**QUIET),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen, log: Path) -> int:
    """SIGTERM, as systemd or docker would stop it; the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:  # pragma: no cover - only when the test already failed
        process.kill()
        process.wait()
        raise AssertionError(f"did not stop on SIGTERM:\n{log.read_text()}") from None


def wait_for(condition, what: str, seconds: float = 60, log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text() if log else ''}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_file(config: Path) -> Path:
    return load_settings(config, environ=hermetic_environ()).var_path / "otklik.db"


def mentions_and_locks(config: Path) -> tuple[int, list[tuple[str, str]]]:
    """Mentions stored and lock rows, read without migrating anything."""
    engine = db.make_engine(f"sqlite:///{database_file(config)}")
    try:
        with engine.connect() as connection:
            tables = inspect(connection).get_table_names()
            if "job_locks" not in tables:  # not migrated (yet)
                return 0, []
            mentions = connection.scalar(select(func.count()).select_from(Mention))
            held = [tuple(r) for r in connection.execute(select(JobLock.name, JobLock.owner))]
        return int(mentions or 0), held
    finally:
        engine.dispose()


def answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("HEAD", "/login")
        return connection.getresponse().status < 500
    except OSError:
        return False
    finally:
        connection.close()


# --- The port is checked before anything starts --------------------------------------------


@pytest.mark.parametrize("command", ["run", "web"])
def test_a_busy_port_stops_otklik_before_it_starts_anything(tmp_path: Path, command: str) -> None:
    config = write_config(tmp_path)
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", 0))
        other_program.listen()
        port = other_program.getsockname()[1]
        started = time.monotonic()
        done = otklik(config, command, "--port", str(port))
        took = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert f"another program is already listening on 127.0.0.1:{port}" in done.stderr
    assert "OTKLIK_WEB_PORT" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr
    assert took < 30  # no model build, no migration, no scheduler before the check
    assert not database_file(config).exists()  # init never ran: nothing collected, no lock


def test_a_second_otklik_on_the_same_port_is_named_and_collects_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    port, log = free_port(), tmp_path / "first.log"
    first = background(config, "web", "--port", str(port), log=log)  # the console of a first one
    try:
        wait_for(lambda: answers(port), "the first console", log=log)
        done = otklik(config, "run", "--port", str(port))
        assert done.returncode == 2, done.stderr
        assert f"another Otklik is already running on 127.0.0.1:{port}" in done.stderr
        assert "OTKLIK_WEB_PORT" in done.stderr and "Traceback" not in done.stderr
        assert mentions_and_locks(config) == (0, [])  # the second scheduler never started
    finally:
        assert stop(first, log) == 0, log.read_text()


# --- One scheduler per database: the CLI ----------------------------------------------------


def test_a_second_scheduler_on_one_database_refuses_and_the_first_releases_on_stop(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    log1, log2 = tmp_path / "first.log", tmp_path / "second.log"
    first = background(config, "scheduler", log=log1)
    try:
        wait_for(lambda: database_file(config).exists(), "the database", log=log1)
        wait_for(lambda: mentions_and_locks(config)[0] > 0, "the first collection", log=log1)
        _, held = mentions_and_locks(config)
        assert len(held) == 1 and held[0][0] == "scheduler"
        assert held[0][1].startswith(f"pid {first.pid} on ")

        second = otklik(config, "scheduler")
        assert second.returncode == 2, second.stderr
        assert "another Otklik scheduler works this database" in second.stderr
        assert f"pid {first.pid} on" in second.stderr and "lock runs until" in second.stderr
        assert "Traceback" not in second.stderr
        assert "scheduler starting" not in second.stderr
        assert mentions_and_locks(config)[1] == held  # the first one still holds it
    finally:
        assert stop(first, log1) == 0, log1.read_text()
    assert mentions_and_locks(config)[1] == []  # released on a clean stop (SIGTERM)

    again = background(config, "scheduler", log=log2)  # so the next one starts at once
    try:
        wait_for(
            lambda: [
                o for _, o in mentions_and_locks(config)[1] if o.startswith(f"pid {again.pid}")
            ],
            "the lock taken by the next scheduler",
            log=log2,
        )
    finally:
        assert stop(again, log2) == 0, log2.read_text()


# --- One scheduler per database: two schedulers in one process (SQLite and PostgreSQL) ------


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=[pytest.mark.postgres, needs_postgres])]
)
def database_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return request.getfixturevalue("pg_schema_url")


class CountingConnector:
    """Wraps the demo connector and counts the pages fetched through this runtime."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0
        self.platform = inner.platform

    def check(self) -> None:
        pass

    def fetch(self, query: str, cursor: str | None):
        self.calls += 1
        return self.inner.fetch(query, cursor)


def make_runtime(tmp_path: Path, url: str, name: str) -> tuple[Runtime, CountingConnector]:
    config = write_config(tmp_path / name, demo_interval_seconds=1)
    settings = load_settings(config, environ=hermetic_environ(OTKLIK_DATABASE_URL=url, **QUIET))
    runtime = Runtime.from_settings(settings, scorer_factory=lambda _s: KeywordScorer())
    runtime.prepare_database()
    counting = CountingConnector(runtime.connector("demo"))
    runtime.use_connector("demo", counting)
    return runtime, counting


@pytest.fixture
def two(tmp_path: Path, database_url: str, monkeypatch):
    """Two runtimes (two engines: two processes' worth of connections) on one database."""
    monkeypatch.setattr(otklik_scheduler, "RENEW_SECONDS", 1)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = make_runtime(tmp_path, database_url, "a"), make_runtime(tmp_path, database_url, "b")
    yield a, b
    a[0].engine.dispose()
    b[0].engine.dispose()


def holder(runtime: Runtime) -> locks.Holder | None:
    with runtime.sessions() as session:
        return locks.holder(session, otklik_scheduler.LOCK_NAME)


def test_only_one_of_two_schedulers_works_a_database(two) -> None:
    (rt_a, fetched_a), (rt_b, fetched_b) = two
    first = otklik_scheduler.start(rt_a)
    try:
        wait_for(lambda: fetched_a.calls > 0, "the first scheduler to collect")
        with pytest.raises(otklik_scheduler.SchedulerBusy) as refused:
            otklik_scheduler.start(rt_b)
        owner = holder(rt_a).owner
        assert owner in str(refused.value) and "lock runs until" in str(refused.value)

        told: list[str] = []
        standby = otklik_scheduler.start(rt_b, on_busy=lambda busy: told.append(str(busy)))
        try:
            time.sleep(3)  # several renewals and work-job runs of both
            assert fetched_b.calls == 0 and holder(rt_a).owner == owner
            assert told and owner in told[0]
            first.shutdown(wait=True)  # releases: the standby takes over and collects
            wait_for(lambda: fetched_b.calls > 0, "the standby to take over")
            assert holder(rt_b).owner != owner
        finally:
            standby.shutdown(wait=True)
    finally:
        if first.running:
            first.shutdown(wait=True)
    assert holder(rt_a) is None  # released on shutdown


def test_a_refused_scheduler_leaves_the_replies_in_flight_alone(two) -> None:
    """Before the lock, a second start marked the first one's replies in `sending` unknown."""
    from otklik.cases.replies import queue_reply
    from otklik.store.models import Conversation, utcnow
    from otklik.users import create_user
    from workers.jobs import run_source

    (rt_a, _), (rt_b, _) = two
    first = otklik_scheduler.start(rt_a)
    try:
        first.pause()  # the first one is busy sending: its row is in `sending`
        run_source(rt_a, "demo", force=True)
        with db.transaction(rt_a.sessions) as session:
            user = create_user(session, "agent", "correct horse battery")
            conversation = session.scalar(select(Conversation).order_by(Conversation.id))
            to = conversation.mentions[-1]
            queue_reply(session, conversation, to, "On it", user, "key-1", utcnow())
            session.scalar(select(Reply)).state = ReplyState.SENDING
        with pytest.raises(otklik_scheduler.SchedulerBusy):
            otklik_scheduler.start(rt_b)
        standby = otklik_scheduler.start(rt_b, on_busy=lambda _busy: None)
        time.sleep(1.5)
        standby.shutdown(wait=True)
        with rt_b.sessions() as session:
            assert session.scalar(select(Reply.state)) == ReplyState.SENDING
    finally:
        first.shutdown(wait=True)


def test_the_scheduler_renews_its_lock_and_a_restart_in_process_takes_it_at_once(
    two, monkeypatch
) -> None:
    monkeypatch.setattr(otklik_scheduler, "LOCK_TTL", timedelta(seconds=5))
    monkeypatch.setattr(otklik_scheduler, "MARGIN", timedelta(seconds=2))
    (rt_a, fetched_a), (rt_b, _) = two
    first = otklik_scheduler.start(rt_a)
    try:
        owner = holder(rt_a).owner
        time.sleep(7)  # longer than the ttl: only the renewals keep the lock
        assert holder(rt_a).owner == owner
        assert holder(rt_a).expires_at > datetime.now(UTC)
        with pytest.raises(otklik_scheduler.SchedulerBusy):
            otklik_scheduler.start(rt_b)
        calls = fetched_a.calls
        time.sleep(1.5)
        assert fetched_a.calls > calls  # still working while it holds the lock
    finally:
        first.shutdown(wait=True)
    restarted = otklik_scheduler.start(rt_a)  # what the soak test's restarts do
    restarted.shutdown(wait=True)


def test_a_lease_that_lost_its_lock_stops_its_work(two) -> None:
    (rt_a, _), (rt_b, _) = two
    lease = otklik_scheduler.Lease(rt_a)
    ran: list[int] = []
    assert lease.take() and lease.holds()
    guarded = lease.guard(lambda: ran.append(1))
    guarded()
    with db.transaction(rt_b.sessions) as session:  # taken over after a long pause, say
        locks.release(session, lease.name, lease.owner)
        assert locks.acquire(session, lease.name, "someone else", datetime.now(UTC), TTL)
    assert lease.keep(lambda: None) is False and not lease.holds()
    guarded()
    assert ran == [1]
    lease.release()
    assert holder(rt_a).owner == "someone else"  # the release touched only its own row


# --- The lock itself (otklik.store.locks), on SQLite and PostgreSQL -------------------------


@pytest.fixture
def sessions(database_url: str):
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    yield db.make_session_factory(engine)
    engine.dispose()


def call(sessions, func, *args):
    with db.transaction(sessions) as session:
        return func(session, *args)


def test_one_holder_at_a_time_and_the_other_is_refused(sessions) -> None:
    assert call(sessions, locks.acquire, "scheduler", "a", NOW, TTL)
    assert not call(sessions, locks.acquire, "scheduler", "b", NOW + timedelta(seconds=59), TTL)
    assert call(sessions, locks.acquire, "source:demo", "b", NOW, TTL)  # another name
    assert call(sessions, locks.acquire, "scheduler", "a", NOW + timedelta(seconds=30), TTL)
    held = call(sessions, locks.holder, "scheduler")
    assert (held.owner, held.acquired_at, held.expires_at) == (
        "a",
        NOW,
        NOW + timedelta(seconds=90),
    )
    assert not call(sessions, locks.renew, "scheduler", "b", NOW, TTL)
    assert not call(sessions, locks.release, "scheduler", "b")
    assert call(sessions, locks.release, "scheduler", "a")
    assert call(sessions, locks.holder, "scheduler") is None
    assert call(sessions, locks.acquire, "scheduler", "b", NOW + timedelta(seconds=31), TTL)


def test_an_expired_lock_is_taken_over(sessions) -> None:
    assert call(sessions, locks.acquire, "scheduler", "a", NOW, TTL)
    later = NOW + TTL  # the expiry itself: free
    assert call(sessions, locks.acquire, "scheduler", "b", later, TTL)
    held = call(sessions, locks.holder, "scheduler")
    assert (held.owner, held.acquired_at, held.expires_at) == ("b", later, later + TTL)
    assert not call(sessions, locks.renew, "scheduler", "a", later, TTL)  # a lost it
    assert not call(sessions, locks.release, "scheduler", "a")
    assert call(sessions, locks.holder, "scheduler").owner == "b"


def test_renewal_keeps_the_lock(sessions) -> None:
    assert call(sessions, locks.acquire, "scheduler", "a", NOW, TTL)
    for seconds in (20, 40, 60, 80):  # every 20 s, well before each expiry
        assert call(sessions, locks.renew, "scheduler", "a", NOW + timedelta(seconds=seconds), TTL)
    assert not call(sessions, locks.acquire, "scheduler", "b", NOW + timedelta(seconds=139), TTL)
    assert call(sessions, locks.holder, "scheduler").expires_at == NOW + timedelta(seconds=140)
    assert call(sessions, locks.acquire, "scheduler", "b", NOW + timedelta(seconds=140), TTL)


def contest(sessions, name: str, contenders: int) -> list[str]:
    """``contenders`` threads try to take lock ``name`` at the same moment; the winners."""
    start = threading.Barrier(contenders)
    won: list[str] = []
    errors: list[BaseException] = []

    def contend(owner: str) -> None:
        try:
            start.wait(timeout=30)
            if call(sessions, locks.acquire, name, owner, NOW, TTL):
                won.append(owner)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=(f"w{i}",)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return won


def test_concurrent_acquires_have_exactly_one_winner(sessions) -> None:
    for round_ in range(5):
        name = f"source:round-{round_}"
        won = contest(sessions, name, 10)
        assert len(won) == 1
        assert call(sessions, locks.holder, name).owner == won[0]
