"""`sitrep` command line (SPEC §3)."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from typing import TYPE_CHECKING

from bot.offline import add_offline_commands
from bot.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from bot.app import Sitrep
    from bot.server import ObservedSocketModeHandler


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        print(f"sitrep: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    from bot.observability import configure_logging

    settings = _settings()
    configure_logging(secrets=settings.secret_values())
    port = args.port or settings.port
    processes = args.processes or settings.processes
    if processes > 1:
        return _run_processes(settings, port=port, processes=processes)
    return _serve(settings, port=port)


def _serve(settings: Settings, *, port: int, sock: socket.socket | None = None, first: bool = True) -> int:
    """One sitrep process: the app, its scheduler, and the HTTP server (or Socket Mode) until SIGTERM or ^C.
    `sock`: a listening socket shared with sibling processes; `first`: this process resumes unfinished work."""
    import contextlib

    from bot.app import create_app
    from bot.server import Server, WsgiApp
    from handlers.flows import resume_declarations

    log = logging.getLogger("sitrep")
    sitrep = create_app(settings, migrate=sock is None)
    _stop_on_sigterm()
    if first:
        sitrep.executor.submit(resume_declarations, sitrep.deps)
    sitrep.scheduler.start()
    try:
        if settings.socket_mode:
            # Slack's requests come over the socket; the port serves only /healthz and /metrics.
            health = Server(WsgiApp(sitrep, slack_events=False), port=port, threads=2, sock=sock).start()
            log.info("Socket Mode; health and metrics on port %s", port)
            handler = socket_mode_handler(sitrep)
            try:
                handler.start()
            finally:
                with contextlib.suppress(Exception):  # slack_sdk's close can race its own reader thread
                    handler.close()
                health.stop()
        else:
            log.info("listening on port %s", port)
            Server(WsgiApp(sitrep), port=port, sock=sock).serve_forever()  # waitress closes itself on an interrupt
    except KeyboardInterrupt:
        pass
    finally:
        log.info("stopping: finishing the work in flight")
        sitrep.close()
    log.info("stopped")
    return 0


FAILED = 3  # the exit code of a process of several that failed with an error (not one killed by a signal)


def _run_processes(settings: Settings, *, port: int, processes: int) -> int:
    """SITREP_PROCESSES > 1: migrate once, open the port once, then fork that many sitrep processes that take
    connections from it in turn (each with its own threads, so that together they use several cores). A process
    that dies (a signal, say the kernel's OOM killer) is replaced; one that fails with an error (the database or
    Slack unreachable at start, say) stops them all, as `sitrep run` alone would stop. SIGTERM or ^C stops them
    all, each finishing its work in flight. /metrics shows the sums of their counters, whichever answers."""
    import contextlib
    import os
    import shutil
    import signal
    import tempfile
    import time

    from bot.observability import share_metrics_between_processes
    from core.db import make_engine, upgrade

    log = logging.getLogger("sitrep")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()  # no connection crosses the fork
    metrics = tempfile.mkdtemp(prefix="sitrep-metrics-")  # /metrics sums the processes' counters kept here
    share_metrics_between_processes(metrics)
    sock = socket.create_server(("0.0.0.0", port), backlog=1024)
    children: dict[int, int] = {}  # pid -> index
    stopping = False
    result = 0

    def start(index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the child: serve until told to stop, and never return into the parent's loop
            code = 1
            try:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                _stop_on_sigterm()  # at once: a stop may come while this process is still starting
                code = _serve(settings, port=port, sock=sock, first=index == 0)
            except KeyboardInterrupt:  # told to stop while it was still starting: stopped all the same
                log.info("stopped")
                code = 0
            except BaseException:  # noqa: BLE001 - logged; the parent stops the others
                log.exception("sitrep process %s failed", index)
                code = FAILED
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = index

    parent = os.getpid()

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        if os.getpid() != parent:  # a child not yet past its first line: stop as _stop_on_sigterm would
            raise KeyboardInterrupt
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(processes):
        start(index)
    log.info("%s processes listening on port %s", processes, port)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index = children.pop(pid, None)
        if index is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            log.info("sitrep process %s (pid %s) stopped with exit code %s", index, pid, code)
        elif code == FAILED:
            log.error("sitrep process %s (pid %s) failed; stopping the others", index, pid)
            result = 1
            stop(signal.SIGTERM, None)
        else:
            log.error("sitrep process %s (pid %s) exited with exit code %s; starting another", index, pid, code)
            time.sleep(1)
            if not stopping:
                start(index)
    sock.close()
    shutil.rmtree(metrics, ignore_errors=True)
    log.info("stopped")
    return result


def _stop_on_sigterm() -> None:
    """`docker stop` sends SIGTERM. Python ignores it as PID 1 of a container (the kernel gives PID 1 no default
    action) and would be killed 10 s later mid-work; stop the way Ctrl-C does instead, cleanly."""
    import signal

    def stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def socket_mode_handler(sitrep: Sitrep) -> ObservedSocketModeHandler:
    """Socket Mode through the app's one WebClient (apps.connections.open goes to SLACK_API_URL too), each
    envelope logged and counted like an HTTP request."""
    from bot.server import ObservedSocketModeHandler

    token = sitrep.settings.slack_app_token
    assert token is not None
    return ObservedSocketModeHandler(sitrep, token.get_secret_value())


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    return run_demo()


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    import os

    from core.db import make_engine, upgrade

    url = os.environ.get("DATABASE_URL") or "sqlite:///sitrep.db"
    upgrade(make_engine(url))
    print(f"database at {url.split('@')[-1]} is up to date")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import os

    from core.db import make_engine, session_factory
    from core.errors import NotFound
    from core.export import dump_export
    from core.incident_export import export_incident
    from core.store import incident_by_key

    engine = make_engine(os.environ.get("DATABASE_URL") or "sqlite:///sitrep.db")
    try:
        with session_factory(engine)() as session:
            incident = incident_by_key(session=session, key=args.incident)
            text = dump_export(export_incident(session=session, incident=incident, names=incident.people))
    except NotFound as error:
        print(f"sitrep: {error}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    if args.output and args.output != "-":
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sitrep", description="Slack incident-commander bot")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the bot (Socket Mode when SLACK_APP_TOKEN is set, else HTTP)")
    run.add_argument("--port", type=int, default=None, help="HTTP port (default: PORT or 3000)")
    run.add_argument("--processes", type=int, default=None, help="processes (default: SITREP_PROCESSES or 1)")
    run.set_defaults(func=cmd_run)
    demo = sub.add_parser("demo", help="play a scripted incident against a local stand-in for Slack (no tokens)")
    demo.set_defaults(func=cmd_demo)
    db = sub.add_parser("db", help="database tasks")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="TASK")
    db_sub.add_parser("upgrade", help="apply migrations").set_defaults(func=cmd_db_upgrade)
    export = sub.add_parser("export", help="an incident from the database as an export file")
    export.add_argument("incident", metavar="INCIDENT", help="its key, e.g. INC-7 (or just 7)")
    export.add_argument("--output", "-o", default=None, help="file to write (default: standard output)")
    export.set_defaults(func=cmd_export)
    add_offline_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
