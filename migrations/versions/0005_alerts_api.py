"""alerts and the API: Alertmanager groups with their triage messages, Idempotency-Keys of POST /api/incidents

Revision ID: 0005
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.models

revision = "0005"
down_revision = "0006"
branch_labels = None
depends_on = None


def _when(name: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, core.models.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "alert_groups",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("group_hash", sa.String(length=64), nullable=False),
        sa.Column("group_key", sa.String(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("receiver", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("alert_states", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rendered_version", sa.Integer(), nullable=False),
        _when("render_until", nullable=True),
        sa.Column("channel_id", sa.String(length=32), nullable=True),
        sa.Column("message_ts", sa.String(length=32), nullable=True),
        sa.Column("summary_id", sa.Integer(), sa.ForeignKey("alert_groups.id"), nullable=True),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incidents.id", ondelete="SET NULL"), nullable=True),
        sa.Column("dismissed_by", sa.String(length=32), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        sa.UniqueConstraint("group_hash"),
    )
    op.create_index("ix_alert_groups_summary_id", "alert_groups", ["summary_id"])
    op.create_index("ix_alert_groups_incident_id", "alert_groups", ["incident_id"])
    op.create_index("ix_alert_groups_created_at", "alert_groups", ["created_at"])
    op.create_table(
        "api_declarations",
        sa.Column("idempotency_key", sa.String(length=255), primary_key=True),
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incidents.id", ondelete="CASCADE"), nullable=True),
        _when("created_at"),
    )
    op.create_index("ix_api_declarations_created_at", "api_declarations", ["created_at"])


def downgrade() -> None:
    op.drop_table("api_declarations")
    op.drop_table("alert_groups")
