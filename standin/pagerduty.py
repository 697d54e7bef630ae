"""A stand-in for PagerDuty (Events API v2 and the REST reads sitrep makes) on a local port, for the tests and
`sitrep demo`.

Every request is checked against PagerDuty's published OpenAPI descriptions (standin/pagerduty_api, see its
NOTICE) with jsonschema, when it is installed (the test extra; the tests require it, see tests/fakepagerduty.py):
an event the real API would refuse gets the real API's 400, and the caller sees it in `refused`. Without
jsonschema (a plain `pip install .` running the demo) only PagerDuty's documented rules are checked (a trigger
needs a payload, resolve a dedup_key, the routing key must be the service's). Failures can be queued
(`fail_next`) to play a PagerDuty that is down or rate-limiting."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from standin.http import LocalServer

try:
    from jsonschema import Draft4Validator
except ImportError:  # the demo from a plain install: the documented rules only
    Draft4Validator = None

SPECS = Path(__file__).parent / "pagerduty_api"
SCHEMA_CHECKS = Draft4Validator is not None  # requests are checked against PagerDuty's OpenAPI
ROUTING_KEY = "R0UTINGKEY0123456789abcdef012345"
API_TOKEN = "u+PDTOKEN-secret-token-xyz"


# The REST subset was cut without `Tag`, whose first part every `Reference` (and so every user, schedule and policy
# reference) is built on: the common fields of PagerDuty's objects. It is put back here, not in the copied file.
_TAG = {"allOf": [{"type": "object", "properties": {
    name: {"type": "string"} for name in ("id", "summary", "type", "self", "html_url")}}]}  # fmt: skip


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema says it (a null is allowed too)."""
    if isinstance(node, dict):
        node = {key: _nullable(value) for key, value in node.items()}
        if node.pop("nullable", False) is True:
            node = {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_nullable(value) for value in node]
    return node


@cache
def spec(name: str) -> dict[str, Any]:
    document: dict[str, Any] = _nullable(json.loads((SPECS / name).read_text()))
    document["components"].setdefault("schemas", {}).setdefault("Tag", _TAG)
    return document


def validator(name: str, schema: dict[str, Any]) -> Any:
    """A validator (jsonschema's Draft4Validator) of `schema` whose `#/components/...` references resolve in the
    spec they come from."""
    assert Draft4Validator is not None, "jsonschema is not installed"
    return Draft4Validator({**schema, "components": spec(name)["components"]})


def problems(name: str, schema: dict[str, Any], value: object) -> list[str]:
    """What `schema` refuses in `value` (nothing to say without jsonschema)."""
    if not SCHEMA_CHECKS:
        return []
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
                  for e in validator(name, schema).iter_errors(value))  # fmt: skip


def event_problems(body: object) -> list[str]:
    """What PagerDuty's Events API v2 would refuse in this body: its schema, and its documented rules (a trigger
    needs a payload; resolve and acknowledge need a dedup_key; a summary is at most 1024 characters)."""
    operation = spec("events-v2.openapiv3.json")["paths"]["/enqueue"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    found = problems("events-v2.openapiv3.json", schema, body)
    if isinstance(body, dict):
        if body.get("event_action") == "trigger" and "payload" not in body:
            found.append("payload: required for a trigger")
        if body.get("event_action") in ("resolve", "acknowledge") and not body.get("dedup_key"):
            found.append("dedup_key: required for resolve and acknowledge")
        summary = (body.get("payload") or {}).get("summary") if isinstance(body.get("payload"), dict) else None
        if isinstance(summary, str) and len(summary) > 1024:
            found.append("payload.summary: longer than 1024 characters")
    return found


def rest_parameter_problems(path: str, query: dict[str, list[str]]) -> list[str]:
    """Query parameters that GET `path` does not declare, or whose values its schema refuses."""
    document = spec("rest-subset.openapiv3.json")
    declared = {}
    for parameter in document["paths"][path]["get"].get("parameters", []):
        if "$ref" in parameter:
            parameter = document["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[1]]
        if parameter.get("in") == "query":
            declared[parameter["name"]] = parameter["schema"]
    found = []
    for name, values in query.items():
        if name not in declared:
            found.append(f"{name}: not a parameter of GET {path}")
            continue
        schema = declared[name]
        item = schema.get("items", schema) if schema.get("type") == "array" else schema
        for value in values:
            found += problems("rest-subset.openapiv3.json", item, _typed(value, item.get("type")))
    return found


def _typed(value: str, kind: str | None) -> object:
    """A query-string value as the type its schema names (what PagerDuty's server parses it as)."""
    if kind == "integer" and value.lstrip("-").isdigit():
        return int(value)
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


def response_problems(path: str, body: object) -> list[str]:
    document = spec("rest-subset.openapiv3.json")
    schema = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    return problems("rest-subset.openapiv3.json", schema, body)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int


@dataclass
class FakePagerDuty:
    routing_key: str = ROUTING_KEY
    api_token: str = API_TOKEN
    requests: list[Request] = field(default_factory=list)
    refused: list[tuple[Any, list[str]]] = field(default_factory=list)
    oncalls: list[dict[str, Any]] = field(default_factory=list)
    incidents: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    _failures: list[tuple[str, int, dict[str, str]]] = field(default_factory=list)
    down: bool = False  # every request answered 503 while set

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: LocalServer | None = None

    # --- control ------------------------------------------------------------------------------------

    def start(self) -> FakePagerDuty:
        self._server = LocalServer(self._handle)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return self._server.url

    @property
    def events_url(self) -> str:
        return f"{self.url}/v2/enqueue"

    def fail_next(self, status: int, times: int = 1, *, path: str = "/v2/enqueue", **headers: str) -> None:
        """Answer the next `times` requests to `path` with `status` (and these headers)."""
        with self._lock:
            self._failures += [(path, status, headers)] * times

    def events(self, action: str | None = None, *, accepted: bool = True) -> list[dict[str, Any]]:
        """The Events v2 bodies received (those answered 202 unless accepted=False), oldest first."""
        with self._lock:
            return [r.body for r in self.requests if r.path == "/v2/enqueue" and (r.status == 202 or not accepted)
                    and (action is None or r.body.get("event_action") == action)]  # fmt: skip

    # --- serving ------------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        size = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(size) if size else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        status, headers, answer = self._answer(method, parts.path, parse_qs(parts.query), handler, body)
        with self._lock:
            self.requests.append(Request(method, parts.path, dict(handler.headers.items()), body, status))
        data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(
        self, method: str, path: str, query: dict[str, list[str]], handler: BaseHTTPRequestHandler, body: Any
    ) -> tuple[int, dict[str, str], Any]:
        with self._lock:
            if self.down:
                return 503, {}, {"status": "unavailable"}
            failure = next((f for f in self._failures if f[0] == path), None)
            if failure is not None:
                self._failures.remove(failure)
                return failure[1], failure[2], {"status": "error", "message": "fake failure"}
        if method == "POST" and path == "/v2/enqueue":
            return self._enqueue(handler, body)
        if method == "GET":
            return self._rest(path, query, handler)
        return 404, {}, {"error": {"message": "Not Found"}}

    def _enqueue(self, handler: BaseHTTPRequestHandler, body: Any) -> tuple[int, dict[str, str], Any]:
        found = event_problems(body)
        if handler.headers.get("Content-Type", "").split(";")[0] != "application/json":
            found.append("Content-Type: not application/json")
        if isinstance(body, dict) and body.get("routing_key") != self.routing_key:
            found.append("routing_key: not this service's integration key")
        if found:
            with self._lock:
                self.refused.append((body, found))
            return 400, {}, {"status": "invalid event", "message": "Event object is invalid", "errors": found}
        dedup = body.get("dedup_key") or "generated"
        return 202, {}, {"status": "success", "message": "Event processed", "dedup_key": dedup}

    def _rest(
        self, path: str, query: dict[str, list[str]], handler: BaseHTTPRequestHandler
    ) -> tuple[int, dict[str, str], Any]:
        if handler.headers.get("Authorization") != f"Token token={self.api_token}":
            return 401, {}, {"error": {"message": "Unauthorized", "code": 2006}}
        if path == "/oncalls":
            found = rest_parameter_problems("/oncalls", query)
            if found:
                with self._lock:
                    self.refused.append((query, found))
                return 400, {}, {"error": {"message": "Invalid Input Provided", "errors": found}}
            policies = set(query.get("escalation_policy_ids[]", []))
            rows = [o for o in self.oncalls if not policies or o["escalation_policy"]["id"] in policies]
            answer = {"oncalls": rows, "limit": 25, "offset": 0, "more": False, "total": None}
            assert not response_problems("/oncalls", answer), response_problems("/oncalls", answer)
            if "users" in query.get("include[]", []):  # references replaced by the users themselves
                answer["oncalls"] = [{**o, "user": self.users[o["user"]["id"]]} for o in rows]
                for row in answer["oncalls"]:
                    assert not problems("rest-subset.openapiv3.json", {"$ref": "#/components/schemas/User"},
                                        row["user"])  # fmt: skip
            return 200, {}, answer
        if path.startswith("/incidents/") and path.count("/") == 2:
            incident = self.incidents.get(path.rsplit("/", 1)[1])
            if incident is None:
                return 404, {}, {"error": {"message": "Not Found", "code": 2100}}
            return 200, {}, {"incident": incident}
        return 404, {}, {"error": {"message": "Not Found"}}


    def add_oncall(self, user_id: str, name: str, email: str, level: int, policy: str = "PPOLICY1") -> None:
        """Someone on call at `level` of escalation policy `policy`, as GET /oncalls answers it."""
        site = "https://x.pagerduty.com"
        self.users[user_id] = {"id": user_id, "type": "user", "summary": name, "name": name, "email": email,
                               "self": f"https://api.pagerduty.com/users/{user_id}",
                               "html_url": f"{site}/users/{user_id}"}  # fmt: skip
        self.oncalls.append({
            "user": {"id": user_id, "type": "user_reference", "summary": name,
                     "self": f"https://api.pagerduty.com/users/{user_id}", "html_url": f"{site}/users/{user_id}"},
            "schedule": {"id": "PSCHED1", "type": "schedule_reference", "summary": "Primary",
                         "self": "https://api.pagerduty.com/schedules/PSCHED1",
                         "html_url": f"{site}/schedules/PSCHED1"},
            "escalation_policy": {"id": policy, "type": "escalation_policy_reference", "summary": "Payments",
                                  "self": f"https://api.pagerduty.com/escalation_policies/{policy}",
                                  "html_url": f"{site}/escalation_policies/{policy}"},
            "escalation_level": level,
            "start": "2026-01-15T00:00:00Z",
            "end": "2026-01-16T00:00:00Z",
        })  # fmt: skip


@contextmanager
def running() -> Iterator[FakePagerDuty]:
    """A started stand-in, stopped on leaving."""
    fake = FakePagerDuty().start()
    try:
        yield fake
    finally:
        fake.stop()
