"""Noise control before storing, and source health for the console and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from config import SourceSettings
from otklik.domain import RawMention
from otklik.domain.noise import NoiseRules, split_noise
from otklik.health import assess
from otklik.store.models import Mention, Source
from tests.conftest import write_config
from workers.cli import main
from workers.jobs import run_source

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def post(text: str, handle: str = "mira") -> RawMention:
    return RawMention("demo", text[:8], "", "a1", handle, text, NOW)


def test_noise_rules_drop_reposts_spam_authors_keywords_and_languages() -> None:
    rules = NoiseRules(
        exclude_keywords=("вакансии",),
        exclude_authors=("@SpamBot",),
        languages=("ru",),
        brand_handles=("ladogacoffee",),
    )
    kept, dropped = split_noise(
        rules,
        [
            post("RT @ladoga: новый раф"),
            post("скидки!!!", handle="spambot"),
            post("Ладога, есть вакансии?"),
            post("Where is my order?"),
            post("Где мой заказ?"),
            post("We are on it!", handle="@LadogaCoffee"),
        ],
    )
    assert [m.text for m in kept] == ["Где мой заказ?", "We are on it!"]
    assert [reason for _, reason in dropped] == [
        "repost",
        "excluded author",
        "excluded keyword",
        "language",
    ]
    assert NoiseRules(include_reposts=True).drop_reason(post("RT @x: hi")) is None


def test_a_source_with_a_language_filter_stores_only_that_language(tmp_path) -> None:
    from config import load_settings
    from tests.conftest import KeywordScorer, hermetic_environ
    from workers.runtime import Runtime

    path = write_config(tmp_path)
    path.write_text(
        path.read_text().replace("interval_seconds = 5", 'interval_seconds = 5\nlanguages = ["ru"]')
    )
    runtime = Runtime.from_settings(
        load_settings(path, environ=hermetic_environ()), scorer_factory=lambda _s: KeywordScorer()
    )
    runtime.prepare_database()
    outcome = run_source(runtime, "demo")
    with runtime.sessions() as session:
        texts = session.scalars(select(Mention.text)).all()
    assert outcome.dropped == 3 and len(texts) == 3  # samples 001-006 alternate en and ru
    assert all(any("а" <= ch <= "я" for ch in t.lower()) for t in texts)
    runtime.engine.dispose()


def _source(**values) -> Source:
    return Source(name="x", platform="demo", enabled=True, **values)


def test_health_states_lag_rate_and_gap_warning() -> None:
    conf = SourceSettings(name="x", platform="demo", interval_seconds=60)
    fresh = _source(
        last_run_at=NOW, last_success_at=NOW, newest_mention_at=NOW - timedelta(minutes=3)
    )
    health = assess(conf, fresh, stored_last_day=48, now=NOW)
    assert (health.state, health.lag_seconds, health.mentions_per_hour) == ("ok", 180, 2.0)
    assert health.gap_warning is None

    silent = _source(
        last_run_at=NOW, last_success_at=NOW, newest_mention_at=NOW - timedelta(hours=3)
    )
    assert assess(conf, silent, 0, NOW).gap_warning == (
        "silent for 3 h 0 min (expected a mention within 10 min)"
    )
    patient = SourceSettings(
        name="x", platform="demo", interval_seconds=60, expected_silence_hours=6
    )
    assert assess(patient, silent, 0, NOW).gap_warning is None

    failing = _source(
        last_run_at=NOW,
        last_success_at=NOW - timedelta(hours=1),
        last_error_at=NOW,
        last_error="authentication failed: 401 Unauthorized",
    )
    assert assess(conf, failing, 0, NOW).state == "failing"
    limited = _source(last_run_at=NOW, last_error_at=NOW, last_error="RateLimited: wait")
    assert assess(conf, limited, 0, NOW).state == "waiting"
    assert assess(conf, None, 0, NOW).state == "disabled"
    assert assess(conf, _source(), 0, NOW).state == "never run"


def test_sources_status_and_check_commands(config_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("OTKLIK_CONFIG", raising=False)
    assert main(["--config", str(config_path), "collect", "--source", "demo"]) == 0
    assert main(["--config", str(config_path), "sources", "status"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and " ok " in out and "/h" in out
    assert main(["--config", str(config_path), "sources", "check"]) == 0
    assert capsys.readouterr().out.strip() == "demo: OK"


def test_sources_check_names_a_missing_secret_before_calling_the_platform(
    tmp_path, capsys, monkeypatch
) -> None:
    from tests.conftest import write_config

    vk = '\n[[sources]]\nname = "vk-wall"\nplatform = "vk"\nbrand = "Ladoga Coffee"\n'
    config = write_config(tmp_path, extra=vk)
    monkeypatch.delenv("OTKLIK_VK_TOKEN", raising=False)
    assert main(["--config", str(config), "sources", "check", "--source", "vk-wall"]) == 1
    assert capsys.readouterr().out.strip() == "vk-wall: FAILED: not set: OTKLIK_VK_TOKEN"


def test_connectors_lists_each_connector_with_its_settings_and_secrets(
    config_path, capsys, monkeypatch
) -> None:
    import json

    monkeypatch.setenv("OTKLIK_VK_TOKEN", "x")
    monkeypatch.delenv("OTKLIK_DISCOURSE_API_KEY", raising=False)
    assert main(["--config", str(config_path), "connectors", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_key = {(r["kind"], r["name"]): r for r in rows}
    assert by_key[("source", "vk")]["secrets"] == {"OTKLIK_VK_TOKEN": True}
    assert by_key[("source", "rss")]["settings"][0] == "url"
    assert ("replier", "rss") not in by_key and ("replier", "twitter") in by_key
    assert by_key[("source", "discourse")]["secrets"]["OTKLIK_DISCOURSE_API_KEY"] is False


def test_the_console_shows_source_health_and_the_platform_error(runtime, client) -> None:
    from otklik.store import db
    from tests.conftest import login

    run_source(runtime, "demo")
    with db.transaction(runtime.sessions) as session:
        source = session.scalar(select(Source))
        source.last_error_at = source.last_success_at + timedelta(seconds=5)
        source.last_error = "authentication failed: 401 <b>Unauthorized</b>"
    login(client)
    html = client.get("/sources/").get_data(as_text=True)
    assert "failing" in html and "401 &lt;b&gt;Unauthorized&lt;/b&gt;" in html
