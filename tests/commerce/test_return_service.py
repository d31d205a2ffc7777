"""Return eligibility with reasons, RMAs, exchanges and the RMA lifecycle."""

from __future__ import annotations

import pytest

from commerce.errors import (
    InvalidInput,
    InvalidTransition,
    NotEligibleForReturn,
    OrderNotFound,
    OutOfStock,
    ReturnNotFound,
    VariantNotFound,
)
from commerce.services.orders import get_order
from commerce.services.refunds import list_refunds
from commerce.services.returns import (
    advance_return,
    check_return_eligibility,
    exchange_offer,
    get_return,
    list_returns,
    open_return,
)


def test_mixed_order_eligibility_per_item(session_factory, world):
    e = check_return_eligibility(session_factory, world.alice_id, "KF-190006")
    by_sku = {i.sku: i for i in e.items}
    assert e.eligible and e.window_days == 30 and not e.no_reason
    assert by_sku["TR2-41-BLA"].eligible and by_sku["TEE-M-WHI"].returnable_quantity == 2
    assert by_sku["BOX-M-BLA"].reason == "non_returnable_category"
    assert by_sku["RJ-M-NAV"].reason == "final_sale"


@pytest.mark.parametrize(
    "label, reason",
    [
        ("placed", "not_delivered"),
        ("shipped", "not_delivered"),
        ("out_for_delivery", "not_delivered"),
        ("delivered_old", "window_expired"),
        ("cancelled", "order_cancelled"),
        ("returned", "already_returned"),
        ("earbuds_20d", "window_expired"),
    ],
)
def test_not_eligible_reasons(session_factory, world, label, reason):
    e = check_return_eligibility(session_factory, world.alice_id, world.orders[label])
    assert not e.eligible and e.reason == reason


def test_china_store_seven_day_no_reason(session_factory, world):
    ok = check_return_eligibility(session_factory, world.wang_id, "KF-290001")
    late = check_return_eligibility(session_factory, world.wang_id, "KF-290002")
    assert ok.eligible and ok.no_reason and ok.window_days == 7
    assert not late.eligible and late.reason == "window_expired"


def test_open_return_gets_rma(session_factory, world):
    r = open_return(session_factory, world.alice_id, "KF-190006", "too small", [("TEE-M-WHI", 1)])
    assert r.rma_number.startswith("RMA-") and r.status == "requested" and r.kind == "return"
    assert r.refund_estimate_cents == 2000 and r.items[0].quantity == 1
    assert get_return(session_factory, world.alice_id, r.rma_number.lower()) == r
    assert list_returns(session_factory, world.alice_id, "KF-190006")[0].rma_number == r.rma_number


def test_same_items_cannot_be_returned_twice(session_factory, world):
    open_return(session_factory, world.alice_id, "KF-190006", "size", ["TR2-41-BLA"])
    with pytest.raises(NotEligibleForReturn) as e:
        open_return(session_factory, world.alice_id, "KF-190006", "size", ["TR2-41-BLA"])
    assert e.value.reason == "already_returned"


def test_idempotency_key_returns_same_rma(session_factory, world):
    a = open_return(
        session_factory, world.alice_id, "KF-190006", "x", ["TR2-41-BLA"], idempotency_key="k-1"
    )
    b = open_return(
        session_factory, world.alice_id, "KF-190006", "x", ["TR2-41-BLA"], idempotency_key="k-1"
    )
    assert b.rma_number == a.rma_number and a.created and not b.created


def test_default_returns_every_eligible_item(session_factory, world):
    r = open_return(session_factory, world.alice_id, "KF-190006", "changed my mind")
    assert {i.sku: i.quantity for i in r.items} == {"TR2-41-BLA": 1, "TEE-M-WHI": 2}


@pytest.mark.parametrize(
    "items, err",
    [
        ([("BOX-M-BLA", 1)], NotEligibleForReturn),
        ([("RJ-M-NAV", 1)], NotEligibleForReturn),
        ([("NOPE-1", 1)], InvalidInput),
        ([("TEE-M-WHI", 3)], InvalidInput),
        ([("TEE-M-WHI", 10**6)], InvalidInput),
        ([("TEE-M-WHI", 0)], InvalidInput),
        ([], InvalidInput),
        ("TEE-M-WHI", InvalidInput),
    ],
)
def test_bad_items_change_nothing(session_factory, world, count_statements, items, err):
    with pytest.raises(err):
        open_return(session_factory, world.alice_id, "KF-190006", "x", items)
    assert count_statements == []


def test_not_delivered_suggests_cancel(session_factory, world):
    with pytest.raises(NotEligibleForReturn) as e:
        open_return(session_factory, world.alice_id, "KF-190002", "x")
    assert e.value.reason == "not_delivered" and e.value.code == "not_eligible_for_return"


def test_other_customers_order(session_factory, world):
    with pytest.raises(OrderNotFound):
        open_return(session_factory, world.wang_id, "KF-190006", "x")


def test_exchange_reserves_replacement(session_factory, world):
    r = open_return(
        session_factory,
        world.wang_id,
        "KF-290001",
        "want the other colour",
        kind="exchange",
        exchange_for={"TR2-41-WHI": "TR2-41-BLA"},
    )
    assert r.kind == "exchange" and r.items[0].exchange_sku == "TR2-41-BLA"
    assert r.refund_estimate_cents == 0
    advance_return(session_factory, r.rma_number, "cancelled")  # releases the reservation


def test_exchange_out_of_stock(session_factory, world):
    with pytest.raises(OutOfStock) as e:
        open_return(
            session_factory,
            world.wang_id,
            "KF-290001",
            "size",
            kind="exchange",
            exchange_for={"TR2-41-WHI": "TR2-42-BLA"},
        )
    assert e.value.code == "out_of_stock" and e.value.available == 0


def test_exchange_to_another_product_is_refused(session_factory, world):
    with pytest.raises(InvalidInput):
        open_return(
            session_factory,
            world.wang_id,
            "KF-290001",
            "x",
            kind="exchange",
            exchange_for={"TR2-41-WHI": "RR-42-BLA"},
        )


def test_receiving_a_return_opens_refund_and_marks_order(session_factory, world):
    r = open_return(session_factory, world.wang_id, "KF-290001", "七天无理由")
    advance_return(session_factory, r.rma_number, "approved")
    received = advance_return(session_factory, r.rma_number, "received")
    assert received.status == "received"
    (refund,) = list_refunds(session_factory, world.wang_id, "KF-290001")
    assert (
        refund.rma_number == r.rma_number
        and refund.amount_cents == 12000
        and refund.currency == "CNY"
    )
    assert get_order(session_factory, world.wang_id, "KF-290001").status == "returned"
    # Repeating the step is a no-op, skipping back is refused.
    advance_return(session_factory, r.rma_number, "received")
    assert len(list_refunds(session_factory, world.wang_id, "KF-290001")) == 1
    with pytest.raises(InvalidTransition):
        advance_return(session_factory, r.rma_number, "approved")


def test_unknown_rma(session_factory, world):
    with pytest.raises(ReturnNotFound):
        get_return(session_factory, world.alice_id, "RMA-00000000")
    with pytest.raises(InvalidInput):
        get_return(session_factory, world.alice_id, "'; --")


@pytest.mark.parametrize(
    "returned, size, colour, replacement",
    [
        ("TR2-41-WHI", "42", None, "TR2-42-WHI"),  # the same colour, in stock
        ("tr2-41-bla", "42", None, "TR2-42-WHI"),  # black 42 is sold out: another colour
        ("TR2-41-WHI", "42", "black", None),  # the colour asked for is sold out
        ("TR2-42-WHI", "41", "black", "TR2-41-BLA"),
    ],
)
def test_the_exchange_offer(session_factory, world, returned, size, colour, replacement):
    offer = exchange_offer(session_factory, returned, size, colour)
    assert (offer.size, offer.colour) == (size, colour)
    assert (offer.replacement.sku if offer.replacement else None) == replacement


def test_no_exchange_offer_in_a_size_the_product_lacks(session_factory, world):
    with pytest.raises(VariantNotFound):
        exchange_offer(session_factory, "TR2-41-WHI", "48")
