"""Engines and the commit deadline (commerce/db.py), on SQLite and PostgreSQL.

A service call whose caller stopped waiting must not commit afterwards: a cancel the customer
was told failed stays undone. And a PostgreSQL connection killed under the pool (a server
restart) is replaced without restarting Kefu.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, select, text

from commerce.db import CommitDeadline, DeadlinePassed, make_engine, make_session_factory
from commerce.models import Refund
from commerce.services.orders import cancel_order, get_order
from tests.postgres import admin_engine, pg_url


def refunds(session_factory) -> int:
    with session_factory() as s:
        return len(s.execute(select(Refund)).scalars().all())


def test_a_call_within_its_deadline_commits(session_factory, world):
    with CommitDeadline(30):
        result = cancel_order(session_factory, world.alice_id, world.orders["paid"])
    assert result.status == "cancelled"
    assert get_order(session_factory, world.alice_id, world.orders["paid"]).status == "cancelled"
    assert refunds(session_factory) == 1


def test_an_abandoned_call_rolls_back(session_factory, world):
    deadline = CommitDeadline(30)
    assert deadline.abandon() is True
    with deadline, pytest.raises(DeadlinePassed):
        cancel_order(session_factory, world.alice_id, world.orders["paid"])
    assert get_order(session_factory, world.alice_id, world.orders["paid"]).status == "paid"
    assert refunds(session_factory) == 0


def test_a_passed_deadline_rolls_back(session_factory, world):
    with CommitDeadline(0), pytest.raises(DeadlinePassed):
        cancel_order(session_factory, world.alice_id, world.orders["placed"])
    assert get_order(session_factory, world.alice_id, world.orders["placed"]).status == "placed"


def test_the_deadline_ends_with_its_block(session_factory, world):
    with CommitDeadline(0), pytest.raises(DeadlinePassed):
        cancel_order(session_factory, world.alice_id, world.orders["placed"])
    # Outside the block nothing is checked: the retry commits.
    assert cancel_order(session_factory, world.alice_id, world.orders["placed"]).status == (
        "cancelled"
    )


def test_abandon_waits_for_a_commit_under_way(session_factory, world):
    engine = session_factory.kw["bind"]
    deadline = CommitDeadline(30)
    committing, finish = threading.Event(), threading.Event()

    def slow_commit(conn):
        committing.set()
        finish.wait(10)

    event.listen(engine, "commit", slow_commit)
    outcome: list = []

    def cancel():
        with deadline:
            outcome.append(cancel_order(session_factory, world.alice_id, world.orders["paid"]))

    worker = threading.Thread(target=cancel)
    try:
        worker.start()
        assert committing.wait(10)
        # The commit passed its check: the caller must wait for it, not report a failure.
        assert deadline.abandon() is False
        finish.set()
        worker.join(10)
    finally:
        finish.set()
        event.remove(engine, "commit", slow_commit)
    assert outcome and outcome[0].status == "cancelled"
    assert deadline.abandon() is True


@pytest.mark.postgres
def test_the_pool_recovers_from_a_killed_connection():
    admin, user = admin_engine(isolation_level="AUTOCOMMIT")
    engine = make_engine(pg_url(user), pool_size=1, max_overflow=0)
    sf = make_session_factory(engine)
    try:
        with sf() as s:
            pid = s.execute(text("select pg_backend_pid()")).scalar_one()
        with admin.connect() as conn:
            assert conn.execute(text("select pg_terminate_backend(:p)"), {"p": pid}).scalar()
        # The pooled connection is dead; pre-ping notices and opens a new one.
        with sf() as s:
            assert s.execute(text("select pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()
        admin.dispose()
