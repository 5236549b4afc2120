"""The composition root: settings wired to the database, the connectors and the scorer.

Nothing below this layer builds a connector instance from settings; use cases receive a
session (or session factory) and plain values, and the jobs in ``workers.jobs`` hand them
what they need from here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from config import Settings, SourceSettings, load_settings
from otklik.connectors import REPLIER, SOURCE, Replier, SourceConnector
from otklik.services import Services
from otklik.settings_check import check_settings, registry_for

if TYPE_CHECKING:
    from nlp import Scorer


def load_checked(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from defaults, file and environment, checked against the connectors and rules."""
    settings = load_settings(path, environ)
    check_settings(settings, registry_for(settings))
    return settings


def _load_real_scorer(settings: Settings) -> Scorer:
    import nlp  # heavy (torch): imported only when scoring is needed

    return nlp.load_scorer(settings.encoder_path)


@dataclass
class Runtime(Services):
    """The services plus the connector instances and (lazily) the scorer."""

    scorer_factory: Callable[[Settings], Scorer] = _load_real_scorer
    _scorer: Scorer | None = field(default=None, init=False, repr=False)
    _scorer_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _connectors: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_settings(
        cls, settings: Settings, scorer_factory: Callable[[Settings], Scorer] | None = None
    ) -> Runtime:
        """Check the settings, create the engine and session factory; the schema is untouched."""
        runtime = cls.open(settings)
        if scorer_factory is not None:
            runtime.scorer_factory = scorer_factory
        return runtime

    @property
    def scorer(self) -> Scorer:
        """The sentiment/complaint scorer, loaded on first use."""
        with self._scorer_lock:  # the web preload and the first scoring job may race
            if self._scorer is None:
                self._scorer = self.scorer_factory(self.settings)
            return self._scorer

    def connector(self, source_name: str) -> SourceConnector:
        """The connector instance for a configured source (built once)."""
        if source_name not in self._connectors:
            source = self.settings.source(source_name)
            cls = self.registry.load(SOURCE, source.platform)
            self._connectors[source_name] = cls.from_settings(self.connector_settings(source))
        connector: SourceConnector = self._connectors[source_name]
        return connector

    def replier(self, source_name: str) -> Replier:
        """The connector that answers on the platform of ``source_name``."""
        platform = self.settings.source(source_name).platform
        self.registry.load(REPLIER, platform)  # a clear error when the platform cannot reply
        connector = self.connector(source_name)
        if not isinstance(connector, Replier):
            raise TypeError(f"the connector of source {source_name!r} cannot reply")
        return connector

    def use_connector(self, source_name: str, connector: Any) -> None:
        """Use ``connector`` for a source instead of building one (tests, plugins)."""
        self._connectors[source_name] = connector

    def connector_settings(self, source: SourceSettings) -> dict[str, Any]:
        """What a connector's ``from_settings`` receives: its own table plus common keys."""
        brand = next((b for b in self.settings.brands if b.name == source.brand), None)
        return {
            "backfill_hours": source.backfill_hours,
            "include_reposts": source.include_reposts,
            "var_dir": str(self.settings.var_path),
            "brand_handles": list(brand.handles) if brand else [],
            **source.settings,
        }
