"""Configuration: code defaults -> TOML file named by OTKLIK_CONFIG -> OTKLIK_* environment.

Secrets (API tokens, passwords) are read from the environment only; a TOML
file that contains one is rejected.
"""

from config.settings import (
    BrandSettings,
    ConfigError,
    DatabaseSettings,
    NlpSettings,
    SchedulerSettings,
    Settings,
    SlaOverride,
    SlaSettings,
    SlaTargets,
    SourceSettings,
    WebSettings,
    load_settings,
)

__all__ = [
    "BrandSettings",
    "ConfigError",
    "DatabaseSettings",
    "NlpSettings",
    "SchedulerSettings",
    "Settings",
    "SlaOverride",
    "SlaSettings",
    "SlaTargets",
    "SourceSettings",
    "WebSettings",
    "load_settings",
]
