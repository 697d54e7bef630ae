"""The HTTP server: POST /slack/events (Bolt), GET /healthz, GET /metrics; waitress as the WSGI server."""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.socket_mode.internals import run_bolt_app, send_response
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from waitress import wasyncore
from waitress.server import create_server

from bot.app import Sitrep
from bot.observability import Metrics, RequestLog, describe, describe_payload
from bot.pagerduty_hook import PagerDutyHook
from core.db import is_up_to_date

log = logging.getLogger("sitrep.server")

StartResponse = Callable[..., Any]


class WsgiApp:
    def __init__(self, sitrep: Sitrep, *, slack_events: bool = True) -> None:
        """`slack_events=False` serves only /healthz and /metrics (Socket Mode: Slack is not verified here)."""
        self.sitrep = sitrep
        self.slack_events = slack_events
        self.slack = SlackRequestHandler(sitrep.bolt, path="/slack/events")
        self.metrics: Metrics = sitrep.deps.metrics
        self.requests = RequestLog(self.metrics, sitrep.deps.incident_id_of_channel)
        self._healthy_until = 0.0
        # Webhooks of other services, served in Socket Mode too: (method, path) -> WSGI app.
        self.hooks: dict[tuple[str, str], Callable[[dict[str, Any], StartResponse], Iterable[bytes]]] = {
            ("POST", "/hooks/pagerduty"): PagerDutyHook(sitrep),
        }

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
            return [self.metrics.exposition()]
        hook = self.hooks.get((method, path))
        if hook is not None:
            return hook(environ, start_response)
        if not self.slack_events:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: this process takes Slack's requests over Socket Mode\n"]
        if path == "/slack/events" and method == "POST":
            return self.slack_request(environ, start_response)
        return self.slack(environ, start_response)

    def slack_request(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer one Slack request through Bolt, then log one line and count it."""
        started = time.perf_counter()
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size) if size else b""
        environ["wsgi.input"] = io.BytesIO(body)
        status: list[str] = []

        def remember(code: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            status.append(code)
            return start_response(code, headers, *args)

        try:
            answer = list(self.slack(environ, remember))
        finally:
            code = int(status[0].split()[0]) if status else 500
            about = describe(body, environ.get("CONTENT_TYPE", ""))
            self.requests.record(about, code, time.perf_counter() - started, transport="http")
        return answer


class ObservedSocketModeHandler(SocketModeHandler):
    """Bolt's built-in Socket Mode handler, logging and counting each envelope as WsgiApp does a request."""

    def __init__(self, sitrep: Sitrep, app_token: str) -> None:
        super().__init__(sitrep.bolt, app_token=app_token, web_client=sitrep.deps.client)
        self.requests = RequestLog(sitrep.deps.metrics, sitrep.deps.incident_id_of_channel)

    def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        started = time.perf_counter()
        status = 500
        try:
            response = run_bolt_app(self.app, req)
            status = response.status
            send_response(client, req, response, started)
        finally:
            self.requests.record(describe_payload(req.payload), status, time.perf_counter() - started,
                                 transport="socket_mode")  # fmt: skip


class Server:
    """A waitress server that can run in the foreground (`sitrep run`) or in a thread (tests, benchmarks)."""

    def __init__(
        self,
        wsgi: WsgiApp,
        *,
        host: str = "0.0.0.0",
        port: int = 3000,
        threads: int = 16,
        sock: socket.socket | None = None,
    ) -> None:
        """`sock`: a listening socket to take connections from (shared by several processes), else host:port."""
        if sock is not None:
            self._server = create_server(wsgi, sockets=[sock], threads=threads, ident="sitrep")
        else:
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
        if self._thread.is_alive() and not server.trigger._closed:
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
            self._thread.join(timeout=5)
        else:
            # The server closed itself (waitress closes its listening socket and the trigger together when that
            # socket fails): nothing can wake the loop, and its pipe's numbers may belong to new files by now.
            log.warning("the HTTP server had stopped by itself", extra={"loop_running": self._thread.is_alive()})
            wasyncore.close_all(server._map)
        server.task_dispatcher.shutdown()
