"""A fake Atlassian Statuspage (REST API v1) on a local port, for tests: one page with components, incidents with
their updates, `Authorization: OAuth <key>`, request bodies checked against the API reference's shapes
(tests/fixtures/statuspage, see its NOTICE), and the rate limit of one request a second per key: a request sooner
than that after the previous one is answered 429 with Retry-After and lands in `too_fast`."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from tests.fakehttp import Answer, JsonFake, Refused, problems

SPECS = Path(__file__).parent / "fixtures" / "statuspage"
API_KEY = "b6ae4c9e-statuspage-api-key"
PAGE_ID = "kctbh9vrtdwd"
MIN_GAP = 0.9  # seconds: one request a second, less the jitter of two local clocks and threads
COMPONENTS = {"cmp0api0001": "API", "cmp0web0002": "Web app", "cmp0pay0003": "Payments"}


@cache
def shapes() -> dict[str, Any]:
    return json.loads((SPECS / "api-subset.schema.json").read_text())  # type: ignore[no-any-return]


def shape(name: str) -> dict[str, Any]:
    document = shapes()
    return {**document[name], "incident_status": document["incident_status"],
            "component_status": document["component_status"]}  # fmt: skip


class FakeStatuspage(JsonFake):
    def __init__(self, *, enforce_rate: bool = True) -> None:
        super().__init__()
        self.authorization = f"OAuth {API_KEY}"
        self.enforce_rate = enforce_rate
        self.components = {cid: {"id": cid, "name": name, "status": "operational", "group": False}
                           for cid, name in COMPONENTS.items()}  # fmt: skip
        self.incidents: dict[str, dict[str, Any]] = {}
        self.too_fast: list[float] = []
        self._last: float | None = None
        self._clock = 0

    def start(self) -> FakeStatuspage:
        super().start()
        return self

    def before(self, method: str, path: str, now: float) -> Answer | None:
        if self.enforce_rate and self._last is not None and now - self._last < MIN_GAP:
            self.too_fast.append(now - self._last)
            return 429, {"error": "Rate limit exceeded"}, {"Retry-After": "1"}
        self._last = now
        return None

    def _tick(self) -> str:
        self._clock += 1
        return f"2026-12-04T10:{self._clock // 60:02d}:{self._clock % 60:02d}Z"

    def route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        prefix = f"/v1/pages/{PAGE_ID}"
        if not path.startswith(prefix):
            return 404, {"error": "page not found"}, {}
        rest = path[len(prefix):]
        if method == "GET" and rest == "/components":
            return 200, list(self.components.values()), {}
        if method == "GET" and rest == "/incidents/unresolved":
            return 200, [i for i in self.incidents.values() if i["status"] != "resolved"], {}
        if method == "POST" and rest == "/incidents":
            return self._create(body)
        match = re.fullmatch(r"/incidents/([a-z0-9]+)", rest)
        if match and match.group(1) in self.incidents:
            incident = self.incidents[match.group(1)]
            if method == "GET":
                return 200, incident, {}
            if method == "PATCH":
                return self._update(incident, body)
        match = re.fullmatch(r"/components/([a-z0-9]+)", rest)
        if match and match.group(1) in self.components and method == "PATCH":
            self._check("PatchPagesPageIdComponents", body)
            self.components[match.group(1)].update(body["component"])
            return 200, self.components[match.group(1)], {}
        return 404, {"error": "not found"}, {}

    def _check(self, name: str, body: Any) -> None:
        found = problems(shape(name), body)
        incident = (body or {}).get("incident") if isinstance(body, dict) else None
        if isinstance(incident, dict):
            unknown = sorted(set(incident.get("components") or {}) - set(self.components))
            found += [f"components: no component {c}" for c in unknown]
        if found:
            raise Refused(422, {"error": found})

    def _apply_components(self, incident: dict[str, Any], wanted: dict[str, str]) -> list[dict[str, Any]]:
        affected = []
        for cid, status in wanted.items():
            self.components[cid]["status"] = status
            affected.append({"code": cid, "name": self.components[cid]["name"], "new_status": status})
            if cid not in [c["id"] for c in incident["components"]]:
                incident["components"].append(self.components[cid])
        return affected

    def _create(self, body: Any) -> Answer:
        self._check("PostPagesPageIdIncidents", body)
        fields = body["incident"]
        number = len(self.incidents) + 1
        incident_id = f"inc{number:09d}"
        incident: dict[str, Any] = {
            "id": incident_id, "name": fields["name"], "status": fields.get("status") or "investigating",
            "shortlink": f"https://stspg.io/{incident_id[-5:]}", "page_id": PAGE_ID, "components": [],
            "incident_updates": [], "metadata": fields.get("metadata") or {}, "created_at": self._tick(),
        }  # fmt: skip
        affected = self._apply_components(incident, fields.get("components") or {})
        incident["incident_updates"].append({"status": incident["status"], "body": fields.get("body") or "",
                                             "created_at": self._tick(), "affected_components": affected})  # fmt: skip
        self.incidents[incident_id] = incident
        return 201, incident, {}

    def _update(self, incident: dict[str, Any], body: Any) -> Answer:
        self._check("PatchPagesPageIdIncidents", body)
        fields = body["incident"]
        incident["status"] = fields.get("status") or incident["status"]
        affected = self._apply_components(incident, fields.get("components") or {})
        if "body" in fields or "status" in fields:
            update = {"status": incident["status"], "body": fields.get("body") or "", "created_at": self._tick(),
                      "affected_components": affected}  # fmt: skip
            incident["incident_updates"].append(update)
        return 200, incident, {}
