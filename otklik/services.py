"""The shared infrastructure every entry point opens first: checked settings, the database,
the connector registry and the SLA policy.

Nothing here builds a connector instance or loads the model: that wiring belongs to the
composition root (``workers.runtime.Runtime`` extends this class). The console
(``web.create_app``) and the benchmarks need only this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Self

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from otklik.connectors import Registry
from otklik.domain.sla import SlaPolicy, policy_from_settings
from otklik.settings_check import check_settings, registry_for
from otklik.store import db
from otklik.store.models import Brand, Source


@dataclass
class Services:
    """Settings plus the engine, the session factory, the registry and the SLA policy."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    registry: Registry
    sla_policy: SlaPolicy | None

    @classmethod
    def open(cls, settings: Settings) -> Self:
        """Check the settings, create the engine and session factory; the schema is untouched."""
        registry = registry_for(settings)
        check_settings(settings, registry)
        policy = policy_from_settings(settings.sla)
        engine = db.make_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=db.make_session_factory(engine, sla_policy=policy),
            registry=registry,
            sla_policy=policy,
        )

    @property
    def var_path(self) -> Path:
        """The directory for the database, model, secrets and diagnostics."""
        return self.settings.var_path

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
    for source_conf in settings.sources:
        source = sources.get(source_conf.name) or Source(name=source_conf.name)
        source.platform, source.query = source_conf.platform, source_conf.query
        source.enabled = source_conf.enabled
        source.brand_id = brands[source_conf.brand].id if source_conf.brand else None
        session.add(source)
    for name, source in sources.items():
        if name not in {c.name for c in settings.sources}:
            source.enabled = False  # removed from config: keep its history, stop collecting
