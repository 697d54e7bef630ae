"""timeline entries by message: edits and deletes find a message's entries in any channel

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_timeline_entries_message", "timeline_entries", ["message_channel", "message_ts"])


def downgrade() -> None:
    op.drop_index("ix_timeline_entries_message", table_name="timeline_entries")
