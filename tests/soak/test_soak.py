"""Soak test: the real scheduler runs every connector against a fake of the five platforms.

For ``OTKLIK_SOAK_SECONDS`` (default 60) the scheduler collects from a local HTTP server
(``soak_platforms.FakePlatforms``) whose posts keep growing (new posts, replies, threads)
and which fails at random: 429s with each platform's reset signal, 500s, answers slower
than the connectors' 1 s timeout and truncated bodies. Every few seconds the "process"
restarts (scheduler shut down, a new Runtime and scheduler built); some restarts also run
``otklik collect`` in a subprocess killed between the page commit and the cursor save
(``OTKLIK_CRASH_AT``), and in-process runs stop at that point at random as well. Then the
failures stop, the sources drain, and the stored set must equal the served set exactly.

Knobs: ``OTKLIK_SOAK_SECONDS``, ``OTKLIK_SOAK_SEED``. The figures are printed (``-s``).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests.adapters
from soak_platforms import FAILURE_KINDS, PLATFORMS, FakePlatforms, route_to
from sqlalchemy import func, select

import otklik.cases.collect
from config import load_settings
from otklik.faults import CRASH_EXIT_CODE
from otklik.store.models import Mention, Score, Source
from tests.conftest import REPO, KeywordScorer, hermetic_environ, write_config
from workers import scheduler as otklik_scheduler
from workers.jobs import run_source
from workers.runtime import Runtime

SOAK_SECONDS = float(os.environ.get("OTKLIK_SOAK_SECONDS", "60"))
SEED = int(os.environ.get("OTKLIK_SOAK_SEED", "20261123"))
TIMEOUT = 1  # the connectors' `timeout` setting, seconds
RESTARTS = 5  # process restarts during the soak
CRASH_PROBABILITY = 0.08  # in-process stops between page commit and cursor save
FAILURE_RATE = 0.15  # share of data requests that fail (429, 500, slow, truncated)
# a reddit fetch makes ~11 requests (search + the watched threads), the others one or two
FAILURE_RATES = {"reddit": 0.05}
ENV = {"OTKLIK_SCHEDULER_MAX_BACKOFF_SECONDS": "2"}  # backoff 30 s would idle the soak

SECRETS = {
    "OTKLIK_TWITTER_BEARER_TOKEN": "twitter-soak-bearer",
    "OTKLIK_VK_TOKEN": "vk-soak-token",
    "OTKLIK_REDDIT_CLIENT_ID": "reddit-soak-id",
    "OTKLIK_REDDIT_CLIENT_SECRET": "reddit-soak-secret",
    "OTKLIK_REDDIT_USERNAME": "soak_user",
    "OTKLIK_REDDIT_PASSWORD": "soak-password",
    "OTKLIK_DISCOURSE_API_KEY": "discourse-soak-key",
    "OTKLIK_DISCOURSE_API_USERNAME": "system",
}

# source name -> (platform, extra settings); "twitter-overlap" runs an overlapping query
SOURCES = {
    "twitter": ("twitter", {"max_results": 10}),
    "twitter-overlap": ("twitter", {"max_results": 10}),
    "vk": ("vk", {}),
    "reddit": ("reddit", {"subreddits": "ladoga"}),
    "rss": ("rss", {"url": "{base}/rss/feed.xml"}),
    "discourse": ("discourse", {"base_url": "{base}/discourse"}),
}
QUERIES = {"twitter-overlap": "ladoga OR coffee"}


def write_soak_config(tmp_path: Path, base_url: str) -> Path:
    """``tests.conftest.write_config`` (demo every second) plus the five platforms."""
    text = ""
    for name, (platform, settings) in SOURCES.items():
        text += textwrap.dedent(
            f"""
            [[sources]]
            name = "{name}"
            platform = "{platform}"
            brand = "Ladoga Coffee"
            query = "{QUERIES.get(name, "ladoga")}"
            interval_seconds = 1

            [sources.settings]
            timeout = {TIMEOUT}
            """
        )
        for key, value in settings.items():
            rendered = value.format(base=base_url) if isinstance(value, str) else value
            text += f"{key} = {rendered!r}\n".replace("'", '"')
    return write_config(tmp_path, extra=text, demo_interval_seconds=1)


class SimulatedCrash(Exception):  # noqa: N818 - it stands for the process dying
    """Raised at the crash point: the page is committed, the cursor is not saved."""


@dataclass
class SoakResult:
    fake: FakePlatforms
    seconds: float
    restarts: int
    stored: dict[str, list[tuple]]  # platform -> rows
    rows: int
    distinct: int
    duplicates: list[tuple]
    errors_seen: dict[str, Counter] = field(default_factory=dict)  # source -> error kinds
    escaped: Counter = field(default_factory=Counter)  # exceptions that escaped run_source
    crashes: Counter = field(default_factory=Counter)
    subprocess_crashes: list[tuple[str, int]] = field(default_factory=list)
    drain_rounds: int = 0
    scores: int = 0
    log: list[str] = field(default_factory=list)


def _settings(config: Path):
    return load_settings(config, environ=hermetic_environ(**ENV))


def _boot(config: Path, with_scheduler: bool = True):
    runtime = Runtime.from_settings(_settings(config), scorer_factory=lambda _s: KeywordScorer())
    runtime.prepare_database()
    scheduler = otklik_scheduler.start(runtime) if with_scheduler else None
    return runtime, scheduler


def _observe(runtime: Runtime, seen: dict[str, Counter], last: dict[str, object]) -> None:
    with runtime.sessions() as session:
        for name, error, at in session.execute(
            select(Source.name, Source.last_error, Source.last_error_at)
        ):
            if error and last.get(name) != at:
                last[name] = at
                seen.setdefault(name, Counter())[error.split(":", 1)[0]] += 1


def _crash_in_subprocess(config: Path, source: str) -> int:
    env = hermetic_environ(OTKLIK_CRASH_AT="after-page-commit", NO_PROXY="127.0.0.1", **ENV)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "workers.cli",
            "--config",
            str(config),
            "collect",
            "--source",
            source,
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode


def _cursor(runtime: Runtime, name: str) -> str | None:
    with runtime.sessions() as session:
        return session.scalar(select(Source.cursor).where(Source.name == name))


def _drain(runtime: Runtime) -> int:
    """Run every source until two rounds in a row bring nothing new and move no cursor."""
    quiet = 0
    for rounds in range(1, 300):  # noqa: B007
        busy = False
        for name in SOURCES:
            before = _cursor(runtime, name)
            outcome = run_source(runtime, name, force=True)
            if outcome.status != "ok":
                busy = True  # e.g. the reddit client still honouring an earlier reset
                continue
            if outcome.stored.new or outcome.stored.updated or _cursor(runtime, name) != before:
                busy = True
        quiet = 0 if busy else quiet + 1
        if quiet == 2:
            return rounds
        time.sleep(0.2)
    raise AssertionError("the sources did not drain")


def _run_soak(config: Path, fake: FakePlatforms, crashes: Counter, crash_on: threading.Event):
    result_log: list[str] = []
    seen: dict[str, Counter] = {}
    last: dict[str, object] = {}
    subprocess_crashes: list[tuple[str, int]] = []
    started = time.monotonic()
    fake.failures_on = True
    fake.start_growth()
    crash_on.set()
    runtime, scheduler = _boot(config)
    restart_every = SOAK_SECONDS / (RESTARTS + 1)
    next_restart, restarts = started + restart_every, 0
    while time.monotonic() < started + SOAK_SECONDS:
        time.sleep(0.25)
        _observe(runtime, seen, last)
        if time.monotonic() >= next_restart and restarts < RESTARTS:
            scheduler.shutdown(wait=True)
            _observe(runtime, seen, last)
            runtime.engine.dispose()
            restarts += 1
            if restarts % 2:  # a killed `otklik collect` while the service is down
                source = ("rss", "discourse")[(restarts // 2) % 2]
                subprocess_crashes.append((source, _crash_in_subprocess(config, source)))
            runtime, scheduler = _boot(config)
            next_restart = time.monotonic() + restart_every
            result_log.append(f"restart {restarts} at {time.monotonic() - started:.1f}s")
    scheduler.shutdown(wait=True)
    _observe(runtime, seen, last)
    runtime.engine.dispose()
    soak_seconds = time.monotonic() - started

    # The platforms calm down: no new posts, no failures, no crashes; one more restart.
    fake.stop_growth()
    fake.failures_on, fake.latency = False, (0.0, 0.0)
    crash_on.clear()
    runtime, _ = _boot(config, with_scheduler=False)
    drain_rounds = _drain(runtime)
    with runtime.sessions() as session:
        rows = session.execute(
            select(
                Mention.platform,
                Mention.external_id,
                Mention.text,
                Mention.parent_external_id,
                Mention.parent_id,
                Mention.conversation_id,
                Mention.id,
            )
        ).all()
        duplicates = session.execute(
            select(Mention.platform, Mention.external_id, func.count())
            .group_by(Mention.platform, Mention.external_id)
            .having(func.count() > 1)
        ).all()
        scores = session.scalar(select(func.count()).select_from(Score))
    runtime.engine.dispose()
    stored: dict[str, list[tuple]] = {p: [] for p in PLATFORMS}
    for row in rows:
        stored.setdefault(row.platform, []).append(row)
    return SoakResult(
        fake=fake,
        seconds=soak_seconds,
        restarts=restarts,
        stored=stored,
        rows=len(rows),
        distinct=len({(r.platform, r.external_id) for r in rows}),
        duplicates=list(duplicates),
        errors_seen=seen,
        crashes=crashes,
        subprocess_crashes=subprocess_crashes,
        drain_rounds=drain_rounds,
        escaped=Counter(fake.escaped),
        scores=scores,
        log=result_log,
    )


def _logged(fake: FakePlatforms):
    """``run_source`` for the scheduler, noting each run and its cursors in ``fake.events``."""

    def run(runtime: Runtime, name: str, **kwargs):
        if name not in SOURCES:
            return run_source(runtime, name, **kwargs)
        before = _cursor(runtime, name)
        try:
            outcome = run_source(runtime, name, **kwargs)
        except Exception as exc:
            if not isinstance(exc, SimulatedCrash):
                fake.escaped[f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:90]}"] += 1
            note = f"run {name}: raised {exc!r}"[:300]
            fake.events.append((time.monotonic(), SOURCES[name][0], note, ()))
            raise
        new = outcome.stored.new if outcome.stored else "-"
        note = f"run {name}: {outcome.status} new={new} {before} -> {_cursor(runtime, name)}"
        fake.events.append((time.monotonic(), SOURCES[name][0], note, ()))
        return outcome

    return run


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("soak")
    fake = FakePlatforms(
        SEED, slow_seconds=TIMEOUT + 0.5, failure_rate=FAILURE_RATE, failure_rates=FAILURE_RATES
    )
    fake.start()
    crashes: Counter = Counter()
    crash_on = threading.Event()
    crash_rng = random.Random(SEED + 1)

    def crash_point(name: str) -> None:
        """Stands in for ``otklik.faults.crash_point``: stop after the page commit."""
        if (
            name == "after-page-commit"
            and crash_on.is_set()
            and crash_rng.random() < CRASH_PROBABILITY
        ):
            source = sys._getframe(1).f_locals.get("name", "?")
            crashes[source] += 1
            raise SimulatedCrash(f"simulated crash of {source} after the page commit")

    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in SECRETS.items():
                mp.setenv(name, value)
            adapter = requests.adapters.HTTPAdapter
            mp.setattr(adapter, "send", route_to(fake, adapter.send))
            mp.setattr(otklik.cases.collect, "crash_point", crash_point)
            mp.setattr(otklik_scheduler, "run_source", _logged(fake))
            config = write_soak_config(tmp, fake.base_url)
            result = _run_soak(config, fake, crashes, crash_on)
        _report(result)
        yield result
    finally:
        fake.close()


def _report(result: SoakResult) -> None:
    fake = result.fake
    print(f"\nsoak: {result.seconds:.1f}s, {result.restarts} restarts, seed {SEED}")
    for platform in PLATFORMS:
        injected = {k: fake.stats.injected[(platform, k)] for k in FAILURE_KINDS}
        print(
            f"  {platform:9} served {len(fake.posts[platform]):4} stored "
            f"{len(result.stored.get(platform, [])):4} requests {fake.stats.requests[platform]:4}"
            f" ok {fake.stats.ok[platform]:4} injected {injected}"
        )
    print(f"  errors recorded on sources: {dict(result.errors_seen)}")
    print(f"  in-process crashes after page commit: {dict(result.crashes)}")
    print(f"  `otklik collect` with OTKLIK_CRASH_AT (source, exit): {result.subprocess_crashes}")
    print(f"  exceptions that escaped run_source (logged by the scheduler): {dict(result.escaped)}")
    print(f"  drain rounds: {result.drain_rounds}; scores: {result.scores}; {result.log}")


def _story(fake: FakePlatforms, platform: str, external_id: str) -> str:
    """The server's events around the creation of ``external_id`` (for a failure message)."""
    events = [e for e in fake.events if e[1] == platform]
    born = next(i for i, e in enumerate(events) if e[2] == "created" and external_id in e[3])
    t0 = events[born][0]
    lines = [f"{external_id}: served {external_id in fake.stats.served_ids[platform]}"]
    for at, _p, what, ids in events[max(0, born - 15) : born + 60]:
        mark = " <==" if external_id in ids else ""
        lines.append(f"  {at - t0:+7.3f}s {what[:200]} {list(ids)[-6:]}{mark}")
    return "\n".join(lines)


# --- the assertions --------------------------------------------------------------------


@pytest.mark.soak
@pytest.mark.parametrize("platform", PLATFORMS)
def test_stored_set_equals_served_set(soak: SoakResult, platform: str) -> None:
    served = {p.external_id: p for p in soak.fake.snapshot(platform)}
    stored = {row.external_id: row for row in soak.stored[platform]}
    extra = sorted(set(stored) - set(served))
    assert not extra, f"{platform}: stored posts the server never had: {extra[:10]}"
    assert len(stored) == len(soak.stored[platform])  # no (platform, external_id) twice
    both = set(served) & set(stored)
    wrong_text = [i for i in both if stored[i].text != served[i].text]
    assert not wrong_text, f"{platform}: text differs for {wrong_text[:5]}"
    wrong_parent = [i for i in both if stored[i].parent_external_id != served[i].parent_external_id]
    assert not wrong_parent, f"{platform}: parent differs for {wrong_parent[:5]}"
    missing = sorted(set(served) - set(stored), key=lambda i: served[i].seq)
    assert not missing, (
        f"{platform}: {len(missing)} served posts never stored: {missing[:10]}\n"
        + _story(soak.fake, platform, missing[0])
    )


@pytest.mark.soak
def test_no_duplicate_rows(soak: SoakResult) -> None:
    assert soak.duplicates == []
    assert soak.rows == soak.distinct


@pytest.mark.soak
def test_failures_were_injected_and_recorded(soak: SoakResult) -> None:
    injected = soak.fake.stats.injected
    for kind in FAILURE_KINDS:
        assert sum(n for (_p, k), n in injected.items() if k == kind) > 0, kind
    for platform in PLATFORMS:
        assert sum(injected[(platform, k)] for k in FAILURE_KINDS) > 0, platform
    for name in SOURCES:
        assert soak.errors_seen.get(name), f"no failure was ever recorded on source {name}"
    kinds = set().union(*soak.errors_seen.values())
    assert {"RateLimited", "TransientError", "MalformedResponse"} <= kinds
    assert soak.restarts == RESTARTS
    assert any(code == CRASH_EXIT_CODE for _s, code in soak.subprocess_crashes) or sum(
        soak.crashes.values()
    ), "no crash between page commit and cursor save happened"
    assert soak.fake.unexpected == []


@pytest.mark.soak
@pytest.mark.parametrize("platform", ["twitter", "reddit", "discourse"])
def test_replies_joined_their_parents_conversation(soak: SoakResult, platform: str) -> None:
    rows = soak.stored[platform]
    by_external = {row.external_id: row for row in rows}
    replies = [row for row in rows if row.parent_external_id in by_external]
    assert replies, f"{platform}: no reply was stored together with its parent"
    by_id = {row.id: row for row in rows}
    linked = [row for row in replies if row.parent_id is not None]
    assert linked, f"{platform}: no reply was linked to its stored parent"
    for reply in linked:  # the parent was stored first: the reply joined its conversation
        parent = by_id[reply.parent_id]
        assert parent.external_id == reply.parent_external_id
        assert reply.conversation_id is not None
        assert reply.conversation_id == parent.conversation_id, reply.external_id
    split = [
        (by_external[r.parent_external_id].external_id, r.external_id)
        for r in replies
        if r.conversation_id != by_external[r.parent_external_id].conversation_id
    ]
    assert not split, f"{platform}: replies outside their parent's conversation: {split[:5]}"


@pytest.mark.soak
def test_mentions_were_scored(soak: SoakResult) -> None:
    assert soak.scores > 0
