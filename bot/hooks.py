"""HTTP endpoints for other systems (SPEC §13.3): POST /hooks/alertmanager and POST /api/incidents.

Each is off (404) until its bearer token is set. The order of checks: token (401), size (413, from Content-Length,
before reading: never more than 1 MB is read), body (400 naming the field), then the work. Tokens are compared in
constant time and never logged; each request logs one line and counts in sitrep_slack_requests/sitrep_ack_seconds
under its own type."""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import SecretStr

from bot.app import Sitrep
from core.alerts import parse_notification
from core.api import check_key, parse_declare_request
from core.errors import BadPayload
from handlers import alerts, api

log = logging.getLogger("sitrep.hooks")

MAX_BODY = 1024 * 1024
StartResponse = Callable[..., Any]
Answer = tuple[int, dict[str, Any]]
REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           413: "Content Too Large", 500: "Internal Server Error"}  # fmt: skip


class HttpError(Exception):
    def __init__(self, status: int, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status, self.body = status, {"error": error, **extra}


class Hooks:
    """The WSGI side of the endpoints: `handles(path, method)` says which requests are theirs."""

    def __init__(self, sitrep: Sitrep) -> None:
        self.sitrep = sitrep
        self.deps = sitrep.deps
        settings = sitrep.settings
        self.routes: dict[str, tuple[str, SecretStr | None, Callable[[bytes, dict[str, Any]], Answer]]] = {
            "/hooks/alertmanager": ("alertmanager", settings.webhook_token, self.alertmanager),
            "/api/incidents": ("api_incidents", settings.api_token, self.incidents),
        }

    def handles(self, path: str, method: str) -> bool:
        return method == "POST" and path in self.routes

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        kind, token, work = self.routes[environ.get("PATH_INFO", "")]
        about: dict[str, Any] = {}
        try:
            if token is None:
                raise HttpError(404, "not found: set the token of this endpoint to turn it on")
            _authorize(environ, token)
            body = _read_body(environ)
            status, answer = work(body, environ)
            about = {k: v for k, v in answer.items() if k in ("key", "group")}
        except HttpError as error:
            status, answer = error.status, error.body
        except BadPayload as error:
            status, answer = 400, {"error": str(error), "field": error.field}
        except Exception:  # noqa: BLE001 - ours: logged with a reference the caller gets too
            ref = uuid.uuid4().hex[:8]
            log.exception("%s failed (ref %s)", kind, ref, extra={"ref": ref})
            status, answer = 500, {"error": "internal error, logged", "ref": ref}
        seconds = time.perf_counter() - started
        self.deps.metrics.request(kind, "ok" if status < 400 else f"http_{status}", seconds)
        log.info("%s %s", kind, status, extra={"type": kind, "status": status, "ms": round(seconds * 1000, 1), **about})
        payload = json.dumps(answer).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        if status == 401:
            headers.append(("WWW-Authenticate", "Bearer"))
        start_response(f"{status} {REASONS.get(status, '')}".strip(), headers)
        return [payload]

    def alertmanager(self, body: bytes, environ: dict[str, Any]) -> Answer:
        notification = parse_notification(_json(body))
        recorded = alerts.receive(self.deps, notification)
        return 200, {"status": "stored", "group": recorded.group_id}

    def incidents(self, body: bytes, environ: dict[str, Any]) -> Answer:
        request = parse_declare_request(_json(body))
        key = environ.get("HTTP_IDEMPOTENCY_KEY")
        declared = api.declare(self.deps, request, key=check_key(key) if key is not None else None)
        return (201 if declared.created else 200), declared.answer(self.deps.team_url)


def _authorize(environ: dict[str, Any], token: SecretStr) -> None:
    scheme, _, given = (environ.get("HTTP_AUTHORIZATION") or "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise HttpError(401, "a valid Authorization: Bearer token is required")


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, refused (413) when Content-Length says it is over 1 MB; never reads more than that."""
    length = environ.get("CONTENT_LENGTH") or ""
    if length:
        if not length.isdigit():
            raise HttpError(400, "bad Content-Length")
        if int(length) > MAX_BODY:
            raise HttpError(413, f"the body is over {MAX_BODY} bytes")
        return bytes(environ["wsgi.input"].read(int(length)))
    body = environ["wsgi.input"].read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise HttpError(413, f"the body is over {MAX_BODY} bytes")
    return bytes(body)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise BadPayload("body", "is not JSON") from None
