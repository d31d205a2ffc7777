"""Returns and exchanges: eligibility with reasons, opening an RMA, the RMA lifecycle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from commerce.db import begin_write, is_postgres
from commerce.dto import (
    ExchangeOffer,
    ItemEligibility,
    ReturnEligibility,
    ReturnItemView,
    ReturnView,
)
from commerce.errors import (
    REASON_ALREADY_RETURNED,
    RETURN_REASON_CODES,
    InvalidInput,
    NotEligibleForReturn,
    OutOfStock,
    ReturnNotFound,
)
from commerce.lifecycles import (
    ORDER,
    RETURN,
    RETURN_COUNTED_STATUSES,
    RETURN_RECEIVED_STATUSES,
    RETURN_RELEASING_STATUSES,
)
from commerce.models import (
    ORDER_RETURNED,
    RETURN_KIND_EXCHANGE,
    RETURN_KIND_RETURN,
    RETURN_RECEIVED,
    RETURN_REQUESTED,
    Inventory,
    Order,
    OrderItem,
    OrderStatusEvent,
    Product,
    ProductVariant,
    Return,
    ReturnItem,
    ReturnPolicy,
    Warehouse,
)
from commerce.policies import (
    PolicyRule,
    item_return_block,
    order_return_block,
    pick_policy,
    pick_replacement,
    return_deadline,
)
from commerce.services._common import (
    check_customer_id,
    check_idempotency_key,
    check_quantity,
    check_text,
    load_order,
    new_reference,
    normalize_reference,
    one_locked,
    utcnow,
)
from commerce.services.identity import normalize_order_number
from commerce.services.refunds import open_refund
from commerce.services.stock import check_stock


def _policies(session: Session, region: str) -> list[PolicyRule]:
    rows = session.execute(select(ReturnPolicy).where(ReturnPolicy.region == region)).scalars()
    return [
        PolicyRule(
            r.region,
            r.category,
            r.returnable,
            r.window_days,
            r.no_reason,
            r.description_en,
            r.description_zh,
        )
        for r in rows
    ]


def _returned_quantities(session: Session, order_id: int) -> dict[int, int]:
    rows = session.execute(
        select(ReturnItem.order_item_id, func.sum(ReturnItem.quantity))
        .join(Return, Return.id == ReturnItem.return_id)
        .where(Return.order_id == order_id, Return.status.in_(RETURN_COUNTED_STATUSES))
        .group_by(ReturnItem.order_item_id)
    ).all()
    return {item_id: int(qty) for item_id, qty in rows}


def _load_items(session: Session, order_id: int) -> list[OrderItem]:
    return list(
        session.execute(
            select(OrderItem)
            .where(OrderItem.order_id == order_id)
            .options(selectinload(OrderItem.variant).selectinload(ProductVariant.product))
            .order_by(OrderItem.id)
        ).scalars()
    )


def _eligibility(session: Session, order: Order, today: date) -> ReturnEligibility:
    items = _load_items(session, order.id)
    rules = _policies(session, order.region)
    block = order_return_block(order.status, order.delivered_at)
    returned = _returned_quantities(session, order.id)
    views = []
    deadline = None
    region_default = pick_policy(rules, order.region, "")
    for item in items:
        product = item.variant.product
        policy = pick_policy(rules, order.region, product.category)
        left = item.quantity - returned.get(item.id, 0)
        reason = block or item_return_block(
            policy=policy,
            final_sale=item.final_sale,
            delivered_at=order.delivered_at,
            today=today,
            returnable_quantity=left,
        )
        if reason is None and order.delivered_at is not None:
            d = return_deadline(order.delivered_at, policy.window_days)
            deadline = d if deadline is None else max(deadline, d)
        views.append(
            ItemEligibility(
                order_item_id=item.id,
                sku=item.variant.sku,
                name_en=product.name_en,
                name_zh=product.name_zh,
                quantity=item.quantity,
                returnable_quantity=max(left, 0) if reason is None else 0,
                eligible=reason is None,
                reason=reason,
            )
        )
    eligible = any(v.eligible for v in views)
    order_reason = None
    if not eligible:
        order_reason = block or _dominant_reason([v.reason for v in views])
    return ReturnEligibility(
        order_number=order.number,
        eligible=eligible,
        reason=order_reason,
        region=order.region,
        window_days=region_default.window_days,
        no_reason=region_default.no_reason,
        deadline=deadline,
        items=tuple(views),
    )


def _dominant_reason(reasons: list[str | None]) -> str | None:
    # With mixed item reasons, the time-based one is the most useful answer to give.
    for code in ("window_expired", "already_returned", "final_sale", "non_returnable_category"):
        if code in reasons:
            return code
    return next((r for r in reasons if r in RETURN_REASON_CODES), None)


def check_return_eligibility(
    session_factory, customer_id: int, order_number: str, today: date | None = None
) -> ReturnEligibility:
    """Whether (and which items of) an order can be returned, and why not.

    Raises:
        InvalidInput, OrderNotFound: malformed number, or not this customer's order.
    """
    check_customer_id(customer_id)
    number = normalize_order_number(order_number)
    with session_factory() as session:
        order = load_order(session, customer_id, number)
        return _eligibility(session, order, today or utcnow().date())


def _parse_items(items) -> dict[str, int] | None:
    if items is None:
        return None
    if isinstance(items, Mapping):
        pairs = list(items.items())
    elif isinstance(items, Sequence) and not isinstance(items, str):
        pairs = [(x, 1) if isinstance(x, str) else tuple(x) for x in items]
    else:
        raise InvalidInput("items", "expected SKUs or (sku, quantity) pairs")
    if not pairs or len(pairs) > 50:
        raise InvalidInput("items", "give between 1 and 50 items")
    parsed: dict[str, int] = {}
    for pair in pairs:
        if len(pair) != 2:
            raise InvalidInput("items", "expected (sku, quantity) pairs")
        sku = check_text(pair[0], "sku", max_len=60).upper()
        parsed[sku] = parsed.get(sku, 0) + check_quantity(pair[1])
    return parsed


@dataclass(frozen=True)
class _ReturnRequest:
    """What a customer asked to return, checked before the database is touched."""

    customer_id: int
    order_number: str
    reason: str
    kind: str
    items: dict[str, int] | None  # None: every eligible item in full
    swaps: dict[str, str]  # exchanges: returned SKU -> replacement SKU
    key: str | None


def open_return(
    session_factory,
    customer_id: int,
    order_number: str,
    reason: str,
    items=None,
    *,
    kind: str = RETURN_KIND_RETURN,
    exchange_for: Mapping[str, str] | None = None,
    idempotency_key: str | None = None,
    today: date | None = None,
) -> ReturnView:
    """Open a return (or exchange) and get its RMA number.

    The same order items can never be returned twice: quantities already in an open RMA are not
    returnable again, so a retry or a concurrent duplicate gets ``already_returned``. With an
    ``idempotency_key`` a retry instead gets the original RMA back (``created=False``).

    Args:
        items: SKUs, ``(sku, quantity)`` pairs or a ``{sku: quantity}`` mapping; None returns
            every eligible item in full.
        kind: ``"return"`` or ``"exchange"``.
        exchange_for: for exchanges, ``{returned_sku: replacement_sku}``; the replacement must be
            a variant of the same product, and one unit per returned unit is reserved now.
        idempotency_key: client-chosen key making retries safe.

    Raises:
        InvalidInput: bad kind, items, SKUs not in the order, quantities over what was bought,
            missing / foreign exchange variants, key reused by another customer.
        OrderNotFound: not this customer's order.
        NotEligibleForReturn: with ``reason`` (not delivered, window expired, final sale,
            non-returnable category, already returned, cancelled).
        OutOfStock: the exchange variant is not available.
    """
    request = _check_return_request(
        customer_id, order_number, reason, items, kind, exchange_for, idempotency_key
    )
    now = utcnow()
    with session_factory.begin() as session:
        begin_write(session)
        order = load_order(session, customer_id, request.order_number, lock=True)
        existing = _earlier_return(session, request, order)
        if existing is not None:
            return _return_view(session, existing, request.order_number, created=False)
        eligibility = _eligibility(session, order, today or now.date())
        chosen = _chosen_items(eligibility, request)
        ret = _new_return(session, order, request, now)
        _add_return_items(session, ret, order, chosen, request)
        return _return_view(session, ret, request.order_number)


def _check_return_request(
    customer_id, order_number, reason, items, kind, exchange_for, idempotency_key
) -> _ReturnRequest:
    check_customer_id(customer_id)
    number = normalize_order_number(order_number)
    reason = check_text(reason, "reason", max_len=300)
    if kind not in (RETURN_KIND_RETURN, RETURN_KIND_EXCHANGE):
        raise InvalidInput("kind", "expected 'return' or 'exchange'")
    wanted = _parse_items(items)
    key = check_idempotency_key(idempotency_key)
    swaps: dict[str, str] = {}
    if kind == RETURN_KIND_EXCHANGE:
        if not exchange_for or not isinstance(exchange_for, Mapping):
            raise InvalidInput("exchange_for", "name the replacement SKU for each item")
        swaps = {
            check_text(k, "sku", max_len=60).upper(): check_text(v, "sku", max_len=60).upper()
            for k, v in exchange_for.items()
        }
    return _ReturnRequest(customer_id, number, reason, kind, wanted, swaps, key)


def _earlier_return(session: Session, request: _ReturnRequest, order: Order) -> Return | None:
    """The return an earlier try with the same idempotency key opened, if any."""
    if request.key is None:
        return None
    existing = session.execute(
        select(Return).where(Return.idempotency_key == request.key)
    ).scalar_one_or_none()
    if existing is not None and (
        existing.customer_id != request.customer_id or existing.order_id != order.id
    ):
        raise InvalidInput("idempotency_key", "already used for another request")
    return existing


def _chosen_items(
    eligibility: ReturnEligibility, request: _ReturnRequest
) -> list[tuple[str, ItemEligibility, int]]:
    """``(sku, item, quantity)`` for each item to return, each checked to be returnable."""
    number = request.order_number
    if not eligibility.eligible:
        raise NotEligibleForReturn(eligibility.reason, f"order {number}: {eligibility.reason}")
    by_sku = {i.sku.upper(): i for i in eligibility.items}
    wanted = request.items
    if wanted is None:
        wanted = {sku: i.returnable_quantity for sku, i in by_sku.items() if i.eligible}
    chosen = []
    for sku, qty in wanted.items():
        item = by_sku.get(sku)
        if item is None:
            raise InvalidInput("items", f"{sku} is not in order {number}")
        if not item.eligible:
            raise NotEligibleForReturn(item.reason, f"{sku}: {item.reason}")
        if qty > item.returnable_quantity:
            if item.returnable_quantity == 0:
                raise NotEligibleForReturn(REASON_ALREADY_RETURNED, sku)
            raise InvalidInput(
                "items", f"{sku}: only {item.returnable_quantity} can still be returned"
            )
        chosen.append((sku, item, qty))
    return chosen


def _new_return(session: Session, order: Order, request: _ReturnRequest, now) -> Return:
    ret = Return(
        rma_number=new_reference("RMA"),
        order_id=order.id,
        customer_id=request.customer_id,
        kind=request.kind,
        reason=request.reason,
        status=RETURN_REQUESTED,
        idempotency_key=request.key,
        created_at=now,
        updated_at=now,
    )
    session.add(ret)
    session.flush()
    return ret


def _add_return_items(
    session: Session,
    ret: Return,
    order: Order,
    chosen: list[tuple[str, ItemEligibility, int]],
    request: _ReturnRequest,
) -> None:
    """One row per returned line; an exchange reserves its replacement units now."""
    for sku, item, qty in chosen:
        row = ReturnItem(return_id=ret.id, order_item_id=item.order_item_id, quantity=qty)
        if request.kind == RETURN_KIND_EXCHANGE:
            row.exchange_variant_id, row.exchange_warehouse_id = _reserve_exchange(
                session, order, item.order_item_id, sku, request.swaps, qty
            )
        session.add(row)
    session.flush()


def exchange_offer(
    session_factory, sku: str, size: str, colour: str | None = None
) -> ExchangeOffer:
    """What an exchange of ``sku`` for ``size`` (and ``colour``) would send: the same product in
    that size, in the returned colour unless another was asked for (see
    :func:`commerce.policies.pick_replacement`), in stock now.

    Raises:
        InvalidInput, ProductNotFound: malformed or unknown SKU.
        VariantNotFound: the product does not come in that size / colour.
    """
    report = check_stock(session_factory, sku, size, colour)
    with session_factory() as session:
        returned_colour = session.execute(
            select(ProductVariant.colour).where(func.upper(ProductVariant.sku) == sku.upper())
        ).scalar_one_or_none()
    replacement = pick_replacement(
        report.variants, sku, returned_colour=returned_colour, colour_named=colour is not None
    )
    return ExchangeOffer(sku, report.size, report.colour, replacement)


def _reserve_exchange(session, order, order_item_id, sku, swaps, qty) -> tuple[int, int]:
    target_sku = swaps.get(sku)
    if target_sku is None:
        raise InvalidInput("exchange_for", f"no replacement given for {sku}")
    item = session.get(OrderItem, order_item_id)
    target = session.execute(
        select(ProductVariant).where(func.upper(ProductVariant.sku) == target_sku)
    ).scalar_one_or_none()
    if target is None or target.product_id != item.variant.product_id:
        raise InvalidInput("exchange_for", f"{target_sku} is not a variant of the same product")
    stmt = (
        select(Inventory)
        .join(Warehouse, Warehouse.id == Inventory.warehouse_id)
        .where(Inventory.variant_id == target.id)
        # Prefer a warehouse in the order's region, then the fullest.
        .order_by(
            (Warehouse.region == order.region).desc(),
            (Inventory.on_hand - Inventory.reserved).desc(),
        )
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(of=Inventory)
    rows = list(session.execute(stmt).scalars())
    best = max((r.on_hand - r.reserved for r in rows), default=0)
    for inv in rows:
        if inv.on_hand - inv.reserved >= qty:
            session.execute(
                update(Inventory)
                .where(Inventory.id == inv.id)
                .values(reserved=Inventory.reserved + qty)
            )
            return target.id, inv.warehouse_id
    raise OutOfStock(target.sku, qty, max(best, 0))


def _return_view(session, ret: Return, order_number: str, *, created: bool = True) -> ReturnView:
    rows = session.execute(
        select(ReturnItem, OrderItem, ProductVariant, Product)
        .join(OrderItem, OrderItem.id == ReturnItem.order_item_id)
        .join(ProductVariant, ProductVariant.id == OrderItem.variant_id)
        .join(Product, Product.id == ProductVariant.product_id)
        .where(ReturnItem.return_id == ret.id)
        .order_by(ReturnItem.id)
    ).all()
    exchange_skus = {}
    ids = [ri.exchange_variant_id for ri, *_ in rows if ri.exchange_variant_id]
    if ids:
        exchange_skus = dict(
            session.execute(
                select(ProductVariant.id, ProductVariant.sku).where(ProductVariant.id.in_(ids))
            ).all()
        )
    currency = session.execute(select(Order.currency).where(Order.id == ret.order_id)).scalar_one()
    estimate = 0
    if ret.kind == RETURN_KIND_RETURN:
        estimate = sum(oi.unit_price_cents * ri.quantity for ri, oi, _, _ in rows)
    return ReturnView(
        rma_number=ret.rma_number,
        order_number=order_number,
        kind=ret.kind,
        status=ret.status,
        reason=ret.reason,
        created_at=ret.created_at,
        items=tuple(
            ReturnItemView(
                sku=v.sku,
                name_en=p.name_en,
                name_zh=p.name_zh,
                quantity=ri.quantity,
                exchange_sku=exchange_skus.get(ri.exchange_variant_id),
            )
            for ri, _, v, p in rows
        ),
        refund_estimate_cents=estimate,
        currency=currency,
        created=created,
    )


def _normalize_rma(rma_number: object) -> str:
    return normalize_reference(rma_number, "rma_number", "RMA", "an RMA number like RMA-7F3A9C21")


def get_return(session_factory, customer_id: int, rma_number: str) -> ReturnView:
    """One of the customer's returns by RMA number.

    Raises:
        InvalidInput: malformed RMA number.
        ReturnNotFound: unknown or not this customer's.
    """
    check_customer_id(customer_id)
    rma = _normalize_rma(rma_number)
    with session_factory() as session:
        ret = session.execute(select(Return).where(Return.rma_number == rma)).scalar_one_or_none()
        if ret is None or ret.customer_id != customer_id:
            raise ReturnNotFound(f"no return {rma} for this customer")
        number = session.get(Order, ret.order_id).number
        return _return_view(session, ret, number)


def list_returns(
    session_factory, customer_id: int, order_number: str | None = None
) -> tuple[ReturnView, ...]:
    """The customer's returns (optionally for one order), newest first."""
    check_customer_id(customer_id)
    with session_factory() as session:
        stmt = (
            select(Return, Order.number)
            .join(Order, Order.id == Return.order_id)
            .where(Return.customer_id == customer_id)
        )
        if order_number is not None:
            stmt = stmt.where(Order.number == normalize_order_number(order_number))
        rows = session.execute(stmt.order_by(Return.created_at.desc(), Return.id.desc())).all()
        return tuple(_return_view(session, r, n) for r, n in rows)


def advance_return(
    session_factory, rma_number: str, to_status: str, note: str | None = None
) -> ReturnView:
    """Back-office step of an RMA (approve, receive, complete, reject, cancel).

    Receiving a return (not an exchange) opens its refund for the returned items, once; when
    every unit of the order has been received back, the order becomes ``returned``. Cancelling
    or rejecting an exchange releases the replacement units it reserved.

    Raises:
        InvalidInput: malformed RMA number or unknown status.
        ReturnNotFound: unknown RMA.
        InvalidTransition: not allowed from the current status.
    """
    rma = _normalize_rma(rma_number)
    RETURN.check_status(to_status)
    now = utcnow()
    with session_factory.begin() as session:
        begin_write(session)
        ret = one_locked(session, select(Return).where(Return.rma_number == rma))
        if ret is None:
            raise ReturnNotFound(rma)
        order = session.get(Order, ret.order_id)
        if ret.status == to_status:
            return _return_view(session, ret, order.number, created=False)
        RETURN.check(ret.status, to_status)
        ret.status = to_status
        ret.updated_at = now
        items = list(
            session.execute(select(ReturnItem).where(ReturnItem.return_id == ret.id)).scalars()
        )
        if to_status in RETURN_RELEASING_STATUSES and ret.kind == RETURN_KIND_EXCHANGE:
            _release_exchange_stock(session, items)
        if to_status == RETURN_RECEIVED and ret.kind == RETURN_KIND_RETURN:
            amount = sum(
                session.get(OrderItem, ri.order_item_id).unit_price_cents * ri.quantity
                for ri in items
            )
            open_refund(
                session, order, amount, f"return {rma}", now=now, return_id=ret.id, note=note
            )
            _mark_returned_if_complete(session, order, now)
        session.flush()
        return _return_view(session, ret, order.number)


def _release_exchange_stock(session: Session, items: list[ReturnItem]) -> None:
    """Put the replacement units an exchange reserved back on sale."""
    for ri in items:
        if ri.exchange_warehouse_id is not None:
            session.execute(
                update(Inventory)
                .where(
                    Inventory.variant_id == ri.exchange_variant_id,
                    Inventory.warehouse_id == ri.exchange_warehouse_id,
                )
                .values(reserved=Inventory.reserved - ri.quantity)
            )


def _mark_returned_if_complete(session, order: Order, now) -> None:
    bought = session.execute(
        select(func.coalesce(func.sum(OrderItem.quantity), 0)).where(OrderItem.order_id == order.id)
    ).scalar_one()
    received = session.execute(
        select(func.coalesce(func.sum(ReturnItem.quantity), 0))
        .join(Return, Return.id == ReturnItem.return_id)
        .where(
            Return.order_id == order.id,
            Return.kind == RETURN_KIND_RETURN,
            Return.status.in_(RETURN_RECEIVED_STATUSES),
        )
    ).scalar_one()
    if bought and received >= bought and ORDER.allows(order.status, ORDER_RETURNED):
        order.status = ORDER_RETURNED
        order.updated_at = now
        session.add(OrderStatusEvent(order_id=order.id, status=ORDER_RETURNED, at=now))
