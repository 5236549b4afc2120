"""The one registry of connectors: sources, repliers, ticket systems and alert sinks.

Every connector is a class named here by import path (``"collectors.vk:VkConnector"``), never
imported statically: the core stays below the packages that implement connectors, and a
connector whose client library is missing is disabled with a logged reason (like Redash's
query runners) instead of breaking the others. A deployment adds its own connectors with the
``[connectors]`` table of the configuration (kind -> {name = "module:Class"}).

Each connector class declares:

* ``platform`` (sources and repliers) or ``name`` (ticket systems, alert sinks);
* ``settings``: a tuple of :class:`Setting` - what its ``[sources.settings]`` table (or its
  own table) may hold, and which secrets it reads from the environment;
* ``from_settings(mapping)`` and ``check()`` (one cheap authenticated call).

Capabilities are what a class implements, not flags with stubs that raise: a source that can
answer on its platform implements :class:`Replier` (``reply`` and ``reply_limit``) and is
registered under the kind ``replier`` as well.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

from otklik.domain.mentions import Page, RawMention

log = logging.getLogger(__name__)

SOURCE = "source"
REPLIER = "replier"
TICKET_SYSTEM = "ticket_system"
ALERT_SINK = "alert_sink"
KINDS = (SOURCE, REPLIER, TICKET_SYSTEM, ALERT_SINK)


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting a connector reads: a key of its settings table, or a secret from the env.

    ``env`` names the environment variable of a secret (secrets never come from the file);
    ``required`` settings must be present for the connector to work.
    """

    name: str
    help: str = ""
    required: bool = False
    secret: bool = False
    env: str = ""
    default: object = None

    def __post_init__(self) -> None:
        if self.secret and not self.env:
            raise ValueError(f"secret setting {self.name!r} must name its environment variable")


@runtime_checkable
class SourceConnector(Protocol):
    """Collects mentions from one platform."""

    platform: ClassVar[str]
    settings: ClassVar[tuple[Setting, ...]]

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> Self:
        """Build the connector from its source settings (secrets come from the environment)."""
        ...

    def check(self) -> None:
        """Make a cheap authenticated call; raise ``ConnectorError`` on failure."""
        ...

    def fetch(self, query: str, cursor: str | None) -> Page:
        """Return the next page of mentions after ``cursor``."""
        ...


@runtime_checkable
class Replier(Protocol):
    """Answers on its platform: a capability a source connector may have."""

    platform: ClassVar[str]
    reply_limit: ClassVar[int | None]  # longest reply the platform accepts, in its own units

    @classmethod
    def reply_length(cls, text: str) -> int:
        """The length of ``text`` as the platform counts it against ``reply_limit``."""
        ...

    def reply(self, to: RawMention, text: str, idempotency_key: str) -> str:
        """Post ``text`` in reply to ``to``; return the new post's external id.

        ``idempotency_key`` is the same on every attempt of one reply: pass it to the platform
        where it takes one (VK's ``guid``). Raise ``OutcomeUnknown`` when the request may have
        been accepted (read timeout, 5xx, a dropped connection after sending), and
        ``TransientError`` / ``RateLimited`` only when it surely was not.
        """
        ...


# kind -> name -> "module:Class". Explicit on purpose: no import-time discovery.
_BUILTIN: dict[str, dict[str, str]] = {
    SOURCE: {
        "demo": "collectors.demo:DemoConnector",
        "twitter": "collectors.twitter:TwitterConnector",
        "vk": "collectors.vk:VkConnector",
        "reddit": "collectors.reddit:RedditConnector",
        "rss": "collectors.rss:RssConnector",
        "discourse": "collectors.discourse:DiscourseConnector",
    },
    REPLIER: {
        "demo": "collectors.demo:DemoConnector",
        "twitter": "collectors.twitter:TwitterConnector",
        "vk": "collectors.vk:VkConnector",
        "reddit": "collectors.reddit:RedditConnector",
        "discourse": "collectors.discourse:DiscourseConnector",
    },
    TICKET_SYSTEM: {},
    ALERT_SINK: {},
}


class UnknownConnector(LookupError):
    """No connector of that kind is registered under that name, or it cannot be loaded."""


class Registry:
    """Kind -> name -> import path; classes are imported on first use and cached."""

    def __init__(self, extra: Mapping[str, Mapping[str, str]] | None = None) -> None:
        """The built-in connectors plus ``extra`` (kind -> name -> path, from the config)."""
        self._paths: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
        self._classes: dict[tuple[str, str], type] = {}
        for entries in (_BUILTIN, extra or {}):
            for kind, names in entries.items():
                for name, path in names.items():
                    self.register(kind, name, path)

    def register(self, kind: str, name: str, path: str) -> None:
        """Add (or replace) the connector ``name`` of ``kind``, given as ``"module:Class"``."""
        if kind not in KINDS:
            raise UnknownConnector(f"unknown connector kind {kind!r}; expected one of: {KINDS}")
        module, _, attribute = path.partition(":")
        if not module or not attribute:
            raise UnknownConnector(
                f"connector {kind} {name!r}: import path {path!r} is not 'module:Class'"
            )
        self._paths[kind][name] = path
        self._classes.pop((kind, name), None)

    def names(self, kind: str) -> list[str]:
        """Every name registered for ``kind``, sorted."""
        return sorted(self._paths[kind])

    def path(self, kind: str, name: str) -> str:
        """The import path of a registered connector."""
        try:
            return self._paths[kind][name]
        except KeyError:
            known = ", ".join(self.names(kind)) or "none"
            raise UnknownConnector(
                f"unknown {kind.replace('_', ' ')} {name!r}; known: {known}"
            ) from None

    def load(self, kind: str, name: str) -> type[Any]:
        """The class registered as ``name`` of ``kind`` (imported now if not yet)."""
        key = (kind, name)
        if key not in self._classes:
            path = self.path(kind, name)
            module_name, _, attribute = path.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                log.warning("connector %s %s disabled: %s", kind, name, exc)
                raise UnknownConnector(f"connector {name!r} is unavailable: {exc}") from exc
            try:
                self._classes[key] = getattr(module, attribute)
            except AttributeError:
                raise UnknownConnector(
                    f"connector {kind} {name!r}: {module_name} has no {attribute!r}"
                ) from None
        return self._classes[key]

    def can_reply(self, platform: str) -> bool:
        """True when a replier is registered for ``platform``."""
        return platform in self._paths[REPLIER]

    def reply_limit(self, platform: str) -> int | None:
        """The platform's reply length limit (None: none, or the platform cannot reply)."""
        if not self.can_reply(platform):
            return None
        return getattr(self.load(REPLIER, platform), "reply_limit", None)

    def reply_length(self, platform: str, text: str) -> int:
        """``text``'s length as ``platform`` counts it (characters where it says nothing)."""
        measure = getattr(self.load(REPLIER, platform), "reply_length", None)
        return int(measure(text)) if measure is not None else len(text)

    def settings_of(self, kind: str, name: str) -> tuple[Setting, ...]:
        """The settings a connector declares."""
        return tuple(getattr(self.load(kind, name), "settings", ()))


def secret_names(settings: tuple[Setting, ...]) -> list[str]:
    """The environment variables holding a connector's secrets."""
    return [s.env for s in settings if s.secret]


def missing_required(
    declared: tuple[Setting, ...], values: Mapping[str, object], environ: Mapping[str, str]
) -> list[str]:
    """Required settings without a value: table keys by name, secrets by variable."""
    missing = []
    for setting in declared:
        if not setting.required:
            continue
        if setting.secret and not environ.get(setting.env):
            missing.append(setting.env)
        elif not setting.secret and values.get(setting.name) in (None, ""):
            missing.append(setting.name)
    return missing
