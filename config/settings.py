"""Typed settings and their loader.

Order of precedence: the defaults declared on the dataclasses below, then the
TOML file named by ``OTKLIK_CONFIG`` (or passed explicitly), then environment
variables ``OTKLIK_<SECTION>_<KEY>`` for scalar keys of the single-valued
sections (``OTKLIK_DATABASE_URL``, ``OTKLIK_WEB_PORT`` ...). Any unknown key,
wrong type or secret-looking key in the file fails with a :class:`ConfigError`
naming the key, the file and what was expected.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECRET_WORDS = ("token", "secret", "password", "api_key", "apikey", "credential")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


@dataclass(frozen=True)
class DatabaseSettings:
    """Where mentions live; SQLite under ``var/`` unless configured."""

    url: str = ""


@dataclass(frozen=True)
class WebSettings:
    """The moderation console."""

    host: str = "127.0.0.1"
    port: int = 5000
    session_cookie_secure: bool = False


@dataclass(frozen=True)
class SchedulerSettings:
    """Periodic jobs besides the per-source collectors."""

    enabled: bool = True
    score_interval_seconds: int = 10
    outbox_interval_seconds: int = 5
    max_backoff_seconds: int = 900


@dataclass(frozen=True)
class NlpSettings:
    """The transformer scorer."""

    encoder_dir: str = ""
    batch_size: int = 32
    score_batch_limit: int = 256


@dataclass(frozen=True)
class SlaTargets:
    """Minutes of business time per priority band (high >= 60, normal >= 30, low)."""

    high: int = 0
    normal: int = 0
    low: int = 0


@dataclass(frozen=True)
class SlaOverride:
    """Targets for one platform; a band left at 0 uses the general target."""

    platform: str
    first_response_minutes: SlaTargets = field(default_factory=SlaTargets)
    resolution_minutes: SlaTargets = field(default_factory=SlaTargets)


@dataclass(frozen=True)
class SlaSettings:
    """Response-time targets (see ``otklik.domain.sla``); optional ``[sla]`` section."""

    enabled: bool = True
    timezone: str = "UTC"
    business_hours: str = ""  # e.g. "Mon-Fri 09:00-18:00"; empty: around the clock
    at_risk_percent: int = 25
    first_response_minutes: SlaTargets = field(
        default_factory=lambda: SlaTargets(high=60, normal=240, low=480)
    )
    resolution_minutes: SlaTargets = field(
        default_factory=lambda: SlaTargets(high=480, normal=1440, low=4320)
    )
    platforms: list[SlaOverride] = field(default_factory=list)


@dataclass(frozen=True)
class BrandSettings:
    """A brand we listen for."""

    name: str
    keywords: list[str] = field(default_factory=list)
    handles: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=lambda: ["en", "ru"])


@dataclass(frozen=True)
class SourceSettings:
    """One scheduled collector: a connector, a query and its schedule."""

    name: str
    platform: str
    query: str = ""
    brand: str = ""
    enabled: bool = True
    interval_seconds: int = 300
    backfill_hours: int = 24
    include_reposts: bool = False
    exclude_keywords: list[str] = field(default_factory=list)
    exclude_authors: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)  # empty: every language
    expected_silence_hours: float = 0.0  # 0: warn after 10 intervals without a new mention
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    """Everything Otklik reads at start."""

    var_dir: str = "var"
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    web: WebSettings = field(default_factory=WebSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    nlp: NlpSettings = field(default_factory=NlpSettings)
    sla: SlaSettings = field(default_factory=SlaSettings)
    brands: list[BrandSettings] = field(default_factory=list)
    sources: list[SourceSettings] = field(default_factory=list)
    # extra connectors by import path: kind -> {name = "module:Class"} (see otklik.connectors)
    connectors: dict[str, Any] = field(default_factory=dict)
    config_path: str = ""

    @property
    def var_path(self) -> Path:
        """The directory for the database, model and secrets."""
        return Path(self.var_dir).resolve()

    @property
    def database_url(self) -> str:
        """The configured database URL, or SQLite under ``var/``."""
        return self.database.url or f"sqlite:///{self.var_path / 'otklik.db'}"

    @property
    def encoder_path(self) -> Path:
        """Where the rebuilt transformer encoder lives."""
        if self.nlp.encoder_dir:
            return Path(self.nlp.encoder_dir).resolve()
        return self.var_path / "models" / "multilingual-e5-small"

    def source(self, name: str) -> SourceSettings:
        """The source called ``name``; ConfigError if none."""
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources) or "none"
        raise ConfigError(f"no source named {name!r} in the configuration (known: {known})")


_SECTIONS = ("database", "web", "scheduler", "nlp", "sla")


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Load settings from defaults, the TOML file and the environment."""
    environ = os.environ if environ is None else environ
    path = path if path is not None else environ.get("OTKLIK_CONFIG") or None
    where = str(path) if path else "<defaults>"
    data: dict[str, Any] = _read_toml(Path(path)) if path else {}
    _reject_secrets(data, where, "")
    _apply_environment(data, environ)
    settings = _build(Settings, data, where, "")
    settings = dataclasses.replace(settings, config_path=str(path or ""))
    _check_consistency(settings, where)
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"configuration file {path} (from OTKLIK_CONFIG) does not exist"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None


def _reject_secrets(data: Any, where: str, prefix: str) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            dotted = f"{prefix}{key}"
            if any(word in key.lower() for word in SECRET_WORDS):
                raise ConfigError(
                    f"{where}: key '{dotted}' looks like a secret; secrets are read only from "
                    "the environment (see README, 'Pointing Otklik at real accounts')"
                )
            _reject_secrets(value, where, dotted + ".")
    elif isinstance(data, list):
        for index, item in enumerate(data):
            _reject_secrets(item, where, f"{prefix[:-1]}[{index}].")


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    if "OTKLIK_VAR_DIR" in environ:
        data["var_dir"] = environ["OTKLIK_VAR_DIR"]
    hints = {name: typing.get_type_hints(Settings)[name] for name in _SECTIONS}
    for section, cls in hints.items():
        for fld in dataclasses.fields(cls):
            env_name = f"OTKLIK_{section}_{fld.name}".upper()
            if env_name in environ:
                raw = environ[env_name]
                value = _parse_env(raw, typing.get_type_hints(cls)[fld.name], env_name)
                data.setdefault(section, {})[fld.name] = value


def _parse_env(raw: str, expected: Any, env_name: str) -> Any:
    if expected is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"environment variable {env_name}={raw!r}: expected true or false")
    if expected is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(
                f"environment variable {env_name}={raw!r}: expected an integer"
            ) from None
    return raw


def _build(cls: type, data: Any, where: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: '{prefix or 'top level'}' must be a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)} - {"config_path"}
    for key in data:
        if key not in names:
            raise ConfigError(
                f"{where}: unknown key '{prefix}{key}'; expected one of: {', '.join(sorted(names))}"
            )
    values: dict[str, Any] = {}
    for fld in dataclasses.fields(cls):
        if fld.name not in data:
            if fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: missing required key '{prefix}{fld.name}'")
            continue
        values[fld.name] = _convert(hints[fld.name], data[fld.name], where, f"{prefix}{fld.name}")
    return cls(**values)


def _convert(expected: Any, value: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(expected)
    if dataclasses.is_dataclass(expected):
        return _build(typing.cast(type, expected), value, where, key + ".")
    if origin is list:
        (item_type,) = typing.get_args(expected)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: '{key}' must be a list, got {value!r}")
        return [_convert(item_type, item, where, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: '{key}' must be a table, got {value!r}")
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        return value
    if expected is float and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ConfigError(f"{where}: '{key}' must be a number, got {value!r}")
    if expected is float:
        return float(value)
    if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: '{key}' must be an integer, got {value!r}")
    if expected is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: '{key}' must be true or false, got {value!r}")
    if expected is str and not isinstance(value, str):
        raise ConfigError(f"{where}: '{key}' must be a string, got {value!r}")
    return value


def _check_consistency(settings: Settings, where: str) -> None:
    """Checks that need nothing but the settings (connectors and SLA rules are checked by
    ``otklik.settings_check``, called where settings are wired to the rest)."""
    seen: set[str] = set()
    brands = {b.name for b in settings.brands}
    for index, source in enumerate(settings.sources):
        key = f"sources[{index}]"
        if source.name in seen:
            raise ConfigError(f"{where}: '{key}.name' {source.name!r} is used twice")
        seen.add(source.name)
        if source.brand and source.brand not in brands:
            raise ConfigError(
                f"{where}: '{key}.brand' is {source.brand!r} but no [[brands]] entry has that name"
            )
        if source.interval_seconds < 1:
            raise ConfigError(f"{where}: '{key}.interval_seconds' must be at least 1")
        unknown = set(source.languages) - {"ru", "en", "other"}
        if unknown:
            raise ConfigError(
                f"{where}: '{key}.languages' has {sorted(unknown)}; expected ru, en or other"
            )
