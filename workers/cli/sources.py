"""`otklik sources status`, `otklik sources check` and `otklik connectors`."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from typing import Any

from config import Settings
from otklik.connectors import KINDS, SOURCE, UnknownConnector, missing_required
from otklik.settings_check import registry_for


def register(sub: Any) -> None:
    """Add ``sources status`` and ``sources check``."""
    p = sub.add_parser("sources", help="source health and credential checks")
    sources_sub = p.add_subparsers(required=True, metavar="ACTION")
    status = sources_sub.add_parser("status", help="last success, last error, lag, rate, gaps")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)
    check = sources_sub.add_parser("check", help="one cheap authenticated call per source")
    check.add_argument("--source", help="only this source")
    check.set_defaults(handler=cmd_check)
    p = sub.add_parser("connectors", help="every registered connector, its settings and secrets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_connectors)


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    """Print each source's health; exit 1 when any enabled source is failing or silent."""
    from otklik.health import all_health
    from otklik.store.models import utcnow
    from workers.cli.support import make_runtime

    runtime = make_runtime(settings)
    with runtime.sessions() as session:
        health = all_health(session, settings, utcnow())
    for item in health:
        if args.json:
            print(json.dumps(asdict(item), default=str))
            continue
        lag = "-" if item.lag_seconds is None else f"{item.lag_seconds / 60:.0f} min"
        last_ok = f"{item.last_success_at:%Y-%m-%d %H:%M:%S}" if item.last_success_at else "never"
        print(
            f"{item.name:<20} {item.platform:<10} {item.state:<9} "
            f"last ok {last_ok}  lag {lag}  {item.mentions_per_hour}/h"
        )
        if item.last_error and item.state != "ok":
            print(f"{'':<20} last error: {item.last_error}")
        if item.gap_warning:
            print(f"{'':<20} gap: {item.gap_warning}")
    troubled = [h for h in health if h.enabled and (h.state == "failing" or h.gap_warning)]
    return 1 if troubled else 0


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    """Name missing settings and secrets, else call ``check()``; print OK or the exact error."""
    from workers.runtime import Runtime

    runtime = Runtime.from_settings(settings)
    names = [args.source] if args.source else [s.name for s in settings.sources if s.enabled]
    failures = 0
    for name in names:
        source = settings.source(name)
        declared = runtime.registry.settings_of(SOURCE, source.platform)
        if missing := missing_required(declared, source.settings, os.environ):
            failures += 1
            print(f"{name}: FAILED: not set: {', '.join(missing)}")
            continue
        try:
            runtime.connector(name).check()
        except Exception as exc:  # noqa: BLE001 - report any failure, exactly as raised
            failures += 1
            print(f"{name}: FAILED: {type(exc).__name__}: {exc}")
        else:
            print(f"{name}: OK")
    return 1 if failures else 0


def cmd_connectors(settings: Settings, args: argparse.Namespace) -> int:
    """List connectors by kind: import path, settings, secrets and whether each secret is set."""
    registry = registry_for(settings)
    rows: list[dict[str, Any]] = []
    for kind in KINDS:
        for name in registry.names(kind):
            try:
                declared = registry.settings_of(kind, name)
            except UnknownConnector as exc:
                rows.append({"kind": kind, "name": name, "error": str(exc)})
                continue
            rows.append(
                {
                    "kind": kind,
                    "name": name,
                    "path": registry.path(kind, name),
                    "settings": [s.name for s in declared if not s.secret],
                    "secrets": {s.env: bool(os.environ.get(s.env)) for s in declared if s.secret},
                }
            )
    for row in rows:
        if args.json:
            print(json.dumps(row))
        elif "error" in row:
            print(f"{row['kind']:<14} {row['name']:<12} unavailable: {row['error']}")
        else:
            secrets = ", ".join(
                f"{k} ({'set' if v else 'unset'})" for k, v in row["secrets"].items()
            )
            print(f"{row['kind']:<14} {row['name']:<12} {row['path']}")
            print(f"{'':<27} settings: {', '.join(row['settings']) or '-'}")
            print(f"{'':<27} secrets: {secrets or '-'}")
    return 0
