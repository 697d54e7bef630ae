"""Atlassian Statuspage over HTTP (SPEC §13.5): the outbox's `statuspage` sender.

`Authorization: OAuth <api key>`; one request a second for the whole process (bot.atlassian.Pace; the worker also
hands this sender one row at a time). A create retried after a crash first looks among the page's unresolved
incidents for the one it made (its metadata names the sitrep incident); an update retried first looks at the
incident's latest update, so that nothing is published twice."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import httpx2
from pydantic import SecretStr
from sqlmodel import Session

from bot.atlassian import Api, Pace
from core import statuspage
from core.outbox import Delivery, DeliveryError, Sent

log = logging.getLogger("sitrep.statuspage")
COMPONENTS_TTL = 300.0
Sessions = Callable[[], AbstractContextManager[Session]]


class StatuspageSender:
    def __init__(self, *, api_key: SecretStr, page_id: str, url: str, tx: Sessions, pace: Pace | None = None,
                 http: httpx2.Client | None = None) -> None:  # fmt: skip
        self.page_id = page_id
        self.tx = tx
        self._components: tuple[float, list[tuple[str, str]]] | None = None
        self.pace = pace or Pace(statuspage.RATE)
        self.api = Api(name="Statuspage", base=f"{url.rstrip('/')}/pages/{page_id}", pace=self.pace,
                       headers={"Authorization": f"OAuth {api_key.get_secret_value()}"}, http=http)  # fmt: skip

    def components(self) -> list[tuple[str, str]]:
        """The page's components (id, name), for the `/incident statuspage` form; read at most every 5 minutes."""
        if self._components is None or time.monotonic() - self._components[0] > COMPONENTS_TTL:
            answer = self.api.call("GET", "/components", params={"per_page": 100}) or []
            found = [(str(c["id"]), str(c.get("name") or c["id"])) for c in answer
                     if c.get("id") and not c.get("group")]  # fmt: skip
            self._components = (time.monotonic(), found)
        return list(self._components[1])

    def send(self, delivery: Delivery, now: datetime | None = None) -> Sent:
        if delivery.operation == statuspage.CREATE:
            return self._create(delivery)
        if delivery.operation in (statuspage.UPDATE, statuspage.RESOLVE):
            return self._update(delivery)
        raise DeliveryError(f"unknown Statuspage operation {delivery.operation}", permanent=True)

    def _create(self, delivery: Delivery) -> Sent:
        payload = delivery.payload
        incident_id = delivery.incident_id or 0
        with self.tx() as session:
            found = statuspage.public_id(session=session, incident_id=incident_id)
        answer: dict[str, Any] | None = {"id": found} if found else None
        if answer is None and delivery.attempts > 1:
            answer = self._made_before(delivery)
        if answer is None:
            body = {"incident": {
                "name": payload["name"], "status": payload["status"], "body": payload["body"],
                "component_ids": sorted(payload["components"]), "components": payload["components"],
                "deliver_notifications": True, "metadata": {"sitrep": {"key": delivery.incident_key}},
            }}  # fmt: skip
            answer = self.api.call("POST", "/incidents", json=body) or {}
        public_id, url = str(answer.get("id") or ""), answer.get("shortlink")
        if not public_id:
            raise DeliveryError("Statuspage answered without an incident id")
        with self.tx() as session:
            statuspage.record_public(session=session, incident_id=incident_id, public_id=public_id,
                                     url=url if isinstance(url, str) else None)  # fmt: skip
        link = f" <{url}|on the status page>" if isinstance(url, str) and url else " on the status page"
        return Sent(result={"link": payload["status"]},
                    notice=f":globe_with_meridians: *{delivery.incident_key}* is public{link}.")  # fmt: skip

    def _made_before(self, delivery: Delivery) -> dict[str, Any] | None:
        """The unresolved public incident an earlier attempt made: by the metadata it carries, else (an answer
        without metadata) by its name."""
        unresolved = self.api.call("GET", "/incidents/unresolved") or []
        ours = [i for i in unresolved
                if ((i.get("metadata") or {}).get("sitrep") or {}).get("key") == delivery.incident_key]  # fmt: skip
        if not ours and not any(i.get("metadata") for i in unresolved):
            ours = [i for i in unresolved if i.get("name") == delivery.payload["name"]]
        return ours[0] if ours else None

    def _update(self, delivery: Delivery) -> Sent:
        payload = delivery.payload
        with self.tx() as session:
            public_id = statuspage.public_id(session=session, incident_id=delivery.incident_id or 0)
        if public_id is None:  # its create is an older row of the same incident and goes first: rare
            raise DeliveryError(f"the public incident of {delivery.incident_key} is not made yet")
        if delivery.attempts > 1 and self._published(public_id, payload):
            return Sent(result={"link": payload["status"]})
        incident: dict[str, Any] = {"status": payload["status"], "body": payload["body"]}
        if payload.get("components"):
            incident["components"] = payload["components"]
            incident["component_ids"] = sorted(payload["components"])
        self.api.call("PATCH", f"/incidents/{public_id}", json={"incident": incident})
        return Sent(result={"link": payload["status"]})

    def _published(self, public_id: str, payload: dict[str, Any]) -> bool:
        """Whether the incident's latest update is this one already (a retry after a crash)."""
        answer = self.api.call("GET", f"/incidents/{public_id}") or {}
        updates = answer.get("incident_updates") or []
        latest = max(updates, key=lambda u: str(u.get("created_at") or ""), default=None)
        return bool(latest) and latest.get("status") == payload["status"] and latest.get("body") == payload["body"]
