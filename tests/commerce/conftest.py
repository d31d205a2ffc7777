"""Fixtures: a ``session_factory`` parametrized over SQLite and PostgreSQL, and a small world.

PostgreSQL runs against the local server (127.0.0.1:5432, trust auth, database ``test``) in a
fresh schema per test session; it is skipped with the reason when the server is unreachable.
"""

from __future__ import annotations

import uuid

import commerce_factories as factories
import pytest
from sqlalchemy import event, text

from commerce.db import make_engine, make_session_factory
from commerce.models import Base
from tests.postgres import admin_engine, pg_url


@pytest.fixture(scope="session")
def pg_engine():
    """Engine bound to a fresh schema on the local PostgreSQL; dropped at the end."""
    admin, user = admin_engine()
    schema = f"kefu_test_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(
        pg_url(user),
        connect_args={"options": f"-csearch_path={schema} -csynchronous_commit=off"},
        pool_size=10,
    )
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def session_factory(request, tmp_path):
    """A sessionmaker on an empty schema, once per backend."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'commerce.db'}")
        Base.metadata.create_all(engine)
        yield make_session_factory(engine)
        engine.dispose()
    else:
        engine = request.getfixturevalue("pg_engine")
        # DELETE beats TRUNCATE by 10x on tiny tables (no new relfilenodes / fsyncs).
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
        yield make_session_factory(engine)


@pytest.fixture
def backend(session_factory) -> str:
    return session_factory.kw["bind"].dialect.name


@pytest.fixture
def world(session_factory) -> factories.World:
    """A small deterministic world: customers, products, stock, orders in every status."""
    return factories.build_world(session_factory)


@pytest.fixture
def count_statements(session_factory):
    """Count SQL statements that write, to prove bad input changes nothing."""
    engine = session_factory.kw["bind"]
    writes: list[str] = []

    def _before(conn, cursor, statement, *args):
        if statement.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            writes.append(statement)

    event.listen(engine, "before_cursor_execute", _before)
    yield writes
    event.remove(engine, "before_cursor_execute", _before)


@pytest.fixture
def token_secret(monkeypatch) -> str:
    secret = "test-secret-" + "x" * 32
    monkeypatch.setenv("KEFU_CUSTOMER_TOKEN_SECRET", secret)
    return secret
