"""What the subcommands share: building the runtime, progress lines, serving the console."""

from __future__ import annotations

import errno
import http.client
import os
import signal
import socket
import sys
import threading
from typing import Any

from config import Settings
from workers.runtime import Runtime


class PortInUse(Exception):
    """The console's address cannot be listened on; the message says why and what to do."""


def make_runtime(settings: Settings) -> Runtime:
    """A Runtime with the schema migrated and the configuration mirrored."""
    runtime = Runtime.from_settings(settings)
    runtime.prepare_database()
    return runtime


def progress(message: str) -> None:
    """Progress lines go to stderr so stdout stays machine-readable."""
    print(message, file=sys.stderr, flush=True)


def reserve_port(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on ``host:port`` for the console, taken before anything else starts.

    Holding them from the start (waitress serves on them later) leaves no moment for another
    process to take the port between the check and the serving.
    """
    try:
        found = socket.getaddrinfo(
            None if host in ("", "*") else host,
            port,
            socket.AF_UNSPEC,
            socket.SOCK_STREAM,
            socket.IPPROTO_TCP,
            socket.AI_PASSIVE,
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise PortInUse(
            f"cannot listen on {host}:{port}: {exc}; check web.host (OTKLIK_WEB_HOST) or --host"
        ) from None
    taken: list[socket.socket] = []
    seen: set[tuple[str, int]] = set()
    try:
        for family, kind, proto, _name, address in found:
            if (key := (str(address[0]).split("%")[0], int(address[1]))) in seen:
                continue
            seen.add(key)
            sock = socket.socket(family, kind, proto)
            taken.append(sock)
            if os.name != "nt":  # as waitress does; on Windows it would allow a second bind
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(1024)
    except OSError as exc:
        for sock in taken:
            sock.close()
        raise PortInUse(_why_not(host, port, exc)) from None
    return taken


def _why_not(host: str, port: int, exc: OSError) -> str:
    elsewhere = "start this one on another port: set OTKLIK_WEB_PORT or pass --port"
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        if _otklik_answers(host, port):
            return (
                f"another Otklik is already running on {where} (its console answers "
                f"there). Use that one, or stop it first (Ctrl-C in its terminal), or {elsewhere}"
            )
        return (
            f"another program is already listening on {where} (it may be another "
            f"Otklik still starting or stopping). Stop it, or {elsewhere}"
        )
    if exc.errno == errno.EACCES:
        return f"cannot listen on {where}: permission denied; {elsewhere}"
    return (
        f"cannot listen on {where}: {exc.strerror or exc}; check web.host "
        "(OTKLIK_WEB_HOST) or --host, and web.port (OTKLIK_WEB_PORT) or --port"
    )


def _otklik_answers(host: str, port: int) -> bool:
    """Whether what listens on ``host:port`` is an Otklik console (waitress says ``otklik``)."""
    wildcard = {"": "127.0.0.1", "*": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104
    probe = wildcard.get(host, host)  # a console on every interface answers on loopback
    connection = http.client.HTTPConnection(probe, port, timeout=2)
    try:
        connection.request("HEAD", "/login")
        return connection.getresponse().getheader("Server", "") == "otklik"
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def stop_on_sigterm() -> None:
    """Let SIGTERM (systemd, docker, kill) stop the console like Ctrl-C does."""

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def stop_requested() -> threading.Event:
    """An event that Ctrl-C and SIGTERM set, instead of raising at whatever point they arrive.

    The scheduler command waits on it, so a stop that comes while the scheduler starts is
    honoured once it has started, and the shutdown always releases the scheduler lock.
    """
    requested = threading.Event()

    def request(_signum: int, _frame: Any) -> None:
        requested.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, request)
        signal.signal(signal.SIGTERM, request)
    return requested


def serve(
    runtime: Runtime, host: str, port: int, sockets: list[socket.socket] | None = None
) -> None:
    """Serve the console with waitress (a production WSGI server, pure Python).

    ``sockets``: the listening sockets from :func:`reserve_port` (else waitress binds itself).
    """
    from waitress import serve as waitress_serve

    from web import create_app

    app = create_app(runtime)
    progress(f"console: http://{host}:{port}/")
    if sockets:
        waitress_serve(app, sockets=sockets, threads=8, ident="otklik")
    else:
        waitress_serve(app, host=host, port=port, threads=8, ident="otklik")


def run_all(
    runtime: Runtime, host: str, port: int, sockets: list[socket.socket] | None = None
) -> None:
    """Scheduler in a background thread, console in the foreground.

    When another scheduler works the same database, this process serves the console only
    and takes the scheduling over once that one stops (see ``workers.scheduler``).
    """
    from workers import scheduler

    def standby(busy: scheduler.SchedulerBusy) -> None:
        progress(
            f"otklik: the scheduler is not started here: {busy}. This process serves the "
            "console only, and takes the scheduling over when that scheduler stops."
        )

    jobs = scheduler.start(runtime, blocking=False, on_busy=standby)
    try:
        stop_on_sigterm()  # waitress stops on KeyboardInterrupt; the finally releases the lock
        # Load the model before serving so the first scoring run is not slowed by it.
        threading.Thread(target=lambda: runtime.scorer, name="load-scorer", daemon=True).start()
        serve(runtime, host, port, sockets)
    finally:
        jobs.shutdown(wait=True)  # waits for running jobs, then releases the scheduler lock
