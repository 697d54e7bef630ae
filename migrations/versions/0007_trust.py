"""trust: a reminder is a lease confirmed after its post (SPEC §15)

A tick claims a due reminder by setting `reminder_lease_until`; the post confirms it (moves `next_update_due`,
counts the reminder, clears the lease). A claim whose process died is claimed again once its lease expires;
`reminder_attempts` tells that later claim to look for the first attempt's message before posting again.

Revision ID: 0007
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import core.models

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("reminder_lease_until", core.models.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reminder_attempts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("reminder_attempts")
        batch.drop_column("reminder_lease_until")
