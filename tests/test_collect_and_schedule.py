"""Collector runs under failure (rate limits, errors, malformed bodies) and the scheduler."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from collectors.demo import DemoConnector
from otklik.domain import AuthError, MalformedResponse, Page, RateLimited, TransientError
from otklik.domain.backoff import backoff_seconds
from otklik.store.models import Mention, Score, Source
from workers.jobs import run_source
from workers.scheduler import build_scheduler, job_specs

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


class ScriptedConnector:
    """A connector double that raises the scripted errors, then behaves like the demo."""

    platform = "demo"
    reply_limit = 280

    def __init__(self, demo: DemoConnector, errors: list[Exception]) -> None:
        self.demo, self.errors, self.calls = demo, list(errors), 0

    def check(self) -> None:
        pass

    def fetch(self, query: str, cursor: str | None) -> Page:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.demo.fetch(query, cursor)

    @classmethod
    def reply_length(cls, text):  # pragma: no cover - not used here
        return len(text)

    def reply(self, to, text, idempotency_key=""):  # pragma: no cover - not used here
        return self.demo.reply(to, text)


def _script(runtime, *errors: Exception) -> ScriptedConnector:
    demo = DemoConnector.from_settings(runtime.connector_settings(runtime.settings.source("demo")))
    scripted = ScriptedConnector(demo, list(errors))
    runtime.use_connector("demo", scripted)
    return scripted


def _source(runtime) -> Source:
    with runtime.sessions() as session:
        return session.scalar(select(Source).where(Source.name == "demo"))


def test_rate_limit_reschedules_without_sleeping_and_keeps_the_cursor(runtime) -> None:
    connector = _script(runtime, RateLimited(120))
    started = time.monotonic()
    outcome = run_source(runtime, "demo", now=NOW)
    assert time.monotonic() - started < 1
    assert outcome.status == "rate_limited"
    source = _source(runtime)
    assert source.next_run_at == NOW + timedelta(seconds=120) and source.cursor is None
    assert run_source(runtime, "demo", now=NOW + timedelta(seconds=60)).status == "skipped"
    assert connector.calls == 1
    assert run_source(runtime, "demo", now=NOW + timedelta(seconds=121)).status == "ok"
    assert _source(runtime).cursor == "0:6" and _source(runtime).last_error is not None


def test_transient_errors_back_off_exponentially_then_recover(runtime) -> None:
    _script(runtime, TransientError("HTTP 503"), TransientError("timeout"))
    assert run_source(runtime, "demo", now=NOW).status == "failed"
    assert _source(runtime).next_run_at == NOW + timedelta(seconds=30)
    later = NOW + timedelta(seconds=31)
    assert run_source(runtime, "demo", now=later).status == "failed"
    assert _source(runtime).next_run_at == later + timedelta(seconds=60)
    assert run_source(runtime, "demo", now=later + timedelta(seconds=61)).status == "ok"
    source = _source(runtime)
    assert source.consecutive_failures == 0 and source.last_success_at is not None
    assert [backoff_seconds(n) for n in (1, 2, 3, 10)] == [30, 60, 120, 900]


def test_auth_error_is_shown_with_the_platform_message(runtime) -> None:
    _script(runtime, AuthError("401 Unauthorized: Invalid or expired token"))
    outcome = run_source(runtime, "demo", now=NOW)
    assert outcome.status == "failed"
    assert _source(runtime).last_error == (
        "authentication failed: 401 Unauthorized: Invalid or expired token"
    )


def test_malformed_body_is_kept_for_diagnosis_and_nothing_is_stored(runtime) -> None:
    _script(runtime, MalformedResponse("truncated JSON", body=b'{"data": [{"id": "1'))
    assert run_source(runtime, "demo", now=NOW).status == "failed"
    kept = list((runtime.settings.var_path / "diagnostics").iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == b'{"data": [{"id": "1'
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Mention)) == 0


def test_an_unexpected_exception_in_a_connector_does_not_escape(runtime) -> None:
    _script(runtime, KeyError("data"))
    assert run_source(runtime, "demo", now=NOW).status == "failed"
    assert "KeyError" in _source(runtime).last_error


def test_jobs_have_stable_ids(runtime) -> None:
    assert [spec.id for spec in job_specs(runtime)] == ["collect:demo", "score", "outbox"]


def test_the_scheduler_collects_and_scores_on_its_own(runtime) -> None:
    scheduler = build_scheduler(runtime)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"collect:demo", "score", "outbox"}
    assert all(job.coalesce and job.max_instances == 1 for job in jobs.values())
    scheduler.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with runtime.sessions() as session:
                if session.scalar(select(func.count()).select_from(Score)) >= 5:
                    break
            time.sleep(0.2)
    finally:
        scheduler.shutdown(wait=True)
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Mention)) >= 6
        assert session.scalar(select(func.count()).select_from(Score)) >= 5
