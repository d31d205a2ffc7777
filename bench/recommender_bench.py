"""Offline evaluation of the history recommender on the seed's customers (docs/SEED.md).

For every customer with at least two orders, the last order is held out: the recommender sees
only orders placed before it (the customer's and everyone else's) and recommends five products
the customer does not own yet; a hit is any held-out product among them. The baseline
recommends the five products most often ordered before that moment. Both rank the whole
catalog, sold-out products included, because what a customer bought weeks ago may be sold out
now. Only held-out orders with a product new to the customer count (nobody recommends what a
customer already owns).

    .venv/bin/python -m bench.recommender_bench

The seed's purchases are synthetic (filler orders drawn from six bundles, docs/SEED.md), so the
figures say the code finds co-purchase structure where it exists, not how real shoppers behave.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from bench.common import format_table, write_results

K = 5


@dataclass(frozen=True)
class HeldOut:
    customer_id: int
    region: str
    order_id: int
    placed_at: object  # datetime
    new_products: frozenset[str]  # codes bought in the held-out order, not owned before


def held_out_orders(session_factory) -> list[HeldOut]:
    """Each customer's last order, when they have an earlier one and it holds something new."""
    from commerce.models import (
        ORDER_CANCELLED,
        Customer,
        Order,
        OrderItem,
        Product,
        ProductVariant,
    )

    with session_factory() as session:
        rows = session.execute(
            select(Order.customer_id, Customer.region, Order.id, Order.placed_at, Product.code)
            .join(Customer, Customer.id == Order.customer_id)
            .join(OrderItem, OrderItem.order_id == Order.id)
            .join(ProductVariant, ProductVariant.id == OrderItem.variant_id)
            .join(Product, Product.id == ProductVariant.product_id)
            .where(Order.status != ORDER_CANCELLED)
            .order_by(Order.customer_id, Order.placed_at, Order.id)
        ).all()
    orders: dict[int, dict[int, tuple]] = {}
    for customer_id, region, order_id, placed_at, code in rows:
        entry = orders.setdefault(customer_id, {}).setdefault(order_id, (region, placed_at, set()))
        entry[2].add(code)
    held = []
    for customer_id, by_order in orders.items():
        if len(by_order) < 2:
            continue
        *earlier, (last_id, (region, placed_at, codes)) = by_order.items()
        owned = set().union(*(entry[2] for _, entry in earlier))
        if codes - owned:
            held.append(HeldOut(customer_id, region, last_id, placed_at, frozenset(codes - owned)))
    return held


def popular_before(session_factory, held: HeldOut) -> list[str]:
    """The K products most often ordered before the held-out order, not owned by the customer."""
    from commerce.models import ORDER_CANCELLED, Order, OrderItem, Product, ProductVariant

    with session_factory() as session:
        rows = session.execute(
            select(Order.id, Order.customer_id, Product.code)
            .join(OrderItem, OrderItem.order_id == Order.id)
            .join(ProductVariant, ProductVariant.id == OrderItem.variant_id)
            .join(Product, Product.id == ProductVariant.product_id)
            .where(Order.status != ORDER_CANCELLED, Order.placed_at < held.placed_at)
        ).all()
    owned = {code for _, customer_id, code in rows if customer_id == held.customer_id}
    counts = Counter(code for _order, _customer, code in set(rows))  # orders, not units
    ranked = sorted(counts, key=lambda code: (-counts[code], code))
    return [code for code in ranked if code not in owned][:K]


def evaluate(session_factory) -> dict:
    """Hit rate@K of the history recommender and of the popularity baseline."""
    from commerce.services.products import store_for
    from commerce.services.recommendations import recommend

    held = held_out_orders(session_factory)
    hits = {"history": 0, "popularity": 0}
    for h in held:
        picks = recommend(
            session_factory,
            store_for(h.region, "en"),
            customer_id=h.customer_id,
            include_out_of_stock=True,
            limit=K,
            before=h.placed_at,
        )
        hits["history"] += bool(h.new_products & {r.product_code for r in picks})
        hits["popularity"] += bool(h.new_products & set(popular_before(session_factory, h)))
    n = len(held)
    return {"k": K, "customers": n, "hits": hits, "hit_rate": {m: v / n for m, v in hits.items()}}


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    from commerce.__main__ import upgrade
    from commerce.db import make_engine, make_session_factory
    from commerce.seed import seed

    with tempfile.TemporaryDirectory(prefix="kefu-rec-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'seed.db'}"
        upgrade(url)
        engine = make_engine(url)
        seed(engine)
        result = evaluate(make_session_factory(engine))
        engine.dispose()
    rows = [
        [method, result["customers"], result["hits"][method], round(rate, 3)]
        for method, rate in result["hit_rate"].items()
    ]
    table = format_table(["recommender", "held-out orders", "hits", f"hit rate@{K}"], rows)
    write_results("recommender", result, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
