"""The running service's parts, built once from settings (no globals, no app context)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

import collectors
from config import Settings, SourceSettings
from otklik import db, inbox_index
from otklik.domain import Connector
from otklik.models import Brand, Source
from otklik.sla import policy_from_settings

if TYPE_CHECKING:
    from nlp import Scorer


def _load_real_scorer(settings: Settings) -> Scorer:
    import nlp  # heavy (torch): imported only when scoring is needed

    return nlp.load_scorer(settings.encoder_path)


@dataclass
class Runtime:
    """Settings plus the engine, the session factory and (lazily) the scorer."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    scorer_factory: Callable[[Settings], Scorer] = _load_real_scorer
    _scorer: Scorer | None = field(default=None, init=False, repr=False)
    _scorer_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _connectors: dict[str, Connector] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_settings(
        cls, settings: Settings, scorer_factory: Callable[[Settings], Scorer] | None = None
    ) -> Runtime:
        """Create the engine and session factory; does not touch the schema."""
        engine = db.make_engine(settings.database_url)
        runtime = cls(settings=settings, engine=engine, sessions=db.make_session_factory(engine))
        inbox_index.install(runtime.sessions, policy_from_settings(settings.sla))
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

    def connector(self, source_name: str) -> Connector:
        """The connector instance for a configured source (built once)."""
        if source_name not in self._connectors:
            source = self.settings.source(source_name)
            cls = collectors.get(source.platform)
            self._connectors[source_name] = cls.from_settings(self.connector_settings(source))
        return self._connectors[source_name]

    def use_connector(self, source_name: str, connector: Connector) -> None:
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
