"""Recommendations from the customer's own purchase history.

Two signals: co-purchase (products other customers bought together with what this customer
owns) and similar attributes (same category, shared tags). Products the customer already owns
and products with no available stock are skipped.
"""

from __future__ import annotations

from sqlalchemy import func, select

from commerce.dto import Recommendation
from commerce.errors import InvalidInput
from commerce.models import ORDER_CANCELLED, Inventory, Order, OrderItem, Product, ProductVariant
from commerce.services._common import check_customer_id

CO_PURCHASE_WEIGHT = 2.0
SAME_CATEGORY_WEIGHT = 1.0
SHARED_TAG_WEIGHT = 0.5
# Orders sampled for co-purchase counts; bounds the query on large histories.
CO_PURCHASE_ORDER_SAMPLE = 5000


def _tags(product: Product) -> set[str]:
    return {t.strip().lower() for t in product.tags.split(",") if t.strip()}


def recommend_for_customer(
    session_factory, customer_id: int, limit: int = 5
) -> tuple[Recommendation, ...]:
    """Up to ``limit`` in-stock products the customer does not own, best first.

    Returns an empty tuple for a customer with no purchases (the bot then asks what they like).
    """
    check_customer_id(customer_id)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 20:
        raise InvalidInput("limit", "must be an integer between 1 and 20")
    with session_factory() as session:
        owned_ids = set(
            session.execute(
                select(ProductVariant.product_id)
                .join(OrderItem, OrderItem.variant_id == ProductVariant.id)
                .join(Order, Order.id == OrderItem.order_id)
                .where(Order.customer_id == customer_id, Order.status != ORDER_CANCELLED)
                .distinct()
            ).scalars()
        )
        if not owned_ids:
            return ()
        # Orders of other customers containing something this customer owns.
        peer_orders = (
            select(OrderItem.order_id)
            .join(ProductVariant, ProductVariant.id == OrderItem.variant_id)
            .join(Order, Order.id == OrderItem.order_id)
            .where(ProductVariant.product_id.in_(owned_ids), Order.customer_id != customer_id)
            .distinct()
            .limit(CO_PURCHASE_ORDER_SAMPLE)
            .subquery()
        )
        co_counts = dict(
            session.execute(
                select(ProductVariant.product_id, func.count(func.distinct(OrderItem.order_id)))
                .join(OrderItem, OrderItem.variant_id == ProductVariant.id)
                .where(OrderItem.order_id.in_(select(peer_orders.c.order_id)))
                .where(ProductVariant.product_id.not_in(owned_ids))
                .group_by(ProductVariant.product_id)
            ).all()
        )
        in_stock = set(
            session.execute(
                select(ProductVariant.product_id)
                .join(Inventory, Inventory.variant_id == ProductVariant.id)
                .where(Inventory.on_hand - Inventory.reserved > 0)
                .distinct()
            ).scalars()
        )
        products = {p.id: p for p in session.execute(select(Product)).scalars()}
        owned = [products[i] for i in owned_ids if i in products]
        owned_categories = {p.category for p in owned}
        owned_tags = set().union(*(_tags(p) for p in owned))
        prices = {
            pid: (price, cur)
            for pid, price, cur in session.execute(
                select(
                    ProductVariant.product_id,
                    func.min(ProductVariant.price_cents),
                    ProductVariant.currency,
                ).group_by(ProductVariant.product_id, ProductVariant.currency)
            ).all()
        }
        scored = []
        for pid, p in products.items():
            if pid in owned_ids or pid not in in_stock:
                continue
            co = co_counts.get(pid, 0)
            similar = (
                SAME_CATEGORY_WEIGHT if p.category in owned_categories else 0.0
            ) + SHARED_TAG_WEIGHT * len(_tags(p) & owned_tags)
            score = CO_PURCHASE_WEIGHT * co + similar
            if score <= 0:
                continue
            reason = "co_purchase" if CO_PURCHASE_WEIGHT * co >= similar and co else "similar"
            price, currency = prices.get(pid, (0, ""))
            scored.append(
                Recommendation(
                    product_code=p.code,
                    name_en=p.name_en,
                    name_zh=p.name_zh,
                    category=p.category,
                    price_cents=int(price),
                    currency=currency,
                    score=round(score, 3),
                    reason=reason,
                )
            )
        scored.sort(key=lambda r: (-r.score, r.product_code))
        return tuple(scored[:limit])
