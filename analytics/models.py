"""The analytics tables (prefix ``analytics_``), beside the commerce tables in the same database.

Their own Alembic history (``analytics/migrations``, version table
``analytics_alembic_version``) keeps them apart from the commerce migrations.

- ``analytics_sources``: per source (a tracker store, a RabbitMQ queue) the high-water mark
  (the last ``events.id`` read) and how many events were taken and skipped;
- ``analytics_events``: every accepted event once (``event_key`` unique), reduced to what
  analytics needs (no message texts);
- ``analytics_conversations``, ``analytics_turns``, ``analytics_tasks``: the facts, recomputed
  from ``analytics_events`` whenever a conversation gets new events.

Lists (flows, order numbers, responses) are stored as comma-separated text: readable in any SQL
client and the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import declarative_base

Base = declarative_base()

SENDER_LEN = 255


class Source(Base):
    __tablename__ = "analytics_sources"

    name = sa.Column(sa.String(255), primary_key=True)
    high_water = sa.Column(sa.BigInteger, nullable=False, default=0)
    accepted = sa.Column(sa.BigInteger, nullable=False, default=0)
    duplicates = sa.Column(sa.BigInteger, nullable=False, default=0)
    skipped = sa.Column(sa.BigInteger, nullable=False, default=0)
    updated_at = sa.Column(sa.Float, nullable=True)


class StoredEvent(Base):
    __tablename__ = "analytics_events"

    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    event_key = sa.Column(sa.String(64), nullable=False, unique=True)
    sender_id = sa.Column(sa.String(SENDER_LEN), nullable=False, index=True)
    timestamp = sa.Column(sa.Float, nullable=False)
    type_name = sa.Column(sa.String(64), nullable=False)
    data = sa.Column(sa.Text, nullable=False)
    source = sa.Column(sa.String(255), nullable=False)


class Conversation(Base):
    __tablename__ = "analytics_conversations"

    sender_id = sa.Column(sa.String(SENDER_LEN), primary_key=True)
    started_at = sa.Column(sa.Float, nullable=False, index=True)
    ended_at = sa.Column(sa.Float, nullable=False)
    events = sa.Column(sa.Integer, nullable=False)
    language = sa.Column(sa.String(8), nullable=True)
    user_messages = sa.Column(sa.Integer, nullable=False)
    fallbacks = sa.Column(sa.Integer, nullable=False)
    flows = sa.Column(sa.Text, nullable=False, default="")
    handoff = sa.Column(sa.Boolean, nullable=False)
    handoff_reason = sa.Column(sa.String(32), nullable=True)
    handoff_at = sa.Column(sa.Float, nullable=True)
    first_agent_reply_at = sa.Column(sa.Float, nullable=True)
    agent_wait_s = sa.Column(sa.Float, nullable=True)
    agent = sa.Column(sa.String(100), nullable=True)
    csat = sa.Column(sa.Integer, nullable=True)
    frustration_max = sa.Column(sa.Float, nullable=True)
    frustration_last = sa.Column(sa.Float, nullable=True)
    order_numbers = sa.Column(sa.Text, nullable=False, default="")
    order_keys = sa.Column(sa.Text, nullable=False, default="")
    contained = sa.Column(sa.Boolean, nullable=False)
    resolved = sa.Column(sa.Boolean, nullable=False)


class TurnRow(Base):
    __tablename__ = "analytics_turns"
    __table_args__ = (sa.UniqueConstraint("sender_id", "position", name="uq_analytics_turn"),)

    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    sender_id = sa.Column(sa.String(SENDER_LEN), nullable=False, index=True)
    position = sa.Column(sa.Integer, nullable=False)
    kind = sa.Column(sa.String(16), nullable=False)
    timestamp = sa.Column(sa.Float, nullable=False)
    language = sa.Column(sa.String(8), nullable=True)
    intent = sa.Column(sa.String(100), nullable=True)
    confidence = sa.Column(sa.Float, nullable=True)
    nearest_intent = sa.Column(sa.String(100), nullable=True)
    fallback = sa.Column(sa.Boolean, nullable=False, default=False)
    frustration = sa.Column(sa.Float, nullable=True)
    rephrased = sa.Column(sa.Boolean, nullable=False, default=False)
    followed_by_handoff = sa.Column(sa.Boolean, nullable=False, default=False)
    rating = sa.Column(sa.Integer, nullable=True)
    action = sa.Column(sa.String(100), nullable=True)
    responses = sa.Column(sa.Text, nullable=False, default="")
    outcome = sa.Column(sa.String(100), nullable=True)
    form = sa.Column(sa.String(100), nullable=True)
    form_event = sa.Column(sa.String(16), nullable=True)
    handoff_reason = sa.Column(sa.String(32), nullable=True)
    agent = sa.Column(sa.String(100), nullable=True)


class TaskRow(Base):
    __tablename__ = "analytics_tasks"
    __table_args__ = (sa.UniqueConstraint("sender_id", "position", name="uq_analytics_task"),)

    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    sender_id = sa.Column(sa.String(SENDER_LEN), nullable=False, index=True)
    position = sa.Column(sa.Integer, nullable=False)
    flow = sa.Column(sa.String(32), nullable=False)
    form = sa.Column(sa.String(100), nullable=True)
    started_at = sa.Column(sa.Float, nullable=False)
    ended_at = sa.Column(sa.Float, nullable=True)
    outcome = sa.Column(sa.String(16), nullable=False)
    outcome_code = sa.Column(sa.String(100), nullable=True)
