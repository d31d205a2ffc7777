"""Parallel guesses on PostgreSQL never pass a failure cap (real threads, scratch database).

Each test run creates its own database on the local server (127.0.0.1:5432, trust auth) and
drops it at the end; skipped with the reason when PostgreSQL is not reachable.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, text

import tests.commerce.commerce_factories as factories
from commerce.db import make_engine, make_session_factory
from commerce.errors import TooManyAttempts, VerificationFailed
from commerce.models import Base, VerificationAttempt
from commerce.services import identity
from commerce.services.identity import client_key, contact_key, verify_order_owner
from tests.helpers.concurrency import race
from tests.postgres import admin_engine, pg_url

pytestmark = pytest.mark.postgres

THREADS = 20


@pytest.fixture(scope="module")
def scratch_pg():
    """A sessionmaker on a freshly created database, dropped afterwards."""
    # CREATE DATABASE cannot run in a transaction.
    admin, user = admin_engine(isolation_level="AUTOCOMMIT")
    name = f"kefu_identity_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(pg_url(user, name), pool_size=THREADS + 5, max_overflow=0)
    try:
        Base.metadata.create_all(engine)
        sf = make_session_factory(engine)
        yield sf, factories.build_world(sf)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg(scratch_pg):
    sf, world = scratch_pg
    with sf.begin() as s:
        s.execute(VerificationAttempt.__table__.delete())
    return sf, world


def guess_in_parallel(fn, n=THREADS):
    """Run ``fn(i)`` in ``n`` threads released together; return the exceptions raised."""
    return race(fn, n)[1]


def failures(sf, *where) -> int:
    with sf() as s:
        return s.execute(
            select(func.count(VerificationAttempt.id)).where(
                VerificationAttempt.success.is_(False), *where
            )
        ).scalar_one()


def test_parallel_guesses_with_one_email_stop_at_the_contact_cap(pg):
    sf, world = pg
    errors = guess_in_parallel(
        lambda i: verify_order_owner(
            sf, f"KF-{900000 + i}", email=world.alice_email, conversation_id=f"par-{i}"
        )
    )
    assert len(errors) == THREADS
    assert all(isinstance(e, (VerificationFailed, TooManyAttempts)) for e in errors), errors
    recorded = failures(sf, VerificationAttempt.contact_key == contact_key(world.alice_email))
    assert recorded == identity.CONTACT_MAX_FAILURES < THREADS
    assert sum(isinstance(e, TooManyAttempts) for e in errors) == THREADS - recorded


def test_parallel_guesses_from_one_client_stop_at_the_client_cap(pg, monkeypatch):
    sf, world = pg
    monkeypatch.setattr(identity, "CLIENT_MAX_FAILURES", 7)
    errors = guess_in_parallel(
        lambda i: verify_order_owner(
            sf,
            "KF-190001",
            email=f"guess{i}@example.com",
            conversation_id=f"cl-{i}",
            client="203.0.113.9",
        )
    )
    assert len(errors) == THREADS
    assert failures(sf, VerificationAttempt.client_key == client_key("203.0.113.9")) == 7


def test_parallel_guesses_in_one_conversation_stop_at_its_cap(pg):
    sf, world = pg
    guess_in_parallel(
        lambda i: verify_order_owner(
            sf, "KF-190001", email=f"conv{i}@example.com", conversation_id="one"
        )
    )
    assert failures(sf, VerificationAttempt.conversation_id == "one") == identity.MAX_FAILURES
