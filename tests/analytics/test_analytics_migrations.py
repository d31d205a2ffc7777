"""The analytics tables' own Alembic history, beside commerce's, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from analytics import db
from analytics.metrics import Window, report_data
from analytics.models import Base
from analytics.store import FactsStore
from tests.analytics.conftest import NOW, ORDER_SECRET, broker_items
from tests.postgres import admin_engine, pg_url

ANALYTICS_TABLES = {
    "analytics_conversations",
    "analytics_events",
    "analytics_sources",
    "analytics_tasks",
    "analytics_turns",
}


def _tables(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_the_migration_creates_what_the_models_declare(analytics_engine):
    with analytics_engine.connect() as conn:
        opts = {"include_object": db.include_object, "version_table": db.VERSION_TABLE}
        context = MigrationContext.configure(conn, opts=opts)
        assert compare_metadata(context, Base.metadata) == []


def test_analytics_and_commerce_migrate_one_database_side_by_side(tmp_path):
    from commerce.__main__ import upgrade as commerce_upgrade

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    commerce_upgrade(url)
    db.upgrade(url)
    engine = db.engine(url)
    tables = _tables(engine)
    assert ANALYTICS_TABLES | {"alembic_version", db.VERSION_TABLE} <= tables
    with engine.connect() as conn:
        commerce_head = conn.execute(sa.text("select version_num from alembic_version")).scalar()
        analytics_head = conn.execute(
            sa.text(f"select version_num from {db.VERSION_TABLE}")  # noqa: S608 - a constant
        ).scalar()
    assert analytics_head == "0001" and commerce_head != analytics_head
    db.downgrade(url)
    remaining = _tables(engine)
    assert not remaining & ANALYTICS_TABLES
    assert "alembic_version" in remaining and len(remaining) > 5  # commerce untouched
    engine.dispose()


@pytest.mark.postgres
def test_the_postgresql_path(recorded_lines):
    admin, user = admin_engine()
    schema = f"analytics_test_{uuid.uuid4().hex[:8]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    url = pg_url(user) + f"?options=-csearch_path%3D{schema}"
    try:
        db.upgrade(url)
        engine = db.engine(url)
        store = FactsStore(engine, order_secret=ORDER_SECRET, clock=lambda: NOW)
        first = store.ingest("broker", broker_items(recorded_lines))
        again = store.ingest("broker", broker_items(recorded_lines))
        assert (first.accepted, again.accepted, again.duplicates) == (262, 0, 262)
        with engine.connect() as conn:
            week = report_data(conn, Window(NOW - 7 * 86_400, NOW))
        assert week["containment"]["contained"] == 6
        assert week["agent_wait"]["median_s"] == 167.5
        assert week["csat"]["mean"] == 4.5
        db.downgrade(url)
        assert not _tables(engine) & ANALYTICS_TABLES
        engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'drop schema if exists "{schema}" cascade'))
        admin.dispose()
