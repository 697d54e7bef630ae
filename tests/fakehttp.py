"""What the fake Jira and the fake Statuspage share: a JSON server on a local port that records every request,
checks its credentials, answers after an optional latency, and plays failures queued by the test."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jsonschema import Draft7Validator

from standin.http import LocalServer

Answer = tuple[int, Any, dict[str, str]]


def problems(schema: dict[str, Any], value: object) -> list[str]:
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
                  for e in Draft7Validator(schema).iter_errors(value))  # fmt: skip


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int
    at: float  # time.monotonic() when it arrived


class Refused(Exception):
    """A request the real service would refuse: answered with `status` and `body`."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body


class JsonFake:
    """Subclasses define `authorization` (the one accepted Authorization header) and `route`."""

    authorization = ""
    latency = 0.0

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.refused: list[tuple[str, Any]] = []
        self._failures: list[tuple[int, dict[str, str]]] = []
        self._lock = threading.RLock()
        self._server: LocalServer | None = None

    # --- control ------------------------------------------------------------------------------------

    def start(self) -> JsonFake:
        self._server = LocalServer(self._handle, methods=("GET", "POST", "PUT", "PATCH"), keep_alive=True)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    def fail_next(self, status: int, times: int = 1, **headers: str) -> None:
        """The next `times` requests are answered `status` (with these headers, e.g. Retry_After="3")."""
        with self._lock:
            self._failures += [(status, {k.replace("_", "-"): v for k, v in headers.items()})] * times

    def calls(self, method: str | None = None, path_part: str = "") -> list[Request]:
        with self._lock:
            return [r for r in self.requests if (method is None or r.method == method) and path_part in r.path
                    and 200 <= r.status < 300]  # fmt: skip

    # --- serving ------------------------------------------------------------------------------------

    def route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        raise NotImplementedError

    def before(self, method: str, path: str, now: float) -> Answer | None:
        """A chance to refuse before anything else (Statuspage's rate limit)."""
        return None

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        arrived = time.monotonic()
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        status, body, extra = self._answer(method, parts.path, query, headers, raw, arrived)
        with self._lock:
            self.requests.append(Request(method, parts.path, query, headers, _json(raw), status, arrived))
        if self.latency:
            time.sleep(self.latency)
        data = b"" if body is None else json.dumps(body).encode()
        handler.send_response(status)
        if data:
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], raw: bytes,
                arrived: float) -> Answer:  # fmt: skip
        with self._lock:
            early = self.before(method, path, arrived)
            if early is not None:
                return early
            if self._failures:
                status, extra = self._failures.pop(0)
                return status, {"errorMessages": [f"failure {status} played by the test"]}, extra
        if headers.get("authorization") != self.authorization:
            return 401, {"errorMessages": ["authentication failed"]}, {}
        if raw and not headers.get("content-type", "").startswith("application/json"):
            return 415, {"errorMessages": ["Content-Type must be application/json"]}, {}
        body = _json(raw)
        if raw and body is None:
            return 400, {"errorMessages": ["body is not JSON"]}, {}
        try:
            with self._lock:
                return self.route(method, path, query, body)
        except Refused as refused:
            with self._lock:
                self.refused.append((f"{method} {path}", refused.body))
            return refused.status, refused.body, {}


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
