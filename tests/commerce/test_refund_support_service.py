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


def test_a_handoff_keeps_the_conversations_complaint_risk(session_factory):
    flagged = conversation_handoff(session_factory, "risky", "wants a human", risk=0.5)
    calm = conversation_handoff(session_factory, "calm", "wants a human", risk=0.49)
    unknown = conversation_handoff(session_factory, "unscored", "wants a human")
    # The cut-off is the contract's HIGH_COMPLAINT_RISK (0.5), inclusive.
    assert (flagged.risk, flagged.at_risk) == (0.5, True)
    assert (calm.risk, calm.at_risk) == (0.49, False)
    assert (unknown.risk, unknown.at_risk) == (None, False)
    assert get_handoff(session_factory, flagged.handoff_id) == flagged
    assert conversation_handoff(session_factory, "whole", "x", risk=1).risk == 1.0


@pytest.mark.parametrize(
    ("severity", "risk", "priority"),
    [
        ("normal", 0.8, 1),  # raised to "high"
        ("low", 0.5, 1),
        ("urgent", 0.9, 0),  # a more urgent priority is kept
        ("high", 0.95, 1),
        ("normal", 0.3, 2),  # below the cut-off nothing changes
        ("low", None, 3),
    ],
)
def test_high_complaint_risk_raises_the_priority_to_high(session_factory, severity, risk, priority):
    h = conversation_handoff(session_factory, "c", "wants a human", severity=severity, risk=risk)
    assert h.priority == priority


def test_asking_again_updates_the_waiting_entrys_risk(session_factory):
    first = conversation_handoff(session_factory, "again", "wants a human", risk=0.2)
    assert (first.priority, first.at_risk) == (2, False)
    riskier = conversation_handoff(session_factory, "again", "still waiting!!", risk=0.8)
    assert riskier.handoff_id == first.handoff_id and not riskier.created
    assert (riskier.risk, riskier.at_risk, riskier.priority) == (0.8, True, 1)
    # A calmer score clears the flag but never lowers the priority the entry already had.
    calmer = conversation_handoff(session_factory, "again", "ok, I'll wait", risk=0.1)
    assert (calmer.risk, calmer.at_risk, calmer.priority) == (0.1, False, 1)
    # No score this time: the last one stays.
    assert conversation_handoff(session_factory, "again", "hello?").risk == 0.1
    # An entry an agent is serving is still updated (it shows in the "assigned" list).
    claim_handoff(session_factory, first.handoff_id, "anna")
    served = conversation_handoff(session_factory, "again", "this is useless", risk=0.9)
    assert (served.status, served.risk, served.at_risk) == ("assigned", 0.9, True)


@pytest.mark.parametrize("risk", [-0.01, 1.01, float("nan"), float("inf"), "0.7", True, [0.7]])
def test_handoff_risk_must_be_a_number_from_0_to_1(session_factory, count_statements, risk):
    with pytest.raises(InvalidInput) as e:
        conversation_handoff(session_factory, "c", "wants a human", risk=risk)
    assert e.value.field == "risk" and count_statements == []


def test_bad_risk_leaves_a_waiting_entry_as_it_was(session_factory, count_statements):
    before = conversation_handoff(session_factory, "c", "wants a human", risk=0.7)
    count_statements.clear()
    with pytest.raises(InvalidInput):
        conversation_handoff(session_factory, "c", "wants a human", risk=7)
    assert count_statements == [] and get_handoff(session_factory, before.handoff_id) == before


def test_at_risk_entries_go_first_within_their_priority(session_factory):
    def queue(conversation, severity="normal", risk=None):
        conversation_handoff(
            session_factory, conversation, "wants a human", severity=severity, risk=risk
        )

    queue("normal-early")
    queue("high-early", "high")
    queue("normal-near-cutoff", risk=0.45)
    queue("normal-at-risk", risk=0.6)  # raised to high, at risk: ahead of high-early
    queue("high-at-risk", "high", risk=0.9)  # at risk too, but queued after normal-at-risk
    queue("urgent-late", "urgent")
    order = [
        "urgent-late",
        "normal-at-risk",
        "high-at-risk",
        "high-early",
        "normal-early",
        "normal-near-cutoff",
    ]
    waiting = list_handoff_queue(session_factory)
    assert [h.conversation_id for h in waiting] == order
    assert [h.position for h in waiting] == [1, 2, 3, 4, 5, 6]
    assert [h.at_risk for h in waiting] == [False, True, True, False, False, False]
    # Agents taking "the next one" get them in the same order.
    taken = [claim_next_handoff(session_factory, "li").conversation_id for _ in order]
    assert taken == order and claim_next_handoff(session_factory, "li") is None


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
