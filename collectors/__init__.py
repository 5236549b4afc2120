"""Platform connectors, registered explicitly by platform name.

``collectors.get("twitter")`` returns the connector class; a connector whose
client library is missing is left out with a logged reason (like Redash's
query runners) instead of breaking every other source.
"""

from __future__ import annotations

import importlib
import logging

from otklik.domain import Connector

log = logging.getLogger(__name__)

# platform name -> "module:Class". Explicit on purpose: no import-time discovery.
_CONNECTORS: dict[str, str] = {
    "demo": "collectors.demo:DemoConnector",
    "twitter": "collectors.twitter:TwitterConnector",
    "vk": "collectors.vk:VkConnector",
    "reddit": "collectors.reddit:RedditConnector",
    "rss": "collectors.rss:RssConnector",
    "discourse": "collectors.discourse:DiscourseConnector",
}


class UnknownPlatform(KeyError):
    """Raised for a platform name no connector is registered under."""


def platforms() -> list[str]:
    """Names of every registered platform."""
    return sorted(_CONNECTORS)


def get(platform: str) -> type[Connector]:
    """Return the connector class registered for ``platform``."""
    try:
        target = _CONNECTORS[platform]
    except KeyError:
        raise UnknownPlatform(
            f"unknown platform {platform!r}; known: {', '.join(platforms())}"
        ) from None
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        log.warning("connector %s disabled: %s", platform, exc)
        raise UnknownPlatform(f"connector {platform!r} is unavailable: {exc}") from exc
    return getattr(module, class_name)
