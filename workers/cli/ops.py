"""Operational subcommands: init, run, web, scheduler, collect, user add."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from config import Settings
from otklik.store import db
from otklik.store.models import Role
from otklik.users import UserError, count_users, create_user, generate_password


def register(sub: Any) -> None:
    """Add the operational subcommands to ``sub``."""
    p = sub.add_parser("init", help="build the model, migrate the database, create the first admin")
    p.add_argument("--skip-model", action="store_true", help="do not build the encoder")
    p.set_defaults(handler=cmd_init)
    p = sub.add_parser("run", help="all in one: init, scheduler and console")
    _host_port(p)
    p.set_defaults(handler=cmd_run)
    p = sub.add_parser("web", help="serve the console only")
    _host_port(p)
    p.set_defaults(handler=cmd_web)
    p = sub.add_parser("scheduler", help="run the scheduler only (blocking)")
    p.set_defaults(handler=cmd_scheduler)
    p = sub.add_parser("collect", help="run one source")
    p.add_argument("--source", required=True, help="source name from the configuration")
    p.add_argument("--once", action="store_true", help="one page, then exit (the default)")
    p.add_argument("--score", action="store_true", help="score the new mentions afterwards")
    p.set_defaults(handler=cmd_collect)
    p = sub.add_parser("user", help="manage console users")
    user_sub = p.add_subparsers(required=True, metavar="ACTION")
    add = user_sub.add_parser("add", help="add a user (password from --password or prompted)")
    add.add_argument("username")
    add.add_argument("--role", default=Role.AGENT, choices=[r.value for r in Role])
    add.add_argument("--password", help="default: $OTKLIK_NEW_PASSWORD, else asked for")
    add.set_defaults(handler=cmd_user_add)


def _host_port(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="default: web.host from the configuration")
    parser.add_argument("--port", type=int, help="default: web.port from the configuration")


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    """Build (or verify) the encoder, migrate the database, create the first admin."""
    from workers.cli.support import make_runtime, progress

    if not getattr(args, "skip_model", False):
        from nlp.encoder_build import build_encoder

        build_encoder(settings.encoder_path, progress=progress)
    runtime = make_runtime(settings)
    progress(f"database ready: {_redact(settings.database_url)}")
    with db.transaction(runtime.sessions) as session:
        if count_users(session) == 0:
            _create_first_admin(session)
    return 0


def _create_first_admin(session: Any) -> None:
    import os

    password = os.environ.get("OTKLIK_ADMIN_PASSWORD")
    username = os.environ.get("OTKLIK_ADMIN_USERNAME", "admin")
    printed = password is None
    password = password or generate_password()
    create_user(session, username, password, role=Role.ADMIN)
    if printed:
        print(f"First admin created. Log in as {username!r} with password: {password}")
        print("(shown once; set OTKLIK_ADMIN_PASSWORD before `otklik init` to choose it)")
    else:
        print(f"First admin {username!r} created with the password from OTKLIK_ADMIN_PASSWORD")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """Init, then scheduler + console in one process; the port is checked before anything."""
    from workers.cli.support import make_runtime, run_all

    host, port = args.host or settings.web.host, args.port or settings.web.port
    sockets = _reserve(host, port)
    if sockets is None:
        return 2
    cmd_init(settings, args)
    runtime = make_runtime(settings)
    run_all(runtime, host, port, sockets)
    return 0


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    """Console only (run the scheduler elsewhere)."""
    from workers.cli.support import make_runtime, serve, stop_on_sigterm

    host, port = args.host or settings.web.host, args.port or settings.web.port
    sockets = _reserve(host, port)
    if sockets is None:
        return 2
    stop_on_sigterm()
    serve(make_runtime(settings), host, port, sockets)
    return 0


def _reserve(host: str, port: int) -> list[Any] | None:
    """The console's listening sockets, or None after saying why the port cannot be used."""
    from workers.cli.support import PortInUse, reserve_port

    try:
        return reserve_port(host, port)
    except PortInUse as exc:
        print(f"otklik: error: {exc}", file=sys.stderr)
        return None


def cmd_scheduler(settings: Settings, args: argparse.Namespace) -> int:
    """Scheduler only, in the foreground; refused while another one works the database."""
    from workers import scheduler
    from workers.cli.support import make_runtime, progress, stop_requested

    runtime = make_runtime(settings)
    stop = stop_requested()
    try:
        jobs = scheduler.start(runtime)
    except scheduler.SchedulerBusy as exc:
        print(
            f"otklik: error: {exc} ({_redact(settings.database_url)}). This scheduler does not "
            "start: stop that one first; if it was killed, start this one again once its "
            "lock has run out.",
            file=sys.stderr,
        )
        return 2
    while jobs.running and not stop.wait(1):
        pass
    progress("stopping the scheduler (waiting for running jobs)")
    if jobs.running:
        jobs.shutdown(wait=True)  # releases the scheduler lock
    return 0


def cmd_collect(settings: Settings, args: argparse.Namespace) -> int:
    """One page from one source; exit status 1 when the source failed."""
    from workers.cli.support import make_runtime, progress
    from workers.jobs import run_source, score_pending

    settings.source(args.source)  # a clear error for an unknown name
    runtime = make_runtime(settings)
    outcome = run_source(runtime, args.source, force=True)
    if outcome.stored is not None:
        s = outcome.stored
        print(f"{args.source}: {s.new} new, {s.updated} updated, {s.unchanged} already stored")
    else:
        print(f"{args.source}: {outcome.status}: {outcome.message}")
    if args.score and outcome.status == "ok":
        total = 0
        while scored := score_pending(runtime):
            total += scored
            progress(f"scored {total}")
    return 0 if outcome.status == "ok" else 1


def cmd_user_add(settings: Settings, args: argparse.Namespace) -> int:
    """Add a console user."""
    import getpass
    import os

    from workers.cli.support import make_runtime

    password = args.password or os.environ.get("OTKLIK_NEW_PASSWORD") or getpass.getpass()
    runtime = make_runtime(settings)
    try:
        with db.transaction(runtime.sessions) as session:
            create_user(session, args.username, password, role=args.role)
    except UserError as exc:
        raise ValueError(str(exc)) from None
    print(f"user {args.username!r} added with role {args.role}")
    return 0
