"""PagerDuty (SPEC §13.2), the domain side: when sitrep pages, what each Events v2 call says, and what PagerDuty's
webhooks mean for an incident. Pure: the session comes in; the HTTP lives in bot/pagerduty.py.

Every page is an outbox row (core.outbox) written in the transaction of the change that causes it, with the
dedup_key `sitrep-INC-n`, which makes a trigger sent twice (a retry after a crash) one alert in PagerDuty."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlmodel import Session

from core import outbox, store
from core.enums import EntryKind, Severity
from core.errors import InvalidInput
from core.models import Incident, OutboxRow, TimelineEntry

INTEGRATION = "pagerduty"
TRIGGER, RESOLVE = "trigger", "resolve"
SUMMARY_LIMIT = 1024
EVENT_SEVERITY = {Severity.SEV1: "critical", Severity.SEV2: "error", Severity.SEV3: "warning", Severity.SEV4: "info"}
_OUR_KEY = re.compile(r"sitrep-(INC-\d+)")


@dataclass(frozen=True)
class Paging:
    """What decides whether sitrep pages: on when a routing key is configured; which severities page on declare."""

    enabled: bool = False
    severities: frozenset[Severity] = frozenset({Severity.SEV1, Severity.SEV2})

    def pages(self, severity: Severity) -> bool:
        return self.enabled and severity in self.severities


def dedup_key(incident: Incident) -> str:
    return f"sitrep-{incident.key}"


def our_incident_key(incident_key: str | None) -> str | None:
    """`INC-7` for a PagerDuty incident key `sitrep-INC-7` (an alert sitrep sent), else None."""
    match = _OUR_KEY.fullmatch(incident_key or "")
    return match.group(1) if match else None


def trigger_event(incident: Incident) -> dict[str, Any]:
    """The Events v2 trigger, as stored in the outbox: no routing key (a secret, added at send time), and the
    channel (link and custom detail) filled in by the sender from the incident when it has one."""
    summary = f"{incident.key} {incident.severity.label}: {incident.title}"
    commander = (incident.people or {}).get(incident.commander_id) or incident.commander_id
    return {
        "event_action": TRIGGER,
        "dedup_key": dedup_key(incident),
        "client": "sitrep",
        "payload": {
            "summary": summary if len(summary) <= SUMMARY_LIMIT else summary[: SUMMARY_LIMIT - 1] + "…",
            "source": "sitrep",
            "severity": EVENT_SEVERITY[incident.severity],
            "custom_details": {"severity": incident.severity.label, "commander": commander, "channel": None},
        },
    }


def resolve_event(incident: Incident) -> dict[str, Any]:
    return {"event_action": RESOLVE, "dedup_key": dedup_key(incident)}


def _enqueue(*, session: Session, incident: Incident, operation: str, now: datetime, why: str) -> bool:
    """One Events v2 call for the incident; `why` makes the row's idempotency key (one row per cause)."""
    return outbox.enqueue(
        session=session,
        integration=INTEGRATION,
        operation=operation,
        payload=trigger_event(incident) if operation == TRIGGER else resolve_event(incident),
        idempotency_key=f"{INTEGRATION}:{incident.key}:{operation}:{why}",
        incident_id=incident.id,
        now=now,
    )


def page(*, session: Session, incident: Incident, now: datetime, why: str) -> bool:
    """Enqueue one trigger for the incident."""
    return _enqueue(session=session, incident=incident, operation=TRIGGER, now=now, why=why)


def was_paged(*, session: Session, incident: Incident) -> bool:
    table = OutboxRow.__table__  # type: ignore[attr-defined]
    query = sa.select(table.c.id).where(
        table.c.incident_id == incident.id, table.c.integration == INTEGRATION, table.c.operation == TRIGGER
    )
    return session.execute(query.limit(1)).first() is not None


def on_declare(*, session: Session, incident: Incident, paging: Paging, now: datetime) -> bool:
    return paging.pages(incident.severity) and page(session=session, incident=incident, now=now, why="declare")


def on_severity_change(
    *, session: Session, incident: Incident, before: Severity, paging: Paging, now: datetime, change_id: int | None
) -> bool:
    """Raising the severity into a paged one pages (once per change); moves within or out of them do not."""
    if not paging.pages(incident.severity) or paging.pages(before):
        return False
    return page(session=session, incident=incident, now=now, why=f"severity-{change_id or now.isoformat()}")


def on_reopen(*, session: Session, incident: Incident, paging: Paging, now: datetime) -> bool:
    if not paging.enabled or not was_paged(session=session, incident=incident):
        return False
    return page(session=session, incident=incident, now=now, why=f"reopen-{now.isoformat()}")


def on_resolve(*, session: Session, incident: Incident, paging: Paging, now: datetime) -> bool:
    if not paging.enabled or not was_paged(session=session, incident=incident):
        return False
    return _enqueue(session=session, incident=incident, operation=RESOLVE, now=now, why=now.isoformat())


# --- webhooks (v3) ---------------------------------------------------------------------------------

TIMELINE_EVENTS = ("incident.acknowledged", "incident.resolved", "incident.annotated")


@dataclass(frozen=True)
class WebhookEvent:
    """The parts of a v3 webhook event sitrep uses: `{"event": {"id", "event_type", "occurred_at", "agent",
    "data"}}`. For incident events `data` is the incident; for `incident.annotated` it is the note, whose
    `incident` is only a reference (so the incident key must be looked up)."""

    id: str
    event_type: str
    occurred_at: datetime | None
    agent: str
    incident_id: str | None
    incident_key: str | None
    number: int | None
    title: str
    html_url: str | None
    service: str
    urgency: str
    note: str

    @classmethod
    def parse(cls, body: object) -> WebhookEvent:
        event = body.get("event") if isinstance(body, Mapping) else None
        if not isinstance(event, Mapping) or not isinstance(event.get("id"), str) or not event["id"]:
            raise InvalidInput("event.id is missing")
        if not isinstance(event.get("event_type"), str):
            raise InvalidInput("event.event_type is missing")
        data = event.get("data") if isinstance(event.get("data"), Mapping) else {}
        assert isinstance(data, Mapping)
        agent = event.get("agent") if isinstance(event.get("agent"), Mapping) else {}
        assert isinstance(agent, Mapping)
        reference = data.get("incident") if isinstance(data.get("incident"), Mapping) else None
        incident = reference if reference is not None else data
        assert isinstance(incident, Mapping)
        service = data.get("service") if isinstance(data.get("service"), Mapping) else {}
        assert isinstance(service, Mapping)
        number = data.get("number")
        return cls(
            id=event["id"],
            event_type=event["event_type"],
            occurred_at=_when(event.get("occurred_at")),
            agent=str(agent.get("summary") or ""),
            incident_id=_text(incident.get("id")),
            incident_key=_text(data.get("incident_key")) if reference is None else None,
            number=number if isinstance(number, int) else None,
            title=str(data.get("title") or incident.get("summary") or ""),
            html_url=_text(incident.get("html_url")),
            service=str(service.get("summary") or ""),
            urgency=str(data.get("urgency") or ""),
            note=str(data.get("content") or "") if data.get("type") == "incident_note" else "",
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None


def timeline_text(event: WebhookEvent) -> str:
    by = f" by {event.agent}" if event.agent else ""
    if event.event_type == "incident.acknowledged":
        return f"PagerDuty: page acknowledged{by}"
    if event.event_type == "incident.resolved":
        return f"PagerDuty: alert resolved{by}"
    return f"PagerDuty note{by}: {event.note}" if event.note else f"PagerDuty note{by}"


def record_on_timeline(
    *, session: Session, incident: Incident, event: WebhookEvent, now: datetime
) -> TimelineEntry:
    """A PagerDuty acknowledgement, resolution or note as a timeline entry of the incident (call after
    store.claim_event in the same transaction, so that a redelivered event adds nothing)."""
    kind = EntryKind.ESCALATION if event.event_type == "incident.acknowledged" else EntryKind.NOTE
    return store.add_entry(
        session=session,
        incident=incident,
        kind=kind,
        text=timeline_text(event),
        actor=event.agent[:64],
        now=now,
        occurred_at=event.occurred_at,
        source="pagerduty",
        details={"pagerduty_event": event.event_type, "pagerduty_incident": event.incident_id},
    )


@dataclass(frozen=True)
class OnCallPerson:
    name: str
    email: str
    level: int
    schedule: str


class OnCallSource(Protocol):
    """Who is on call now for the configured escalation policy (bot/pagerduty.py asks PagerDuty's REST API)."""

    def on_call(self) -> list[OnCallPerson]: ...


def people_on_call(oncalls: Collection[Mapping[str, Any]]) -> list[OnCallPerson]:
    """The people of a GET /oncalls answer (with include[]=users), by level, each person once per level."""
    seen: set[tuple[str, int]] = set()
    people = []
    for oncall in oncalls:
        user = oncall.get("user") if isinstance(oncall.get("user"), Mapping) else {}
        schedule = oncall.get("schedule") if isinstance(oncall.get("schedule"), Mapping) else {}
        assert isinstance(user, Mapping) and isinstance(schedule, Mapping)
        level = oncall.get("escalation_level")
        email = user.get("email")
        if not isinstance(level, int) or not isinstance(email, str) or not email or (email, level) in seen:
            continue
        seen.add((email, level))
        name = str(user.get("name") or user.get("summary") or email)
        people.append(OnCallPerson(name=name, email=email, level=level, schedule=str(schedule.get("summary") or "")))
    return sorted(people, key=lambda person: person.level)
