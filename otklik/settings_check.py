"""Checks of the settings that need the core: connector names and the SLA rules.

``config`` stays below everything and checks only what it can see alone (types, unknown keys,
secrets in the file); the composition root (``workers.runtime``) calls :func:`check_settings`
before it wires anything, so a wrong platform or business-hours line stops the start with a
message naming the key and the file.
"""

from __future__ import annotations

import dataclasses

from config import ConfigError, Settings, SlaSettings
from otklik.connectors import KINDS, Registry, UnknownConnector
from otklik.domain.sla import BusinessHours, SlaSpecError


def check_settings(settings: Settings, registry: Registry) -> None:
    """Raise ConfigError naming the key when a source, a connector or the SLA is wrong."""
    where = settings.config_path or "<defaults>"
    platforms = registry.names("source")
    for index, source in enumerate(settings.sources):
        if source.platform not in platforms:
            raise ConfigError(
                f"{where}: 'sources[{index}].platform' is {source.platform!r}; expected one of: "
                + ", ".join(platforms)
            )
    _check_sla(settings.sla, where, platforms)


def registry_for(settings: Settings) -> Registry:
    """The built-in connectors plus the ``[connectors]`` table of the configuration."""
    where = settings.config_path or "<defaults>"
    for kind, entries in settings.connectors.items():
        if kind not in KINDS:
            raise ConfigError(
                f"{where}: unknown key 'connectors.{kind}'; expected one of: {', '.join(KINDS)}"
            )
        if not isinstance(entries, dict) or not all(isinstance(v, str) for v in entries.values()):
            raise ConfigError(
                f"{where}: 'connectors.{kind}' must be a table of name = \"module:Class\""
            )
    try:
        return Registry(settings.connectors)
    except UnknownConnector as exc:
        raise ConfigError(f"{where}: 'connectors': {exc}") from None


def _check_sla(sla: SlaSettings, where: str, platforms: list[str]) -> None:
    try:
        BusinessHours.parse(sla.business_hours, sla.timezone)
    except SlaSpecError as exc:
        raise ConfigError(f"{where}: 'sla.business_hours' / 'sla.timezone': {exc}") from None
    if not 0 <= sla.at_risk_percent <= 100:
        raise ConfigError(f"{where}: 'sla.at_risk_percent' must be between 0 and 100")
    for name in ("first_response_minutes", "resolution_minutes"):
        for band, minutes in dataclasses.asdict(getattr(sla, name)).items():
            if minutes < 1:
                raise ConfigError(f"{where}: 'sla.{name}.{band}' must be at least 1 minute")
    for index, override in enumerate(sla.platforms):
        if override.platform not in platforms:
            raise ConfigError(
                f"{where}: 'sla.platforms[{index}].platform' is {override.platform!r}; "
                f"expected one of: {', '.join(platforms)}"
            )
