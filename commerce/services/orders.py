"""Orders: look up, track, cancel, change the shipping address, purchase history.

Every function takes the ``customer_id`` of a verified customer (see
:mod:`commerce.services.identity`) and raises OrderNotFound for orders of anyone else.
"""

from __future__ import annotations

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import selectinload

from commerce.db import begin_write
from commerce.dto import (
    AddressView,
    CancelResult,
    OrderDetails,
    OrderSummary,
    PurchasedItem,
    ShipmentView,
    StatusChange,
    TrackingInfo,
)
from commerce.errors import AddressChangeNotAllowed, InvalidInput, OrderNotCancellable
from commerce.lifecycles import CANCEL, CHANGE_ADDRESS, ORDER, ORDER_PAID_STATUSES
from commerce.models import (
    ORDER_CANCELLED,
    Inventory,
    Order,
    OrderItem,
    OrderStatusEvent,
    Product,
    ProductVariant,
    Refund,
    Shipment,
    ShippingAddress,
)
from commerce.services._common import (
    check_customer_id,
    check_text,
    item_view,
    load_order,
    tracking_event_view,
    utcnow,
)
from commerce.services.identity import normalize_order_number, normalize_phone
from commerce.services.refunds import open_refund

_ORDER_LOAD = (
    selectinload(Order.items).selectinload(OrderItem.variant).selectinload(ProductVariant.product),
    selectinload(Order.history),
    selectinload(Order.address),
    selectinload(Order.shipments).selectinload(Shipment.events),
)


def _address_view(address) -> AddressView | None:
    if address is None:
        return None
    return AddressView(
        recipient=address.recipient,
        phone=address.phone,
        line1=address.line1,
        line2=address.line2,
        city=address.city,
        province=address.province,
        postcode=address.postcode,
        country=address.country,
    )


def _shipment_view(shipment) -> ShipmentView:
    return ShipmentView(
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        shipped_at=shipment.shipped_at,
        estimated_delivery=shipment.estimated_delivery,
        delivered_at=shipment.delivered_at,
        events=tuple(tracking_event_view(e) for e in shipment.events),
    )


def get_order(session_factory, customer_id: int, order_number: str) -> OrderDetails:
    """Full details of one of the customer's orders.

    Raises:
        InvalidInput: malformed order number or customer id.
        OrderNotFound: unknown, or not this customer's.
    """
    check_customer_id(customer_id)
    number = normalize_order_number(order_number)
    with session_factory() as session:
        order = load_order(session, customer_id, number)
        session.execute(
            select(Order).where(Order.id == order.id).options(*_ORDER_LOAD)
        ).scalar_one()
        return OrderDetails(
            number=order.number,
            status=order.status,
            region=order.region,
            currency=order.currency,
            total_cents=order.total_cents,
            placed_at=order.placed_at,
            delivered_at=order.delivered_at,
            items=tuple(item_view(i) for i in order.items),
            address=_address_view(order.address),
            history=tuple(StatusChange(h.status, h.at, h.note) for h in order.history),
            shipments=tuple(_shipment_view(s) for s in order.shipments),
            can_cancel=ORDER.can(order.status, CANCEL),
            can_change_address=ORDER.can(order.status, CHANGE_ADDRESS),
        )


def list_orders(session_factory, customer_id: int, limit: int = 10) -> tuple[OrderSummary, ...]:
    """The customer's most recent orders, newest first."""
    check_customer_id(customer_id)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
        raise InvalidInput("limit", "must be an integer between 1 and 100")
    counts = (
        select(OrderItem.order_id, func.sum(OrderItem.quantity).label("n"))
        .group_by(OrderItem.order_id)
        .subquery()
    )
    with session_factory() as session:
        rows = session.execute(
            select(Order, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.order_id == Order.id)
            .where(Order.customer_id == customer_id)
            .order_by(Order.placed_at.desc(), Order.id.desc())
            .limit(limit)
        ).all()
        return tuple(
            OrderSummary(o.number, o.status, o.placed_at, o.total_cents, o.currency, int(n))
            for o, n in rows
        )


def track_order(session_factory, customer_id: int, order_number: str) -> TrackingInfo:
    """Where the order is: status, carrier, tracking number and events of its latest shipment.

    Raises:
        InvalidInput, OrderNotFound: as :func:`get_order`.
    """
    check_customer_id(customer_id)
    number = normalize_order_number(order_number)
    with session_factory() as session:
        order = load_order(session, customer_id, number)
        shipment = session.execute(
            select(Shipment)
            .where(Shipment.order_id == order.id)
            .options(selectinload(Shipment.events))
            .order_by(Shipment.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if shipment is None:
            return TrackingInfo(number, order.status, None, None, None, None, None, None, ())
        events = tuple(tracking_event_view(e) for e in shipment.events)
        return TrackingInfo(
            order_number=number,
            status=order.status,
            carrier=shipment.carrier,
            tracking_number=shipment.tracking_number,
            shipped_at=shipment.shipped_at,
            estimated_delivery=shipment.estimated_delivery,
            delivered_at=shipment.delivered_at,
            latest_event=events[-1] if events else None,
            events=events,
        )


def cancel_order(
    session_factory, customer_id: int, order_number: str, reason: str = "customer request"
) -> CancelResult:
    """Cancel an order that has not shipped yet; idempotent.

    Releases the stock the order reserved and, when it was paid, opens one refund for the total.
    A retry (or a concurrent second cancel) finds the order cancelled and returns
    ``already_cancelled=True`` with the same refund, never a second one.

    Raises:
        InvalidInput, OrderNotFound: as :func:`get_order`.
        OrderNotCancellable: shipped, out for delivery, delivered or returned.
    """
    check_customer_id(customer_id)
    number = normalize_order_number(order_number)
    reason = check_text(reason, "reason", max_len=200)
    now = utcnow()
    with session_factory.begin() as session:
        begin_write(session)
        order = load_order(session, customer_id, number, lock=True)
        if order.status == ORDER_CANCELLED:
            refund = session.execute(
                select(Refund).where(Refund.order_id == order.id, Refund.return_id.is_(None))
            ).scalar_one_or_none()
            return CancelResult(
                number,
                ORDER_CANCELLED,
                True,
                refund.refund_number if refund else None,
                refund.amount_cents if refund else 0,
                order.currency,
            )
        if not ORDER.can(order.status, CANCEL):
            raise OrderNotCancellable(number, order.status)
        was_paid = order.status in ORDER_PAID_STATUSES
        _release_reserved_stock(session, order)
        ORDER.check(order.status, ORDER_CANCELLED)
        order.status = ORDER_CANCELLED
        order.updated_at = now
        session.add(
            OrderStatusEvent(order_id=order.id, status=ORDER_CANCELLED, at=now, note=reason)
        )
        refund_number = None
        amount = 0
        if was_paid and order.total_cents > 0:
            refund = open_refund(session, order, order.total_cents, "order cancelled", now=now)
            refund_number, amount = refund.refund_number, refund.amount_cents
        return CancelResult(number, ORDER_CANCELLED, False, refund_number, amount, order.currency)


def _release_reserved_stock(session, order: Order) -> None:
    """The order's units stop being reserved; on_hand is untouched (they never left the shelf)."""
    for item in session.execute(select(OrderItem).where(OrderItem.order_id == order.id)).scalars():
        if item.warehouse_id is None:
            continue
        session.execute(
            update(Inventory)
            .where(
                Inventory.variant_id == item.variant_id,
                Inventory.warehouse_id == item.warehouse_id,
            )
            .values(
                reserved=case(
                    (Inventory.reserved > item.quantity, Inventory.reserved - item.quantity),
                    else_=0,
                )
            )
        )


def change_shipping_address(
    session_factory,
    customer_id: int,
    order_number: str,
    *,
    line1: str,
    city: str,
    line2: str | None = None,
    province: str | None = None,
    postcode: str | None = None,
    country: str | None = None,
    recipient: str | None = None,
    phone: str | None = None,
) -> AddressView:
    """Replace the shipping address of an order that is not packed yet.

    Fields left as None keep their current value (``line2``/``province``/``postcode`` too).

    Raises:
        InvalidInput: empty or over-long fields, bad country code or phone.
        OrderNotFound: as :func:`get_order`.
        AddressChangeNotAllowed: packed or further along.
    """
    check_customer_id(customer_id)
    number = normalize_order_number(order_number)
    line1 = check_text(line1, "line1", max_len=200)
    city = check_text(city, "city", max_len=100)
    values = {"line1": line1, "city": city}
    for field, value, max_len in (
        ("line2", line2, 200),
        ("province", province, 100),
        ("postcode", postcode, 20),
        ("recipient", recipient, 120),
    ):
        if value is not None:
            values[field] = check_text(value, field, max_len=max_len, required=field == "recipient")
    if country is not None:
        code = check_text(country, "country", max_len=2).upper()
        if len(code) != 2 or not code.isalpha():
            raise InvalidInput("country", "expected a two-letter ISO code like CN or US")
        values["country"] = code
    if phone is not None:
        values["phone"] = normalize_phone(phone)
    now = utcnow()
    with session_factory.begin() as session:
        begin_write(session)
        order = load_order(session, customer_id, number, lock=True)
        if not ORDER.can(order.status, CHANGE_ADDRESS):
            raise AddressChangeNotAllowed(number, order.status)
        address = session.execute(
            select(ShippingAddress).where(ShippingAddress.order_id == order.id)
        ).scalar_one_or_none()
        if address is None:
            raise AddressChangeNotAllowed(number, order.status)
        for field, value in values.items():
            setattr(
                address,
                field,
                value or None if field in ("line2", "province", "postcode") else value,
            )
        address.updated_at = now
        order.updated_at = now
        session.add(
            OrderStatusEvent(order_id=order.id, status=order.status, at=now, note="address changed")
        )
        return _address_view(address)


def purchase_history(
    session_factory, customer_id: int, limit: int = 100
) -> tuple[PurchasedItem, ...]:
    """Items the customer bought (cancelled orders excluded), newest first."""
    check_customer_id(customer_id)
    with session_factory() as session:
        rows = session.execute(
            select(Order, OrderItem, ProductVariant, Product)
            .join(OrderItem, OrderItem.order_id == Order.id)
            .join(ProductVariant, ProductVariant.id == OrderItem.variant_id)
            .join(Product, Product.id == ProductVariant.product_id)
            .where(Order.customer_id == customer_id, Order.status != ORDER_CANCELLED)
            .order_by(Order.placed_at.desc(), OrderItem.id)
            .limit(limit)
        ).all()
        return tuple(
            PurchasedItem(
                order_number=o.number,
                placed_at=o.placed_at,
                order_status=o.status,
                sku=v.sku,
                product_code=p.code,
                name_en=p.name_en,
                name_zh=p.name_zh,
                category=p.category,
                size=v.size,
                colour=v.colour,
                quantity=i.quantity,
            )
            for o, i, v, p in rows
        )
