"""Helpers shared by the service modules (not part of the public API)."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from commerce.db import is_postgres
from commerce.dto import OrderItemView, RefundView, StatusChange, TrackingEventView
from commerce.errors import InvalidInput, OrderNotFound
from commerce.models import Order
from commerce.vocabulary import COLOURS

MAX_QUANTITY = 100
_SAFE_TEXT_MAX = 4000
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:\-]{1,100}$")


def utcnow() -> datetime:
    """Naive UTC now (all stored timestamps are naive UTC)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def check_customer_id(customer_id: object) -> int:
    """Validate a verified customer id (a positive int)."""
    if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id <= 0:
        raise InvalidInput("customer_id", f"expected a positive integer, got {customer_id!r}")
    return customer_id


def check_quantity(quantity: object, field: str = "quantity") -> int:
    """Validate a quantity: an int in 1..MAX_QUANTITY."""
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidInput(field, f"expected an integer, got {quantity!r}")
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput(field, f"must be between 1 and {MAX_QUANTITY}, got {quantity}")
    return quantity


def check_text(value: object, field: str, *, required: bool = True, max_len: int = 300) -> str:
    """Validate free text: a string, stripped, non-empty when required, bounded length."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(field, f"expected text, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise InvalidInput(field, "must not be empty")
    if len(value) > min(max_len, _SAFE_TEXT_MAX):
        raise InvalidInput(field, f"longer than {max_len} characters")
    return value


def check_idempotency_key(key: object) -> str | None:
    """Validate an optional idempotency key (1-100 chars of ``[A-Za-z0-9._:-]``)."""
    if key is None:
        return None
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.match(key):
        raise InvalidInput("idempotency_key", "expected 1-100 characters of [A-Za-z0-9._:-]")
    return key


def load_order(
    session: Session, customer_id: int, order_number: str, *, lock: bool = False
) -> Order:
    """Load an order owned by ``customer_id`` or raise OrderNotFound.

    Someone else's order raises the same error as an unknown one so existence never leaks.

    Args:
        lock: take a row lock (``SELECT ... FOR UPDATE``) on PostgreSQL; on SQLite the caller's
            ``BEGIN IMMEDIATE`` already serialises writers.
    """
    stmt = select(Order).where(Order.number == order_number)
    order = one_locked(session, stmt) if lock else session.execute(stmt).scalar_one_or_none()
    if order is None or order.customer_id != customer_id:
        raise OrderNotFound(f"no order {order_number} for this customer")
    return order


def one_locked(session: Session, stmt):
    """The one row ``stmt`` selects (or None), locked for this transaction.

    PostgreSQL: ``SELECT ... FOR UPDATE``; on SQLite the caller's ``BEGIN IMMEDIATE``
    (:func:`commerce.db.begin_write`) already serialises writers.
    """
    if is_postgres(session):
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalar_one_or_none()


def new_reference(prefix: str) -> str:
    """A random customer-facing reference like ``RMA-7F3A9C21`` (unguessable, not sequential)."""
    return f"{prefix}-{secrets.token_hex(4).upper()}"


def normalize_reference(raw: object, field: str, prefix: str, description: str) -> str:
    """A reference typed by a customer (``#rma-7f3a9c21``) in its stored form (``RMA-7F3A9C21``).

    Raises:
        InvalidInput: when it is not ``<prefix>-`` followed by letters and digits.
    """
    text = check_text(raw, field, max_len=20).upper().lstrip("#")
    if not text.startswith(f"{prefix}-") or not text[len(prefix) + 1 :].isalnum():
        raise InvalidInput(field, f"{raw!r} is not {description}")
    return text


def item_view(item) -> OrderItemView:
    """DTO for an OrderItem (with its variant and product loaded)."""
    variant = item.variant
    product = variant.product
    return OrderItemView(
        order_item_id=item.id,
        sku=variant.sku,
        product_code=product.code,
        name_en=product.name_en,
        name_zh=product.name_zh,
        category=product.category,
        size=variant.size,
        colour=variant.colour,
        colour_zh=COLOURS.get(variant.colour) if variant.colour else None,
        quantity=item.quantity,
        unit_price_cents=item.unit_price_cents,
        final_sale=item.final_sale,
    )


def tracking_event_view(event) -> TrackingEventView:
    return TrackingEventView(
        at=event.at,
        status=event.status,
        location=event.location,
        description_en=event.description_en,
        description_zh=event.description_zh,
    )


def refund_view(refund, order_number: str, rma_number: str | None, *, created: bool = True):
    return RefundView(
        refund_number=refund.refund_number,
        order_number=order_number,
        rma_number=rma_number,
        amount_cents=refund.amount_cents,
        currency=refund.currency,
        status=refund.status,
        reason=refund.reason,
        created_at=refund.created_at,
        updated_at=refund.updated_at,
        history=tuple(StatusChange(e.status, e.at, e.note) for e in refund.events),
        created=created,
    )


def lock_key(session: Session, key: str) -> None:
    """Serialise writers on a key that has no row to lock yet (e.g. a conversation id).

    PostgreSQL: a transaction-scoped advisory lock; SQLite: the write transaction already holds
    the database's single write lock.
    """
    if is_postgres(session):
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(key))))
