"""Order lookup and stock query latency on a seeded database with many orders.

    .venv/bin/python -m bench.commerce_bench --orders 100000 [--url postgresql+psycopg2://...]

Builds a fresh SQLite file under var/ (or uses --url), migrates, seeds the demo data, bulk-inserts
``--orders`` extra orders (items, addresses, status history, shipments), then times the service
calls the action server makes. Writes JSON and a Markdown table to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from commerce.__main__ import upgrade
from commerce.config import REPO_ROOT
from commerce.db import make_engine, make_session_factory
from commerce.models import (
    Customer,
    Order,
    OrderItem,
    OrderStatusEvent,
    ProductVariant,
    Shipment,
    ShippingAddress,
)
from commerce.seed import seed
from commerce.services.identity import verify_order_owner
from commerce.services.orders import get_order, track_order
from commerce.services.recommendations import recommend_for_customer
from commerce.services.stock import check_stock

RESULTS = REPO_ROOT / "bench" / "results"
BATCH = 20_000


def populate(engine, n_orders: int, rng: random.Random) -> float:
    """Bulk-insert n synthetic delivered/shipped orders; returns seconds taken."""
    t0 = time.perf_counter()
    with engine.connect() as conn:
        customers = conn.execute(select(Customer.id, Customer.region, Customer.name)).all()
        variants = conn.execute(select(ProductVariant.id, ProductVariant.price_cents)).all()
        base_oid = conn.execute(select(func.max(Order.id))).scalar_one()
        base_item = conn.execute(select(func.max(OrderItem.id))).scalar_one()
        base_ev = conn.execute(select(func.max(OrderStatusEvent.id))).scalar_one()
        base_ship = conn.execute(select(func.max(Shipment.id))).scalar_one()
    now = datetime.utcnow()
    item_id, ev_id, ship_id = base_item, base_ev, base_ship
    for start in range(0, n_orders, BATCH):
        orders, items, addresses, events, shipments = [], [], [], [], []
        for k in range(start, min(start + BATCH, n_orders)):
            oid = base_oid + k + 1
            cid, region, name = customers[rng.randrange(len(customers))]
            placed = now - timedelta(days=rng.randint(1, 700))
            status = "delivered" if rng.random() < 0.9 else "shipped"
            total = 0
            for _ in range(rng.randint(1, 3)):
                vid, price = variants[rng.randrange(len(variants))]
                item_id += 1
                total += price
                items.append(
                    dict(id=item_id, order_id=oid, variant_id=vid, warehouse_id=3,
                         quantity=1, unit_price_cents=price, final_sale=False)
                )  # fmt: skip
            orders.append(
                dict(id=oid, number=f"KF-{1_000_000 + k}", customer_id=cid, region=region,
                     currency="CNY" if region == "CN" else "USD", status=status, total_cents=total,
                     placed_at=placed, delivered_at=placed + timedelta(days=3) if status == "delivered" else None,
                     updated_at=placed)
            )  # fmt: skip
            addresses.append(
                dict(id=oid, order_id=oid, recipient=name, phone=None, line1="1 Bench Road",
                     line2=None, city="Los Angeles", province="CA", postcode="90001", country="US",
                     updated_at=placed)
            )  # fmt: skip
            for st in ("placed", "paid", status):
                ev_id += 1
                events.append(dict(id=ev_id, order_id=oid, status=st, at=placed, note=None))
            ship_id += 1
            shipments.append(
                dict(id=ship_id, order_id=oid, carrier="UPS", tracking_number=f"BENCH{oid}",
                     shipped_at=placed, estimated_delivery=None, delivered_at=None)
            )  # fmt: skip
        with engine.begin() as conn:
            conn.execute(insert(Order.__table__), orders)
            conn.execute(insert(OrderItem.__table__), items)
            conn.execute(insert(ShippingAddress.__table__), addresses)
            conn.execute(insert(OrderStatusEvent.__table__), events)
            conn.execute(insert(Shipment.__table__), shipments)
    return time.perf_counter() - t0


def timed(fn, args_list) -> dict:
    samples = []
    for args in args_list:
        t0 = time.perf_counter()
        fn(*args)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {
        "n": len(samples),
        "mean_ms": round(statistics.fmean(samples), 3),
        "p50_ms": round(samples[len(samples) // 2], 3),
        "p95_ms": round(samples[int(len(samples) * 0.95) - 1], 3),
        "max_ms": round(samples[-1], 3),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--url", default=None, help="database URL (default: fresh var/bench_commerce.db)"
    )
    args = parser.parse_args(argv)
    rng = random.Random(7)
    url = args.url
    if url is None:
        path = REPO_ROOT / "var" / "bench_commerce.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    seed(engine)
    load_s = populate(engine, args.orders, rng)
    sf = make_session_factory(engine)
    with sf() as s:
        total_orders = s.execute(select(func.count(Order.id))).scalar_one()
        sample = s.execute(
            select(Order.number, Customer.email, Customer.id)
            .join(Customer)
            .where(
                Order.number.in_(
                    [f"KF-{1_000_000 + rng.randrange(args.orders)}" for _ in range(args.queries)]
                )
            )
        ).all()
    stock_queries = [
        ("Trail Runner 2", "42", "black"),
        ("越野跑鞋", "41", "蓝色"),
        ("Basic cotton tee", "M", None),
        ("CITY-SNEAKER-42-WHITE", None, None),
        ("羽绒服", "L", "红色"),
        ("backpack", None, "grey"),
    ]
    results = {
        "verify_order_owner": timed(
            lambda n, e, i: verify_order_owner(sf, n, email=e, conversation_id=f"bench-{i}"),
            [(n, e, i) for i, (n, e, _) in enumerate(sample)],
        ),
        "get_order": timed(lambda n, c: get_order(sf, c, n), [(n, c) for n, _, c in sample]),
        "track_order": timed(lambda n, c: track_order(sf, c, n), [(n, c) for n, _, c in sample]),
        "check_stock": timed(
            lambda p, sz, col: check_stock(sf, p, size=sz, colour=col),
            [stock_queries[i % len(stock_queries)] for i in range(args.queries)],
        ),
        "recommend_for_customer": timed(
            lambda c: recommend_for_customer(sf, c), [(c,) for c in range(1, 21)] * 2
        ),
    }
    report = {
        "benchmark": "commerce",
        "database": engine.dialect.name,
        "orders_in_db": total_orders,
        "bulk_load_s": round(load_s, 2),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "when": datetime.utcnow().isoformat(timespec="seconds") + "Z",
        "results": results,
    }
    engine.dispose()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"commerce_{report['database']}_{args.orders}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# Commerce benchmark ({report['database']}, {total_orders} orders, load {report['bulk_load_s']} s)",
        "",
        "| call | n | mean ms | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['n']} | {r['mean_ms']} | {r['p50_ms']} | {r['p95_ms']} | {r['max_ms']} |"
        )
    table = "\n".join(lines) + "\n"
    (RESULTS / f"{stem}.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
