"""The HTTP server: POST /slack/events (Bolt), GET /healthz, GET /metrics; waitress as the WSGI server."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from waitress import wasyncore
from waitress.server import create_server

from bot.app import Sitrep
from bot.hooks import Hooks
from bot.observability import Metrics, RequestLog, describe_payload
from bot.pagerduty_hook import PagerDutyHook
from core.db import is_up_to_date

log = logging.getLogger("sitrep.server")

StartResponse = Callable[..., Any]

MAX_BODY = 1 << 20  # bytes: a larger request is refused (413) before it is read (SPEC §15)
MAX_AGE = 5 * 60  # seconds: a signature older or newer than this is refused, as Slack's own libraries do
LOOKUP_WITHIN = 0.2  # seconds a request's log line waits for the database to name the incident
HEALTH_WITHIN = 2.0  # seconds /healthz waits for the database
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


def request_log(sitrep: Sitrep) -> RequestLog:
    """The log line and count of each request; its incident look-up waits at most LOOKUP_WITHIN."""
    deps = sitrep.deps
    return RequestLog(deps.metrics, lambda channel: deps.incident_id_of_channel(channel, within=LOOKUP_WITHIN))


class Refusal(Exception):
    """A request answered without reaching Bolt: its status and a short reason (for the log, not secret)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    about: dict[str, Any]  # what the request was about, for its log line (never the text people typed)


class _ThenLog(list[bytes]):
    """The response body; `close()`, which the WSGI server calls once the response is sent, writes the log line,
    so that the log line's look-ups never delay an ack."""

    def __init__(self, body: bytes, then: Callable[[], None]) -> None:
        super().__init__([body])
        self.then = then

    def close(self) -> None:
        self.then()


class WsgiApp:
    """POST /slack/events, GET /healthz and GET /metrics.

    Slack's requests are checked here before Bolt sees them (SPEC §15): size first (413), then the signature
    headers (401) before the body is read, then the signature of the body (401); only then is the body decoded
    and parsed, once, and handed to Bolt already parsed (Bolt's own form parser takes any form containing the
    word "payload" for an interaction). A signed body of an unexpected shape gets a 200 and a log line."""

    def __init__(self, sitrep: Sitrep, *, slack_events: bool = True) -> None:
        """`slack_events=False` serves only /healthz and /metrics (Socket Mode: Slack is not verified here)."""
        self.sitrep = sitrep
        self.slack_events = slack_events
        secret = sitrep.settings.slack_signing_secret
        self.secret = secret.get_secret_value().encode() if secret else None
        self.metrics: Metrics = sitrep.deps.metrics
        self.requests = request_log(sitrep)
        self._healthy_until = 0.0
        # Other systems' endpoints, served in Socket Mode too: (method, path) -> WSGI app.
        tokened = Hooks(sitrep)  # Alertmanager and the API, with bearer tokens
        self.hooks: dict[tuple[str, str], Callable[[dict[str, Any], StartResponse], Iterable[bytes]]] = {
            **{("POST", path): tokened for path in tokened.routes},
            ("POST", "/hooks/pagerduty"): PagerDutyHook(sitrep),  # signed by PagerDuty
        }

    def healthy(self) -> bool:
        """The database is reachable and migrated; asked at most every 5 s, and a database that does not answer
        within HEALTH_WITHIN is not healthy."""
        if time.monotonic() < self._healthy_until:
            return True
        engine = self.sitrep.engine
        try:
            ok = self.sitrep.deps.within.call("healthz", lambda: is_up_to_date(engine), HEALTH_WITHIN)
        except Exception:  # noqa: BLE001 - any database failure is "not healthy"
            log.warning("health check failed", exc_info=True)
            return False
        if ok is None:
            log.warning("health check: the database did not answer within %s s", HEALTH_WITHIN)
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
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    def slack_request(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer one Slack request; its log line and count follow once the answer is sent."""
        started = time.perf_counter()
        answer = self.answer(environ)
        seconds = time.perf_counter() - started
        start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}", answer.headers)
        return _ThenLog(
            answer.body, lambda: self.requests.record(answer.about, answer.status, seconds, transport="http")
        )

    def answer(self, environ: dict[str, Any]) -> Answer:
        try:
            body = self.verified_body(environ)
        except Refusal as refusal:
            text = f"{HTTPStatus(refusal.status).phrase}\n".encode()
            return Answer(
                refusal.status, [("Content-Type", "text/plain")], text, {"type": "unknown", "reason": str(refusal)}
            )
        try:
            payload = parse(body, environ.get("CONTENT_TYPE", ""))
        except ValueError as error:
            log.warning("a signed request could not be read: %s", error)
            return Answer(200, [], b"", {"type": "unreadable"})
        about = describe_payload(payload)
        # Bolt takes a parsed body only in its "socket_mode" mode, whose one other effect is to skip its own
        # signature check (done above, on the bytes): slack_bolt 1.30, BoltRequest and to_copyable.
        request = BoltRequest(body=payload, query=environ.get("QUERY_STRING", ""), headers=headers_of(environ),
                              mode="socket_mode")  # fmt: skip
        try:
            response = self.sitrep.bolt.dispatch(request)
        except Exception:  # noqa: BLE001 - Bolt passes listener errors to the error hook; this is a last resort
            log.exception("a signed request failed in Bolt", extra={k: about.get(k) for k in ("type", "channel")})
            return Answer(200, [], b"", about)
        headers = [(name, value) for name, values in response.headers.items() for value in values]
        return Answer(response.status, headers, (response.body or "").encode("utf-8"), about)

    def verified_body(self, environ: dict[str, Any]) -> bytes:
        """The body of a request signed with the signing secret (v0 scheme), read only once its size and its
        signature headers are acceptable; else Refusal."""
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise Refusal(400, "unreadable Content-Length") from None
        if size > MAX_BODY:
            raise Refusal(413, "body too large")
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP") or ""
        signature = environ.get("HTTP_X_SLACK_SIGNATURE") or ""
        if self.secret is None or not _TIMESTAMP.fullmatch(timestamp) or not _SIGNATURE.fullmatch(signature):
            raise Refusal(401, "missing or malformed signature headers")
        if abs(time.time() - int(timestamp)) > MAX_AGE:
            raise Refusal(401, "stale signature")
        body: bytes = environ["wsgi.input"].read(size) if size else b""
        expected = "v0=" + hmac.new(self.secret, b"v0:%s:%s" % (timestamp.encode(), body), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise Refusal(401, "bad signature")
        return body


def parse(body: bytes, content_type: str) -> dict[str, Any]:
    """A Slack request's payload: JSON (events), a form with a `payload` field holding JSON (interactions), or a
    form of fields (slash commands). ValueError if it is none of those, or not UTF-8."""
    text = body.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if content_type.split(";")[0].strip().lower() == "application/json":
        data: Any = json.loads(text)
    else:
        form = dict(parse_qsl(text, keep_blank_values=True))
        data = json.loads(form["payload"]) if "payload" in form else form
    if not isinstance(data, dict):
        raise ValueError(f"the payload is a {type(data).__name__}, not an object")
    return data


def headers_of(environ: dict[str, Any]) -> dict[str, str]:
    """The request's headers as Bolt reads them (lower case): Slack's retry headers are what listeners look at."""
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    headers["content-type"] = environ.get("CONTENT_TYPE", "")
    return headers


class ObservedSocketModeHandler(SocketModeHandler):
    """Bolt's built-in Socket Mode handler, logging and counting each envelope as WsgiApp does a request.

    `handle` is the handler's documented override point; it does what Bolt's does (slack_bolt 1.30,
    `adapter.socket_mode.internals`), with public API only: the envelope to Bolt, Bolt's answer to Slack."""

    def __init__(self, sitrep: Sitrep, app_token: str) -> None:
        super().__init__(sitrep.bolt, app_token=app_token, web_client=sitrep.deps.client)
        self.requests = request_log(sitrep)

    def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        started = time.perf_counter()
        status = 500
        try:
            retry = {"x-slack-retry-num": str(req.retry_attempt)} if req.retry_attempt is not None else {}
            reason = {"x-slack-retry-reason": req.retry_reason} if req.retry_reason is not None else {}
            response = self.app.dispatch(BoltRequest(mode="socket_mode", body=req.payload, headers=retry | reason))
            status = response.status
            if status == 200:
                client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id,
                                                                    payload=ack_payload(response)))  # fmt: skip
            else:
                log.info("Bolt did not acknowledge an envelope", extra={"status": status})
        finally:
            self.requests.record(describe_payload(req.payload), status, time.perf_counter() - started,
                                 transport="socket_mode")  # fmt: skip


def ack_payload(response: BoltResponse) -> dict[str, Any] | None:
    """What an ack carries over Socket Mode: Bolt's JSON answer, its text as {"text": ...}, or nothing."""
    if not response.body:
        return None
    if response.headers.get("content-type", [""])[0].startswith("application/json"):
        return dict(json.loads(response.body))
    return {"text": response.body}


# waitress's defaults let 100 idle connections stop it accepting any other (connection_limit) for two minutes
# (channel_timeout), and take bodies up to 1 GB. Connections that are idle, or that sent part of a request
# and stopped, are closed after CHANNEL_TIMEOUT; a body over MAX_BODY is refused (413) from its Content-Length,
# before it is received. poll() rather than select(), which cannot watch descriptors numbered 1024 or more.
CONNECTION_LIMIT = 1000
CHANNEL_TIMEOUT = 15  # seconds
LIMITS: dict[str, Any] = {
    "connection_limit": CONNECTION_LIMIT,
    "channel_timeout": CHANNEL_TIMEOUT,
    "cleanup_interval": 5,
    "max_request_body_size": MAX_BODY + 1,  # waitress refuses a body of this size or more
    "asyncore_use_poll": True,
}


class _Wake(wasyncore.dispatcher):
    """One end of a socket pair in the server's loop: a byte written to the other end runs `on_wake` in the loop's
    thread. The server is stopped through this, not through waitress's trigger: `pull_trigger(thunk)` can run the
    thunk (which closes the trigger's pipe) before it writes its own byte to that pipe, and the write then fails
    with "Bad file descriptor" or reaches whatever file took the pipe's number meanwhile."""

    def __init__(self, sock: socket.socket, map: dict[int, Any], on_wake: Callable[[], None]) -> None:  # noqa: A002
        super().__init__(sock, map=map)
        self.on_wake = on_wake

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def handle_read(self) -> None:
        self.recv(64)
        self.on_wake()


class Server:
    """A waitress server that can run in the foreground (`sitrep run`) or in a thread (tests, benchmarks).

    Checked against waitress 3.0.2: `create_server(app, map=...)` (the loop serves the dispatchers of that map
    and ends when it is empty), `.run()`, `.close()`, `.task_dispatcher.shutdown()`, `.effective_port` and
    `wasyncore.dispatcher`/`close_all`, all of them used by waitress's own `MultiSocketServer`;
    tests/test_hardening_http.py fails if one of them moves."""

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
        self._map: dict[int, Any] = {}
        where: dict[str, Any] = {"sockets": [sock]} if sock is not None else {"host": host, "port": port}
        self._server: Any = create_server(wsgi, map=self._map, threads=threads, ident="sitrep", **LIMITS, **where)
        self._wake_here, wake_loop = socket.socketpair()
        _Wake(wake_loop, self._map, self._close_in_loop)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def serve_forever(self) -> None:
        self._server.run()

    def start(self) -> Server:
        self._thread = threading.Thread(target=self._server.run, name="sitrep-http", daemon=True)
        self._thread.start()
        return self

    def _close_in_loop(self) -> None:
        """In the loop's thread: close the listening socket, every connection and the wake-up pair; the loop ends
        when its map is empty."""
        wasyncore.close_all(self._map)

    def stop(self) -> None:
        """Let the running requests finish (up to 5 s), then close every socket from inside the loop's thread
        (closing them from here races its select())."""
        self._server.task_dispatcher.shutdown()  # no worker thread pulls waitress's trigger after this
        if self._thread is not None and self._thread.is_alive():
            with contextlib.suppress(OSError):  # the loop closed its end already: it is ending by itself
                self._wake_here.send(b"x")
            self._thread.join(timeout=5)
        if self._thread is None or not self._thread.is_alive():
            self._close_in_loop()  # no loop runs (never started, or ended): nothing races this thread
        else:
            log.warning("the HTTP server's loop did not stop within 5 s")
        self._wake_here.close()
