"""channel life: welcomes once per person per incident, channel archiving after resolve, late status updates

Revision ID: 0006
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.models

revision = "0006"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("archived_at", core.models.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("archive_notice_ts", sa.String(length=32), nullable=True))
    with op.batch_alter_table("status_updates") as batch:
        batch.add_column(sa.Column("reminders_before", sa.Integer(), nullable=True))
    op.create_table(
        "welcomes",
        sa.Column("incident_id", sa.Integer(), sa.ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("welcomed_at", core.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "user_id"),
    )


def downgrade() -> None:
    op.drop_table("welcomes")
    with op.batch_alter_table("status_updates") as batch:
        batch.drop_column("reminders_before")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("archive_notice_ts")
        batch.drop_column("archived_at")
