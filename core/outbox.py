"""The outbox (SPEC §13.1): every call to an outside system (PagerDuty, Jira, Statuspage) is a row, written by
`enqueue` in the transaction of the incident change that causes it, and sent by a delivery worker (bot/outbox.py)
that calls the functions below. Pure table logic: the session comes in, no HTTP here.

A row is claimed like a reminder (core.reminders): one UPDATE ... RETURNING (FOR UPDATE SKIP LOCKED on PostgreSQL)
sets a lease (`lease_until`, `lease_token`) and counts the attempt. The worker then sends it and records the
outcome under its lease token: `delivered`, `retry_later` (exponential backoff with jitter, or the remote's
Retry-After) or `give_up`. A worker that dies between claim and send leaves the lease to expire, and the row is
claimed again: never lost; the remote's idempotency key (PagerDuty's dedup_key) makes the resend harmless.

Rows of one incident and one integration go out in order: a row is not claimed while an older row of the same
incident and integration is still pending. A row waits (at most CHANNEL_GRACE) for its incident's channel, whose
link the remote gets and where the answer is told."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from core.db import insert_or_ignore
from core.models import Incident, OutboxRow, UTCDateTime

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
LEASE = timedelta(seconds=90)  # longer than any sender's HTTP timeout
CHANNEL_GRACE = timedelta(seconds=30)
BACKOFF_BASE = timedelta(seconds=5)
BACKOFF_CAP = timedelta(minutes=10)
NAMES = {"pagerduty": "PagerDuty", "jira": "Jira", "statuspage": "Statuspage"}


@dataclass(frozen=True)
class Delivery:
    """A claimed row: what its sender needs, and the lease token under which its outcome is recorded."""

    id: int
    integration: str
    operation: str
    payload: dict[str, Any]
    idempotency_key: str
    incident_id: int | None
    attempts: int  # this one included
    created_at: datetime
    lease_token: str
    incident_key: str | None = None
    channel_id: str | None = None
    channel_name: str | None = None


@dataclass(frozen=True)
class Sent:
    """What a sender returns when the remote accepted the call: what to keep (`result`, e.g. {"link": "OPS-12"},
    shown in `/incident status`) and what to tell the incident channel, if anything."""

    result: dict[str, Any] = field(default_factory=dict)
    notice: str | None = None


class DeliveryError(Exception):
    """A send that failed. `permanent`: retrying cannot help (e.g. a 400), so the row gives up at once;
    `retry_after`: the remote said when to come back (a 429's Retry-After)."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: timedelta | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


def _table() -> sa.Table:
    return OutboxRow.__table__  # type: ignore[attr-defined, no-any-return]


def enqueue(
    *,
    session: Session,
    integration: str,
    operation: str,
    payload: Mapping[str, Any],
    idempotency_key: str,
    now: datetime,
    incident_id: int | None = None,
) -> bool:
    """Add a row in the caller's transaction; False when a row with this idempotency key exists (the same change
    retried). The payload must hold no secret: senders add credentials from the settings at send time."""
    table = _table()
    columns = ("integration", "operation", "payload", "idempotency_key", "incident_id", "state", "attempts",
               "created_at", "next_attempt_at", "result")  # fmt: skip
    statement = insert_or_ignore(table, ("idempotency_key",), columns)
    result: Any = session.execute(statement, {
        "integration": integration, "operation": operation, "payload": dict(payload),
        "idempotency_key": idempotency_key, "incident_id": incident_id, "state": PENDING, "attempts": 0,
        "created_at": now, "next_attempt_at": now, "result": {},
    })  # fmt: skip
    return bool(result.rowcount == 1)


def enqueue_for(*, session: Session, incident: Incident, integration: str, operation: str,
                payload: Mapping[str, Any], why: str, now: datetime) -> bool:  # fmt: skip
    """A row about an incident, keyed `<integration>:<INC-n>:<operation>:<why>`: one row per cause."""
    return enqueue(session=session, integration=integration, operation=operation, payload=payload,
                   idempotency_key=f"{integration}:{incident.key}:{operation}:{why}", incident_id=incident.id,
                   now=now)  # fmt: skip


def has_row(*, session: Session, incident_id: int | None, integration: str, operation: str) -> bool:
    """Whether the incident has a row of this operation, in any state (e.g. whether its Jira issue was asked for)."""
    table = _table()
    query = sa.select(table.c.id).where(
        table.c.incident_id == incident_id, table.c.integration == integration, table.c.operation == operation
    )
    return session.execute(query.limit(1)).first() is not None


def claim(
    *,
    session: Session,
    now: datetime,
    lease: timedelta = LEASE,
    limit: int = 20,
    only: Collection[str] | None = None,
    exclude: Collection[str] = (),
) -> list[Delivery]:
    """Claim the rows due now (oldest first), at most one per incident and integration; of the integrations in
    `only` when given, and none of those in `exclude` (a worker pacing an integration claims its rows apart)."""
    table = _table()
    earlier = table.alias("earlier")
    incidents = Incident.__table__  # type: ignore[attr-defined]
    at = sa.literal(now, UTCDateTime)
    # The oldest pending row of each incident and integration: the only one that may go. One aggregate over the
    # pending rows, whatever the planner's statistics say (a NOT EXISTS over older rows was planned as a scan of
    # every pending row for each, on PostgreSQL right after a burst: 440 ms a claim with 2,000 rows).
    first = (
        sa.select(sa.func.min(earlier.c.id))
        .where(earlier.c.state == PENDING, earlier.c.incident_id.is_not(None))
        .group_by(earlier.c.incident_id, earlier.c.integration)
    )
    has_channel = sa.exists().where(incidents.c.id == table.c.incident_id, incidents.c.channel_id.is_not(None))
    due = (
        sa.select(table.c.id)
        .where(
            table.c.state == PENDING,
            table.c.next_attempt_at <= at,
            sa.or_(table.c.lease_until.is_(None), table.c.lease_until <= at),
            sa.or_(table.c.incident_id.is_(None), table.c.id.in_(first.scalar_subquery())),
            sa.or_(
                table.c.incident_id.is_(None),
                has_channel,
                table.c.created_at <= sa.literal(now - CHANNEL_GRACE, UTCDateTime),
            ),
        )
        .order_by(table.c.id)
        .limit(limit)
    )
    if only is not None:
        due = due.where(table.c.integration.in_(list(only)))
    if exclude:
        due = due.where(table.c.integration.not_in(list(exclude)))
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True, of=table)
    token = uuid.uuid4().hex
    rows = session.execute(
        sa.update(table)
        .where(table.c.id.in_(due.scalar_subquery()))
        .values(lease_until=sa.literal(now + lease, UTCDateTime), lease_token=token, attempts=table.c.attempts + 1)
        .returning(table.c.id, table.c.integration, table.c.operation, table.c.payload, table.c.idempotency_key,
                   table.c.incident_id, table.c.attempts, table.c.created_at)  # fmt: skip
    ).all()
    ids = {row.incident_id for row in rows if row.incident_id is not None}
    about = {
        row.id: row
        for row in session.execute(
            sa.select(incidents.c.id, incidents.c.key, incidents.c.channel_id, incidents.c.channel_name).where(
                incidents.c.id.in_(ids)
            )
        )
    }
    deliveries = []
    for row in sorted(rows, key=lambda r: r.id):
        incident = about.get(row.incident_id)
        deliveries.append(
            Delivery(
                id=row.id, integration=row.integration, operation=row.operation, payload=dict(row.payload),
                idempotency_key=row.idempotency_key, incident_id=row.incident_id, attempts=row.attempts,
                created_at=row.created_at,
                lease_token=token,
                incident_key=incident.key if incident else None,
                channel_id=incident.channel_id if incident else None,
                channel_name=incident.channel_name if incident else None,
            )  # fmt: skip
        )
    return deliveries


def _mine(delivery: Delivery) -> sa.ColumnElement[bool]:
    table = _table()
    return sa.and_(table.c.id == delivery.id, table.c.lease_token == delivery.lease_token, table.c.state == PENDING)


def delivered(*, session: Session, delivery: Delivery, now: datetime, result: Mapping[str, Any]) -> bool:
    """Record a success; False when the lease was lost meanwhile (another worker has the row and resends it)."""
    table = _table()
    done = session.execute(
        sa.update(table).where(_mine(delivery))
        .values(state=DELIVERED, delivered_at=sa.literal(now, UTCDateTime), lease_until=None, lease_token=None,
                last_error=None, result=dict(result))
        .returning(table.c.id)
    ).first()  # fmt: skip
    return done is not None


def retry_later(*, session: Session, delivery: Delivery, now: datetime, error: str, delay: timedelta) -> None:
    table = _table()
    session.execute(
        sa.update(table).where(_mine(delivery))
        .values(next_attempt_at=sa.literal(now + delay, UTCDateTime), lease_until=None, lease_token=None,
                last_error=error[:500])
    )  # fmt: skip


def give_up(*, session: Session, delivery: Delivery, now: datetime, error: str) -> bool:
    """Mark the row failed for good; True for the one caller that did it (who then tells the channel, once)."""
    table = _table()
    done = session.execute(
        sa.update(table).where(_mine(delivery))
        .values(state=FAILED, lease_until=None, lease_token=None, last_error=error[:500])
        .returning(table.c.id)
    ).first()  # fmt: skip
    return done is not None


def backoff(attempts: int, *, jitter: float, base: timedelta = BACKOFF_BASE, cap: timedelta = BACKOFF_CAP) -> timedelta:
    """The wait after the `attempts`-th failure: base * 2^(attempts-1), at most `cap`, scaled by a jitter in
    [0.5, 1) ("equal jitter"), so that rows failing together do not come back together. `jitter` in [0, 1)."""
    delay = min(cap, base * (2 ** max(0, min(attempts - 1, 30))))
    return delay * (0.5 + jitter / 2)


def any_due(*, session: Session, now: datetime) -> bool:
    """Whether a claim could find anything (a cheap read first, so an idle worker takes no write lock)."""
    table = _table()
    at = sa.literal(now, UTCDateTime)
    query = sa.select(table.c.id).where(
        table.c.state == PENDING,
        table.c.next_attempt_at <= at,
        sa.or_(table.c.lease_until.is_(None), table.c.lease_until <= at),
    )
    return session.execute(query.limit(1)).first() is not None


def pending_count(*, session: Session) -> int:
    table = _table()
    return int(session.execute(sa.select(sa.func.count()).where(table.c.state == PENDING)).scalar_one())


def rows_of(*, session: Session, incident_id: int, integration: str | None = None) -> list[OutboxRow]:
    query = sa.select(OutboxRow).where(OutboxRow.incident_id == incident_id)  # type: ignore[arg-type]
    if integration:
        query = query.where(OutboxRow.integration == integration)  # type: ignore[arg-type]
    return list(session.scalars(query.order_by(OutboxRow.id)))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Link:
    integration: str
    text: str

    @property
    def name(self) -> str:
        return NAMES.get(self.integration, self.integration)


def links(*, session: Session, incident_id: int) -> list[Link]:
    """Each integration's state for an incident, for `/incident status` ("PagerDuty: triggered"): what the newest
    delivered row left (its result's `link`), and what is still pending or failed after it."""
    newest: dict[str, list[OutboxRow]] = {}
    for row in rows_of(session=session, incident_id=incident_id):
        newest.setdefault(row.integration, []).append(row)
    found = []
    for integration, rows in sorted(newest.items()):
        shown = next((str(r.result.get("link") or r.operation) for r in reversed(rows) if r.state == DELIVERED), None)
        last = rows[-1]
        parts = [shown] if shown else []
        if last.state == PENDING:
            retrying = f", retrying: {last.last_error}" if last.last_error else ""
            parts.append(f"{last.operation} pending{retrying}")
        elif last.state == FAILED:
            parts.append(f"{last.operation} failed: {last.last_error or 'gave up'}")
        found.append(Link(integration, "; ".join(parts)))
    return found
