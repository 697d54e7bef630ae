"""The HTTP server: POST /slack/events (Bolt), GET /healthz, GET /metrics; waitress as the WSGI server."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from slack_bolt.adapter.wsgi import SlackRequestHandler
from waitress import wasyncore
from waitress.server import create_server

from bot.app import Sitrep
from core.db import is_up_to_date

log = logging.getLogger("sitrep.server")

StartResponse = Callable[..., Any]


class WsgiApp:
    def __init__(self, sitrep: Sitrep, registry: CollectorRegistry | None = None) -> None:
        self.sitrep = sitrep
        self.slack = SlackRequestHandler(sitrep.bolt, path="/slack/events")
        self.registry = registry or CollectorRegistry()
        self._healthy_until = 0.0

    def healthy(self) -> bool:
        if time.monotonic() < self._healthy_until:
            return True
        try:
            ok = is_up_to_date(self.sitrep.engine)
        except Exception:  # noqa: BLE001 - any database failure is "not healthy"
            log.warning("health check failed", exc_info=True)
            return False
        if ok:
            self._healthy_until = time.monotonic() + 5
        return ok

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/healthz" and method == "GET":
            ok = self.healthy()
            body = b"ok\n" if ok else b"database unreachable or not migrated\n"
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [body]
        if path == "/metrics" and method == "GET":
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [generate_latest(self.registry)]
        return self.slack(environ, start_response)


class Server:
    """A waitress server that can run in the foreground (`sitrep run`) or in a thread (tests, benchmarks)."""

    def __init__(self, wsgi: WsgiApp, *, host: str = "0.0.0.0", port: int = 3000, threads: int = 16) -> None:
        self._server = create_server(wsgi, host=host, port=port, threads=threads, ident="sitrep")
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.effective_port)  # type: ignore[union-attr]

    def serve_forever(self) -> None:
        self._server.run()

    def start(self) -> Server:
        self._thread = threading.Thread(target=self._server.run, name="sitrep-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every socket from inside the loop thread (closing them from here races its select())."""
        server: Any = self._server
        if self._thread is None:
            server.close()
            return
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        self._thread.join(timeout=5)
        server.task_dispatcher.shutdown()
