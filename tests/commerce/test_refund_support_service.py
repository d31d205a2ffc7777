"""Refund lifecycle, tickets, the handoff queue, recommendations."""

from __future__ import annotations

import pytest

from commerce.errors import (
    ERROR_CODES,
    HandoffNotFound,
    InvalidInput,
    InvalidTransition,
    OrderNotFound,
    RefundNotAllowed,
    RefundNotFound,
    TicketNotFound,
)
from commerce.services.orders import cancel_order
from commerce.services.recommendations import recommend_for_customer
from commerce.services.refunds import advance_refund, get_refund, list_refunds, request_refund
from commerce.services.support import (
    claim_handoff,
    claim_next_handoff,
    close_handoff,
    conversation_handoff,
    get_handoff,
    get_ticket,
    list_handoff_queue,
    list_tickets,
    open_handoff_for,
    open_ticket,
    update_ticket,
)


def test_error_codes_are_unique_snake_case():
    assert all(code.replace("_", "").isalpha() and code.islower() for code in ERROR_CODES)
    assert len(ERROR_CODES) >= 20


def test_refund_lifecycle(session_factory, world):
    r = cancel_order(session_factory, world.alice_id, "KF-190002")
    for step in ("approved", "processing", "failed", "processing", "completed"):
        view = advance_refund(session_factory, r.refund_number, step)
    assert view.status == "completed"
    assert [h.status for h in view.history] == [
        "requested", "approved", "processing", "failed", "processing", "completed"
    ]  # fmt: skip
    assert get_refund(session_factory, world.alice_id, r.refund_number) == view
    with pytest.raises(InvalidTransition):
        advance_refund(session_factory, r.refund_number, "approved")


def test_refund_of_someone_else_is_not_found(session_factory, world):
    r = cancel_order(session_factory, world.alice_id, "KF-190002")
    with pytest.raises(RefundNotFound):
        get_refund(session_factory, world.wang_id, r.refund_number)
    with pytest.raises(InvalidInput):
        get_refund(session_factory, world.alice_id, "DROP TABLE")


def test_request_refund_on_returned_order_once(session_factory, world):
    v = request_refund(session_factory, world.alice_id, "KF-190009", idempotency_key="rq-1")
    assert v.amount_cents == 2000 and v.status == "requested"
    again = request_refund(session_factory, world.alice_id, "KF-190009", idempotency_key="rq-1")
    assert again.refund_number == v.refund_number and not again.created
    with pytest.raises(RefundNotAllowed) as e:
        request_refund(session_factory, world.alice_id, "KF-190009")
    assert e.value.reason == "refund_already_open"
    advance_refund(session_factory, v.refund_number, "approved")
    advance_refund(session_factory, v.refund_number, "processing")
    advance_refund(session_factory, v.refund_number, "completed")
    with pytest.raises(RefundNotAllowed) as e:
        request_refund(session_factory, world.alice_id, "KF-190009")
    assert e.value.reason == "nothing_refundable"


@pytest.mark.parametrize(
    "label, reason",
    [
        ("paid", "order_not_refundable"),
        ("shipped", "order_not_refundable"),
        ("delivered", "nothing_refundable"),
    ],
)
def test_refund_not_allowed(session_factory, world, label, reason):
    with pytest.raises(RefundNotAllowed) as e:
        request_refund(session_factory, world.alice_id, world.orders[label])
    assert e.value.reason == reason


def test_list_refunds_empty(session_factory, world):
    assert list_refunds(session_factory, world.alice_id, "KF-190001") == ()


def test_open_ticket_links_verified_order(session_factory, world):
    t = open_ticket(
        session_factory,
        "Parcel damaged",
        category="delivery",
        severity="high",
        customer_id=world.alice_id,
        order_number="KF-190006",
        transcript="user: my parcel is damaged",
    )
    assert (
        t.ticket_number.startswith("TK-") and t.order_number == "KF-190006" and t.status == "open"
    )
    assert get_ticket(session_factory, t.ticket_number) == t
    assert (
        update_ticket(session_factory, t.ticket_number, status="resolved", assignee="li").assignee
        == "li"
    )
    with pytest.raises(OrderNotFound):
        open_ticket(session_factory, "x", customer_id=world.wang_id, order_number="KF-190006")
    with pytest.raises(TicketNotFound):
        get_ticket(session_factory, "TK-NOPE")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"category": "weird"},
        {"severity": "apocalyptic"},
        {"language": "fr"},
        {"order_number": "KF-190006"},
    ],
)
def test_ticket_bad_input(session_factory, world, count_statements, kwargs):
    with pytest.raises(InvalidInput):
        open_ticket(session_factory, "subject", **kwargs)
    assert count_statements == []


def test_handoff_queue_flow(session_factory, world):
    a = conversation_handoff(session_factory, "conv-a", "wants a human", transcript="hi")
    b = conversation_handoff(session_factory, "conv-b", "angry", severity="urgent", language="zh")
    again = conversation_handoff(
        session_factory, "conv-a", "still wants a human", transcript="hi again"
    )
    assert again.handoff_id == a.handoff_id and not again.created
    queue = list_handoff_queue(session_factory)
    assert [h.conversation_id for h in queue] == ["conv-b", "conv-a"]
    assert [h.position for h in queue] == [1, 2]
    claimed = claim_next_handoff(session_factory, "agent-li")
    assert claimed.handoff_id == b.handoff_id and claimed.status == "assigned"
    assert get_ticket(session_factory, claimed.ticket_number).status == "in_progress"
    closed = close_handoff(session_factory, claimed.handoff_id)
    assert closed.status == "closed"
    assert claim_next_handoff(session_factory, "agent-li", language="zh") is None
    assert claim_next_handoff(session_factory, "agent-wu").conversation_id == "conv-a"
    assert claim_next_handoff(session_factory, "agent-wu") is None


def test_an_agent_claims_a_chosen_handoff(session_factory, world):
    mine = conversation_handoff(
        session_factory, "conv-c", "wants a human", customer_id=world.alice_id
    )
    assert mine.customer_id == world.alice_id
    assert open_handoff_for(session_factory, "conv-c") == get_handoff(
        session_factory, mine.handoff_id
    )
    claimed = claim_handoff(session_factory, mine.handoff_id, "anna")
    assert (claimed.status, claimed.assigned_to, claimed.created) == ("assigned", "anna", True)
    assert get_ticket(session_factory, mine.ticket_number).assignee == "anna"
    # Claiming again is a no-op for the holder and refused to anyone else.
    assert not claim_handoff(session_factory, mine.handoff_id, "anna").created
    with pytest.raises(InvalidTransition):
        claim_handoff(session_factory, mine.handoff_id, "bob")
    close_handoff(session_factory, mine.handoff_id)
    with pytest.raises(InvalidTransition):
        claim_handoff(session_factory, mine.handoff_id, "anna")
    assert open_handoff_for(session_factory, "conv-c") is None
    with pytest.raises(HandoffNotFound):
        claim_handoff(session_factory, 424242, "anna")
    with pytest.raises(HandoffNotFound):
        get_handoff(session_factory, 424242)
    with pytest.raises(InvalidInput):
        get_handoff(session_factory, "1")


def test_a_customers_open_tickets_newest_first(session_factory, world):
    first = open_ticket(session_factory, "late parcel", customer_id=world.alice_id)
    second = open_ticket(session_factory, "wrong size", customer_id=world.alice_id)
    wangs = open_ticket(session_factory, "not alice", customer_id=world.wang_id)
    update_ticket(session_factory, first.ticket_number, status="resolved")
    numbers = [t.ticket_number for t in list_tickets(session_factory, world.alice_id)]
    assert second.ticket_number in numbers and first.ticket_number not in numbers
    everything = list_tickets(session_factory, world.alice_id, open_only=False, limit=100)
    assert {first.ticket_number, second.ticket_number} <= {t.ticket_number for t in everything}
    assert wangs.ticket_number not in {t.ticket_number for t in everything}
    with pytest.raises(InvalidInput):
        list_tickets(session_factory, world.alice_id, limit=0)


def test_recommendations_skip_owned_and_out_of_stock(session_factory, world):
    recs = recommend_for_customer(session_factory, world.wang_id)
    codes = [r.product_code for r in recs]
    # Wang owns both running shoes and the tee; the earbuds are out of stock everywhere.
    assert set(codes) == {"BOXER-3", "RAIN-JACKET"}


def test_recommendations_use_co_purchase(session_factory, world):
    # Alice bought the boxer 3-pack with Trail Runner 2; Wang owns Trail Runner 2.
    recs = {
        r.product_code: r for r in recommend_for_customer(session_factory, world.wang_id, limit=10)
    }
    assert recs["BOXER-3"].reason == "co_purchase"


def test_no_history_no_recommendations(session_factory, world):
    assert recommend_for_customer(session_factory, 999) == ()
