"""handoff risk: the conversation's complaint-risk score on each queue entry

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable with no default: entries queued before this revision simply have no score.
    with op.batch_alter_table("handoff_queue", schema=None) as batch_op:
        batch_op.add_column(sa.Column("risk", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("handoff_queue", schema=None) as batch_op:
        batch_op.drop_column("risk")
