"""The analytics facts tables: sources, events, conversations, turns, tasks.

Revision ID: 0001
Revises:
Create Date: 2026-12-05 00:17:28.658357
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analytics_conversations",
        sa.Column("sender_id", sa.String(length=255), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("user_messages", sa.Integer(), nullable=False),
        sa.Column("fallbacks", sa.Integer(), nullable=False),
        sa.Column("flows", sa.Text(), nullable=False),
        sa.Column("handoff", sa.Boolean(), nullable=False),
        sa.Column("handoff_reason", sa.String(length=32), nullable=True),
        sa.Column("handoff_at", sa.Float(), nullable=True),
        sa.Column("first_agent_reply_at", sa.Float(), nullable=True),
        sa.Column("agent_wait_s", sa.Float(), nullable=True),
        sa.Column("agent", sa.String(length=100), nullable=True),
        sa.Column("csat", sa.Integer(), nullable=True),
        sa.Column("frustration_max", sa.Float(), nullable=True),
        sa.Column("frustration_last", sa.Float(), nullable=True),
        sa.Column("order_numbers", sa.Text(), nullable=False),
        sa.Column("order_keys", sa.Text(), nullable=False),
        sa.Column("contained", sa.Boolean(), nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("sender_id"),
    )
    with op.batch_alter_table("analytics_conversations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_analytics_conversations_started_at"), ["started_at"], unique=False
        )

    op.create_table(
        "analytics_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.Column("sender_id", sa.String(length=255), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("type_name", sa.String(length=64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_key"),
    )
    with op.batch_alter_table("analytics_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_analytics_events_sender_id"), ["sender_id"], unique=False
        )

    op.create_table(
        "analytics_sources",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("high_water", sa.BigInteger(), nullable=False),
        sa.Column("accepted", sa.BigInteger(), nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.Column("skipped", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "analytics_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sender_id", sa.String(length=255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("flow", sa.String(length=32), nullable=False),
        sa.Column("form", sa.String(length=100), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("outcome_code", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sender_id", "position", name="uq_analytics_task"),
    )
    with op.batch_alter_table("analytics_tasks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_analytics_tasks_sender_id"), ["sender_id"], unique=False
        )

    op.create_table(
        "analytics_turns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sender_id", sa.String(length=255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("intent", sa.String(length=100), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("nearest_intent", sa.String(length=100), nullable=True),
        sa.Column("fallback", sa.Boolean(), nullable=False),
        sa.Column("frustration", sa.Float(), nullable=True),
        sa.Column("rephrased", sa.Boolean(), nullable=False),
        sa.Column("followed_by_handoff", sa.Boolean(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=True),
        sa.Column("responses", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=100), nullable=True),
        sa.Column("form", sa.String(length=100), nullable=True),
        sa.Column("form_event", sa.String(length=16), nullable=True),
        sa.Column("handoff_reason", sa.String(length=32), nullable=True),
        sa.Column("agent", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sender_id", "position", name="uq_analytics_turn"),
    )
    with op.batch_alter_table("analytics_turns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_analytics_turns_sender_id"), ["sender_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("analytics_turns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_analytics_turns_sender_id"))

    op.drop_table("analytics_turns")
    with op.batch_alter_table("analytics_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_analytics_tasks_sender_id"))

    op.drop_table("analytics_tasks")
    op.drop_table("analytics_sources")
    with op.batch_alter_table("analytics_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_analytics_events_sender_id"))

    op.drop_table("analytics_events")
    with op.batch_alter_table("analytics_conversations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_analytics_conversations_started_at"))

    op.drop_table("analytics_conversations")
