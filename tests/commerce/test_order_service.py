"""Orders: lookup for the verified owner only, tracking, cancel, address change, history."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from commerce.errors import (
    AddressChangeNotAllowed,
    InvalidInput,
    OrderNotCancellable,
    OrderNotFound,
)
from commerce.models import Inventory, ProductVariant, Refund
from commerce.services.orders import (
    cancel_order,
    change_shipping_address,
    get_order,
    list_orders,
    purchase_history,
    track_order,
)


def test_get_order_for_owner(session_factory, world):
    o = get_order(session_factory, world.alice_id, "kf-190006")
    assert o.number == "KF-190006" and o.status == "delivered" and o.currency == "USD"
    assert {i.sku for i in o.items} >= {"TR2-41-BLA", "TEE-M-WHI"}
    assert [h.status for h in o.history][-1] == "delivered"
    assert o.address.city == "Los Angeles" and not o.can_cancel


def test_someone_elses_order_is_not_found(session_factory, world):
    """Never disclosed, and indistinguishable from an unknown order."""
    with pytest.raises(OrderNotFound) as e:
        get_order(session_factory, world.wang_id, "KF-190006")
    assert e.value.code == "order_not_found" and isinstance(e.value, LookupError)
    with pytest.raises(OrderNotFound):
        get_order(session_factory, world.alice_id, "KF-999999")


@pytest.mark.parametrize("bad", ["", "KF-1", "'; DROP TABLE orders; --", "%", "KF-10000_"])
def test_malformed_order_number(session_factory, world, bad):
    with pytest.raises(InvalidInput):
        get_order(session_factory, world.alice_id, bad)


@pytest.mark.parametrize("bad", [0, -1, "1", None, True])
def test_bad_customer_id(session_factory, world, bad):
    with pytest.raises(InvalidInput):
        get_order(session_factory, bad, "KF-190001")


def test_list_orders_newest_first(session_factory, world):
    orders = list_orders(session_factory, world.alice_id, limit=3)
    assert len(orders) == 3 and all(o.item_count >= 1 for o in orders)
    assert list_orders(session_factory, world.wang_id)[0].number.startswith("KF-2")


def test_track_shipped_order(session_factory, world):
    t = track_order(session_factory, world.alice_id, "KF-190006")
    assert t.carrier == "UPS" and t.tracking_number == "TRK190006"
    assert t.latest_event.status == "delivered" and t.latest_event.description_zh == "已签收"


def test_track_unshipped_order_has_no_carrier(session_factory, world):
    t = track_order(session_factory, world.alice_id, "KF-190001")
    assert t.status == "placed" and t.carrier is None and t.events == ()


def test_track_other_customer_order(session_factory, world):
    with pytest.raises(OrderNotFound):
        track_order(session_factory, world.wang_id, "KF-190004")


def _reserved(sf, sku):
    with sf() as s:
        return s.execute(
            select(Inventory.reserved)
            .join(ProductVariant, ProductVariant.id == Inventory.variant_id)
            .where(ProductVariant.sku == sku)
        ).scalar_one()


def test_cancel_paid_order_refunds_and_releases_stock(session_factory, world):
    before = _reserved(session_factory, "TEE-M-WHI")
    r = cancel_order(session_factory, world.alice_id, "KF-190002")
    assert r.status == "cancelled" and not r.already_cancelled
    assert r.refund_number.startswith("RF-") and r.refund_amount_cents == 14000
    assert _reserved(session_factory, "TEE-M-WHI") == max(before - 1, 0)
    assert get_order(session_factory, world.alice_id, "KF-190002").history[-1].status == "cancelled"


def test_cancel_unpaid_order_makes_no_refund(session_factory, world):
    r = cancel_order(session_factory, world.alice_id, "KF-190001")
    assert r.refund_number is None and r.refund_amount_cents == 0


def test_cancel_is_idempotent(session_factory, world):
    first = cancel_order(session_factory, world.alice_id, "KF-190003")
    again = cancel_order(session_factory, world.alice_id, "KF-190003")
    assert again.already_cancelled and again.refund_number == first.refund_number
    with session_factory() as s:
        assert len(s.execute(select(Refund)).scalars().all()) == 1


@pytest.mark.parametrize("label", ["shipped", "out_for_delivery", "delivered", "returned"])
def test_cannot_cancel_after_shipment(session_factory, world, count_statements, label):
    with pytest.raises(OrderNotCancellable) as e:
        cancel_order(session_factory, world.alice_id, world.orders[label])
    assert e.value.status == label and e.value.code == "order_not_cancellable"
    assert count_statements == []


def test_cancel_other_customers_order(session_factory, world, count_statements):
    with pytest.raises(OrderNotFound):
        cancel_order(session_factory, world.wang_id, "KF-190002")
    assert count_statements == []


def test_change_address_before_packing(session_factory, world):
    a = change_shipping_address(
        session_factory,
        world.wang_id,
        "KF-290003",
        line1="浦东新区世纪大道100号",
        city="上海",
        province="上海市",
        postcode="200120",
        phone="+86 139 0000 0000",
    )
    assert a.line1 == "浦东新区世纪大道100号" and a.phone == "8613900000000" and a.country == "CN"
    assert get_order(session_factory, world.wang_id, "KF-290003").address.city == "上海"


@pytest.mark.parametrize("label", ["packed", "shipped", "delivered", "cancelled"])
def test_address_change_refused_once_packed(session_factory, world, label):
    with pytest.raises(AddressChangeNotAllowed) as e:
        change_shipping_address(
            session_factory, world.alice_id, world.orders[label], line1="x", city="y"
        )
    assert e.value.code == "address_change_not_allowed"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"line1": "", "city": "LA"},
        {"line1": "x" * 201, "city": "LA"},
        {"line1": "1 Main", "city": "LA", "country": "USA"},
        {"line1": "1 Main", "city": "LA", "phone": "call me"},
    ],
)
def test_address_change_bad_input_changes_nothing(session_factory, world, count_statements, kwargs):
    with pytest.raises(InvalidInput):
        change_shipping_address(session_factory, world.alice_id, "KF-190001", **kwargs)
    assert count_statements == []


def test_purchase_history_skips_cancelled(session_factory, world):
    items = purchase_history(session_factory, world.alice_id)
    numbers = {i.order_number for i in items}
    assert "KF-190006" in numbers and "KF-190008" not in numbers
