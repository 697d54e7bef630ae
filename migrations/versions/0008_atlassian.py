"""atlassian: the Jira issue of an incident and of each action item, the Statuspage incident (SPEC §13.4, §13.5);
the outbox's pending rows indexed in claim order

The outbox claim looks, for each due row, for an older pending row of its incident and integration. With
PostgreSQL's statistics not yet caught up with a burst of rows (a fresh table, thousands enqueued at once) the
planner scanned every pending row for each (440 ms a claim for 2,000 rows); an index of the pending rows alone in
that order keeps it at a few milliseconds whatever the statistics say.

Revision ID: 0008
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("jira_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("statuspage", sa.JSON(), nullable=True))
    with op.batch_alter_table("action_items") as batch:
        batch.add_column(sa.Column("jira_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("jira_status", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("jira_done", sa.Boolean(), nullable=False, server_default=sa.false()))
    pending = sa.text("state = 'pending'")
    op.create_index("ix_outbox_pending_order", "outbox", ["incident_id", "integration", "id"],
                    postgresql_where=pending, sqlite_where=pending)  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_outbox_pending_order", table_name="outbox")
    with op.batch_alter_table("action_items") as batch:
        batch.drop_column("jira_done")
        batch.drop_column("jira_status")
        batch.drop_column("jira_key")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("statuspage")
        batch.drop_column("jira_key")
