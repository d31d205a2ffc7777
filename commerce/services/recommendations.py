"""Recommendations: what the customer asked for first, then why this product for them.

:func:`recommend` filters the catalog by the customer's constraints (category, colour, size in
stock, price ceiling in the store's currency, an attribute such as waterproof) and ranks what
is left: by purchase history for a verified customer who has one (co-purchase: products other
customers bought together with what this customer owns; similar: same category, shared tags),
else by sales with a lift for new arrivals. Each pick carries a one-line reason in both
languages. :func:`recommend_for_customer` is the history ranking alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from commerce.dto import Recommendation
from commerce.errors import InvalidInput
from commerce.models import (
    ORDER_CANCELLED,
    STORES,
    Inventory,
    Order,
    OrderItem,
    Product,
    ProductAttribute,
    ProductVariant,
)
from commerce.services._common import check_customer_id, utcnow
from commerce.services.products import variant_price
from commerce.vocabulary import (
    CATEGORIES,
    PRODUCT_ATTRIBUTES,
    attribute_in,
    normalize_colour,
    normalize_size,
)

CO_PURCHASE_WEIGHT = 2.0
SAME_CATEGORY_WEIGHT = 1.0
SHARED_TAG_WEIGHT = 0.5
# Orders sampled for co-purchase counts; bounds the query on large histories.
CO_PURCHASE_ORDER_SAMPLE = 5000
#: A product that arrived this recently counts as a new arrival.
NEW_ARRIVAL_DAYS = 30
#: How much a new arrival is lifted against the best seller (popularity is 0..1): enough to
#: put a new product with middling sales among a guest's first picks, not above every best seller.
NEW_ARRIVAL_LIFT = 0.3
MAX_LIMIT = 20


def _tags(product: Product) -> set[str]:
    return {t.strip().lower() for t in product.tags.split(",") if t.strip()}


@dataclass(frozen=True)
class _HistoryScore:
    score: float
    reason: str  # "co_purchase" | "similar"
    because: Product  # the owned product that explains the pick


def _owned(session: Session, customer_id: int, before: datetime | None) -> set[int]:
    query = (
        select(ProductVariant.product_id)
        .join(OrderItem, OrderItem.variant_id == ProductVariant.id)
        .join(Order, Order.id == OrderItem.order_id)
        .where(Order.customer_id == customer_id, Order.status != ORDER_CANCELLED)
        .distinct()
    )
    if before is not None:
        query = query.where(Order.placed_at < before)
    return set(session.execute(query).scalars())


def _history_scores(
    session: Session,
    customer_id: int,
    products: dict[int, Product],
    before: datetime | None = None,
) -> tuple[set[int], dict[int, _HistoryScore]]:
    """The products the customer owns and a history score for every product they do not.

    Args:
        before: count only orders placed before this (offline evaluation).
    """
    owned_ids = _owned(session, customer_id, before)
    if not owned_ids:
        return owned_ids, {}
    # Orders of other customers containing something this customer owns.
    peer_orders = (
        select(OrderItem.order_id)
        .join(ProductVariant, ProductVariant.id == OrderItem.variant_id)
        .join(Order, Order.id == OrderItem.order_id)
        .where(ProductVariant.product_id.in_(owned_ids), Order.customer_id != customer_id)
        .distinct()
        .limit(CO_PURCHASE_ORDER_SAMPLE)
    )
    if before is not None:  # an evaluation must not see the future of other customers either
        peer_orders = peer_orders.where(Order.placed_at < before)
    peer_orders = peer_orders.subquery()
    co_pairs = session.execute(
        select(
            ProductVariant.product_id,
            func.count(func.distinct(OrderItem.order_id)),
        )
        .join(OrderItem, OrderItem.variant_id == ProductVariant.id)
        .where(OrderItem.order_id.in_(select(peer_orders.c.order_id)))
        .where(ProductVariant.product_id.not_in(owned_ids))
        .group_by(ProductVariant.product_id)
    ).all()
    co_counts = dict(co_pairs)
    owned = [products[i] for i in sorted(owned_ids) if i in products]
    owned_tags = set().union(*(_tags(o) for o in owned))
    scores: dict[int, _HistoryScore] = {}
    for pid, p in products.items():
        if pid in owned_ids:
            continue
        co = co_counts.get(pid, 0)
        same_category = [o for o in owned if o.category == p.category]
        shared = len(_tags(p) & owned_tags)
        similar = (SAME_CATEGORY_WEIGHT if same_category else 0.0) + SHARED_TAG_WEIGHT * shared
        score = CO_PURCHASE_WEIGHT * co + similar
        if score <= 0:
            continue
        if CO_PURCHASE_WEIGHT * co >= similar and co:
            # The owned product most often bought together with this one explains it.
            because = _co_partner(session, customer_id, owned, pid) or owned[0]
            scores[pid] = _HistoryScore(score, "co_purchase", because)
        else:
            sharing = max(owned, key=lambda o: (len(_tags(o) & _tags(p)), -o.id))
            because = same_category[0] if same_category else sharing
            scores[pid] = _HistoryScore(score, "similar", because)
    return owned_ids, scores


def _co_partner(
    session: Session, customer_id: int, owned: list[Product], pid: int
) -> Product | None:
    """The owned product that other customers bought in the same order as ``pid`` most often."""
    with_pid = (
        select(OrderItem.order_id)
        .join(ProductVariant, ProductVariant.id == OrderItem.variant_id)
        .join(Order, Order.id == OrderItem.order_id)
        .where(ProductVariant.product_id == pid, Order.customer_id != customer_id)
    )
    counts = dict(
        session.execute(
            select(ProductVariant.product_id, func.count(func.distinct(OrderItem.order_id)))
            .join(OrderItem, OrderItem.variant_id == ProductVariant.id)
            .where(OrderItem.order_id.in_(with_pid))
            .where(ProductVariant.product_id.in_([o.id for o in owned]))
            .group_by(ProductVariant.product_id)
        ).all()
    )
    if not counts:
        return None
    best = max(counts, key=lambda i: (counts[i], -i))
    return next(o for o in owned if o.id == best)


def _available_by_variant(session: Session) -> dict[int, int]:
    return dict(
        session.execute(
            select(
                Inventory.variant_id,
                func.sum(Inventory.on_hand - Inventory.reserved),
            ).group_by(Inventory.variant_id)
        ).all()
    )


def recommend_for_customer(
    session_factory, customer_id: int, limit: int = 5
) -> tuple[Recommendation, ...]:
    """Up to ``limit`` in-stock products the customer does not own, by purchase history.

    Returns an empty tuple for a customer with no purchases (the bot then asks what they like).
    """
    check_customer_id(customer_id)
    _check_limit(limit)
    with session_factory() as session:
        products = _catalog(session)
        _owned_ids, history = _history_scores(session, customer_id, products)
        available = _available_by_variant(session)
        picks = []
        for pid, h in history.items():
            p = products[pid]
            if not any(available.get(v.id, 0) > 0 for v in p.variants):
                continue
            picks.append(_recommendation(p, p.variants, "INTL", h.score, h.reason, h.because))
        picks.sort(key=lambda r: (-r.score, r.product_code))
        return tuple(picks[:limit])


def _catalog(session: Session) -> dict[int, Product]:
    rows = session.execute(
        select(Product).options(selectinload(Product.variants).selectinload(ProductVariant.prices))
    ).scalars()
    return {p.id: p for p in rows}


def _check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput("limit", f"must be an integer between 1 and {MAX_LIMIT}")
    return limit


def recommend(
    session_factory,
    store: str,
    *,
    customer_id: int | None = None,
    category: str | None = None,
    colour: str | None = None,
    size: str | None = None,
    max_price_cents: int | None = None,
    attribute: str | None = None,
    include_out_of_stock: bool = False,
    limit: int = 3,
    before: datetime | None = None,
) -> tuple[Recommendation, ...]:
    """Products that meet every constraint the customer named, best first, each with why.

    Args:
        store: "CN" or "INTL" (``products.store_for``): the prices and the ceiling's currency.
        customer_id: a *verified* customer; their purchase history ranks the picks. None for
            guests, who get best sellers and new arrivals.
        category: a category key ("jackets") or its Chinese name ("夹克").
        colour: any colour name ``normalize_colour`` knows ("black", "黑色").
        size: any size ``normalize_size`` knows ("M", "medium", "42").
        max_price_cents: price ceiling in the store's currency (minor units).
        attribute: an attribute key or word ("waterproof", "防水"): yes/no attributes must be
            yes, descriptive ones must be listed.
        include_out_of_stock: also products whose matching variants are sold out.
        limit: at most this many (1-20).
        before: rank by the customer's orders placed before this only (offline evaluation).

    Returns:
        Up to ``limit`` recommendations; empty when nothing meets the constraints.

    Raises:
        InvalidInput: an unknown store, category, colour, attribute or a bad number.
    """
    if store not in STORES:
        raise InvalidInput("store", f"expected one of {', '.join(STORES)}, got {store!r}")
    if customer_id is not None:
        check_customer_id(customer_id)
    _check_limit(limit)
    category = _category_key(category)
    colour_key = None
    if colour is not None:
        colour_key = normalize_colour(colour)
        if colour_key is None:
            raise InvalidInput("colour", f"unknown colour {colour!r}")
    size_key = normalize_size(size) if size is not None else None
    if max_price_cents is not None and (
        isinstance(max_price_cents, bool)
        or not isinstance(max_price_cents, int)
        or max_price_cents <= 0
    ):
        raise InvalidInput("max_price_cents", "must be a positive integer")
    attribute_key = None
    if attribute is not None:
        attribute_key = attribute if attribute in PRODUCT_ATTRIBUTES else attribute_in(attribute)
        if attribute_key is None:
            raise InvalidInput("attribute", f"unknown attribute {attribute!r}")

    with session_factory() as session:
        products = _catalog(session)
        available = _available_by_variant(session)
        with_attribute = _products_with(session, attribute_key) if attribute_key else None
        history: dict[int, _HistoryScore] = {}
        owned: set[int] = set()
        if customer_id is not None:
            owned, history = _history_scores(session, customer_id, products, before)
        today = (before or utcnow()).date()
        top_sales = max((p.sales_count or 0 for p in products.values()), default=0) or 1
        picks = []
        for pid, p in products.items():
            if pid in owned:
                continue  # never recommend what they already have
            if category is not None and p.category != category:
                continue
            if with_attribute is not None and pid not in with_attribute:
                continue
            variants = [
                v
                for v in p.variants
                if (colour_key is None or v.colour == colour_key)
                and (size_key is None or v.size == size_key)
            ]
            if not include_out_of_stock:
                variants = [v for v in variants if available.get(v.id, 0) > 0]
            if max_price_cents is not None:
                variants = [
                    v for v in variants if variant_price(v, store).amount_cents <= max_price_cents
                ]
            if not variants:
                continue
            if pid in history:
                h = history[pid]
                # History first: any history score ranks above every popularity score (< 2).
                score, reason, because = 2.0 + h.score, h.reason, h.because
            else:
                score, reason = _popularity(p, top_sales, today)
                because = None
            picks.append(_recommendation(p, variants, store, score, reason, because, today))
        picks.sort(key=lambda r: (-r.score, r.product_code))
        return tuple(picks[:limit])


def _category_key(category: str | None) -> str | None:
    if category is None:
        return None
    text = category.strip().lower()
    if text in CATEGORIES:
        return text
    for key, zh in CATEGORIES.items():
        if category.strip() == zh:
            return key
    raise InvalidInput("category", f"expected one of {', '.join(CATEGORIES)}, got {category!r}")


def _products_with(session: Session, key: str) -> set[int]:
    """Products whose ``key`` attribute is yes (yes/no attributes) or listed (descriptive)."""
    rows = session.execute(
        select(ProductAttribute.product_id, ProductAttribute.flag).where(
            ProductAttribute.key == key
        )
    ).all()
    return {pid for pid, flag in rows if flag is None or flag}


def _popularity(product: Product, top_sales: int, today: date) -> tuple[float, str]:
    """Sales as a share of the best seller's, lifted for a new arrival; the reason is whichever
    of the two put it there."""
    sales = (product.sales_count or 0) / top_sales
    if _is_new(product, today):
        return sales + NEW_ARRIVAL_LIFT, "new_arrival"
    return sales, "best_seller"


def _is_new(product: Product, today: date) -> bool:
    return product.arrived_on is not None and (today - product.arrived_on).days <= (
        NEW_ARRIVAL_DAYS
    )


def _recommendation(
    product: Product,
    variants: list[ProductVariant],
    store: str,
    score: float,
    reason: str,
    because: Product | None,
    today: date | None = None,
) -> Recommendation:
    price = min((variant_price(v, store) for v in variants), key=lambda m: m.amount_cents)
    reason_en, reason_zh = _reason_text(product, reason, because, today)
    return Recommendation(
        product_code=product.code,
        name_en=product.name_en,
        name_zh=product.name_zh,
        category=product.category,
        price_cents=price.amount_cents,
        currency=price.currency,
        score=round(score, 3),
        reason=reason,
        reason_en=reason_en,
        reason_zh=reason_zh,
    )


def _reason_text(
    product: Product, reason: str, because: Product | None, today: date | None
) -> tuple[str, str]:
    """The one line that tells the customer why this product."""
    cat_en, cat_zh = product.category, CATEGORIES.get(product.category, product.category)
    if reason == "co_purchase" and because is not None:
        return (
            f"often bought with the {because.name_en} you have",
            f"购买{because.name_zh}的顾客也常买",
        )
    if reason == "similar" and because is not None:
        return (f"similar to the {because.name_en} you bought", f"与您买过的{because.name_zh}相似")
    if reason == "new_arrival" and product.arrived_on is not None and today is not None:
        days = max((today - product.arrived_on).days, 0)
        return (f"new in {cat_en}, arrived {days} days ago", f"{cat_zh}新品，{days}天前上架")
    rating = f", rated {product.rating:.1f}/5" if product.rating else ""
    rating_zh = f"，评分{product.rating:.1f}" if product.rating else ""
    return (
        f"a best seller in {cat_en} ({product.sales_count or 0:,} sold{rating})",
        f"{cat_zh}热销款（已售{product.sales_count or 0}件{rating_zh}）",
    )
