"""Status-update reminders (SPEC §7, §15): each one a lease, claimed with one atomic statement and confirmed
after its post, so that with several replicas, after a restart or after a crash, every reminder is sent exactly
once.

`next_update_due` on the incident is the one source of truth. A claim takes a lease on the due reminder
(`reminder_lease_until`) and changes nothing else; once the reminder is posted, `confirm` moves
`next_update_due` to now + the cadence of the incident's severity (so periods missed while the bot was down give
one catch-up reminder, not one each), counts the reminder and ends the lease. A process killed between claim
and post leaves a lease that runs out: the next tick claims the reminder again, as a second attempt
(`Claim.attempt`), which looks for the first attempt's message before posting. `release` ends the lease of a
reminder that could not be posted, so that the next tick tries again."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session

from core.enums import IncidentStatus, Role, Severity
from core.jira import tracked
from core.models import ActionItem, Incident, JobRun, RoleAssignment, UTCDateTime

Cadence = Mapping[Severity, timedelta | None]

# How long a claim is held for its post. A process that dies holding it delays that reminder by this much; a post
# slower than this (all the client's retries included) may be claimed by another tick, which then finds it.
LEASE = timedelta(minutes=2)


@dataclass(frozen=True)
class Claim:
    """A reminder this process must post: everything needed to post it, confirm it or put it back."""

    incident_id: int
    key: str
    title: str
    severity: Severity
    channel_id: str | None
    commander_id: str
    missed: int  # reminders in a row without an update, this one included
    due: datetime | None  # when this reminder fell due: with the incident, it names the period
    attempt: int = 1  # above 1, an earlier claim of this reminder may have posted it
    lease: datetime | None = None

    def escalate(self, escalate_after: int) -> bool:
        return self.missed > escalate_after

    @property
    def period(self) -> str:
        """The reminder's idempotency key: the incident and the moment it fell due."""
        return f"{self.incident_id}@{self.due.isoformat() if self.due else ''}"


def _due_after(now: datetime, cadence: Cadence) -> sa.ColumnElement[datetime]:
    """now + the cadence of each row's severity (NULL where the cadence is off), as one SQL expression."""
    whens = {
        severity.value: sa.literal(now + period if period else None, UTCDateTime)
        for severity, period in cadence.items()
    }
    return sa.case(whens, value=Incident.__table__.c.severity, else_=sa.null())  # type: ignore[attr-defined]


S = TypeVar("S", bound=sa.Select[Any])


def skip_locked(session: Session, query: S) -> S:
    """The rows a claim selects, locked on PostgreSQL without waiting for the rows other replicas are claiming
    (FOR UPDATE SKIP LOCKED), so that replicas claim different rows; SQLite has one writer at a time anyway."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


def claim_due(*, session: Session, now: datetime, cadence: Cadence, limit: int = 500) -> list[Claim]:
    """Take a lease on the reminders that are due and not held by a live lease, with one UPDATE ... RETURNING
    (FOR UPDATE SKIP LOCKED on PostgreSQL, so that replicas claim different rows without waiting for each other).
    `cadence` is not used by the claim (only `confirm` moves the due time); it is kept for the callers' symmetry."""
    table = Incident.__table__  # type: ignore[attr-defined]
    at = sa.literal(now, UTCDateTime)
    due = (
        sa.select(table.c.id)
        .where(
            table.c.status == IncidentStatus.OPEN.value,
            table.c.next_update_due.is_not(None),
            table.c.next_update_due <= at,
            table.c.channel_id.is_not(None),  # still being declared: its first reminder waits for the channel
            sa.or_(table.c.reminder_lease_until.is_(None), table.c.reminder_lease_until <= at),
        )
        .order_by(table.c.next_update_due)
        .limit(limit)
    )
    lease = now + LEASE
    statement = (
        sa.update(table)
        .where(table.c.id.in_(skip_locked(session, due).scalar_subquery()))
        .values(reminder_lease_until=sa.literal(lease, UTCDateTime), reminder_attempts=table.c.reminder_attempts + 1)
        .returning(
            table.c.id,
            table.c.key,
            table.c.title,
            table.c.severity,
            table.c.channel_id,
            table.c.commander_id,
            table.c.missed_reminders,
            table.c.next_update_due,
            table.c.reminder_attempts,
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
            missed=row.missed_reminders + 1,
            due=row.next_update_due,
            attempt=row.reminder_attempts,
            lease=lease,
        )  # fmt: skip
        for row in session.execute(statement).all()
    ]
    return sorted(claims, key=lambda c: c.incident_id)


def _held(claims: Sequence[Claim]) -> sa.ColumnElement[bool]:
    """The rows of these claims whose lease is still theirs (not taken over by a later claim)."""
    table = Incident.__table__  # type: ignore[attr-defined]
    by_lease: dict[datetime | None, list[int]] = {}
    for claim in claims:
        by_lease.setdefault(claim.lease, []).append(claim.incident_id)
    return sa.or_(*(
        sa.and_(table.c.id.in_(ids), table.c.reminder_lease_until == sa.literal(lease, UTCDateTime))
        for lease, ids in by_lease.items()
    ))  # fmt: skip


def confirm(*, session: Session, claims: Sequence[Claim], now: datetime, cadence: Cadence) -> None:
    """The reminders of these claims were posted: the next one is due a period from now, each is counted as
    missed (until an update comes) and the leases end. An incident that moved meanwhile (an update, a snooze,
    a resolve) keeps its new due time; its lease ends too."""
    if not claims:
        return
    table = Incident.__table__  # type: ignore[attr-defined]
    at = sa.literal(now, UTCDateTime)
    held = _held(claims)
    still_due = sa.and_(table.c.status == IncidentStatus.OPEN.value, table.c.next_update_due <= at)
    session.execute(
        sa.update(table)
        .where(held, still_due)
        .values(
            next_update_due=_due_after(now, cadence),
            missed_reminders=table.c.missed_reminders + 1,
            last_reminder_at=at,
            reminder_lease_until=None,
            reminder_attempts=0,
        )
    )
    session.execute(sa.update(table).where(held).values(reminder_lease_until=None, reminder_attempts=0))


def release(*, session: Session, claim: Claim, now: datetime) -> bool:
    """End the lease of a reminder that could not be posted, so that the next tick tries again (as a further
    attempt, which looks for this one's message first: a post that timed out may have happened). False when
    something moved the incident since (an update, a snooze, a resolve): then nothing is due any more."""
    table = Incident.__table__  # type: ignore[attr-defined]
    held = _held([claim])
    still_due = sa.and_(
        table.c.status == IncidentStatus.OPEN.value, table.c.next_update_due <= sa.literal(now, UTCDateTime)
    )
    put_back = session.execute(
        sa.update(table).where(held, still_due).values(reminder_lease_until=None).returning(table.c.id)
    ).first()
    if put_back is None:
        session.execute(sa.update(table).where(held).values(reminder_lease_until=None, reminder_attempts=0))
    return put_back is not None


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
    private: bool = False  # of a private incident: its title and key are for the channel's members only
    channel_id: str | None = None
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
    of = {row.id: row for row in session.execute(sa.select(
        incidents.c.id, incidents.c.key, incidents.c.private, incidents.c.channel_id).where(
        incidents.c.id.in_([row.incident_id for row in claimed])))}  # fmt: skip
    return sorted(
        (DueItem(row.id, row.incident_id, of[row.incident_id].key or "", row.title, row.owner_id, row.due,
                 bool(of[row.incident_id].private), of[row.incident_id].channel_id,
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
