"""trust: verification keys, one-time codes, conversation identities, outbox, agents, audit

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 23:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("verification_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("client_key", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("kind", sa.String(length=10), nullable=False, server_default="order")
        )
        batch_op.create_index(
            "ix_verification_attempts_contact_at", ["contact_key", "at"], unique=False
        )
        batch_op.create_index(
            "ix_verification_attempts_client_at", ["client_key", "at"], unique=False
        )

    with op.batch_alter_table("handoff_queue", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_key", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_handoff_queue_client_key"), ["client_key"], unique=False
        )

    op.create_table(
        "verification_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("code_hash", sa.String(length=128), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_verification_codes_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verification_codes")),
    )
    with op.batch_alter_table("verification_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_verification_codes_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            "ix_verification_codes_conv_created", ["conversation_id", "created_at"], unique=False
        )

    op.create_table(
        "conversation_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=100), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("order_number", sa.String(length=20), nullable=True),
        sa.Column("verified_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_conversation_identities_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_identities")),
    )
    with op.batch_alter_table("conversation_identities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conversation_identities_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            "ix_conversation_identities_conv_at", ["conversation_id", "verified_at"], unique=False
        )

    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=120), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_outbox_messages_dedupe_key")),
    )
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_messages_status_created", ["status", "created_at"], unique=False
        )

    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("name", name=op.f("uq_agents_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_agents_token_hash")),
    )

    op.create_table(
        "agent_audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agent_name", sa.String(length=40), nullable=True),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("handoff_id", sa.Integer(), nullable=True),
        sa.Column("conversation_id", sa.String(length=100), nullable=True),
        sa.Column("client_key", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_audit_log")),
    )
    with op.batch_alter_table("agent_audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_agent_audit_log_action_at", ["action", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("agent_audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_agent_audit_log_action_at")
    op.drop_table("agent_audit_log")
    op.drop_table("agents")
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_messages_status_created")
    op.drop_table("outbox_messages")
    with op.batch_alter_table("conversation_identities", schema=None) as batch_op:
        batch_op.drop_index("ix_conversation_identities_conv_at")
        batch_op.drop_index(batch_op.f("ix_conversation_identities_customer_id"))
    op.drop_table("conversation_identities")
    with op.batch_alter_table("verification_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_verification_codes_conv_created")
        batch_op.drop_index(batch_op.f("ix_verification_codes_customer_id"))
    op.drop_table("verification_codes")
    with op.batch_alter_table("handoff_queue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_handoff_queue_client_key"))
        batch_op.drop_column("client_key")
    with op.batch_alter_table("verification_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_verification_attempts_client_at")
        batch_op.drop_index("ix_verification_attempts_contact_at")
        batch_op.drop_column("kind")
        batch_op.drop_column("client_key")
        batch_op.drop_column("contact_key")
