"""Channel life (SPEC §14): what a newcomer needs to catch up, welcomes once per person, and archiving the
channel once, a while after resolve. Pure domain over a session; the caller commits.

Archiving is claimed like a reminder (core.reminders): one UPDATE ... RETURNING (FOR UPDATE SKIP LOCKED on
PostgreSQL) sets `archived_at`, so several replicas, or a restart, archive each channel once; the channels
whose time came while the bot was down are claimed by the first tick after it starts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from core import store
from core.db import insert_or_ignore
from core.enums import IncidentStatus, Role
from core.models import ActionItem, Incident, StatusUpdate, TimelineEntry, UTCDateTime, Welcome
from core.reminders import skip_locked

LATEST_ENTRIES = 5
OPEN_ITEMS = 10


@dataclass(frozen=True)
class CatchUp:
    """Where an incident stands, from stored data only."""

    incident: Incident
    age: timedelta
    roles: dict[Role, str]
    latest_update: StatusUpdate | None
    entries: list[TimelineEntry]  # the latest few, oldest first
    entry_count: int
    open_items: list[ActionItem]  # the first few open ones, oldest first
    open_item_count: int


def catch_up(*, session: Session, incident: Incident, now: datetime) -> CatchUp:
    """The catch-up of an incident: a handful of small queries, whatever the size of its timeline."""
    latest = session.exec(
        select(StatusUpdate)
        .where(StatusUpdate.incident_id == incident.id)
        .order_by(col(StatusUpdate.posted_at).desc(), col(StatusUpdate.id).desc())
        .limit(1)
    ).first()
    entries = list(
        session.exec(
            select(TimelineEntry)
            .where(TimelineEntry.incident_id == incident.id)
            .order_by(col(TimelineEntry.occurred_at).desc(), col(TimelineEntry.id).desc())
            .limit(LATEST_ENTRIES)
        )
    )
    entry_count = session.exec(
        select(func.count()).select_from(TimelineEntry).where(TimelineEntry.incident_id == incident.id)
    ).one()
    open_items = select(ActionItem).where(ActionItem.incident_id == incident.id, ActionItem.status == "open")
    items = list(session.exec(open_items.order_by(col(ActionItem.id)).limit(OPEN_ITEMS)))
    item_count = session.exec(select(func.count()).select_from(open_items.subquery())).one()
    end = incident.resolved_at or now
    return CatchUp(
        incident=incident,
        age=max(end - incident.declared_at, timedelta(0)),
        roles=store.roles_of(session=session, incident=incident),
        latest_update=latest,
        entries=entries[::-1],
        entry_count=int(entry_count),
        open_items=items,
        open_item_count=int(item_count),
    )


def claim_welcome(*, session: Session, incident_id: int, user_id: str, now: datetime) -> bool:
    """Claim the one welcome of a person to an incident; False when someone (a replica, a retry) had it."""
    table = Welcome.__table__  # type: ignore[attr-defined]
    insert = insert_or_ignore(table, ("incident_id", "user_id"), ("incident_id", "user_id", "welcomed_at"))
    result: Any = session.execute(insert, {"incident_id": incident_id, "user_id": user_id, "welcomed_at": now})
    return bool(result.rowcount == 1)


def release_welcome(*, session: Session, incident_id: int, user_id: str) -> None:
    """Put back a welcome that could not be delivered."""
    table = Welcome.__table__  # type: ignore[attr-defined]
    session.execute(sa.delete(table).where(table.c.incident_id == incident_id, table.c.user_id == user_id))


@dataclass(frozen=True)
class ArchiveClaim:
    incident_id: int
    key: str
    channel_id: str
    resolved_at: datetime
    claimed_at: datetime
    notice_ts: str | None  # the last message, when an earlier attempt posted it already


def claim_archives(*, session: Session, now: datetime, after: timedelta, limit: int = 100) -> list[ArchiveClaim]:
    """Claim the resolved incidents whose channel is due to be archived (resolved at least `after` ago)."""
    table = Incident.__table__  # type: ignore[attr-defined]
    due = (
        sa.select(table.c.id)
        .where(
            table.c.status == IncidentStatus.RESOLVED.value,
            table.c.archived_at.is_(None),
            table.c.channel_id.is_not(None),
            table.c.resolved_at <= sa.literal(now - after, UTCDateTime),
        )
        .order_by(table.c.resolved_at)
        .limit(limit)
    )
    statement = (
        sa.update(table)
        .where(table.c.id.in_(skip_locked(session, due).scalar_subquery()))
        .values(archived_at=sa.literal(now, UTCDateTime))
        .returning(table.c.id, table.c.key, table.c.channel_id, table.c.resolved_at, table.c.archive_notice_ts)
    )
    claims = [
        ArchiveClaim(row.id, row.key, row.channel_id, row.resolved_at, now, row.archive_notice_ts)
        for row in session.execute(statement).all()
    ]
    return sorted(claims, key=lambda claim: claim.incident_id)


def archive_notice_posted(*, session: Session, claim: ArchiveClaim, ts: str) -> None:
    table = Incident.__table__  # type: ignore[attr-defined]
    session.execute(sa.update(table).where(table.c.id == claim.incident_id).values(archive_notice_ts=ts))


def release_archive(*, session: Session, claim: ArchiveClaim) -> bool:
    """Put back a claim whose channel could not be archived (the next tick tries again), unless the incident
    moved meanwhile (a reopen). True when it was put back."""
    table = Incident.__table__  # type: ignore[attr-defined]
    result = session.execute(
        sa.update(table)
        .where(
            table.c.id == claim.incident_id,
            table.c.status == IncidentStatus.RESOLVED.value,
            table.c.archived_at == sa.literal(claim.claimed_at, UTCDateTime),
        )
        .values(archived_at=None)
        .returning(table.c.id)
    )
    return result.first() is not None
