"""`otklik sources status` and `otklik sources check`."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from config import Settings


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
    """Call each source's ``check()``; print OK or the exact error."""
    from workers.runtime import Runtime

    runtime = Runtime.from_settings(settings)
    names = [args.source] if args.source else [s.name for s in settings.sources if s.enabled]
    failures = 0
    for name in names:
        settings.source(name)
        try:
            runtime.connector(name).check()
        except Exception as exc:  # noqa: BLE001 - report any failure, exactly as raised
            failures += 1
            print(f"{name}: FAILED: {type(exc).__name__}: {exc}")
        else:
            print(f"{name}: OK")
    return 1 if failures else 0
