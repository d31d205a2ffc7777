"""Races: two threads hit the same order at once; exactly one effect must result.

Real threads released together by a Barrier, each with its own session from the factory,
against SQLite (single writer, BEGIN IMMEDIATE) and PostgreSQL (SELECT ... FOR UPDATE).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from commerce.errors import CommerceError
from commerce.models import HandoffRequest, Refund, Return
from commerce.services.orders import cancel_order
from commerce.services.refunds import request_refund
from commerce.services.returns import open_return
from commerce.services.support import claim_next_handoff, conversation_handoff
from tests.helpers.concurrency import race


def count(sf, model, *where):
    with sf() as s:
        return s.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def test_concurrent_cancels_one_refund(session_factory, world):
    results, errors = race(lambda i: cancel_order(session_factory, world.alice_id, "KF-190002"))
    assert errors == []
    assert sum(not r.already_cancelled for r in results) == 1
    assert len({r.refund_number for r in results}) == 1
    assert count(session_factory, Refund) == 1


def test_concurrent_returns_one_rma(session_factory, world):
    results, errors = race(
        lambda i: open_return(session_factory, world.alice_id, "KF-190006", "dup", ["TR2-41-BLA"])
    )
    assert len(results) == 1
    assert all(getattr(e, "reason", None) == "already_returned" for e in errors), errors
    assert count(session_factory, Return) == 1


def test_concurrent_returns_same_idempotency_key(session_factory, world):
    results, errors = race(
        lambda i: open_return(
            session_factory,
            world.alice_id,
            "KF-190006",
            "dup",
            ["TR2-41-BLA"],
            idempotency_key="same",
        )
    )
    assert errors == [] and len({r.rma_number for r in results}) == 1
    assert sum(r.created for r in results) == 1


def test_concurrent_refund_requests_one_refund(session_factory, world):
    results, errors = race(lambda i: request_refund(session_factory, world.alice_id, "KF-190009"))
    assert len(results) == 1
    assert all(
        isinstance(e, CommerceError) and e.reason == "refund_already_open" for e in errors
    ), errors
    assert count(session_factory, Refund) == 1


def test_concurrent_claims_get_distinct_entries(session_factory, world):
    for i in range(2):
        conversation_handoff(session_factory, f"conv-{i}", "human please")
    results, errors = race(lambda i: claim_next_handoff(session_factory, f"agent-{i}"))
    assert errors == []
    claimed = [r.handoff_id for r in results if r is not None]
    assert len(claimed) == 2 and len(set(claimed)) == 2
    assert count(session_factory, HandoffRequest, HandoffRequest.status == "waiting") == 0


@pytest.mark.parametrize("n", [2])
def test_concurrent_handoff_same_conversation(session_factory, world, n):
    results, errors = race(lambda i: conversation_handoff(session_factory, "conv-x", "human"), n=n)
    assert errors == [] and len({r.handoff_id for r in results}) == 1
