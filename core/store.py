"""Database access and the state changes of an incident (the "service" layer).

Every function takes the session (and the time) as keyword arguments and leaves the commit to the caller,
so that one Slack event and its effect are stored in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.cadence import Cadence
from core.db import dialect_insert, insert_or_ignore
from core.enums import EntryKind, IncidentStatus, Phase, Priority, Role, Severity
from core.errors import InvalidInput, InvalidState, NotAnIncidentChannel, NotFound
from core.models import (
    ActionItem,
    Incident,
    JobRun,
    Participant,
    ProcessedEvent,
    RoleAssignment,
    SeverityChange,
    StatusUpdate,
    TimelineEntry,
)


def due_after(moment: datetime, severity: Severity, cadence: Cadence) -> datetime | None:
    """When the next status update is due after `moment`, or None when the severity has no cadence."""
    period = cadence.get(severity)
    return moment + period if period else None


# --- look-ups -------------------------------------------------------------------------------------


def incident_by_channel(*, session: Session, channel_id: str) -> Incident | None:
    return session.exec(select(Incident).where(Incident.channel_id == channel_id)).first()


def incident_id_of_channel(*, session: Session, channel_id: str) -> int | None:
    """The id of the incident of a channel, or None: one indexed look-up, for the hot event path."""
    return session.exec(select(Incident.id).where(Incident.channel_id == channel_id)).first()


def require_incident_channel(*, session: Session, channel_id: str, command: str = "This command") -> Incident:
    incident = incident_by_channel(session=session, channel_id=channel_id)
    if incident is None:
        raise NotAnIncidentChannel(command)
    return incident


def reload(*, session: Session, incident: Incident) -> Incident:
    """The incident's current row in this session (the object may come from an earlier, closed session)."""
    row = session.get(Incident, incident.id)
    if row is None:
        raise NotFound(f"{incident.key} no longer exists.")
    return row


# The incident's columns that the Slack side records as its steps happen (ids and timestamps Slack gave it).
SLACK_FIELDS = frozenset(
    {"channel_id", "channel_name", "intro_ts", "announce_channel", "announce_ts", "pir_ts", "declare_step",
     "declare_error", "people"}
)  # fmt: skip


def record_slack_fields(*, session: Session, incident_id: int, **fields: Any) -> None:
    """Write only these columns of the incident, so that a change made meanwhile by someone else is kept."""
    unknown = set(fields) - SLACK_FIELDS
    if unknown:
        raise ValueError(f"not a Slack-side field of an incident: {sorted(unknown)}")
    session.execute(sa.update(Incident).where(col(Incident.id) == incident_id).values(**fields))


def record_update_ts(*, session: Session, update_id: int, ts: str) -> None:
    """The Slack message that carries a status update."""
    session.execute(sa.update(StatusUpdate).where(col(StatusUpdate.id) == update_id).values(message_ts=ts))


def roles_held(*, session: Session, user_id: str) -> list[tuple[RoleAssignment, Incident]]:
    """The roles a person holds in open incidents, oldest incident first."""
    query = (
        select(RoleAssignment, Incident)
        .join(Incident, col(Incident.id) == RoleAssignment.incident_id)
        .where(RoleAssignment.user_id == user_id, Incident.status == IncidentStatus.OPEN)
        .order_by(col(Incident.id))
    )
    return [(role, incident) for role, incident in session.exec(query).all()]


def open_items_owned(*, session: Session, user_id: str) -> list[tuple[ActionItem, Incident]]:
    """A person's open action items, soonest due first (those without a date last)."""
    query = (
        select(ActionItem, Incident)
        .join(Incident, col(Incident.id) == ActionItem.incident_id)
        .where(ActionItem.owner_id == user_id, ActionItem.status == "open")
        .order_by(col(ActionItem.due).is_(None), col(ActionItem.due), col(ActionItem.id))
    )
    return [(item, incident) for item, incident in session.exec(query).all()]


def incident_by_id(*, session: Session, incident_id: int | str | None) -> Incident:
    """The incident with this id (a button's or a modal's value), or NotFound."""
    text = str(incident_id or "")
    incident = session.get(Incident, int(text)) if text.isdigit() else None
    if incident is None:
        raise NotFound("That incident no longer exists.")
    return incident


def incident_by_key(*, session: Session, key: str) -> Incident:
    normalised = key.strip().upper()
    if normalised.isdigit():
        normalised = f"INC-{normalised}"
    incident = session.exec(select(Incident).where(Incident.key == normalised)).first()
    if incident is None:
        raise NotFound(f"There is no incident {key}.")
    return incident


def open_incidents(*, session: Session) -> list[Incident]:
    query = select(Incident).where(Incident.status == IncidentStatus.OPEN)
    return list(session.exec(query.order_by(col(Incident.declared_at).desc())))


def unfinished_declarations(*, session: Session) -> list[Incident]:
    """Open incidents whose declare flow (SPEC §5) stopped before its last step."""
    query = select(Incident).where(Incident.status == IncidentStatus.OPEN, Incident.declare_step != "confirmed")
    return list(session.exec(query.order_by(col(Incident.id))))


def roles_of(*, session: Session, incident: Incident) -> dict[Role, str]:
    rows = session.exec(select(RoleAssignment).where(RoleAssignment.incident_id == incident.id))
    holders = {row.role: row.user_id for row in rows}
    return {role: holders[role] for role in Role if role in holders}


def entries_of(*, session: Session, incident: Incident) -> list[TimelineEntry]:
    query = select(TimelineEntry).where(TimelineEntry.incident_id == incident.id)
    return list(session.exec(query.order_by(col(TimelineEntry.occurred_at), col(TimelineEntry.id))))


def severity_changes_of(*, session: Session, incident: Incident) -> list[SeverityChange]:
    query = select(SeverityChange).where(SeverityChange.incident_id == incident.id)
    return list(session.exec(query.order_by(col(SeverityChange.changed_at), col(SeverityChange.id))))


def action_items_of(*, session: Session, incident: Incident) -> list[ActionItem]:
    query = select(ActionItem).where(ActionItem.incident_id == incident.id)
    return list(session.exec(query.order_by(col(ActionItem.id))))


def participants_of(*, session: Session, incident: Incident) -> list[Participant]:
    query = select(Participant).where(Participant.incident_id == incident.id)
    return list(session.exec(query.order_by(col(Participant.first_seen_at), col(Participant.id))))


# --- idempotency ----------------------------------------------------------------------------------


def claim_event(*, session: Session, event_id: str, now: datetime) -> bool:
    """Record a Slack event id; False when it was processed before (a retried delivery).

    Call inside the transaction that stores the event's effect: a rollback forgets the claim too."""
    table = ProcessedEvent.__table__  # type: ignore[attr-defined]
    insert = insert_or_ignore(table, ("event_id",), ("event_id", "received_at"))
    result: Any = session.execute(insert, {"event_id": event_id, "received_at": now})
    return bool(result.rowcount == 1)  # no RETURNING: one step of SQLite's, on the busiest path


def release_event(*, session: Session, event_id: str) -> None:
    """Forget a claimed event id whose effect could not be completed, so that the sender's retry is processed."""
    table = ProcessedEvent.__table__  # type: ignore[attr-defined]
    session.execute(sa.delete(table).where(table.c.event_id == event_id))


def event_seen(*, session: Session, event_id: str) -> bool:
    """Whether a Slack event id was processed already (a plain look; `claim_event` decides)."""
    return session.exec(select(ProcessedEvent.event_id).where(ProcessedEvent.event_id == event_id)).first() is not None


def claim_job_run(*, session: Session, name: str, run_key: str, now: datetime) -> bool:
    """Claim one run of a cron job (e.g. the digest of one day); False when another replica has it."""
    try:
        with session.begin_nested():
            session.add(JobRun(name=name, run_key=run_key, claimed_at=now))
    except IntegrityError:
        return False
    return True


# --- state changes --------------------------------------------------------------------------------


def add_entry(
    *,
    session: Session,
    incident: Incident,
    kind: EntryKind,
    text: str,
    actor: str,
    now: datetime,
    occurred_at: datetime | None = None,
    source: str = "bot",
    details: dict[str, object] | None = None,
) -> TimelineEntry:
    entry = TimelineEntry(
        incident_id=_id(incident),
        occurred_at=occurred_at or now,
        recorded_at=now,
        kind=kind,
        actor=actor,
        text=text,
        source=source,
        details=dict(details or {}),
    )
    session.add(entry)
    return entry


def declare(
    *,
    session: Session,
    title: str,
    severity: Severity,
    declared_by: str,
    now: datetime,
    cadence: Cadence,
    commander_id: str | None = None,
    private: bool = False,
    description: str = "",
    services: Sequence[str] = (),
    impact: Mapping[str, object] | None = None,
    severity_reasons: Sequence[str] = (),
    team_id: str | None = None,
) -> Incident:
    """Step 1 of SPEC §5: the incident row, its key, the commander, the first timeline entry."""
    title = " ".join(title.split())
    if not title:
        raise InvalidInput("Give the incident a title, e.g. `/incident declare sev2 Checkout errors`.")
    if len(title) > 500:
        raise InvalidInput("That title is too long: keep it under 500 characters.")
    commander = commander_id or declared_by
    incident = Incident(
        title=title,
        severity=severity,
        declared_by=declared_by,
        commander_id=commander,
        declared_at=now,
        private=private,
        description=description.strip(),
        services=[s.strip() for s in services if s.strip()],
        impact=dict(impact or {}),
        severity_reasons=list(severity_reasons),
        team_id=team_id,
        last_update_at=None,
        next_update_due=due_after(now, severity, cadence),
    )
    session.add(incident)
    session.flush()
    incident.key = f"INC-{incident.id}"
    session.add(
        RoleAssignment(
            incident_id=_id(incident), role=Role.COMMANDER, user_id=commander, assigned_at=now, assigned_by=declared_by
        )
    )
    session.add(
        SeverityChange(
            incident_id=_id(incident),
            changed_at=now,
            from_severity=None,
            to_severity=severity,
            reason="; ".join(severity_reasons),
            actor_id=declared_by,
        )
    )
    add_entry(
        session=session,
        incident=incident,
        kind=EntryKind.DECLARATION,
        text=f"{severity.label} declared: {title}",
        actor=declared_by,
        now=now,
        details={"severity": severity.value},
    )
    session.flush()
    return incident


def require_open(incident: Incident, doing: str) -> None:
    if incident.status != IncidentStatus.OPEN:
        raise InvalidState(f"{incident.key} is resolved; `/incident reopen` it first to {doing}.")


def post_status_update(
    *,
    session: Session,
    incident: Incident,
    phase: Phase,
    text: str,
    author_id: str,
    now: datetime,
    cadence: Cadence,
) -> StatusUpdate:
    require_open(incident, "post an update")
    text = text.strip()
    if not text:
        raise InvalidInput("Say what changed, e.g. `/incident update identified Bad deploy, rolling back`.")
    update = StatusUpdate(
        incident_id=_id(incident),
        posted_at=now,
        phase=phase,
        text=text,
        author_id=author_id,
        due_at=incident.next_update_due,
    )
    session.add(update)
    incident.phase = phase
    incident.last_update_at = now
    incident.missed_reminders = 0
    incident.next_update_due = due_after(now, incident.severity, cadence)
    session.add(incident)
    add_entry(
        session=session,
        incident=incident,
        kind=EntryKind.STATUS_UPDATE,
        text=text,
        actor=author_id,
        now=now,
        details={"status": phase.value},
    )
    session.flush()
    return update


def change_severity(
    *,
    session: Session,
    incident: Incident,
    severity: Severity,
    reason: str,
    actor_id: str,
    now: datetime,
    cadence: Cadence,
) -> SeverityChange:
    require_open(incident, "change its severity")
    if severity == incident.severity:
        raise InvalidInput(f"{incident.key} is already {severity.label}.")
    change = SeverityChange(
        incident_id=_id(incident),
        changed_at=now,
        from_severity=incident.severity,
        to_severity=severity,
        reason=reason.strip(),
        actor_id=actor_id,
    )
    session.add(change)
    text = f"Severity changed from {incident.severity.label} to {severity.label}"
    incident.severity = severity
    incident.next_update_due = due_after(now, severity, cadence)
    session.add(incident)
    add_entry(
        session=session,
        incident=incident,
        kind=EntryKind.SEVERITY_CHANGE,
        text=f"{text}: {reason.strip()}" if reason.strip() else text,
        actor=actor_id,
        now=now,
        details={"from": change.from_severity.value if change.from_severity else None, "to": severity.value},
    )
    session.flush()
    return change


def assign_role(
    *, session: Session, incident: Incident, role: Role, user_id: str, actor_id: str, now: datetime
) -> RoleAssignment:
    require_open(incident, "assign roles")
    row = session.exec(
        select(RoleAssignment).where(RoleAssignment.incident_id == incident.id, RoleAssignment.role == role)
    ).first()
    if row is None:
        row = RoleAssignment(
            incident_id=_id(incident), role=role, user_id=user_id, assigned_at=now, assigned_by=actor_id
        )
    else:
        row.user_id, row.assigned_at, row.assigned_by = user_id, now, actor_id
    session.add(row)
    if role == Role.COMMANDER:
        incident.commander_id = user_id
        session.add(incident)
    add_entry(
        session=session,
        incident=incident,
        kind=EntryKind.ROLE_CHANGE,
        text=f"{role.title}: <@{user_id}>",
        actor=actor_id,
        now=now,
        details={"role": role.value, "user": user_id},
    )
    session.flush()
    return row


def add_note(
    *,
    session: Session,
    incident: Incident,
    text: str,
    actor_id: str,
    now: datetime,
    kind: EntryKind = EntryKind.NOTE,
) -> TimelineEntry:
    text = text.strip()
    if not text:
        raise InvalidInput("Write the note after the command, e.g. `/incident note Failover started`.")
    entry = add_entry(
        session=session, incident=incident, kind=kind, text=text, actor=actor_id, now=now, source="command"
    )
    session.flush()
    return entry


def add_action_item(
    *,
    session: Session,
    incident: Incident,
    title: str,
    actor_id: str,
    now: datetime,
    owner_id: str | None = None,
    priority: Priority = Priority.P2,
    due: date | None = None,
) -> ActionItem:
    title = title.strip()
    if not title:
        raise InvalidInput("Describe the action, e.g. `/incident action Add pool alerts <@U123> P1 due:2025-01-31`.")
    item = ActionItem(
        incident_id=_id(incident),
        title=title,
        owner_id=owner_id,
        priority=priority,
        due=due,
        created_at=now,
        created_by=actor_id,
    )
    session.add(item)
    add_entry(
        session=session,
        incident=incident,
        kind=EntryKind.ACTION_ITEM,
        text=title,
        actor=actor_id,
        now=now,
        details={"owner": owner_id, "priority": priority.value, "due": due.isoformat() if due else None},
    )
    session.flush()
    return item


def resolve(
    *,
    session: Session,
    incident: Incident,
    actor_id: str,
    now: datetime,
    root_cause: str | None = None,
    contributing_factors: Iterable[str] = (),
    customer_impact: str | None = None,
    lessons: Iterable[str] = (),
    five_whys: Iterable[Mapping[str, str]] = (),
) -> Incident:
    if incident.status == IncidentStatus.RESOLVED:
        raise InvalidState(f"{incident.key} is already resolved. Use `/incident pir` to post the review again.")
    incident.status = IncidentStatus.RESOLVED
    incident.phase = Phase.RESOLVED
    incident.resolved_at = now
    incident.next_update_due = None
    incident.missed_reminders = 0
    if root_cause and root_cause.strip():
        incident.root_cause = root_cause.strip()
    incident.contributing_factors = [f.strip() for f in contributing_factors if f.strip()] or list(
        incident.contributing_factors
    )
    if customer_impact and customer_impact.strip():
        incident.customer_impact = customer_impact.strip()
    incident.lessons = [item.strip() for item in lessons if item.strip()] or list(incident.lessons)
    whys = [dict(w) for w in five_whys if w.get("why", "").strip() or w.get("answer", "").strip()]
    incident.five_whys = whys or list(incident.five_whys)
    session.add(incident)
    add_entry(
        session=session,
        incident=incident,
        kind=EntryKind.RESOLUTION,
        text=f"Resolved: {incident.root_cause}" if incident.root_cause else "Resolved",
        actor=actor_id,
        now=now,
    )
    session.flush()
    return incident


def reopen(*, session: Session, incident: Incident, actor_id: str, now: datetime, cadence: Cadence) -> Incident:
    if incident.status != IncidentStatus.RESOLVED:
        raise InvalidState(f"{incident.key} is still open.")
    incident.status = IncidentStatus.OPEN
    incident.phase = Phase.INVESTIGATING
    incident.resolved_at = None
    incident.missed_reminders = 0
    incident.next_update_due = due_after(now, incident.severity, cadence)
    session.add(incident)
    add_entry(
        session=session,
        incident=incident,
        kind=EntryKind.NOTE,
        text="Incident reopened",
        actor=actor_id,
        now=now,
    )
    session.flush()
    return incident


def snooze(*, session: Session, incident: Incident, until: datetime) -> Incident:
    require_open(incident, "snooze its reminder")
    incident.next_update_due = until
    session.add(incident)
    session.flush()
    return incident


def record_participant(*, session: Session, incident_id: int, user_id: str, at: datetime) -> None:
    """Count one message by `user_id` in the incident channel at `at` (an upsert, safe under retries)."""
    table = Participant.__table__  # type: ignore[attr-defined]
    values = {"incident_id": incident_id, "user_id": user_id, "first_seen_at": at, "last_seen_at": at, "messages": 1}
    dialect = session.get_bind().dialect.name
    stmt = dialect_insert(session, table).values(**values)
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=["incident_id", "user_id"],
        set_={
            "first_seen_at": sa.func.min(table.c.first_seen_at, excluded.first_seen_at)
            if dialect == "sqlite"
            else sa.func.least(table.c.first_seen_at, excluded.first_seen_at),
            "last_seen_at": sa.func.max(table.c.last_seen_at, excluded.last_seen_at)
            if dialect == "sqlite"
            else sa.func.greatest(table.c.last_seen_at, excluded.last_seen_at),
            "messages": table.c.messages + 1,
        },
    )
    session.execute(stmt)


def _id(incident: Incident) -> int:
    if incident.id is None:
        raise ValueError("incident has not been stored yet")
    return incident.id
