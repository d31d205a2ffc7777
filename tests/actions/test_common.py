"""``call_service`` (actions/common.py): a slow commerce call that the customer is told failed
never commits afterwards, and one that commits is answered with its result.

The slowness is real: another connection holds the SQLite database's write lock, or the
database's COMMIT is slowed by an engine event.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest
from sqlalchemy import event

import actions.common as common
from actions.common import ServiceUnavailable, call_service
from commerce.services import orders

ALICE = 1
PAID_ORDER = "KF-100002"  # docs/SEED.md: paid, cancel opens a refund


def status(number: str) -> str:
    return orders.get_order(common.session_factory(), ALICE, number).status


@pytest.fixture
def write_lock(database):
    """Holds the database's write lock from another connection until ``release`` is called."""
    conn = sqlite3.connect(database.removeprefix("sqlite:///"), check_same_thread=False)
    conn.isolation_level = None
    conn.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release():
        if not released.is_set():
            released.set()
            conn.execute("ROLLBACK")

    yield release
    release()
    conn.close()


def test_a_call_within_its_deadline_commits_and_answers(database):
    result = asyncio.run(call_service(orders.cancel_order, ALICE, PAID_ORDER))
    assert result.status == "cancelled" and result.refund_number
    assert status(PAID_ORDER) == "cancelled"


def test_a_cancel_past_its_deadline_is_refused_and_never_commits(database, write_lock, monkeypatch):
    monkeypatch.setenv(common.SERVICE_TIMEOUT_ENV, "0.5")
    # The lock goes away after the customer was told to try later; the cancel then runs.
    threading.Timer(1.5, write_lock).start()
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        # asyncio.run returns once the abandoned worker thread has finished too.
        asyncio.run(call_service(orders.cancel_order, ALICE, PAID_ORDER))
    assert time.monotonic() - started >= 1.5
    assert status(PAID_ORDER) == "paid"
    # The retry the customer was asked for does the cancel.
    monkeypatch.setenv(common.SERVICE_TIMEOUT_ENV, "10")
    assert asyncio.run(call_service(orders.cancel_order, ALICE, PAID_ORDER)).status == "cancelled"


def test_a_commit_under_way_at_the_deadline_is_answered_with_its_result(database, monkeypatch):
    monkeypatch.setenv(common.SERVICE_TIMEOUT_ENV, "0.5")
    engine = common.session_factory().kw["bind"]

    def slow_commit(conn):
        time.sleep(1.0)

    event.listen(engine, "commit", slow_commit)
    try:
        result = asyncio.run(call_service(orders.cancel_order, ALICE, PAID_ORDER))
    finally:
        event.remove(engine, "commit", slow_commit)
    assert result.status == "cancelled"
    assert status(PAID_ORDER) == "cancelled"


def test_a_database_that_is_down_is_unavailable(database_down):
    with pytest.raises(ServiceUnavailable):
        asyncio.run(call_service(orders.get_order, ALICE, PAID_ORDER))
