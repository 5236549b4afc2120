"""The ``otklik`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Sequence

from config import ConfigError, Settings, load_settings
from otklik.runtime import Runtime


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
        settings = load_settings(args.config)
        return int(args.handler(settings, args) or 0)
    except (ConfigError, ValueError, LookupError) as exc:
        print(f"otklik: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    from otklik import cli_data, cli_ops, cli_sources

    parser = argparse.ArgumentParser(prog="otklik", description=__doc__)
    parser.add_argument(
        "--config", help="TOML file (default: $OTKLIK_CONFIG, else built-in defaults)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    cli_ops.register(sub)
    cli_data.register(sub)
    cli_sources.register(sub)
    return parser


def make_runtime(settings: Settings) -> Runtime:
    """A Runtime with the schema migrated and the configuration mirrored."""
    runtime = Runtime.from_settings(settings)
    runtime.prepare_database()
    return runtime


def progress(message: str) -> None:
    """Progress lines go to stderr so stdout stays machine-readable."""
    print(message, file=sys.stderr, flush=True)


def serve(runtime: Runtime, host: str, port: int) -> None:
    """Serve the console with waitress (a production WSGI server, pure Python)."""
    from waitress import serve as waitress_serve

    from web import create_app

    app = create_app(runtime)
    progress(f"console: http://{host}:{port}/")
    waitress_serve(app, host=host, port=port, threads=8, ident="otklik")


def run_all(runtime: Runtime, host: str, port: int) -> None:
    """Scheduler in a background thread, console in the foreground."""
    from otklik import scheduler

    scheduler.start(runtime, blocking=False)
    # Load the model before serving so the first scoring run is not slowed by it.
    threading.Thread(target=lambda: runtime.scorer, name="load-scorer", daemon=True).start()
    serve(runtime, host, port)
