"""The local PostgreSQL server the tests use (127.0.0.1:5432, trust auth, database ``test``)."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

PG_USERS = ("postgres", "root")
PG_HOST = os.environ.get("KEFU_TEST_PG_HOST", "127.0.0.1:5432")


def pg_url(user: str, database: str = "test") -> str:
    return f"postgresql+psycopg2://{user}@{PG_HOST}/{database}"


def admin_engine(**kwargs) -> tuple[Engine, str]:
    """An engine on the ``test`` database and the user it connected as; skips the calling test
    with the reason when no server answers for any of :data:`PG_USERS`."""
    last_error = None
    for user in PG_USERS:
        engine = create_engine(
            pg_url(user), future=True, connect_args={"connect_timeout": 3}, **kwargs
        )
        try:
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            return engine, user
        except Exception as e:  # noqa: BLE001 - any failure means "no server for us"
            last_error = e
            engine.dispose()
    pytest.skip(f"PostgreSQL not reachable at {PG_HOST}/test as {PG_USERS}: {last_error}")


def ensure_database(name: str) -> str:
    """Create the database ``name`` unless it exists; the URL (psycopg2 dialect) to reach it.

    Skips the calling test with the reason when no server answers."""
    admin, user = admin_engine(isolation_level="AUTOCOMMIT")  # CREATE DATABASE needs no txn
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if exists is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return pg_url(user, name)
