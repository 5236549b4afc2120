"""The connector registry, and what every registered source and replier declares.

The declarations are checked against the code, not against a copy of them: the settings
keys a connector's ``from_settings`` reads are recorded, and so are the ``OTKLIK_*``
variables it reads while checking, fetching and replying (every request fails offline).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
import responses

from otklik.connectors import (
    ALERT_SINK,
    REPLIER,
    SOURCE,
    Registry,
    Replier,
    Setting,
    SourceConnector,
    UnknownConnector,
    missing_required,
    secret_names,
)
from otklik.domain import ConnectorError, RawMention

REGISTRY = Registry()
SOURCES = REGISTRY.names(SOURCE)
REPLIERS = REGISTRY.names(REPLIER)
EVERY = [(kind, name) for kind in (SOURCE, REPLIER) for name in REGISTRY.names(kind)]

# Required settings have no default: a valid value for each, by setting name.
REQUIRED_VALUES = {
    "url": "https://feeds.example.invalid/feed.xml",
    "base_url": "https://forum.example.invalid",
}

REPLY_LIMITS = {"twitter": 280, "vk": 4096, "reddit": 10000, "discourse": 32000, "demo": 280}

# A mention each replier can parse (ids in the platform's own format).
REPLY_TARGETS = {
    "twitter": ("1460323737035677698", {}),
    "vk": ("-1_2_c3", {}),
    "reddit": ("t1_abc", {}),
    "discourse": ("5", {"topic_id": 1, "post_number": 2}),
}


class FakeSink:
    """An alert sink a deployment could register through ``[connectors]``."""

    name: ClassVar[str] = "fake"
    settings: ClassVar[tuple[Setting, ...]] = (Setting("channel", "where alerts go"),)


class RecordingSettings(Mapping[str, object]):
    """A settings table that remembers every key looked up (``get``, ``in``, ``[]``)."""

    def __init__(self, values: Mapping[str, object]) -> None:
        self.values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> object:
        self.read.add(key)
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("from_settings iterated the whole table: keys read are unknown")

    def __len__(self) -> int:
        return len(self.values)


class RecordingEnviron(dict[str, str]):
    """``os.environ`` stand-in: every ``OTKLIK_*`` variable is set, and each read is noted."""

    def __init__(self, base: Mapping[str, str]) -> None:
        super().__init__({k: v for k, v in base.items() if not k.startswith("OTKLIK_")})
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        if key.startswith("OTKLIK_"):
            self.read.add(key)
            return "test-secret"
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return self[key] if key.startswith("OTKLIK_") else super().get(key, default)


def declared(name: str, kind: str = SOURCE) -> tuple[Setting, ...]:
    return REGISTRY.settings_of(kind, name)


def table_keys(settings: tuple[Setting, ...]) -> set[str]:
    return {s.name for s in settings if not s.secret}


def minimal_table(settings: tuple[Setting, ...]) -> dict[str, object]:
    """Only the required table keys, with valid values."""
    return {s.name: REQUIRED_VALUES[s.name] for s in settings if s.required and not s.secret}


def build(name: str, table: Mapping[str, object] | None = None) -> Any:
    cls = REGISTRY.load(SOURCE, name)
    return cls.from_settings(table if table is not None else minimal_table(cls.settings))


def plain_attributes(instance: object) -> dict[str, object]:
    simple = (str, int, float, bool, list, tuple, Path, type(None))
    return {k: v for k, v in vars(instance).items() if isinstance(v, simple)}


# --- every registered connector ---------------------------------------------------------


def test_builtin_sources_and_repliers():
    assert SOURCES == ["demo", "discourse", "reddit", "rss", "twitter", "vk"]
    assert REPLIERS == ["demo", "discourse", "reddit", "twitter", "vk"]


@pytest.mark.parametrize(("kind", "name"), EVERY)
def test_class_loads_and_declares_its_settings(kind, name):
    cls = REGISTRY.load(kind, name)
    assert cls.platform == name
    assert isinstance(cls.settings, tuple)
    assert cls.settings, f"{name} declares no settings"
    assert all(isinstance(s, Setting) for s in cls.settings)
    names = [s.name for s in cls.settings]
    assert len(names) == len(set(names)), f"{name}: a setting is declared twice"
    for setting in cls.settings:
        assert setting.help, f"{name}.{setting.name} has no help text"
        if setting.secret:
            assert setting.env.startswith("OTKLIK_"), f"{name}.{setting.name}: {setting.env!r}"
        else:
            assert not setting.env, f"{name}.{setting.name} is read from the file, not the env"
    assert not hasattr(cls, "can_reply"), "replying is a capability (Replier), not a flag"


@pytest.mark.parametrize("name", SOURCES)
def test_from_settings_reads_exactly_the_declared_keys(name):
    settings = declared(name)
    table = RecordingSettings(minimal_table(settings))
    instance = REGISTRY.load(SOURCE, name).from_settings(table)
    assert isinstance(instance, SourceConnector)
    assert table.read == table_keys(settings)


@pytest.mark.parametrize("name", SOURCES)
def test_declared_defaults_are_the_code_defaults(name):
    settings = declared(name)
    defaults = {s.name: s.default for s in settings if not s.secret and s.default is not None}
    from_defaults = build(name, {**minimal_table(settings), **defaults})
    assert plain_attributes(from_defaults) == plain_attributes(build(name))


@pytest.mark.parametrize("name", SOURCES)
def test_required_table_keys_are_required(name):
    required = [s for s in declared(name) if s.required and not s.secret]
    for setting in required:
        table = {k: v for k, v in minimal_table(declared(name)).items() if k != setting.name}
        with pytest.raises(ValueError, match=setting.name):
            build(name, table)


@pytest.mark.parametrize("name", SOURCES)
def test_secrets_read_are_exactly_the_declared_ones(name, monkeypatch, tmp_path):
    instance = build(name, {**minimal_table(declared(name)), "var_dir": str(tmp_path)})
    environ = RecordingEnviron(os.environ)
    monkeypatch.setattr(os, "environ", environ)
    calls = [lambda: instance.check(), lambda: instance.fetch("acme", None)]
    if isinstance(instance, Replier):
        external_id, raw = REPLY_TARGETS.get(name, ("1", {}))
        calls.append(lambda: instance.reply(_mention(name, external_id, raw), "Thank you!"))
    with responses.RequestsMock(assert_all_requests_are_fired=False):  # nothing goes out
        for call in calls:
            with contextlib.suppress(ConnectorError):  # offline: every request fails
                call()
    assert environ.read == set(secret_names(declared(name)))


@pytest.mark.parametrize("name", SOURCES)
def test_module_docstring_documents_the_settings(name):
    cls = REGISTRY.load(SOURCE, name)
    doc = importlib.import_module(cls.__module__).__doc__ or ""
    for setting in cls.settings:
        assert f"``{setting.env if setting.secret else setting.name}``" in doc, setting
    assert set(re.findall(r"``(OTKLIK_\w+)``", doc)) <= set(secret_names(cls.settings))


# --- replying is a capability -----------------------------------------------------------


@pytest.mark.parametrize("name", SOURCES)
def test_repliers_are_exactly_the_sources_that_implement_reply(name):
    cls = REGISTRY.load(SOURCE, name)
    assert callable(getattr(cls, "reply", None)) == (name in REPLIERS)
    assert REGISTRY.can_reply(name) == (name in REPLIERS)
    assert isinstance(build(name), Replier) == (name in REPLIERS)


@pytest.mark.parametrize("name", REPLIERS)
def test_replier_declares_its_reply_limit(name):
    cls = REGISTRY.load(REPLIER, name)
    assert cls is REGISTRY.load(SOURCE, name)
    assert callable(getattr(cls, "reply", None))
    assert cls.reply_limit is None or (isinstance(cls.reply_limit, int) and cls.reply_limit > 0)
    assert REGISTRY.reply_limit(name) == cls.reply_limit == REPLY_LIMITS[name]


def test_rss_cannot_reply():
    assert REGISTRY.can_reply("rss") is False
    assert REGISTRY.reply_limit("rss") is None
    assert not hasattr(REGISTRY.load(SOURCE, "rss"), "reply")


# --- required settings ------------------------------------------------------------------


def test_missing_required_secret_is_reported_by_its_variable():
    assert missing_required(declared("vk"), {}, {}) == ["OTKLIK_VK_TOKEN"]
    assert missing_required(declared("vk"), {}, {"OTKLIK_VK_TOKEN": "t"}) == []
    reddit = missing_required(declared("reddit"), {}, {"OTKLIK_REDDIT_USERNAME": "u"})
    assert reddit == [
        "OTKLIK_REDDIT_CLIENT_ID",
        "OTKLIK_REDDIT_CLIENT_SECRET",
        "OTKLIK_REDDIT_PASSWORD",
    ]


def test_missing_required_table_key_is_reported_by_its_name():
    assert missing_required(declared("rss"), {}, {}) == ["url"]
    assert missing_required(declared("rss"), {"url": REQUIRED_VALUES["url"]}, {}) == []
    assert missing_required(declared("demo"), {}, {}) == []


def test_optional_secrets_are_not_reported():
    environ = {"OTKLIK_TWITTER_BEARER_TOKEN": "b"}
    assert missing_required(declared("twitter"), {}, environ) == []
    assert missing_required(declared("discourse"), REQUIRED_VALUES, {}) == []


# --- registering connectors -------------------------------------------------------------


def test_import_path_without_class_is_refused_naming_it():
    with pytest.raises(UnknownConnector, match=r"collectors\.vk\.VkConnector"):
        Registry({SOURCE: {"vk2": "collectors.vk.VkConnector"}})


def test_missing_module_is_a_clear_error_naming_it():
    registry = Registry({SOURCE: {"ghost": "collectors.no_such_module:GhostConnector"}})
    with pytest.raises(UnknownConnector, match=r"'ghost'.*collectors\.no_such_module"):
        registry.load(SOURCE, "ghost")


def test_missing_class_is_a_clear_error_naming_it():
    registry = Registry({ALERT_SINK: {"x": "tests.test_connectors:NoSuchSink"}})
    with pytest.raises(UnknownConnector, match=r"tests\.test_connectors has no 'NoSuchSink'"):
        registry.load(ALERT_SINK, "x")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownConnector, match="known: demo, discourse"):
        REGISTRY.load(SOURCE, "myspace")


def test_extra_connector_from_the_config_loads():
    registry = Registry({ALERT_SINK: {"x": "tests.test_connectors:FakeSink"}})
    assert registry.names(ALERT_SINK) == ["x"]
    cls = registry.load(ALERT_SINK, "x")
    assert cls.__name__ == "FakeSink"
    assert registry.settings_of(ALERT_SINK, "x") == (Setting("channel", "where alerts go"),)
    assert registry.names(SOURCE) == SOURCES  # the built-ins are still there


def _mention(platform: str, external_id: str, raw: dict[str, Any]) -> RawMention:
    return RawMention(
        platform=platform,
        external_id=external_id,
        url="https://example.invalid/post",
        author_external_id="1",
        author_handle="someone",
        text="Where is my order?",
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
        raw=raw,
    )
