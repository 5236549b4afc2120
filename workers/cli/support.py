"""What the subcommands share: building the runtime, progress lines, serving the console."""

from __future__ import annotations

import sys
import threading

from config import Settings
from workers.runtime import Runtime


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
    from workers import scheduler

    scheduler.start(runtime, blocking=False)
    # Load the model before serving so the first scoring run is not slowed by it.
    threading.Thread(target=lambda: runtime.scorer, name="load-scorer", daemon=True).start()
    serve(runtime, host, port)
