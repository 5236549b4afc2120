"""Shared fixtures: settings on a temporary var/, a runtime, the console app and client."""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from config import Settings, load_settings
from otklik.store import db
from otklik.store.models import Role
from otklik.users import create_user
from workers.runtime import Runtime

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class FixedScore:
    """The shape of nlp.TextScore, with values chosen by the test."""

    sentiment: str = "neutral"
    sentiment_probs: dict[str, float] = field(
        default_factory=lambda: {"negative": 0.2, "neutral": 0.6, "positive": 0.2}
    )
    complaint_prob: float = 0.1
    is_complaint: bool = False
    complaint_type: str | None = None
    is_question: bool = False
    lang: str = "en"
    model_version: str = "fixed-test-scorer"


class KeywordScorer:
    """A test double at the scorer seam: 'refund'/'late'/'возврат' -> complaint."""

    model_version = "fixed-test-scorer"

    def score(self, texts: Sequence[str]) -> list[FixedScore]:
        return [self._one(t) for t in texts]

    def _one(self, text: str) -> FixedScore:
        lowered = text.lower()
        lang = "ru" if re.search("[а-яё]", lowered) else "en"
        if any(w in lowered for w in ("refund", "late", "crash", "списали", "опоздала")):
            probs = {"negative": 0.9, "neutral": 0.08, "positive": 0.02}
            return FixedScore("negative", probs, 0.9, True, "delivery", False, lang)
        return FixedScore(is_question="?" in text, lang=lang)


def hermetic_environ(**extra: str) -> dict[str, str]:
    """The process environment without any OTKLIK_* variable, plus ``extra``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTKLIK_")}
    return {**environ, **extra}


def write_config(
    tmp_path: Path, extra: str = "", page_size: int = 6, demo_interval_seconds: int = 5
) -> Path:
    """A demo configuration whose var/ lies under ``tmp_path``; ``extra`` is appended."""
    path = tmp_path / "otklik.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            var_dir = "{tmp_path / "var"}"

            [scheduler]
            score_interval_seconds = 1
            outbox_interval_seconds = 1

            [[brands]]
            name = "Ladoga Coffee"
            keywords = ["ladoga"]
            handles = ["ladogacoffee"]

            [[sources]]
            name = "demo"
            platform = "demo"
            brand = "Ladoga Coffee"
            query = "ladoga"
            interval_seconds = {demo_interval_seconds}

            [sources.settings]
            page_size = {page_size}
            """
        )
        + extra,
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path)


@pytest.fixture
def settings(config_path: Path) -> Settings:
    return load_settings(config_path, environ=hermetic_environ())


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    rt = Runtime.from_settings(settings, scorer_factory=lambda _s: KeywordScorer())
    rt.prepare_database()
    yield rt
    rt.engine.dispose()


@pytest.fixture
def users(runtime: Runtime) -> dict[str, int]:
    ids = {}
    with db.transaction(runtime.sessions) as session:
        for role in Role:
            ids[role.value] = create_user(session, role.value, PASSWORD, role=role.value).id
    return ids


@pytest.fixture
def app(runtime: Runtime, users: dict[str, int]):
    from web import create_app

    return create_app(runtime, {"TESTING": True, "WTF_CSRF_ENABLED": False})


@pytest.fixture
def client(app):
    return app.test_client()


def login(client, username: str = "agent", password: str = PASSWORD):
    return client.post("/login", data={"username": username, "password": password})
