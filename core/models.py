"""Storage tables (SQLModel on SQLAlchemy 2). Every datetime is stored as UTC and read back aware."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from core.enums import EntryKind, IncidentStatus, Phase, Priority, Role, Severity


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (no zone support) and PostgreSQL alike."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _when(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def _enum(enum: type[StrEnum], **kwargs: Any) -> Any:
    """A string column that stores the enum's value and reads back the enum member."""
    column_type = sa.Enum(enum, native_enum=False, length=24, values_callable=lambda e: [m.value for m in e])
    return Field(sa_type=column_type, **kwargs)


def _json(default: Any) -> Any:
    return Field(default_factory=default, sa_type=sa.JSON, nullable=False)


class Incident(SQLModel, table=True):
    __tablename__ = "incidents"

    id: int | None = Field(default=None, primary_key=True)
    key: str | None = Field(default=None, unique=True, max_length=32)
    title: str = Field(max_length=500)
    description: str = ""
    severity: Severity = _enum(Severity)
    status: IncidentStatus = _enum(IncidentStatus, default=IncidentStatus.OPEN, index=True)
    phase: Phase = _enum(Phase, default=Phase.INVESTIGATING)
    private: bool = False
    declared_by: str = Field(max_length=32)
    commander_id: str = Field(max_length=32)
    declared_at: datetime = _when()
    resolved_at: datetime | None = _when(nullable=True)
    team_id: str | None = Field(default=None, max_length=32)
    channel_id: str | None = Field(default=None, unique=True, max_length=32)
    channel_name: str | None = Field(default=None, max_length=80)
    intro_ts: str | None = Field(default=None, max_length=32)
    announce_channel: str | None = Field(default=None, max_length=32)
    announce_ts: str | None = Field(default=None, max_length=32)
    pir_ts: str | None = Field(default=None, max_length=32)
    # Which step of the declare flow (SPEC §5) has completed, so a failure part-way can be resumed.
    declare_step: str = Field(default="row", max_length=16)
    declare_error: str | None = None
    services: list[str] = _json(list)
    impact: dict[str, Any] = _json(dict)
    severity_reasons: list[str] = _json(list)
    root_cause: str | None = None
    contributing_factors: list[str] = _json(list)
    customer_impact: str | None = None
    lessons: list[str] = _json(list)
    five_whys: list[dict[str, str]] = _json(list)
    # Display names of the people involved (Slack user id -> name), so an export needs no Slack.
    people: dict[str, str] = _json(dict)
    # Cadence (SPEC §7): the one source of truth for the next reminder.
    next_update_due: datetime | None = _when(nullable=True, index=True)
    last_update_at: datetime | None = _when(nullable=True)
    missed_reminders: int = 0
    last_reminder_at: datetime | None = _when(nullable=True)
    # Channel archiving (SPEC §14): claimed by setting archived_at; the last message's ts, once posted, so that
    # a retry after a failed archive call does not post it again. Both are cleared on reopen.
    archived_at: datetime | None = _when(nullable=True)
    archive_notice_ts: str | None = Field(default=None, max_length=32)
    # A reminder claimed by a tick and not yet confirmed as posted (SPEC §15): claimed again once the lease ends.
    reminder_lease_until: datetime | None = _when(nullable=True)
    reminder_attempts: int = 0  # claims of the current reminder; above 1, look for an earlier attempt's message
    # Outside systems (SPEC §13.4, §13.5): the Jira issue's key once created; the public Statuspage incident
    # ({"components": {id: impact}} when asked for, then "id" and "url" once created).
    jira_key: str | None = Field(default=None, max_length=64)
    statuspage: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON, nullable=True)


class TimelineEntry(SQLModel, table=True):
    __tablename__ = "timeline_entries"
    __table_args__ = (
        sa.UniqueConstraint("incident_id", "message_channel", "message_ts", name="uq_entry_message"),
        # Edits and deletes find a message's entries by the message alone, in whatever channel it is.
        sa.Index("ix_timeline_entries_message", "message_channel", "message_ts"),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True, ondelete="CASCADE")
    occurred_at: datetime = _when(index=True)
    recorded_at: datetime = _when()
    kind: EntryKind = _enum(EntryKind)
    actor: str = Field(default="", max_length=64)
    text: str = ""
    source: str = Field(default="bot", max_length=16)
    permalink: str | None = None
    message_channel: str | None = Field(default=None, max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)
    kind_locked: bool = False
    details: dict[str, Any] = _json(dict)


class TimelineTag(SQLModel, table=True):
    """What tagged a message into the timeline (a reaction by someone, a pin, a shortcut).

    The entry lives while it has at least one tag; removing the last tag removes the entry."""

    __tablename__ = "timeline_tags"
    __table_args__ = (sa.UniqueConstraint("entry_id", "tag", name="uq_tag"),)

    id: int | None = Field(default=None, primary_key=True)
    entry_id: int = Field(foreign_key="timeline_entries.id", index=True, ondelete="CASCADE")
    tag: str = Field(max_length=128)


class StatusUpdate(SQLModel, table=True):
    __tablename__ = "status_updates"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True, ondelete="CASCADE")
    posted_at: datetime = _when()
    phase: Phase = _enum(Phase)
    text: str
    author_id: str = Field(max_length=32)
    due_at: datetime | None = _when(nullable=True)
    message_ts: str | None = Field(default=None, max_length=32)
    # Reminders sent for it before it came (a reminder re-arms `due_at`, so this tells a late update apart).
    reminders_before: int | None = None


class SeverityChange(SQLModel, table=True):
    __tablename__ = "severity_changes"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True, ondelete="CASCADE")
    changed_at: datetime = _when()
    from_severity: Severity | None = _enum(Severity, default=None, nullable=True)
    to_severity: Severity = _enum(Severity)
    reason: str = ""
    actor_id: str = Field(max_length=32)


class RoleAssignment(SQLModel, table=True):
    """The current holder of each role of an incident (history lives in the timeline)."""

    __tablename__ = "role_assignments"
    __table_args__ = (sa.UniqueConstraint("incident_id", "role", name="uq_role"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True, ondelete="CASCADE")
    role: Role = _enum(Role)
    user_id: str = Field(max_length=32)
    assigned_at: datetime = _when()
    assigned_by: str = Field(max_length=32)


class ActionItem(SQLModel, table=True):
    __tablename__ = "action_items"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True, ondelete="CASCADE")
    title: str
    owner_id: str | None = Field(default=None, max_length=64)
    priority: Priority = _enum(Priority, default=Priority.P2)
    due: date | None = Field(default=None, index=True)
    status: str = Field(default="open", max_length=16)
    created_at: datetime = _when()
    created_by: str = Field(max_length=32)
    # The day the owner was last reminded (claimed atomically, so once per item per day).
    reminded_on: date | None = None
    # Its Jira issue (SPEC §13.4), and the status as last read back by the sync.
    jira_key: str | None = Field(default=None, max_length=64)
    jira_status: str | None = Field(default=None, max_length=64)
    jira_done: bool = False


class Participant(SQLModel, table=True):
    """Who spoke in an incident channel and when (never what)."""

    __tablename__ = "participants"
    __table_args__ = (sa.UniqueConstraint("incident_id", "user_id", name="uq_participant"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incidents.id", index=True, ondelete="CASCADE")
    user_id: str = Field(max_length=32)
    first_seen_at: datetime = _when()
    last_seen_at: datetime = _when()
    messages: int = 0


class ProcessedEvent(SQLModel, table=True):
    """Slack event ids already handled; inserted in the same transaction as the event's effect."""

    __tablename__ = "processed_events"

    event_id: str = Field(primary_key=True, max_length=64)
    received_at: datetime = _when()


class Welcome(SQLModel, table=True):
    """Who was welcomed into an incident channel (SPEC §14): once per person per incident, whatever the replica."""

    __tablename__ = "welcomes"

    incident_id: int = Field(foreign_key="incidents.id", primary_key=True, ondelete="CASCADE")
    user_id: str = Field(primary_key=True, max_length=32)
    welcomed_at: datetime = _when()


class JobRun(SQLModel, table=True):
    """Claims of cron runs (digest of a day), so that with several replicas each runs once."""

    __tablename__ = "job_runs"

    name: str = Field(primary_key=True, max_length=64)
    run_key: str = Field(primary_key=True, max_length=64)
    claimed_at: datetime = _when()


class AlertGroup(SQLModel, table=True):
    """One Alertmanager alert group (by its groupKey) and its one triage message (SPEC §13.3).

    `version` counts the notifications stored; `rendered_version` is the one the triage message shows. Whoever
    holds `render_until` (a lease, claimed by a conditional UPDATE) edits the message, so that notifications
    arriving together post it once and edit it in order. A summary row (`kind` "summary", one per minute of a
    flood) is the message that sums up the groups beyond the limit of new triage messages a minute."""

    __tablename__ = "alert_groups"

    id: int | None = Field(default=None, primary_key=True)
    group_hash: str = Field(max_length=64, unique=True)
    group_key: str = ""
    kind: str = Field(default="group", max_length=16)
    status: str = Field(default="firing", max_length=16)
    receiver: str = Field(default="", max_length=255)
    payload: dict[str, Any] = _json(dict)
    # Each alert's last status by fingerprint, so that a linked incident gets an entry per change.
    alert_states: dict[str, str] = _json(dict)
    version: int = 0
    rendered_version: int = 0
    render_until: datetime | None = _when(nullable=True)
    channel_id: str | None = Field(default=None, max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)
    summary_id: int | None = Field(default=None, foreign_key="alert_groups.id", index=True)
    incident_id: int | None = Field(default=None, foreign_key="incidents.id", index=True, ondelete="SET NULL")
    dismissed_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = _when(index=True)
    updated_at: datetime = _when()


class ApiDeclaration(SQLModel, table=True):
    """An Idempotency-Key of POST /api/incidents and the incident it made (stored in the declaring transaction)."""

    __tablename__ = "api_declarations"

    idempotency_key: str = Field(primary_key=True, max_length=255)
    incident_id: int | None = Field(default=None, foreign_key="incidents.id", ondelete="CASCADE")
    created_at: datetime = _when(index=True)


class OutboxRow(SQLModel, table=True):
    """One call to an outside system (PagerDuty, Jira, Statuspage), written in the transaction of the change that
    causes it and sent by the delivery worker (core.outbox): retried until it succeeds or gives up, in order per
    incident and integration, claimed with a lease so that a crash between claim and send is retried, never lost."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_due", "state", "next_attempt_at"),
        sa.Index("ix_outbox_order", "incident_id", "integration", "id"),
        sa.Index("ix_outbox_pending_order", "incident_id", "integration", "id",
                 postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'")),  # fmt: skip
        sa.UniqueConstraint("idempotency_key", name="uq_outbox_idempotency_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    integration: str = Field(max_length=32)  # "pagerduty", "jira", "statuspage"
    operation: str = Field(max_length=32)  # what the sender does, e.g. "trigger", "resolve"
    payload: dict[str, Any] = _json(dict)
    idempotency_key: str = Field(max_length=200)
    incident_id: int | None = Field(default=None, foreign_key="incidents.id", ondelete="CASCADE")
    state: str = Field(default="pending", max_length=16)  # pending, delivered, failed
    attempts: int = 0
    created_at: datetime = _when()
    next_attempt_at: datetime = _when()
    lease_until: datetime | None = _when(nullable=True)
    lease_token: str | None = Field(default=None, max_length=40)
    last_error: str | None = Field(default=None, max_length=500)
    delivered_at: datetime | None = _when(nullable=True)
    result: dict[str, Any] = _json(dict)  # what the remote answered that sitrep keeps (e.g. {"link": "OPS-12"})
