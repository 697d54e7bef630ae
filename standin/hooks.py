"""Calls to the bot's endpoints for other systems (POST /hooks/alertmanager, POST /api/incidents), as they send
them, and Alertmanager's webhook payload (version 4): the stand-in for Alertmanager of `sitrep demo`, shared by
the tests and bench/alert_storm.py."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

WEBHOOK_TOKEN = "webhook-token-0123456789abcdef"
API_TOKEN = "api-token-0123456789abcdef"


@dataclass
class Answer:
    status: int
    body: Any


class HookClient:
    """POSTs to the bot over one keep-alive connection per thread."""

    def __init__(self, base_url: str, *, timeout: float = 15.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname or "127.0.0.1", parts.port or 80, timeout
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return conn

    def post(self, path: str, body: Any, *, token: str | None = None, headers: dict[str, str] | None = None) -> Answer:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        for attempt in (1, 2):
            conn = self._connection()
            try:
                # The bot may answer before it reads a body it refuses (413 from Content-Length): read that answer.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    conn.request("POST", path, body=data, headers=sent)
                response = conn.getresponse()
                raw = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                self._local.conn = None
            try:
                return Answer(response.status, json.loads(raw))
            except ValueError:
                return Answer(response.status, raw.decode(errors="replace"))
        raise AssertionError("unreachable")

    def alertmanager(self, payload: Any, *, token: str | None = WEBHOOK_TOKEN) -> Answer:
        return self.post("/hooks/alertmanager", payload, token=token)

    def declare(self, body: Any, *, token: str | None = API_TOKEN, key: str | None = None) -> Answer:
        return self.post("/api/incidents", body, token=token, headers={"Idempotency-Key": key} if key else None)


def alert(
    name: str,
    *,
    status: str = "firing",
    summary: str = "",
    severity: str = "critical",
    instance: str = "db-1",
    starts_at: str = "2026-12-04T05:00:00Z",
    ends_at: str = "2026-12-04T05:10:00Z",
    generator: str = "http://prometheus.example:9090",
) -> dict[str, Any]:
    labels = {"alertname": name, "severity": severity, "instance": instance}
    return {
        "status": status,
        "labels": labels,
        "annotations": {"summary": summary} if summary else {},
        "startsAt": starts_at,
        "endsAt": ends_at if status == "resolved" else "0001-01-01T00:00:00Z",
        "generatorURL": f"{generator}/graph?g0.expr=up%7Binstance%3D%22{instance}%22%7D",
        "fingerprint": f"{name}-{instance}",
    }


def notification(group: str, alerts: list[dict[str, Any]], *, status: str | None = None) -> dict[str, Any]:
    """Alertmanager's webhook payload (version 4) for the group `{}:{alertname="<group>"}`."""
    firing = any(a["status"] == "firing" for a in alerts)
    common = {"alertname": group} if all(a["labels"]["alertname"] == group for a in alerts) else {}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{group}"}}',
        "truncatedAlerts": 0,
        "status": status or ("firing" if firing else "resolved"),
        "receiver": "sitrep",
        "groupLabels": {"alertname": group},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": alerts,
    }
