"""Real parallel Retry requests against the console served by waitress: one re-queue, one post.

The console runs in this process (``create_app`` served by waitress on a free port, CSRF off
for the test app) against a file SQLite database; 20 threads with their own HTTP sessions post
Retry at the same moment.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from otklik.store.models import Reply, ReplyState, utcnow
from tests.conftest import PASSWORD
from tests.test_outbox_races import (
    RecordingReplier,
    audit_count,
    events,
    make_failed,
    our_posts,
    send,
    state_of,
)
from tests.web_support import fast_password_hashing  # noqa: F401
from workers.runtime import Runtime

CLICKS = 20


@pytest.fixture
def server(runtime: Runtime, users) -> Iterator[str]:
    """The console on a free localhost port, in a background thread, with enough threads."""
    from waitress.server import create_server

    from web import create_app

    app = create_app(runtime, {"TESTING": True, "WTF_CSRF_ENABLED": False})
    server = create_server(app, host="127.0.0.1", port=0, threads=CLICKS + 4)
    stopping = threading.Event()

    def serve() -> None:
        try:
            server.run()
        except (OSError, ValueError):  # closing under open keep-alive connections
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    stopping.set()
    server.close()
    thread.join(timeout=5)


def logged_in(base: str, username: str) -> requests.Session:
    http = requests.Session()
    answer = http.post(
        f"{base}/login",
        data={"username": username, "password": PASSWORD},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.text[:500]
    return http


def burst(base: str, url: str, sessions: list[requests.Session]) -> list[int]:
    """Post ``url`` from every session at once; return the status codes."""
    start = threading.Barrier(len(sessions))
    codes: list[int] = []
    lock = threading.Lock()

    def click(http: requests.Session) -> None:
        start.wait(10)
        answer = http.post(f"{base}{url}", allow_redirects=False, timeout=60)
        with lock:
            codes.append(answer.status_code)

    threads = [threading.Thread(target=click, args=(http,)) for http in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    return codes


def test_twenty_parallel_retries_requeue_a_failed_reply_once(runtime, users, server) -> None:
    reply_id, conversation_id = make_failed(runtime, users["agent"])
    with runtime.sessions() as session:
        assert session.get(Reply, reply_id).attempts == 1
    clickers = [logged_in(server, "agent") for _ in range(CLICKS)]
    url = f"/conversations/{conversation_id}/replies/{reply_id}/retry"

    codes = burst(server, url, clickers)

    assert codes == [302] * CLICKS
    assert len(events(runtime, "reply_retried")) == 1
    assert audit_count(runtime, "reply_retry") == 1
    with runtime.sessions() as session:
        reply = session.get(Reply, reply_id)
        assert reply.state == ReplyState.QUEUED
        assert reply.attempts == 0 and reply.error is None and reply.next_attempt_at is None
    platform = RecordingReplier()
    assert send(runtime, platform) == 1
    assert send(runtime, platform, utcnow() + timedelta(hours=1)) == 0
    assert len(platform.calls) == 1 and our_posts(runtime) == 1


def test_a_retry_burst_timed_with_the_outbox_posts_the_reply_once(runtime, users, server) -> None:
    """Clicks keep arriving while the outbox claims, sends and records the re-queued reply."""
    reply_id, conversation_id = make_failed(runtime, users["agent"])
    clickers = [logged_in(server, "agent") for _ in range(CLICKS)]
    url = f"/conversations/{conversation_id}/replies/{reply_id}/retry"
    platform = RecordingReplier(delay=0.05)
    stop = threading.Event()
    sent: list[int] = []

    def outbox() -> None:  # the outbox job, running as often as it can meanwhile
        while not stop.is_set():
            sent.append(send(runtime, platform))

    runner = threading.Thread(target=outbox)
    runner.start()
    try:
        for _round in range(3):  # bursts before, during and after the send
            assert set(burst(server, url, clickers)) == {302}
    finally:
        stop.set()
        runner.join(30)
    sent.append(send(runtime, platform, utcnow() + timedelta(hours=1)))

    assert sum(sent) == 1 and len(platform.calls) == 1 and our_posts(runtime) == 1
    assert state_of(runtime, reply_id) == ReplyState.SENT
    assert len(events(runtime, "reply_retried")) == 1 == audit_count(runtime, "reply_retry")
    assert len(events(runtime, "replied")) == 1
    with runtime.sessions() as session:
        assert session.scalar(select(Reply.attempts).where(Reply.id == reply_id)) == 1
