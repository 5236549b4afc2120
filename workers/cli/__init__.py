"""The ``otklik`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from config import ConfigError
from workers.cli import data, nlp, ops, sources
from workers.runtime import load_checked


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse arguments, load settings, run the subcommand."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # one line per job run is noise; errors still show
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = load_checked(args.config)
        return int(args.handler(settings, args) or 0)
    except (ConfigError, ValueError, LookupError) as exc:
        print(f"otklik: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otklik", description=__doc__)
    parser.add_argument(
        "--config", help="TOML file (default: $OTKLIK_CONFIG, else built-in defaults)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    ops.register(sub)
    data.register(sub)
    nlp.register(sub)
    sources.register(sub)
    return parser
