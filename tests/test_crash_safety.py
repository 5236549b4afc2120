"""A process killed between storing a page and saving the cursor loses and doubles nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from collectors.demo import load_samples
from config import load_settings
from otklik.faults import CRASH_EXIT_CODE
from otklik.store.models import Conversation, Mention, Reply, ReplyState, Source
from tests.conftest import hermetic_environ
from workers.jobs import recover_interrupted, send_due
from workers.runtime import Runtime


def otklik(config: Path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = hermetic_environ(**({"OTKLIK_CRASH_AT": crash_at} if crash_at else {}))
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", "--config", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def stored(config: Path) -> tuple[list[str], str | None]:
    runtime = Runtime.from_settings(load_settings(config, environ=hermetic_environ()))
    with runtime.sessions() as session:
        ids = session.scalars(select(Mention.external_id).order_by(Mention.external_id)).all()
        cursor = session.scalar(select(Source.cursor).where(Source.name == "demo"))
    runtime.engine.dispose()
    return list(ids), cursor


def test_kill_between_page_commit_and_cursor_save(config_path: Path) -> None:
    assert otklik(config_path, "collect", "--source", "demo").returncode == 0
    ids_before, cursor_before = stored(config_path)
    assert len(ids_before) == 6 and cursor_before == "0:6"

    crashed = otklik(config_path, "collect", "--source", "demo", crash_at="after-page-commit")
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    ids_crashed, cursor_crashed = stored(config_path)
    assert len(ids_crashed) == 12  # the page was committed ...
    assert cursor_crashed == "0:6"  # ... but the cursor was not advanced

    for _ in range(5):  # the restart re-fetches the same page, then carries on past the end
        assert otklik(config_path, "collect", "--source", "demo").returncode == 0
    ids_after, cursor_after = stored(config_path)
    samples = load_samples()
    assert len(samples) == 36  # six pages of six: exactly one full round of the demo data
    assert len(ids_after) == len(set(ids_after)) == 36
    assert set(ids_after) == {f"demo-{s['id']}" for s in samples}
    assert cursor_after == "1:0"


def test_a_reply_interrupted_while_sending_is_never_sent_twice(runtime, users) -> None:
    from otklik.cases.replies import queue_reply
    from otklik.store import db
    from otklik.store.models import User, utcnow
    from workers.jobs import run_source

    run_source(runtime, "demo")
    with db.transaction(runtime.sessions) as session:
        conversation = session.scalar(select(Conversation))
        to = conversation.mentions[-1]
        user = session.get(User, users["agent"])
        queue_reply(session, conversation, to, "We are on it", user, "key-1", utcnow())
        reply = session.scalar(select(Reply))
        reply.state = ReplyState.SENDING  # what a worker killed mid-call leaves behind
    assert recover_interrupted(runtime) == 1
    assert send_due(runtime) == 0
    with runtime.sessions() as session:
        assert session.scalar(select(Reply.state)) == ReplyState.UNKNOWN
        assert session.scalar(select(func.count()).select_from(Mention).where(Mention.is_ours)) == 0
