"""Atlassian Statuspage (SPEC §13.5), the domain side: the public incident and what is published to it. Pure: the
session comes in; the HTTP lives in bot/statuspage.py.

Nothing is published by itself: the public incident is made by hand (`/incident statuspage`), a status update is
published only when its author asks (the update modal's checkbox, `--public`), and resolve resolves the public
incident when there is one (the resolve modal's checkbox, on by default; never by default for a private incident).
Every call is an outbox row; Statuspage allows one request a second, which the delivery worker keeps."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import Session

from core import outbox
from core.enums import Phase
from core.errors import InvalidInput, InvalidState
from core.models import Incident

INTEGRATION = "statuspage"
CREATE, UPDATE, RESOLVE = "create", "update", "resolve"
RATE = 1.0  # requests a second Statuspage allows per API key
IMPACTS = {
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
}
STATUSES = (Phase.INVESTIGATING.value, Phase.IDENTIFIED.value, Phase.MONITORING.value)
NAME_LIMIT, BODY_LIMIT = 255, 25000  # Statuspage's limits on an incident's name and an update's body
RESOLVED_BODY = "This incident has been resolved."


class ComponentSource(Protocol):
    """The status page's components, as (id, name) (bot/statuspage.py reads them from Statuspage)."""

    def components(self) -> list[tuple[str, str]]: ...


def _enqueue(session: Session, incident: Incident, operation: str, payload: Mapping[str, Any], why: str,
             now: datetime) -> bool:  # fmt: skip
    return outbox.enqueue_for(session=session, incident=incident, integration=INTEGRATION, operation=operation,
                              payload=payload, why=why, now=now)  # fmt: skip


def is_public(*, session: Session, incident: Incident) -> bool:
    """Whether the incident has (or is getting) a public Statuspage incident."""
    return outbox.has_row(session=session, incident_id=incident.id, integration=INTEGRATION, operation=CREATE)


def publish(*, session: Session, incident: Incident, name: str, body: str, status: str,
            components: Mapping[str, str], now: datetime) -> bool:  # fmt: skip
    """Create the public incident (by hand only: `/incident statuspage`)."""
    if incident.status != "open":
        raise InvalidState(f"{incident.key} is resolved: there is nothing to publish.")
    if is_public(session=session, incident=incident):
        raise InvalidState(f"{incident.key} is on the status page already: publish updates with "
                           "`/incident update --public <message>` or the update form's checkbox.")  # fmt: skip
    name, body = " ".join(name.split()), body.strip()
    if not name:
        raise InvalidInput("Give the public incident a title.")
    if status not in STATUSES:
        raise InvalidInput(f"`{status}` is not a status: use `investigating`, `identified` or `monitoring`.")
    wrong = sorted(impact for impact in components.values() if impact not in IMPACTS)
    if wrong:
        raise InvalidInput(f"`{wrong[0]}` is not an impact: use `degraded_performance`, `partial_outage` or "
                           "`major_outage`.")  # fmt: skip
    session.execute(sa.update(Incident).where(Incident.id == incident.id)  # type: ignore[arg-type]
                    .values(statuspage={"components": dict(components)}))  # fmt: skip
    payload = {"name": name[:NAME_LIMIT], "body": body[:BODY_LIMIT], "status": status, "components": dict(components)}
    return _enqueue(session, incident, CREATE, payload, "create", now)


def publish_update(*, session: Session, incident: Incident, phase: Phase, body: str, now: datetime,
                   update_id: int | None) -> bool:  # fmt: skip
    """Publish one status update, in its phase, to the public incident."""
    if not is_public(session=session, incident=incident):
        raise InvalidState(f"{incident.key} has no public incident yet: create it with `/incident statuspage`.")
    status = phase.value if phase.value in STATUSES else Phase.INVESTIGATING.value
    payload = {"status": status, "body": body.strip()[:BODY_LIMIT]}
    return _enqueue(session, incident, UPDATE, payload, f"update-{update_id or now.isoformat()}", now)


def publishes_on_resolve(incident: Incident, asked: bool | None) -> bool:
    """Resolve publishes when asked; left unsaid (the text command), only for an incident that is not private."""
    return asked if asked is not None else not incident.private


def on_resolve(*, session: Session, incident: Incident, now: datetime, publish: bool | None = None) -> bool:
    """Resolve the public incident and set its components operational."""
    if not publishes_on_resolve(incident, publish) or not is_public(session=session, incident=incident):
        return False
    components = (incident.statuspage or {}).get("components") or {}
    payload = {"status": "resolved", "body": RESOLVED_BODY, "components": {c: "operational" for c in components}}
    return _enqueue(session, incident, RESOLVE, payload, f"resolve-{now.isoformat()}", now)


def record_public(*, session: Session, incident_id: int, public_id: str, url: str | None) -> None:
    """What the sender learnt from Statuspage: the public incident's id and link."""
    current = session.execute(sa.select(Incident.statuspage).where(Incident.id == incident_id)).scalar_one_or_none()  # type: ignore[call-overload, arg-type]
    merged = {**(current or {}), "id": public_id, "url": url}
    session.execute(sa.update(Incident).where(Incident.id == incident_id).values(statuspage=merged))  # type: ignore[arg-type]


def public_id(*, session: Session, incident_id: int) -> str | None:
    current = session.execute(sa.select(Incident.statuspage).where(Incident.id == incident_id)).scalar_one_or_none()  # type: ignore[call-overload, arg-type]
    found = (current or {}).get("id")
    return found if isinstance(found, str) else None
