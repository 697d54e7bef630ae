"""`sitrep` command line (SPEC §3)."""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from bot.offline import add_offline_commands
from bot.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from slack_sdk import WebClient
    from sqlalchemy.engine import Engine

    from bot.app import Sitrep
    from bot.server import ObservedSocketModeHandler, WsgiApp

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        print(f"sitrep: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    from bot.observability import configure_logging

    settings = _settings()
    configure_logging(secrets=settings.secret_values(), level=settings.log_level)
    return _serve(settings, port=args.port or settings.port)


class Starting:
    """What the port answers: while the process waits for the database and Slack, 503 on /healthz (and every
    other path) saying what it waits for; once the app is built, the app."""

    def __init__(self) -> None:
        self.waiting_for = "the database"
        self.app: WsgiApp | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.app is not None:
            return self.app(environ, start_response)
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [f"starting: waiting for {self.waiting_for}\n".encode()]


# auth.test errors that no retry mends: the token itself is refused.
REFUSED_TOKEN = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
                 "not_allowed_token_type", "no_permission", "missing_scope"}  # fmt: skip
BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # seconds between attempts; the last one repeats


def _until_it_answers(what: str, attempt: Callable[[], T], *, gives_up: Callable[[Exception], str | None]) -> T:
    """`attempt()` again and again, waiting longer each time (BACKOFF), one log line per failure, until it
    answers. `gives_up(error)`: a reason not to try again (one error line, exit code 2), or None."""
    log = logging.getLogger("sitrep")
    for number in itertools.count(1):
        try:
            return attempt()
        except Exception as error:  # noqa: BLE001 - each failure is one line; the ones that no retry mends stop
            reason = _one_line(error)
            fatal = gives_up(error)
            if fatal is not None:
                log.error("%s", fatal, extra={"attempt": number, "error": reason})
                raise SystemExit(2) from None
            wait = BACKOFF[min(number, len(BACKOFF)) - 1]
            log.warning("%s unreachable (%s); trying again in %.0f s", what, reason, wait,
                        extra={"attempt": number})  # fmt: skip
            time.sleep(wait)
    raise AssertionError("unreachable")


def _one_line(error: BaseException) -> str:
    """An error as one line: the driver's or library's own words, without SQL or links to documentation."""
    from slack_sdk.errors import SlackApiError
    from sqlalchemy.exc import DBAPIError

    if isinstance(error, SlackApiError):
        return str(error.response.get("error") or error.response.status_code)
    if isinstance(error, DBAPIError) and error.orig is not None:
        error = error.orig
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _refused_database(error: Exception) -> str | None:
    """Only a database that cannot be reached (or is starting) is waited for; any other error stops the start."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    if isinstance(error, OperationalError | InterfaceError):
        return None
    raise error


def _refused_token(error: Exception) -> str | None:
    from slack_sdk.errors import SlackApiError

    if isinstance(error, SlackApiError) and error.response.get("error") in REFUSED_TOKEN:
        return (f"Slack refused SLACK_BOT_TOKEN ({error.response.get('error')}): "
                "set the app's Bot User OAuth Token (xoxb-…) of this workspace")  # fmt: skip
    return None


def _connect(settings: Settings, front: Starting) -> Sitrep:
    """The database migrated and the bot's identity from Slack, each waited for while unreachable; then the app."""
    from bot.app import create_app
    from bot.slack_client import make_client
    from core.db import make_engine, upgrade

    log = logging.getLogger("sitrep")
    engine = make_engine(settings.database_url)
    where = _shown(settings.database_url)
    _until_it_answers(f"the database at {where}", lambda: upgrade(engine), gives_up=_refused_database)
    log.info("database at %s is up to date", where)
    front.waiting_for = f"Slack at {settings.slack_api_url}"
    client = make_client(settings)
    identity = _until_it_answers(f"Slack at {settings.slack_api_url}", lambda: _auth_test(client),
                                 gives_up=_refused_token)  # fmt: skip
    return create_app(settings, engine=engine, client=client, identity=identity, migrate=False)


def _auth_test(client: WebClient) -> dict[str, Any]:
    """Who the bot is. slack_sdk logs an error line of its own for each failed call: the wait's line says it all."""
    slack_log = logging.getLogger("sitrep.slack")
    level = slack_log.level
    slack_log.setLevel(logging.CRITICAL)
    try:
        return dict(client.auth_test().data)  # type: ignore[arg-type]
    finally:
        slack_log.setLevel(level)


def _serve(settings: Settings, *, port: int) -> int:
    """One sitrep process: the app, its scheduler, and the HTTP server (or Socket Mode) until SIGTERM or ^C.
    More capacity is more replicas of this process on PostgreSQL (SPEC §12), never more processes here.
    The port answers from the start: /healthz says 503 until the database and Slack have answered."""
    import contextlib

    from bot.server import Server, WsgiApp
    from handlers.flows import resume_declarations

    log = logging.getLogger("sitrep")
    _stop_on_sigterm()
    front = Starting()
    # In Socket Mode Slack's requests come over the socket; the port serves only /healthz and /metrics.
    server = Server(front, port=port, threads=2 if settings.socket_mode else 16).start()  # type: ignore[arg-type]
    log.info("listening on port %s", port)
    sitrep: Sitrep | None = None
    try:
        sitrep = _connect(settings, front)
        front.app = WsgiApp(sitrep, slack_events=not settings.socket_mode)
        sitrep.executor.submit(resume_declarations, sitrep.deps)
        sitrep.scheduler.start()
        if settings.socket_mode:
            log.info("Socket Mode; health and metrics on port %s", port)
            handler = socket_mode_handler(sitrep)
            try:
                handler.start()
            finally:
                with contextlib.suppress(Exception):  # slack_sdk's close can race its own reader thread
                    handler.close()
        else:
            log.info("ready: Slack's requests on port %s at /slack/events", port)
            while True:
                time.sleep(3600)  # until SIGTERM or ^C
    except KeyboardInterrupt:
        pass
    finally:
        log.info("stopping: finishing the work in flight")
        server.stop()
        if sitrep is not None:
            sitrep.close()
    log.info("stopped")
    return 0


def _shown(url: str) -> str:
    """A database URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


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
    from pathlib import Path

    from bot.demo import run_demo

    if args.keep and Path(args.keep).exists():
        print(f"sitrep: {args.keep} exists already: --keep names a new file for the demo's database", file=sys.stderr)
        return 2
    return run_demo(keep=args.keep)


def _database_url() -> str:
    """DATABASE_URL (default sqlite:///sitrep.db) for the commands that need no Slack settings, checked as
    `sitrep run` checks it."""
    import os

    from bot.settings import check_database_url

    url = os.environ.get("DATABASE_URL") or "sqlite:///sitrep.db"
    try:
        return check_database_url(url)
    except ValueError as error:
        print(f"sitrep: DATABASE_URL: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from core.db import make_engine, upgrade

    url = _database_url()
    engine = make_engine(url)
    try:
        upgrade(engine)
    except Exception as error:  # noqa: BLE001 - one line, not a traceback
        print(f"sitrep: the database at {_shown(url)} could not be upgraded: {_one_line(error)}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"database at {_shown(url)} is up to date")
    return 0


def _existing_database(url: str) -> Engine:
    """The engine of a sitrep database that exists, or one line on standard error and exit code 2; creates nothing
    (a SQLite file that is not there stays not there)."""
    from pathlib import Path

    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.engine import make_url

    from core.db import make_engine, normalise_url

    parsed = make_url(normalise_url(url))
    on_disk = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
    if on_disk and not Path(str(parsed.database)).is_file():
        print(f"sitrep: there is no database at {_shown(url)} (DATABASE_URL; `sitrep run` or `sitrep db upgrade` "
              "creates one)", file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            migrated = MigrationContext.configure(connection).get_current_heads()
    except Exception as error:  # noqa: BLE001 - one line, not a traceback
        engine.dispose()
        print(f"sitrep: the database at {_shown(url)} is unreachable: {_one_line(error)}", file=sys.stderr)
        raise SystemExit(2) from None
    if not migrated:
        engine.dispose()
        print(f"sitrep: there is no sitrep database at {_shown(url)} (DATABASE_URL): no sitrep tables there",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    return engine


def cmd_export(args: argparse.Namespace) -> int:
    from core.db import session_factory
    from core.errors import NotFound
    from core.export import dump_export
    from core.incident_export import export_incident
    from core.store import incident_by_key

    engine = _existing_database(_database_url())
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
    demo = sub.add_parser("demo", help="play a scripted incident against local stand-ins for Slack, Alertmanager "
                                       "and PagerDuty (no tokens)")
    demo.add_argument("--keep", metavar="FILE", default=None,
                      help="leave the demo's SQLite database in FILE (new), for `sitrep export` and `sitrep pir`")
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
