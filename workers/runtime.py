"""The composition root: settings wired to the database, the connectors and the scorer.

Nothing below this layer builds a connector from settings or reads the configuration to find
one; use cases receive a session (or session factory) and plain values, and the jobs in
``workers.jobs`` hand them what they need from here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from config import Settings, SourceSettings, load_settings
from otklik.connectors import REPLIER, SOURCE, Registry, Replier, SourceConnector
from otklik.domain.sla import SlaPolicy, policy_from_settings
from otklik.settings_check import check_settings, registry_for
from otklik.store import db
from otklik.store.models import Brand, Source

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
class Runtime:
    """Settings plus the engine, sessions, connector registry and (lazily) the scorer."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    registry: Registry
    sla_policy: SlaPolicy | None
    scorer_factory: Callable[[Settings], Scorer] = _load_real_scorer
    _scorer: Scorer | None = field(default=None, init=False, repr=False)
    _scorer_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _connectors: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_settings(
        cls, settings: Settings, scorer_factory: Callable[[Settings], Scorer] | None = None
    ) -> Runtime:
        """Check the settings, create the engine and session factory; the schema is untouched."""
        registry = registry_for(settings)
        check_settings(settings, registry)
        policy = policy_from_settings(settings.sla)
        engine = db.make_engine(settings.database_url)
        runtime = cls(
            settings=settings,
            engine=engine,
            sessions=db.make_session_factory(engine, sla_policy=policy),
            registry=registry,
            sla_policy=policy,
        )
        if scorer_factory is not None:
            runtime.scorer_factory = scorer_factory
        return runtime

    @property
    def var_path(self) -> Path:
        """The directory for the database, model, secrets and diagnostics."""
        return self.settings.var_path

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

    def prepare_database(self) -> None:
        """Migrate the schema and mirror configured brands and sources into it."""
        db.upgrade(self.engine)
        with db.transaction(self.sessions) as session:
            sync_configuration(session, self.settings)


def sync_configuration(session: Session, settings: Settings) -> None:
    """Upsert brands and sources from the config; keeps cursors and health."""
    brands: dict[str, Brand] = {b.name: b for b in session.scalars(select(Brand))}
    for conf in settings.brands:
        brand = brands.get(conf.name) or Brand(name=conf.name)
        brand.keywords, brand.handles = list(conf.keywords), list(conf.handles)
        brand.languages = list(conf.languages)
        session.add(brand)
        brands[conf.name] = brand
    session.flush()
    sources = {s.name: s for s in session.scalars(select(Source))}
    for conf in settings.sources:
        source = sources.get(conf.name) or Source(name=conf.name)
        source.platform, source.query, source.enabled = conf.platform, conf.query, conf.enabled
        source.brand_id = brands[conf.brand].id if conf.brand else None
        session.add(source)
    for name, source in sources.items():
        if name not in {c.name for c in settings.sources}:
            source.enabled = False  # removed from config: keep its history, stop collecting
