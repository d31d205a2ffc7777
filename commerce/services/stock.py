"""Stock: availability of a product by size / colour across warehouses, back-in-stock alerts."""

from __future__ import annotations

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from commerce.db import begin_write
from commerce.dto import (
    ProductOptions,
    StockAlternative,
    StockReport,
    SubscriptionResult,
    VariantStock,
    WarehouseStock,
)
from commerce.errors import InvalidInput, ProductNotFound, VariantNotFound
from commerce.models import (
    BackInStockSubscription,
    Inventory,
    Product,
    ProductVariant,
    Warehouse,
)
from commerce.notify import cancel_restock_notices
from commerce.services._common import check_customer_id, check_quantity, check_text, utcnow
from commerce.services.identity import normalize_email
from commerce.vocabulary import COLOURS, normalize_colour, normalize_size

MAX_ALTERNATIVES = 5


def _find(session: Session, query: str) -> tuple[Product, ProductVariant | None]:
    """Resolve a SKU, product code or English / Chinese name (or synonym) to a product.

    Exact matches win over partial ones; ties go to the lowest id so answers are stable. A SKU
    also returns its variant.

    Raises:
        InvalidInput: empty or over-long query.
        ProductNotFound: nothing matches.
    """
    q = check_text(query, "product", max_len=100)
    low = q.lower()
    variant = session.execute(
        select(ProductVariant).where(func.lower(ProductVariant.sku) == low)
    ).scalar_one_or_none()
    if variant is not None:
        return session.get(Product, variant.product_id), variant
    exact = session.execute(
        select(Product)
        .where(
            or_(
                func.lower(Product.code) == low,
                func.lower(Product.name_en) == low,
                Product.name_zh == q,
            )
        )
        .order_by(Product.id)
        .limit(1)
    ).scalar_one_or_none()
    if exact is not None:
        return exact, None
    partial = session.execute(
        select(Product)
        .where(
            or_(
                func.lower(Product.name_en).contains(low, autoescape=True),
                Product.name_zh.contains(q, autoescape=True),
                func.lower(Product.synonyms).contains(low, autoescape=True),
            )
        )
        .order_by(Product.id)
        .limit(1)
    ).scalar_one_or_none()
    if partial is None:
        raise ProductNotFound(f"no product matches {q!r}")
    return partial, None


def product_options(session_factory, product: str) -> ProductOptions:
    """The sizes and colours a product comes in (a SKU: its own), without reading stock.

    Cheaper than :func:`check_stock` for a form that only needs to know what to ask.

    Raises:
        InvalidInput: empty or over-long text.
        ProductNotFound: no such product.
    """
    with session_factory() as session:
        prod, variant = _find(session, product)
        variants = [variant] if variant is not None else list(prod.variants)
        return ProductOptions(
            product_code=prod.code,
            sizes=tuple(dict.fromkeys(v.size for v in variants)),
            colours=tuple(dict.fromkeys(v.colour for v in variants)),
        )


def _variant_stocks(session: Session, variants: list[ProductVariant]) -> list[VariantStock]:
    if not variants:
        return []
    rows = session.execute(
        select(Inventory, Warehouse)
        .join(Warehouse, Warehouse.id == Inventory.warehouse_id)
        .where(Inventory.variant_id.in_([v.id for v in variants]))
        .order_by(Warehouse.id)
    ).all()
    by_variant: dict[int, list[tuple[Inventory, Warehouse]]] = {}
    for inv, wh in rows:
        by_variant.setdefault(inv.variant_id, []).append((inv, wh))
    result = []
    for v in variants:
        warehouses = tuple(
            WarehouseStock(
                warehouse_code=wh.code,
                name_en=wh.name_en,
                name_zh=wh.name_zh,
                available=max(inv.on_hand - inv.reserved, 0),
                restock_date=inv.restock_date,
            )
            for inv, wh in by_variant.get(v.id, [])
        )
        available = sum(w.available for w in warehouses)
        restocks = [w.restock_date for w in warehouses if w.restock_date and w.available == 0]
        result.append(
            VariantStock(
                sku=v.sku,
                size=v.size,
                colour=v.colour,
                colour_zh=COLOURS.get(v.colour) if v.colour else None,
                price_cents=v.price_cents,
                currency=v.currency,
                available=available,
                restock_date=min(restocks) if restocks and available == 0 else None,
                warehouses=warehouses,
            )
        )
    return result


def _match_variants(
    product: Product, size: str | None, colour: str | None, variant: ProductVariant | None = None
) -> list[ProductVariant]:
    if variant is not None and size is None and colour is None:
        return [variant]
    variants = list(product.variants)
    if size is not None:
        variants = [v for v in variants if (v.size or "").upper() == size]
        if not variants:
            raise VariantNotFound(f"{product.code} does not come in size {size}")
    if colour is not None:
        variants = [v for v in variants if v.colour == colour]
        if not variants:
            raise VariantNotFound(f"{product.code} does not come in {colour} (size {size})")
    return variants


def _normalize_choice(size: str | None, colour: str | None) -> tuple[str | None, str | None]:
    size_n = normalize_size(check_text(size, "size", max_len=20)) if size is not None else None
    colour_n = None
    if colour is not None:
        raw = check_text(colour, "colour", max_len=30)
        colour_n = normalize_colour(raw)
        if colour_n is None:
            raise VariantNotFound(f"unknown colour {raw!r}")
    return size_n, colour_n


def check_stock(
    session_factory,
    product: str,
    size: str | None = None,
    colour: str | None = None,
    quantity: int = 1,
) -> StockReport:
    """Availability of a product (optionally one size / colour) across all warehouses.

    When the requested variant cannot cover ``quantity``, the report carries the next restock
    date and in-stock alternatives: the same product in another colour or size first, then
    similar products (same category, same size when one was asked for).

    Args:
        product: SKU, product code, or English / Chinese name.
        size: e.g. "42", "M", "medium", "中号".
        colour: English or Chinese colour name ("black", "黑色").
        quantity: how many the customer wants (1-100).

    Raises:
        InvalidInput: empty / over-long text or absurd quantity.
        ProductNotFound: no such product.
        VariantNotFound: the product does not come in that size / colour.
    """
    quantity = check_quantity(quantity)
    size_n, colour_n = _normalize_choice(size, colour)
    with session_factory() as session:
        prod, variant = _find(session, product)
        matching = _match_variants(prod, size_n, colour_n, variant)
        stocks = _variant_stocks(session, matching)
        in_stock = any(s.available >= quantity for s in stocks)
        restocks = [s.restock_date for s in stocks if s.restock_date]
        alternatives: list[StockAlternative] = []
        if not in_stock:
            alternatives = _alternatives(session, prod, matching, size_n, colour_n, quantity)
        return StockReport(
            product_code=prod.code,
            name_en=prod.name_en,
            name_zh=prod.name_zh,
            category=prod.category,
            size=size_n,
            colour=colour_n,
            quantity=quantity,
            variants=tuple(stocks),
            in_stock=in_stock,
            total_available=sum(s.available for s in stocks),
            next_restock_date=min(restocks) if restocks else None,
            alternatives=tuple(alternatives),
        )


def _alternatives(session, prod, matching, size, colour, quantity) -> list[StockAlternative]:
    excluded = {v.id for v in matching}
    others = [v for v in prod.variants if v.id not in excluded]
    found: list[tuple[int, StockAlternative]] = []
    for vs, v in zip(_variant_stocks(session, others), others, strict=True):
        if vs.available < quantity:
            continue
        if size is not None and (v.size or "").upper() == size:
            kind, rank = "other_colour", 0
        elif colour is not None and v.colour == colour:
            kind, rank = "other_size", 1
        else:
            kind, rank = "other_variant", 2
        found.append((rank, _alt(kind, prod, vs)))
    found.sort(key=lambda x: x[0])
    result = [a for _, a in found][:MAX_ALTERNATIVES]
    if len(result) < MAX_ALTERNATIVES:
        stmt = (
            select(ProductVariant)
            .join(Product, Product.id == ProductVariant.product_id)
            .where(Product.category == prod.category, Product.id != prod.id)
            .order_by(Product.id, ProductVariant.id)
        )
        if size is not None:
            stmt = stmt.where(func.upper(ProductVariant.size) == size)
        similar = list(session.execute(stmt).scalars())
        seen_products: set[int] = set()
        for vs, v in zip(_variant_stocks(session, similar), similar, strict=True):
            if vs.available < quantity or v.product_id in seen_products:
                continue
            seen_products.add(v.product_id)
            result.append(_alt("similar_product", v.product, vs))
            if len(result) >= MAX_ALTERNATIVES:
                break
    return result


def _alt(kind: str, prod: Product, vs: VariantStock) -> StockAlternative:
    return StockAlternative(
        kind=kind,
        product_code=prod.code,
        name_en=prod.name_en,
        name_zh=prod.name_zh,
        sku=vs.sku,
        size=vs.size,
        colour=vs.colour,
        colour_zh=vs.colour_zh,
        available=vs.available,
    )


def subscribe_back_in_stock(
    session_factory,
    product: str,
    email: str,
    size: str | None = None,
    colour: str | None = None,
    customer_id: int | None = None,
) -> SubscriptionResult:
    """Ask to be told when one variant is back in stock; idempotent per (variant, email).

    Raises:
        InvalidInput: bad email, or size / colour do not single out one variant.
        ProductNotFound, VariantNotFound: as :func:`check_stock`.
    """
    contact = normalize_email(email)
    if customer_id is not None:
        check_customer_id(customer_id)
    size_n, colour_n = _normalize_choice(size, colour)
    try:
        with session_factory.begin() as session:
            begin_write(session)
            prod, variant = _find(session, product)
            matching = _match_variants(prod, size_n, colour_n, variant)
            if len(matching) != 1:
                raise InvalidInput("variant", "give the size and colour to subscribe to")
            variant = matching[0]
            existing = session.execute(
                select(BackInStockSubscription.id).where(
                    BackInStockSubscription.variant_id == variant.id,
                    BackInStockSubscription.contact == contact,
                )
            ).first()
            if existing is not None:
                return SubscriptionResult(variant.sku, contact, created=False)
            session.add(
                BackInStockSubscription(
                    variant_id=variant.id,
                    customer_id=customer_id,
                    contact=contact,
                    created_at=utcnow(),
                )
            )
            sku = variant.sku
    except IntegrityError:
        # A concurrent identical subscription won the race: same outcome for the caller.
        return SubscriptionResult(sku, contact, created=False)
    return SubscriptionResult(sku, contact, created=True)


def unsubscribe_back_in_stock(
    session_factory,
    email: str,
    product: str | None = None,
    size: str | None = None,
    colour: str | None = None,
) -> int:
    """Stop back-in-stock alerts to ``email``: for one product (or one of its variants), or all.

    The subscriptions are deleted (the address may subscribe again later) and an alert queued
    for them but not yet sent is cancelled, in one transaction: after this returns, no alert
    for them is sent (one a sender already took is on its way and cannot be called back).
    Unknown addresses and products without a subscription remove nothing.

    Args:
        email: the subscribed address.
        product: SKU, product code or name; None: every subscription of the address.
        size, colour: narrow ``product`` to some of its variants.

    Returns:
        How many subscriptions were removed.

    Raises:
        InvalidInput: bad email, or a size / colour without a product.
        ProductNotFound, VariantNotFound: as :func:`check_stock`.
    """
    contact = normalize_email(email)
    if product is None and (size is not None or colour is not None):
        raise InvalidInput("product", "name the product whose size or colour to unsubscribe from")
    size_n, colour_n = _normalize_choice(size, colour)
    with session_factory.begin() as session:
        begin_write(session)
        query = select(BackInStockSubscription.id).where(BackInStockSubscription.contact == contact)
        if product is not None:
            prod, variant = _find(session, product)
            variants = _match_variants(prod, size_n, colour_n, variant)
            query = query.where(BackInStockSubscription.variant_id.in_([v.id for v in variants]))
        ids = list(session.execute(query).scalars())
        if not ids:
            return 0
        cancel_restock_notices(session, ids)
        session.execute(
            delete(BackInStockSubscription)
            .where(BackInStockSubscription.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
    return len(ids)
