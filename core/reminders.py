"""Status-update reminders (SPEC §7), claimed with one atomic statement each, so that with several replicas,
or after a restart, every reminder is sent exactly once.

`next_update_due` on the incident is the one source of truth. A claim moves it to now + the cadence of the
incident's severity (so periods missed while the bot was down give one catch-up reminder, not one each) and
counts the reminder; `release` puts a claim back when its reminder could not be posted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from core.enums import IncidentStatus, Role, Severity
from core.jira import tracked
from core.models import ActionItem, Incident, JobRun, RoleAssignment, UTCDateTime

Cadence = Mapping[Severity, timedelta | None]


@dataclass(frozen=True)
class Claim:
    """A reminder this process must post: everything needed to post it and, on failure, to put it back."""

    incident_id: int
    key: str
    title: str
    severity: Severity
    channel_id: str | None
    commander_id: str
    missed: int  # reminders in a row without an update, this one included
    next_due: datetime | None

    def escalate(self, escalate_after: int) -> bool:
        return self.missed > escalate_after


def _due_after(now: datetime, cadence: Cadence) -> sa.ColumnElement[datetime]:
    """now + the cadence of each row's severity (NULL where the cadence is off), as one SQL expression."""
    whens = {
        severity.value: sa.literal(now + period if period else None, UTCDateTime)
        for severity, period in cadence.items()
    }
    return sa.case(whens, value=Incident.__table__.c.severity, else_=sa.null())  # type: ignore[attr-defined]


def claim_due(*, session: Session, now: datetime, cadence: Cadence, limit: int = 500) -> list[Claim]:
    """Claim the incidents whose update is due, with one UPDATE ... RETURNING (FOR UPDATE SKIP LOCKED on
    PostgreSQL, so that replicas claim different rows without waiting for each other)."""
    table = Incident.__table__  # type: ignore[attr-defined]
    due = (
        sa.select(table.c.id)
        .where(
            table.c.status == IncidentStatus.OPEN.value,
            table.c.next_update_due.is_not(None),
            table.c.next_update_due <= sa.literal(now, UTCDateTime),
            table.c.channel_id.is_not(None),  # still being declared: its first reminder waits for the channel
        )
        .order_by(table.c.next_update_due)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    statement = (
        sa.update(table)
        .where(table.c.id.in_(due.scalar_subquery()))
        .values(
            next_update_due=_due_after(now, cadence),
            missed_reminders=table.c.missed_reminders + 1,
            last_reminder_at=sa.literal(now, UTCDateTime),
        )
        .returning(
            table.c.id,
            table.c.key,
            table.c.title,
            table.c.severity,
            table.c.channel_id,
            table.c.commander_id,
            table.c.missed_reminders,
            table.c.next_update_due,
        )  # fmt: skip
    )
    claims = [
        Claim(
            incident_id=row.id,
            key=row.key,
            title=row.title,
            severity=Severity(row.severity),
            channel_id=row.channel_id,
            commander_id=row.commander_id,
            missed=row.missed_reminders,
            next_due=row.next_update_due,
        )  # fmt: skip
        for row in session.execute(statement).all()
    ]
    return sorted(claims, key=lambda c: c.incident_id)


def release(*, session: Session, claim: Claim, now: datetime) -> bool:
    """Put back a claim whose reminder could not be posted, unless something moved the incident since
    (an update, a snooze, a resolve): the next tick then tries again. True when it was put back."""
    table = Incident.__table__  # type: ignore[attr-defined]
    unchanged = (
        table.c.next_update_due.is_(None) if claim.next_due is None
        else table.c.next_update_due == sa.literal(claim.next_due, UTCDateTime)
    )  # fmt: skip
    result = session.execute(
        sa.update(table)
        .where(table.c.id == claim.incident_id, table.c.status == IncidentStatus.OPEN.value, unchanged)
        .values(next_update_due=sa.literal(now, UTCDateTime), missed_reminders=table.c.missed_reminders - 1)
        .returning(table.c.id)
    )
    return result.first() is not None


def comms_leads(*, session: Session, incident_ids: list[int]) -> dict[int, str]:
    table = RoleAssignment.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        sa.select(table.c.incident_id, table.c.user_id).where(
            table.c.incident_id.in_(incident_ids), table.c.role == Role.COMMS.value
        )
    )
    return {row.incident_id: row.user_id for row in rows}


@dataclass(frozen=True)
class DueItem:
    item_id: int
    incident_id: int
    key: str
    title: str
    owner_id: str
    due: date
    jira: str | None = None  # its Jira issue and state, e.g. "Jira OPS-12 (In Progress)"


def claim_items_due(*, session: Session, on: date, today: date) -> list[DueItem]:
    """Claim the open action items due on `on` whose owner was not reminded today (once per item per day)."""
    items = ActionItem.__table__  # type: ignore[attr-defined]
    incidents = Incident.__table__  # type: ignore[attr-defined]
    claimed = session.execute(
        sa.update(items)
        .where(
            items.c.due == on,
            items.c.status == "open",
            items.c.owner_id.is_not(None),
            sa.or_(items.c.reminded_on.is_(None), items.c.reminded_on < today),
        )
        .values(reminded_on=today)
        .returning(items.c.id, items.c.incident_id, items.c.title, items.c.owner_id, items.c.due, items.c.jira_key,
                   items.c.jira_status)  # fmt: skip
    ).all()
    keys = dict(session.execute(sa.select(incidents.c.id, incidents.c.key).where(
        incidents.c.id.in_([row.incident_id for row in claimed]))).all())  # fmt: skip
    return sorted(
        (DueItem(row.id, row.incident_id, keys.get(row.incident_id) or "", row.title, row.owner_id, row.due,
                 tracked(row.jira_key, row.jira_status))
         for row in claimed),
        key=lambda item: item.item_id,
    )  # fmt: skip


def release_item(*, session: Session, item_id: int, today: date) -> None:
    """Put back the claim of an action item whose owner could not be told, so that a later run tries again."""
    items = ActionItem.__table__  # type: ignore[attr-defined]
    session.execute(
        sa.update(items).where(items.c.id == item_id, items.c.reminded_on == today).values(reminded_on=None)
    )


def release_job_run(*, session: Session, name: str, run_key: str) -> None:
    """Put back the claim of a cron run (e.g. a digest that could not be posted), so that it may run again."""
    runs = JobRun.__table__  # type: ignore[attr-defined]
    session.execute(sa.delete(runs).where(runs.c.name == name, runs.c.run_key == run_key))
