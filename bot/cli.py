"""`sitrep` command line (SPEC §3)."""

from __future__ import annotations

import argparse
import logging
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
    return _serve(settings, port=port)


def _serve(settings: Settings, *, port: int) -> int:
    """One sitrep process: the app, its scheduler, and the HTTP server (or Socket Mode) until SIGTERM or ^C.
    More capacity is more replicas of this process on PostgreSQL (SPEC §12), never more processes here."""
    import contextlib

    from bot.app import create_app
    from bot.server import Server, WsgiApp
    from handlers.flows import resume_declarations

    log = logging.getLogger("sitrep")
    sitrep = create_app(settings)
    _stop_on_sigterm()
    sitrep.executor.submit(resume_declarations, sitrep.deps)
    sitrep.scheduler.start()
    try:
        if settings.socket_mode:
            # Slack's requests come over the socket; the port serves only /healthz and /metrics.
            health = Server(WsgiApp(sitrep, slack_events=False), port=port, threads=2).start()
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
            Server(WsgiApp(sitrep), port=port).serve_forever()  # waitress closes itself on an interrupt
    except KeyboardInterrupt:
        pass
    finally:
        log.info("stopping: finishing the work in flight")
        sitrep.close()
    log.info("stopped")
    return 0


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
