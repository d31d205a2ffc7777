"""Refunds: follow a refund, request one for a cancelled / returned order, its lifecycle.

:func:`open_refund` is the one place a refund is created: a customer's request here, a cancelled
paid order (:mod:`commerce.services.orders`) and a return received back
(:mod:`commerce.services.returns`) all call it inside their own transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from commerce.db import begin_write
from commerce.dto import RefundView
from commerce.errors import (
    REFUND_ALREADY_OPEN,
    REFUND_NOTHING_REFUNDABLE,
    REFUND_ORDER_NOT_REFUNDABLE,
    InvalidInput,
    RefundNotAllowed,
    RefundNotFound,
)
from commerce.lifecycles import (
    ORDER_UNDONE_STATUSES,
    REFUND,
    REFUND_COUNTED_STATUSES,
    RETURN_RECEIVED_STATUSES,
)
from commerce.models import (
    ORDER_PAID,
    REFUND_REQUESTED,
    RETURN_KIND_RETURN,
    Order,
    OrderItem,
    OrderStatusEvent,
    Refund,
    RefundEvent,
    Return,
    ReturnItem,
)
from commerce.services._common import (
    check_customer_id,
    check_idempotency_key,
    check_text,
    load_order,
    new_reference,
    normalize_reference,
    one_locked,
    refund_view,
    utcnow,
)
from commerce.services.identity import normalize_order_number


def open_refund(
    session: Session,
    order: Order,
    amount_cents: int,
    reason: str,
    *,
    now: datetime,
    return_id: int | None = None,
    idempotency_key: str | None = None,
    note: str | None = None,
) -> Refund:
    """Create a requested refund of ``amount_cents`` on ``order``, with its first history entry.

    Runs inside the caller's write transaction; the caller has checked that the amount is owed.

    Args:
        return_id: the return whose received items it pays back, if any.
        idempotency_key: the customer's key for a retried request.
        note: recorded on the first history entry.
    """
    refund = Refund(
        refund_number=new_reference("RF"),
        order_id=order.id,
        return_id=return_id,
        amount_cents=amount_cents,
        currency=order.currency,
        status=REFUND_REQUESTED,
        reason=reason,
        idempotency_key=idempotency_key,
        created_at=now,
        updated_at=now,
    )
    session.add(refund)
    session.flush()
    session.add(RefundEvent(refund_id=refund.id, status=REFUND_REQUESTED, at=now, note=note))
    session.flush()
    return refund


def _views(session: Session, refunds) -> tuple[RefundView, ...]:
    ids = [r.id for r in refunds]
    if not ids:
        return ()
    loaded = session.execute(
        select(Refund, Order.number, Return.rma_number)
        .join(Order, Order.id == Refund.order_id)
        .outerjoin(Return, Return.id == Refund.return_id)
        .where(Refund.id.in_(ids))
        .options(selectinload(Refund.events))
        .order_by(Refund.created_at.desc(), Refund.id.desc())
    ).all()
    return tuple(refund_view(r, n, rma) for r, n, rma in loaded)


def list_refunds(session_factory, customer_id: int, order_number: str) -> tuple[RefundView, ...]:
    """Refunds of one of the customer's orders, newest first (empty when there are none).

    Raises:
        InvalidInput, OrderNotFound: malformed number, or not this customer's order.
    """
    check_customer_id(customer_id)
    number = normalize_order_number(order_number)
    with session_factory() as session:
        order = load_order(session, customer_id, number)
        refunds = session.execute(select(Refund).where(Refund.order_id == order.id)).scalars().all()
        return _views(session, refunds)


def _normalize_refund_number(raw: object) -> str:
    return normalize_reference(raw, "refund_number", "RF", "a refund number like RF-1A2B3C4D")


def get_refund(session_factory, customer_id: int, refund_number: str) -> RefundView:
    """Follow one refund by its number.

    Raises:
        InvalidInput: malformed refund number.
        RefundNotFound: unknown, or on someone else's order.
    """
    check_customer_id(customer_id)
    number = _normalize_refund_number(refund_number)
    with session_factory() as session:
        row = session.execute(
            select(Refund, Order.customer_id)
            .join(Order, Order.id == Refund.order_id)
            .where(Refund.refund_number == number)
        ).one_or_none()
        if row is None or row[1] != customer_id:
            raise RefundNotFound(f"no refund {number} for this customer")
        return _views(session, [row[0]])[0]


def _refundable_cents(session: Session, order: Order) -> int:
    if order.status in ORDER_UNDONE_STATUSES:
        was_paid = session.execute(
            select(func.count(OrderStatusEvent.id)).where(
                OrderStatusEvent.order_id == order.id, OrderStatusEvent.status == ORDER_PAID
            )
        ).scalar_one()
        if not was_paid:
            return 0
        basis = order.total_cents
    else:
        # Otherwise only returned units that reached the warehouse are owed.
        basis = session.execute(
            select(func.coalesce(func.sum(OrderItem.unit_price_cents * ReturnItem.quantity), 0))
            .join(ReturnItem, ReturnItem.order_item_id == OrderItem.id)
            .join(Return, Return.id == ReturnItem.return_id)
            .where(
                Return.order_id == order.id,
                Return.kind == RETURN_KIND_RETURN,
                Return.status.in_(RETURN_RECEIVED_STATUSES),
            )
        ).scalar_one()
    refunded = session.execute(
        select(func.coalesce(func.sum(Refund.amount_cents), 0)).where(
            Refund.order_id == order.id, Refund.status.in_(REFUND_COUNTED_STATUSES)
        )
    ).scalar_one()
    return int(basis) - int(refunded)


def request_refund(
    session_factory,
    customer_id: int,
    order_number: str,
    reason: str = "customer request",
    idempotency_key: str | None = None,
) -> RefundView:
    """Open a refund for whatever the order is still owed; one open refund per order.

    Owed means: the total of a paid order that was cancelled or fully returned, else the value
    of returned items received back, less refunds already made or under way. Concurrent or
    repeated requests produce one refund: the second sees it open (``refund_already_open``), or,
    with the same ``idempotency_key``, gets it back with ``created=False``.

    Raises:
        InvalidInput, OrderNotFound: malformed input or not this customer's order.
        RefundNotAllowed: ``reason`` is ``refund_already_open``, ``nothing_refundable`` or
            ``order_not_refundable``.
    """
    check_customer_id(customer_id)
    number = normalize_order_number(order_number)
    reason = check_text(reason, "reason", max_len=300)
    key = check_idempotency_key(idempotency_key)
    now = utcnow()
    with session_factory.begin() as session:
        begin_write(session)
        order = load_order(session, customer_id, number, lock=True)
        if key is not None:
            existing = session.execute(
                select(Refund).where(Refund.idempotency_key == key)
            ).scalar_one_or_none()
            if existing is not None:
                if existing.order_id != order.id:
                    raise InvalidInput("idempotency_key", "already used for another request")
                view = _views(session, [existing])[0]
                return refund_view(existing, view.order_number, view.rma_number, created=False)
        under_way = session.execute(
            select(Refund.id).where(
                Refund.order_id == order.id, Refund.status.in_(REFUND.open_statuses)
            )
        ).first()
        if under_way is not None:
            raise RefundNotAllowed(REFUND_ALREADY_OPEN, f"order {number} has a refund under way")
        if order.status not in ORDER_UNDONE_STATUSES and not order.delivered_at:
            raise RefundNotAllowed(
                REFUND_ORDER_NOT_REFUNDABLE, f"order {number} is {order.status}; cancel it instead"
            )
        amount = _refundable_cents(session, order)
        if amount <= 0:
            raise RefundNotAllowed(REFUND_NOTHING_REFUNDABLE, f"nothing left to refund on {number}")
        refund = open_refund(session, order, amount, reason, now=now, idempotency_key=key)
        return _views(session, [refund])[0]


def advance_refund(
    session_factory, refund_number: str, to_status: str, note: str | None = None
) -> RefundView:
    """Back-office / payment-provider step of a refund's lifecycle.

    ``requested → approved → processing → completed``; ``requested|approved → rejected``;
    ``processing → failed → processing`` (retry). Repeating the current status is a no-op.

    Raises:
        InvalidInput: malformed number or unknown status.
        RefundNotFound: unknown refund.
        InvalidTransition: not allowed from the current status.
    """
    number = _normalize_refund_number(refund_number)
    REFUND.check_status(to_status)
    note = check_text(note, "note", required=False, max_len=200) or None
    now = utcnow()
    with session_factory.begin() as session:
        begin_write(session)
        refund = one_locked(session, select(Refund).where(Refund.refund_number == number))
        if refund is None:
            raise RefundNotFound(number)
        if refund.status != to_status:
            REFUND.check(refund.status, to_status)
            refund.status = to_status
            refund.updated_at = now
            session.add(RefundEvent(refund_id=refund.id, status=to_status, at=now, note=note))
            session.flush()
        session.expire(refund, ["events"])
        return _views(session, [refund])[0]
