"""Builders for test data: a handful of small functions and one standard world.

The world's orders are numbered in their own range, KF-19xxxx (US) and KF-29xxxx (China), which
the demo seed (KF-1000xx, KF-2000xx, KF-3xxxxx) never uses: a test that passes against the world
cannot pass by finding a seeded order of the same number.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta

from commerce.models import (
    ORDER_DELIVERED,
    ORDER_OUT_FOR_DELIVERY,
    ORDER_SHIPPED,
    ORDER_STATUSES,
    Customer,
    Inventory,
    Order,
    OrderItem,
    OrderStatusEvent,
    Product,
    ProductVariant,
    ReturnPolicy,
    Shipment,
    ShippingAddress,
    TrackingEvent,
    Warehouse,
)
from commerce.policies import DEFAULT_POLICIES
from commerce.services._common import utcnow


def add_customer(s, email, *, phone=None, region="US", name="Test Customer", language="en"):
    c = Customer(
        name=name, email=email, phone=phone, region=region, language=language, created_at=utcnow()
    )
    s.add(c)
    s.flush()
    return c


def add_product(s, code, *, category="shoes", name_en=None, name_zh=None, tags="", synonyms=""):
    p = Product(
        code=code,
        category=category,
        name_en=name_en or code.title(),
        name_zh=name_zh or code,
        description_en="",
        description_zh="",
        tags=tags,
        synonyms=synonyms,
    )
    s.add(p)
    s.flush()
    return p


def add_variant(
    s, product, sku, *, size=None, colour=None, price=5000, currency="USD", final_sale=False
):
    v = ProductVariant(
        product_id=product.id,
        sku=sku,
        size=size,
        colour=colour,
        price_cents=price,
        currency=currency,
        final_sale=final_sale,
    )
    s.add(v)
    s.flush()
    return v


def add_warehouse(s, code, *, region="US", name_en=None, name_zh=None):
    w = Warehouse(code=code, name_en=name_en or code, name_zh=name_zh or code, region=region)
    s.add(w)
    s.flush()
    return w


def set_stock(s, variant, warehouse, on_hand, *, reserved=0, restock_date=None):
    inv = Inventory(
        variant_id=variant.id,
        warehouse_id=warehouse.id,
        on_hand=on_hand,
        reserved=reserved,
        restock_date=restock_date,
    )
    s.add(inv)
    s.flush()
    return inv


def add_order(
    s,
    number,
    customer,
    items,
    *,
    status="paid",
    warehouse=None,
    delivered_days_ago=None,
    placed_days_ago=10,
    final_sale=False,
):
    """Create an order with items ``[(variant, qty)]``, history up to ``status`` and a shipment."""
    now = utcnow()
    placed = now - timedelta(days=placed_days_ago)
    delivered = now - timedelta(days=delivered_days_ago) if delivered_days_ago is not None else None
    total = sum(v.price_cents * q for v, q in items)
    o = Order(
        number=number,
        customer_id=customer.id,
        region=customer.region,
        currency="CNY" if customer.region == "CN" else "USD",
        status=status,
        total_cents=total,
        placed_at=placed,
        delivered_at=delivered if status in (ORDER_DELIVERED, "returned") else None,
        updated_at=now,
    )
    s.add(o)
    s.flush()
    for v, q in items:
        s.add(
            OrderItem(
                order_id=o.id,
                variant_id=v.id,
                warehouse_id=warehouse.id if warehouse else None,
                quantity=q,
                unit_price_cents=v.price_cents,
                final_sale=final_sale or v.final_sale,
            )
        )
    progress = (
        ORDER_STATUSES[: ORDER_STATUSES.index(status) + 1]
        if status in ORDER_STATUSES[:6]
        else ("placed", "paid", status)
    )
    for i, st in enumerate(progress):
        s.add(OrderStatusEvent(order_id=o.id, status=st, at=placed + timedelta(hours=i)))
    s.add(
        ShippingAddress(
            order_id=o.id,
            recipient=customer.name,
            phone=customer.phone,
            line1="1 Test Street",
            city="Shanghai" if customer.region == "CN" else "Los Angeles",
            country="CN" if customer.region == "CN" else "US",
            updated_at=now,
        )
    )
    if status in (ORDER_SHIPPED, ORDER_OUT_FOR_DELIVERY, ORDER_DELIVERED, "returned"):
        sh = Shipment(
            order_id=o.id,
            carrier="SF Express" if customer.region == "CN" else "UPS",
            tracking_number=f"TRK{number[3:]}",
            shipped_at=placed + timedelta(days=1),
            estimated_delivery=(placed + timedelta(days=4)).date(),
            delivered_at=delivered,
        )
        s.add(sh)
        s.flush()
        s.add(
            TrackingEvent(
                shipment_id=sh.id,
                at=placed + timedelta(days=1),
                status="in_transit",
                location="Shanghai",
                description_en="Picked up",
                description_zh="已揽收",
            )
        )
        if delivered:
            s.add(
                TrackingEvent(
                    shipment_id=sh.id,
                    at=delivered,
                    status="delivered",
                    location="Destination",
                    description_en="Delivered",
                    description_zh="已签收",
                )
            )
    s.flush()
    return o


def add_policies(s):
    s.add_all(ReturnPolicy(**asdict(rule)) for rule in DEFAULT_POLICIES)
    s.flush()


@dataclass
class World:
    """Ids and numbers of the standard test world (see :func:`build_world`)."""

    alice_id: int = 0  # US customer
    alice_email: str = "alice@example.com"
    alice_phone: str = "14155550100"
    wang_id: int = 0  # CN customer
    wang_email: str = "wang.fang@example.cn"
    wang_phone: str = "8613800138000"
    orders: dict[str, str] = field(default_factory=dict)  # label -> order number
    skus: dict[str, str] = field(default_factory=dict)


def build_world(sf) -> World:
    w = World()
    with sf.begin() as s:
        add_policies(s)
        alice = add_customer(s, w.alice_email, phone=w.alice_phone, name="Alice Smith")
        wang = add_customer(
            s, w.wang_email, phone=w.wang_phone, region="CN", name="王芳", language="zh"
        )
        w.alice_id, w.wang_id = alice.id, wang.id
        la = add_warehouse(s, "LAX", name_en="Los Angeles", name_zh="洛杉矶")
        sh = add_warehouse(s, "SHA", region="CN", name_en="Shanghai", name_zh="上海")

        runner = add_product(
            s,
            "TRAIL-RUNNER-2",
            name_en="Trail Runner 2 running shoes",
            name_zh="越野跑鞋 2代",
            tags="running,mesh",
            synonyms="trail runner,越野跑鞋",
        )
        road = add_product(
            s, "ROAD-RUNNER", name_en="Road Runner shoes", name_zh="公路跑鞋", tags="running"
        )
        tee = add_product(
            s,
            "BASIC-TEE",
            category="t-shirts",
            name_en="Basic tee",
            name_zh="基础T恤",
            tags="cotton",
        )
        undies = add_product(
            s, "BOXER-3", category="underwear", name_en="Boxer 3-pack", name_zh="平角内裤三条装"
        )
        jacket = add_product(
            s, "RAIN-JACKET", category="jackets", name_en="Rain jacket", name_zh="雨衣夹克"
        )
        earbuds = add_product(
            s, "EARBUDS", category="electronics", name_en="Earbuds", name_zh="无线耳机"
        )

        v = {}
        for size in ("41", "42"):
            for colour in ("black", "white"):
                v[f"runner-{size}-{colour}"] = add_variant(
                    s,
                    runner,
                    f"TR2-{size}-{colour[:3].upper()}",
                    size=size,
                    colour=colour,
                    price=12000,
                )
        v["road-42-black"] = add_variant(
            s, road, "RR-42-BLA", size="42", colour="black", price=9000
        )
        v["tee-M-white"] = add_variant(s, tee, "TEE-M-WHI", size="M", colour="white", price=2000)
        v["tee-L-white"] = add_variant(s, tee, "TEE-L-WHI", size="L", colour="white", price=2000)
        v["undies-M"] = add_variant(s, undies, "BOX-M-BLA", size="M", colour="black", price=3000)
        v["jacket-M"] = add_variant(
            s, jacket, "RJ-M-NAV", size="M", colour="navy", price=15000, final_sale=True
        )
        v["earbuds"] = add_variant(s, earbuds, "EB-BLA", colour="black", price=8000)
        w.skus = {k: x.sku for k, x in v.items()}

        restock = date.today() + timedelta(days=12)
        set_stock(s, v["runner-42-black"], la, 0, restock_date=restock)
        set_stock(s, v["runner-42-black"], sh, 0, restock_date=restock + timedelta(days=5))
        set_stock(s, v["runner-42-white"], la, 3)
        set_stock(s, v["runner-41-black"], sh, 5, reserved=2)
        set_stock(s, v["runner-41-white"], la, 0)
        set_stock(s, v["road-42-black"], la, 7)
        set_stock(s, v["tee-M-white"], la, 10, reserved=1)
        set_stock(s, v["tee-L-white"], la, 4)
        set_stock(s, v["undies-M"], la, 10)
        set_stock(s, v["jacket-M"], la, 2)
        set_stock(s, v["earbuds"], la, 0)

        def order(label, number, cust, items, **kw):
            add_order(s, number, cust, items, warehouse=la, **kw)
            w.orders[label] = number

        order("placed", "KF-190001", alice, [(v["tee-M-white"], 1)], status="placed")
        order(
            "paid",
            "KF-190002",
            alice,
            [(v["tee-M-white"], 1), (v["runner-42-white"], 1)],
            status="paid",
        )
        order("packed", "KF-190003", alice, [(v["tee-L-white"], 2)], status="packed")
        order("shipped", "KF-190004", alice, [(v["road-42-black"], 1)], status="shipped")
        order(
            "out_for_delivery",
            "KF-190005",
            alice,
            [(v["tee-M-white"], 1)],
            status="out_for_delivery",
        )
        order(
            "delivered",
            "KF-190006",
            alice,
            [
                (v["runner-41-black"], 1),
                (v["tee-M-white"], 2),
                (v["undies-M"], 1),
                (v["jacket-M"], 1),
            ],
            status="delivered",
            delivered_days_ago=3,
        )
        order(
            "delivered_old",
            "KF-190007",
            alice,
            [(v["tee-L-white"], 1)],
            status="delivered",
            delivered_days_ago=45,
            placed_days_ago=50,
        )
        order("cancelled", "KF-190008", alice, [(v["tee-M-white"], 1)], status="cancelled")
        order(
            "returned",
            "KF-190009",
            alice,
            [(v["tee-M-white"], 1)],
            status="returned",
            delivered_days_ago=20,
        )
        order(
            "earbuds_20d",
            "KF-190010",
            alice,
            [(v["earbuds"], 1)],
            status="delivered",
            delivered_days_ago=20,
            placed_days_ago=25,
        )
        order(
            "cn_delivered",
            "KF-290001",
            wang,
            [(v["runner-41-white"], 1)],
            status="delivered",
            delivered_days_ago=5,
        )
        order(
            "cn_delivered_old",
            "KF-290002",
            wang,
            [(v["tee-M-white"], 1)],
            status="delivered",
            delivered_days_ago=9,
            placed_days_ago=12,
        )
        order("cn_paid", "KF-290003", wang, [(v["road-42-black"], 1)], status="paid")
    return w


def now() -> datetime:
    return utcnow()
