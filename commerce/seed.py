"""Deterministic bilingual demo data: every order status, returns, refunds, tickets.

Ids, numbers, names and stock come from fixed tables and a fixed RNG seed, so seeding twice gives
the same data; dates are relative to the day of seeding so return windows stay meaningful.
``seed`` first empties every commerce table. docs/SEED.md lists the accounts to test with.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import insert, text
from sqlalchemy.engine import Connection, Engine

from commerce.models import (
    ORDER_STATUSES,
    BackInStockSubscription,
    Base,
    Customer,
    HandoffRequest,
    Inventory,
    Order,
    OrderItem,
    OrderStatusEvent,
    Product,
    ProductVariant,
    Refund,
    RefundEvent,
    Return,
    ReturnItem,
    ReturnPolicy,
    Shipment,
    ShippingAddress,
    SupportTicket,
    TrackingEvent,
    Warehouse,
)
from commerce.policies import DEFAULT_POLICIES

RNG_SEED = 20240601
CNY_PER_USD = 7

WAREHOUSES = [
    (1, "SHA", "Shanghai", "上海", "CN"),
    (2, "SZX", "Shenzhen", "深圳", "CN"),
    (3, "LAX", "Los Angeles", "洛杉矶", "US"),
]

# (name, email, phone digits with country code, region, language)
CUSTOMERS = [
    ("Alice Smith", "alice@example.com", "14155550101", "US", "en"),
    ("Bob Johnson", "bob@example.com", "14155550102", "US", "en"),
    ("Carol Williams", "carol@example.com", "14155550103", "US", "en"),
    ("David Brown", "david@example.com", "14155550104", "US", "en"),
    ("Emma Davis", "emma@example.com", "14155550105", "US", "en"),
    ("Frank Miller", "frank@example.com", "14155550106", "US", "en"),
    ("Grace Wilson", "grace@example.com", "14155550107", "US", "en"),
    ("Henry Moore", "henry@example.com", "14155550108", "INTL", "en"),
    ("Isla Taylor", "isla@example.com", "14155550109", "INTL", "en"),
    ("Jack Anderson", "jack@example.com", "14155550110", "US", "en"),
    ("王芳", "wang.fang@example.cn", "8613800138001", "CN", "zh"),
    ("李娜", "li.na@example.cn", "8613800138002", "CN", "zh"),
    ("张伟", "zhang.wei@example.cn", "8613800138003", "CN", "zh"),
    ("刘洋", "liu.yang@example.cn", "8613800138004", "CN", "zh"),
    ("陈静", "chen.jing@example.cn", "8613800138005", "CN", "zh"),
    ("杨磊", "yang.lei@example.cn", "8613800138006", "CN", "zh"),
    ("赵敏", "zhao.min@example.cn", "8613800138007", "CN", "zh"),
    ("黄强", "huang.qiang@example.cn", "8613800138008", "CN", "zh"),
    ("周婷", "zhou.ting@example.cn", "8613800138009", "CN", "zh"),
    ("吴浩", "wu.hao@example.cn", "8613800138010", "CN", "zh"),
]

SHOE_SIZES = ("39", "40", "41", "42", "43", "44")
CLOTH_SIZES = ("S", "M", "L", "XL")
ONE = (None,)
# (code, category, name_en, name_zh, sizes, colours, price USD cents, tags, synonyms, final_sale)
PRODUCTS = [
    ("TRAIL-RUNNER-2", "shoes", "Trail Runner 2 running shoes", "越野跑鞋 2代", SHOE_SIZES, ("black", "blue"), 12900, "running,outdoor,mesh", "Trail Runner 2,TR2,trail runner,trail shoes,越野跑鞋2代,越野跑鞋二代,越野跑鞋,跑鞋", False),
    ("ROAD-RUNNER", "shoes", "Road Runner shoes", "公路跑鞋", SHOE_SIZES, ("white", "grey"), 9900, "running,mesh", "road runner,running shoes,跑步鞋", False),
    ("CITY-SNEAKER", "shoes", "City sneakers", "城市休闲鞋", SHOE_SIZES, ("white", "black"), 7900, "casual,leather", "sneakers,休闲鞋,小白鞋", False),
    ("HIKING-BOOT", "shoes", "Summit hiking boots", "登山靴", SHOE_SIZES, ("brown",), 15900, "outdoor,leather,waterproof", "hiking boots,登山鞋", False),
    ("SLIDE-SANDAL", "shoes", "Slide sandals", "一字拖", SHOE_SIZES, ("black",), 2900, "summer,casual", "sandals,slides,拖鞋", False),
    ("BASIC-TEE", "t-shirts", "Basic cotton tee", "基础纯棉T恤", CLOTH_SIZES, ("white", "black", "grey"), 1900, "cotton,casual", "tee,t-shirt,T恤,短袖", False),
    ("DRY-FIT-TEE", "t-shirts", "Dry-fit running tee", "速干跑步T恤", CLOTH_SIZES, ("blue", "black"), 2900, "running,quick-dry", "running shirt,速干衣", False),
    ("GRAPHIC-TEE", "t-shirts", "Panda graphic tee", "熊猫印花T恤", CLOTH_SIZES, ("white",), 2400, "cotton,casual,print", "panda tee,熊猫T恤", False),
    ("POLO-SHIRT", "t-shirts", "Classic polo shirt", "经典POLO衫", CLOTH_SIZES, ("navy", "white"), 3900, "cotton,smart", "polo,POLO衫", False),
    ("LONG-SLEEVE", "t-shirts", "Long-sleeve tee", "长袖T恤", CLOTH_SIZES, ("grey",), 2900, "cotton,casual", "long sleeve,长袖", False),
    ("RAIN-JACKET", "jackets", "Storm rain jacket", "防风雨夹克", CLOTH_SIZES, ("navy", "yellow"), 8900, "outdoor,waterproof", "rain jacket,raincoat,冲锋衣,雨衣", False),
    ("DOWN-JACKET", "jackets", "Light down jacket", "轻薄羽绒服", CLOTH_SIZES, ("black", "red"), 14900, "winter,down", "down jacket,puffer,羽绒服", False),
    ("DENIM-JACKET", "jackets", "Denim jacket", "牛仔夹克", CLOTH_SIZES, ("blue",), 6900, "denim,casual", "jean jacket,牛仔外套", False),
    ("FLEECE", "jackets", "Polar fleece", "摇粒绒外套", CLOTH_SIZES, ("grey", "green"), 4900, "outdoor,fleece", "fleece jacket,抓绒衣", False),
    ("SAMPLE-JACKET", "jackets", "Sample-sale bomber jacket", "样品特卖飞行夹克", CLOTH_SIZES, ("green",), 5900, "casual", "bomber,飞行夹克", True),
    ("SUMMER-DRESS", "dresses", "Linen summer dress", "亚麻夏日连衣裙", CLOTH_SIZES, ("white", "blue"), 5900, "summer,linen", "summer dress,连衣裙,裙子", False),
    ("WRAP-DRESS", "dresses", "Wrap dress", "裹身裙", CLOTH_SIZES, ("red", "black"), 6900, "smart", "wrap dress,裹身连衣裙", False),
    ("KNIT-DRESS", "dresses", "Knit midi dress", "针织中长裙", CLOTH_SIZES, ("beige",), 7900, "winter,knit", "knit dress,针织裙", False),
    ("SHIRT-DRESS", "dresses", "Shirt dress", "衬衫裙", CLOTH_SIZES, ("blue",), 5400, "cotton,smart", "shirt dress,衬衫连衣裙", False),
    ("PARTY-DRESS", "dresses", "Sequin party dress (final sale)", "亮片派对裙（清仓）", CLOTH_SIZES, ("silver",), 4900, "party", "party dress,派对裙", True),
    ("DAY-BACKPACK", "bags", "Daypack 20L backpack", "20升双肩包", ONE, ("black", "grey"), 5900, "outdoor,travel", "backpack,rucksack,双肩包,背包", False),
    ("TOTE-BAG", "bags", "Canvas tote bag", "帆布托特包", ONE, ("beige",), 2500, "canvas,casual", "tote,帆布包", False),
    ("CROSSBODY", "bags", "Leather crossbody bag", "真皮斜挎包", ONE, ("brown", "black"), 8900, "leather,smart", "crossbody,斜挎包", False),
    ("DUFFEL", "bags", "Travel duffel", "旅行包", ONE, ("navy",), 7900, "travel", "duffel bag,旅行袋", False),
    ("WAIST-PACK", "bags", "Running waist pack", "跑步腰包", ONE, ("black",), 1900, "running", "waist pack,fanny pack,腰包", False),
    ("WOOL-BEANIE", "accessories", "Wool beanie", "羊毛线帽", ONE, ("grey", "red"), 1900, "winter,wool", "beanie,hat,毛线帽", False),
    ("CAP", "accessories", "Baseball cap", "棒球帽", ONE, ("black", "white"), 1900, "casual", "cap,hat,鸭舌帽,帽子", False),
    ("RUN-SOCKS", "accessories", "Running socks 3-pack", "跑步袜三双装", ("S", "M", "L"), ("white",), 1500, "running", "socks,袜子", False),
    ("SUNGLASSES", "accessories", "Polarised sunglasses", "偏光太阳镜", ONE, ("black",), 4900, "summer,outdoor", "sunglasses,墨镜,太阳镜", False),
    ("LEATHER-BELT", "accessories", "Leather belt", "真皮皮带", ("S", "M", "L"), ("brown",), 3900, "leather,smart", "belt,腰带,皮带", False),
    ("SCARF", "accessories", "Cashmere scarf", "羊绒围巾", ONE, ("beige", "grey"), 6900, "winter,wool", "scarf,围巾", False),
    ("EARBUDS-PRO", "electronics", "Kefu Buds Pro wireless earbuds", "Kefu Buds Pro 无线耳机", ONE, ("black", "white"), 12900, "audio,running", "Buds Pro,Buds Pro耳机,earbuds,earphones,耳机,蓝牙耳机", False),
    ("SPORT-WATCH", "electronics", "Sport GPS watch", "GPS运动手表", ONE, ("black",), 19900, "running,outdoor", "watch,smartwatch,手表,运动手表", False),
    ("POWER-BANK", "electronics", "10000mAh power bank", "10000毫安充电宝", ONE, ("white",), 2900, "travel", "power bank,charger,充电宝", False),
    ("SPEAKER", "electronics", "Mini Bluetooth speaker", "迷你蓝牙音箱", ONE, ("blue", "black"), 3900, "audio,outdoor", "speaker,音箱", False),
    ("BOXER-3", "underwear", "Cotton boxer briefs 3-pack", "纯棉平角内裤三条装", CLOTH_SIZES, ("black",), 2900, "cotton", "boxers,underwear,内裤", False),
    ("SPORT-BRA", "underwear", "Sports bra", "运动内衣", CLOTH_SIZES, ("black", "pink"), 3400, "running", "sports bra,运动文胸", False),
    ("GIFT-CARD-50", "gift-cards", "Gift card 50", "50元礼品卡", ONE, ONE, 5000, "gift", "gift card,礼品卡,购物卡", False),
    ("YOGA-PANTS", "dresses", "Yoga leggings", "瑜伽裤", CLOTH_SIZES, ("black",), 4400, "running,yoga", "leggings,瑜伽裤,打底裤", False),
    ("TRAIL-RUNNER-1", "shoes", "Trail Runner 1 running shoes (last season)", "越野跑鞋 1代（上一季）", SHOE_SIZES, ("green",), 8900, "running,outdoor,mesh", "Trail Runner 1,trail runner 1,越野跑鞋1代,越野跑鞋一代", True),
]  # fmt: skip

# Showcase orders: (number, customer email, status, [(sku, qty)], days since placed, delivered
# days ago or None). See docs/SEED.md for what each one is good for.
SHOWCASE = [
    ("KF-100001", "alice@example.com", "placed", [("BASIC-TEE-M-WHITE", 2)], 0, None),
    ("KF-100002", "alice@example.com", "paid", [("TRAIL-RUNNER-2-42-BLACK", 1), ("RUN-SOCKS-M-WHITE", 1)], 1, None),
    ("KF-100003", "alice@example.com", "packed", [("RAIN-JACKET-M-NAVY", 1)], 2, None),
    ("KF-100004", "alice@example.com", "shipped", [("DAY-BACKPACK-BLACK", 1)], 3, None),
    ("KF-100005", "alice@example.com", "out_for_delivery", [("CAP-BLACK", 1)], 4, None),
    ("KF-100006", "alice@example.com", "delivered", [("ROAD-RUNNER-42-WHITE", 1), ("BASIC-TEE-L-BLACK", 2), ("BOXER-3-M-BLACK", 1)], 8, 5),
    ("KF-100007", "alice@example.com", "delivered", [("DENIM-JACKET-M-BLUE", 1)], 50, 45),
    ("KF-100008", "alice@example.com", "cancelled", [("DOWN-JACKET-M-BLACK", 1)], 20, None),
    ("KF-100009", "alice@example.com", "returned", [("SUMMER-DRESS-S-WHITE", 1)], 30, 25),
    ("KF-100010", "bob@example.com", "delivered", [("PARTY-DRESS-M-SILVER", 1)], 6, 3),
    ("KF-100011", "bob@example.com", "delivered", [("EARBUDS-PRO-BLACK", 1), ("GIFT-CARD-50", 1)], 25, 20),
    ("KF-100012", "bob@example.com", "delivered", [("CITY-SNEAKER-43-WHITE", 1), ("WOOL-BEANIE-GREY", 1)], 12, 9),
    ("KF-100013", "carol@example.com", "delivered", [("WRAP-DRESS-M-RED", 1)], 15, 12),
    ("KF-100014", "carol@example.com", "cancelled", [("SPORT-WATCH-BLACK", 1)], 10, None),
    ("KF-100015", "henry@example.com", "shipped", [("HIKING-BOOT-44-BROWN", 1)], 5, None),
    ("KF-200001", "wang.fang@example.cn", "paid", [("GRAPHIC-TEE-M-WHITE", 1), ("TOTE-BAG-BEIGE", 1)], 1, None),
    ("KF-200002", "wang.fang@example.cn", "shipped", [("TRAIL-RUNNER-2-41-BLUE", 1)], 3, None),
    ("KF-200003", "wang.fang@example.cn", "delivered", [("DOWN-JACKET-S-RED", 1), ("SCARF-BEIGE", 1)], 6, 3),
    ("KF-200004", "wang.fang@example.cn", "delivered", [("SUMMER-DRESS-M-BLUE", 1)], 15, 12),
    ("KF-200005", "li.na@example.cn", "delivered", [("SAMPLE-JACKET-M-GREEN", 1)], 4, 2),
    ("KF-200006", "li.na@example.cn", "cancelled", [("SPEAKER-BLUE", 1)], 7, None),
    ("KF-200007", "li.na@example.cn", "delivered", [("CITY-SNEAKER-40-WHITE", 1)], 6, 4),
    ("KF-200008", "zhang.wei@example.cn", "out_for_delivery", [("POWER-BANK-WHITE", 2)], 3, None),
    ("KF-200009", "zhang.wei@example.cn", "packed", [("FLEECE-L-GREEN", 1)], 1, None),
    ("KF-200010", "zhang.wei@example.cn", "placed", [("SPORT-BRA-M-PINK", 1)], 0, None),
    ("KF-200011", "liu.yang@example.cn", "delivered", [("TRAIL-RUNNER-2-43-BLACK", 1), ("DRY-FIT-TEE-L-BLUE", 1)], 10, 6),
]  # fmt: skip

FILLER_ORDERS = 80  # KF-300001..: other customers' purchases feed co-purchase recommendations
OUT_OF_STOCK_SKUS = ("TRAIL-RUNNER-2-42-BLACK", "DOWN-JACKET-M-BLACK", "EARBUDS-PRO-WHITE", "KNIT-DRESS-M-BEIGE")  # fmt: skip


def sku_for(code: str, size: str | None, colour: str | None) -> str:
    """SKU = product code + size + colour, upper-case (``TRAIL-RUNNER-2-42-BLACK``)."""
    return "-".join(x for x in (code, size, colour.upper() if colour else None) if x)


def build_catalog() -> tuple[list[dict], list[dict]]:
    """Product and variant rows (pure, deterministic)."""
    products, variants = [], []
    vid = 0
    for pid, (code, cat, en, zh, sizes, colours, price, tags, syn, final) in enumerate(PRODUCTS, 1):
        products.append(
            dict(
                id=pid,
                code=code,
                category=cat,
                name_en=en,
                name_zh=zh,
                description_en=f"{en}. Category: {cat}.",
                description_zh=f"{zh}。",
                synonyms=syn,
                tags=tags,
            )
        )
        for colour in colours:
            for size in sizes:
                vid += 1
                variants.append(
                    dict(
                        id=vid,
                        product_id=pid,
                        sku=sku_for(code, size, colour),
                        size=size,
                        colour=colour,
                        price_cents=price,
                        currency="USD",
                        final_sale=final,
                    )
                )
    return products, variants


def _reset_sequences(conn: Connection) -> None:
    if conn.dialect.name != "postgresql":
        return
    for table in Base.metadata.sorted_tables:
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "  # noqa: S608 - own table names
                f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
            )
        )


def clear(conn: Connection) -> None:
    """Delete every row of every commerce table (schema untouched)."""
    for table in reversed(Base.metadata.sorted_tables):
        conn.execute(table.delete())


def seed(engine: Engine, today: date | None = None) -> dict[str, int]:
    """Empty the commerce tables and insert the demo data; returns row counts per table."""
    rows = _SeedRows(today or date.today())
    _seed_warehouses(rows)
    _seed_return_policies(rows)
    _seed_customers(rows)
    _seed_catalog(rows)
    _seed_stock(rows)
    _seed_orders(rows)
    _seed_returns_and_refunds(rows)
    _seed_tickets(rows)
    _seed_subscriptions(rows)
    _reserve_stock_for_open_orders(rows)
    _write(engine, rows.tables)
    return {m.__tablename__: len(r) for m, r in rows.tables.items()}


@dataclass
class _SeedRows:
    """The rows being built, table by table, and what later steps look up."""

    today: date
    tables: dict[type, list[dict]] = field(default_factory=dict)
    customers: dict[str, dict] = field(default_factory=dict)  # email -> customer row
    by_sku: dict[str, dict] = field(default_factory=dict)  # sku -> variant row
    order_ids: dict[str, tuple[int, int]] = field(default_factory=dict)  # number -> (id, total)
    last_ids: dict[str, int] = field(default_factory=dict)  # rows numbered while seeding

    def __post_init__(self) -> None:
        self.now = datetime.combine(self.today, datetime.min.time()) + timedelta(hours=12)
        self.rng = random.Random(RNG_SEED)

    def add(self, model: type, **values) -> dict:
        self.tables.setdefault(model, []).append(values)
        return values

    def next_id(self, kind: str) -> int:
        self.last_ids[kind] = self.last_ids.get(kind, 0) + 1
        return self.last_ids[kind]


def _seed_warehouses(rows: _SeedRows) -> None:
    for wid, code, en, zh, region in WAREHOUSES:
        rows.add(Warehouse, id=wid, code=code, name_en=en, name_zh=zh, region=region)


def _seed_return_policies(rows: _SeedRows) -> None:
    for i, rule in enumerate(DEFAULT_POLICIES, 1):
        rows.add(ReturnPolicy, id=i, **asdict(rule))


def _seed_customers(rows: _SeedRows) -> None:
    for cid, (name, email, phone, region, lang) in enumerate(CUSTOMERS, 1):
        rows.customers[email] = rows.add(
            Customer,
            id=cid,
            name=name,
            email=email,
            phone=phone,
            region=region,
            language=lang,
            created_at=rows.now - timedelta(days=400 - cid),
        )


def _seed_catalog(rows: _SeedRows) -> None:
    products, variants = build_catalog()
    rows.tables[Product] = products
    rows.tables[ProductVariant] = variants
    rows.by_sku = {v["sku"]: v for v in variants}


def _seed_stock(rows: _SeedRows) -> None:
    """Stock per variant and warehouse; out-of-stock variants get a restock date."""
    rng = rows.rng
    for v in rows.tables[ProductVariant]:
        out = v["sku"] in OUT_OF_STOCK_SKUS or rng.random() < 0.08
        for wid, *_ in WAREHOUSES:
            if rng.random() < 0.3 and not out:
                continue
            rows.add(
                Inventory,
                id=rows.next_id("inventory"),
                variant_id=v["id"],
                warehouse_id=wid,
                on_hand=0 if out else rng.randint(1, 40),
                reserved=0,
                restock_date=rows.today + timedelta(days=7 + wid * 3) if out else None,
            )


# Filler orders draw from bundles that co-occur (shoes + socks + waist pack, dress + tote ...).
FILLER_BUNDLES = [
    ["TRAIL-RUNNER-2-42-BLUE", "RUN-SOCKS-M-WHITE", "WAIST-PACK-BLACK"],
    ["ROAD-RUNNER-41-GREY", "DRY-FIT-TEE-M-BLACK", "EARBUDS-PRO-BLACK"],
    ["SUMMER-DRESS-M-WHITE", "TOTE-BAG-BEIGE", "SUNGLASSES-BLACK"],
    ["RAIN-JACKET-L-YELLOW", "DAY-BACKPACK-GREY", "HIKING-BOOT-42-BROWN"],
    ["DOWN-JACKET-L-RED", "WOOL-BEANIE-RED", "SCARF-GREY"],
    ["BASIC-TEE-M-GREY", "CAP-WHITE", "CITY-SNEAKER-42-BLACK"],
]


def _seed_orders(rows: _SeedRows) -> None:
    """The showcase orders, then filler purchases by other customers."""
    for number, email, status, items, placed_ago, delivered_ago in SHOWCASE:
        rows.order_ids[number] = _add_order(
            rows, number, email, status, items, placed_ago, delivered_ago
        )
    rng = rows.rng
    emails = [c[1] for c in CUSTOMERS[2:]]
    for i in range(1, FILLER_ORDERS + 1):
        bundle = rng.choice(FILLER_BUNDLES)
        picks = rng.sample(bundle, rng.randint(2, 3))
        days = rng.randint(20, 200)
        _add_order(
            rows,
            f"KF-{300000 + i}",
            rng.choice(emails),
            "delivered",
            [(s, 1) for s in picks],
            days,
            days - 4,
        )


def _status_path(status: str) -> list[str]:
    """The statuses an order went through to reach ``status``."""
    if status == "cancelled":
        return ["placed", "paid", "cancelled"]
    if status == "returned":
        return list(ORDER_STATUSES[:6]) + ["returned"]
    return list(ORDER_STATUSES[: ORDER_STATUSES.index(status) + 1])


def _add_order(rows, number, email, status, items, placed_ago, delivered_ago) -> tuple[int, int]:
    """One order with its items, status history, address and shipment; returns (id, total)."""
    c = rows.customers[email]
    cn = c["region"] == "CN"
    now = rows.now
    placed = now - timedelta(days=placed_ago, hours=3)
    delivered = now - timedelta(days=delivered_ago) if delivered_ago is not None else None
    oid = rows.next_id("order")
    total = _add_order_items(rows, oid, items, cn)
    rows.add(
        Order,
        id=oid,
        number=number,
        customer_id=c["id"],
        region=c["region"],
        currency="CNY" if cn else "USD",
        status=status,
        total_cents=total,
        placed_at=placed,
        delivered_at=delivered if status in ("delivered", "returned") else None,
        updated_at=now,
    )
    path = _status_path(status)
    step = (placed_ago * 24 - 4) / max(len(path), 1)
    for i, st in enumerate(path):
        at = placed + timedelta(hours=i * step) if st != "delivered" else delivered
        rows.add(
            OrderStatusEvent, id=rows.next_id("event"), order_id=oid, status=st, at=at, note=None
        )
    _add_address(rows, oid, c, cn, placed)
    if status in ("shipped", "out_for_delivery", "delivered", "returned"):
        _add_shipment(rows, oid, cn, status, placed + timedelta(hours=step * 3), delivered)
    return oid, total


def _add_order_items(rows: _SeedRows, oid: int, items, cn: bool) -> int:
    """The order's lines, priced in CNY for the China store; returns the order total."""
    total = 0
    for sku, qty in items:
        v = rows.by_sku[sku]
        price = v["price_cents"] * (CNY_PER_USD if cn else 1)
        total += price * qty
        rows.add(
            OrderItem,
            id=rows.next_id("item"),
            order_id=oid,
            variant_id=v["id"],
            warehouse_id=1 if cn else 3,
            quantity=qty,
            unit_price_cents=price,
            final_sale=v["final_sale"],
        )
    return total


def _add_address(rows: _SeedRows, oid: int, c: dict, cn: bool, placed: datetime) -> None:
    rows.add(
        ShippingAddress,
        id=oid,
        order_id=oid,
        recipient=c["name"],
        phone=c["phone"],
        line1="浦东新区世纪大道100号" if cn else f"{100 + oid} Sunset Blvd",
        line2=None,
        city="上海" if cn else "Los Angeles",
        province="上海市" if cn else "CA",
        postcode="200120" if cn else "90028",
        country="CN" if cn else "US",
        updated_at=placed,
    )


def _add_shipment(rows, oid, cn, status, shipped: datetime, delivered: datetime | None) -> None:
    """The shipment and its tracking events, as far as ``status`` has come."""
    sid = rows.next_id("ship")
    rows.add(
        Shipment,
        id=sid,
        order_id=oid,
        carrier="SF Express 顺丰速运" if cn else "UPS",
        tracking_number=(f"SF{1400000000 + oid}" if cn else f"1Z999AA1{10000000 + oid}"),
        shipped_at=shipped,
        estimated_delivery=(shipped + timedelta(days=2 if cn else 4)).date(),
        delivered_at=delivered,
    )
    hub = ("上海转运中心", "Shanghai hub") if cn else ("Ontario, CA hub", "Ontario, CA hub")
    events = [
        ("picked_up", shipped, "Warehouse", "Picked up by carrier", "快递员已揽收"),
        (
            "in_transit",
            shipped + timedelta(hours=10),
            hub[1],
            "In transit",
            f"运输中，已到达{hub[0]}",
        ),
    ]
    if status in ("out_for_delivery", "delivered", "returned"):
        out_at = (delivered or rows.now) - timedelta(hours=5)
        events.append(("out_for_delivery", out_at, "Local depot", "Out for delivery", "派送中"))
    if delivered:
        events.append(("delivered", delivered, "Front door", "Delivered", "已签收"))
    for st, at, loc, en, zh in events:
        rows.add(
            TrackingEvent,
            id=rows.next_id("track"),
            shipment_id=sid,
            at=at,
            status=st,
            location=loc,
            description_en=en,
            description_zh=zh,
        )


_FULL_REFUND = ["requested", "approved", "processing", "completed"]


def _seed_returns_and_refunds(rows: _SeedRows) -> None:
    _add_refund(rows, 1, "RF-SEED0001", "KF-100008", "completed", _FULL_REFUND)
    _add_return(rows, 1, "RMA-SEED0001", "KF-100009", "return", "completed", "Too small")
    _add_refund(
        rows, 2, "RF-SEED0002", "KF-100009", "completed", _FULL_REFUND,
        return_id=1, reason="return RMA-SEED0001",
    )  # fmt: skip
    _add_return(rows, 2, "RMA-SEED0002", "KF-100012", "return", "requested", "Changed my mind")
    _add_return(
        rows, 3, "RMA-SEED0003", "KF-100013", "return", "received", "Colour differs from photo"
    )
    _add_refund(
        rows, 3, "RF-SEED0003", "KF-100013", "processing", _FULL_REFUND[:3],
        return_id=3, reason="return RMA-SEED0003",
    )  # fmt: skip
    _add_refund(rows, 4, "RF-SEED0004", "KF-100014", "failed", [*_FULL_REFUND[:3], "failed"])
    _add_refund(rows, 5, "RF-SEED0005", "KF-200006", "requested", ["requested"])
    _add_return(
        rows, 4, "RMA-SEED0004", "KF-200007", "exchange", "approved", "尺码偏小，换大一码",
        exchange_sku="CITY-SNEAKER-41-WHITE",
    )  # fmt: skip


def _add_refund(
    rows, rid, number, order_key, status, path, return_id=None, reason="order cancelled"
):
    """A refund of the whole order, with one event per status on ``path`` (a day apart)."""
    oid, total = rows.order_ids[order_key]
    now = rows.now
    rows.add(
        Refund,
        id=rid,
        refund_number=number,
        order_id=oid,
        return_id=return_id,
        amount_cents=total,
        currency="CNY" if order_key.startswith("KF-2") else "USD",
        status=status,
        reason=reason,
        idempotency_key=None,
        created_at=now - timedelta(days=len(path) + 1),
        updated_at=now - timedelta(days=1),
    )
    for j, st in enumerate(path):
        at = now - timedelta(days=len(path) + 1 - j)
        rows.add(RefundEvent, id=rid * 10 + j, refund_id=rid, status=st, at=at, note=None)


def _add_return(rows, rid, rma, order_key, kind, status, reason, exchange_sku=None) -> None:
    """A return (or exchange) of the order's first line."""
    oid, _ = rows.order_ids[order_key]
    email = next(s[1] for s in SHOWCASE if s[0] == order_key)
    rows.add(
        Return,
        id=rid,
        rma_number=rma,
        order_id=oid,
        customer_id=rows.customers[email]["id"],
        kind=kind,
        reason=reason,
        status=status,
        idempotency_key=None,
        created_at=rows.now - timedelta(days=2),
        updated_at=rows.now - timedelta(days=1),
    )
    item = next(r for r in rows.tables[OrderItem] if r["order_id"] == oid)
    rows.add(
        ReturnItem,
        id=rid,
        return_id=rid,
        order_item_id=item["id"],
        quantity=item["quantity"],
        exchange_variant_id=rows.by_sku[exchange_sku]["id"] if exchange_sku else None,
        exchange_warehouse_id=1 if exchange_sku else None,
    )


# (number, customer email, order, category, severity, subject, transcript, status, language,
# handoff status or None)
TICKETS = [
    ("TK-SEED0001", "bob@example.com", "KF-100011", "product", "normal", "Earbuds do not pair", "user: my earbuds won't pair\nbot: ...", "open", "en", "waiting"),
    ("TK-SEED0002", "wang.fang@example.cn", "KF-200002", "delivery", "high", "快递三天没有更新", "用户：我的快递三天没动了", "open", "zh", "waiting"),
    ("TK-SEED0003", "carol@example.com", "KF-100014", "refund", "urgent", "Refund failed", "user: my refund failed", "in_progress", "en", "assigned"),
    ("TK-SEED0004", None, None, "other", "low", "Do you ship to Canada?", "user: do you ship to canada", "resolved", "en", None),
]  # fmt: skip
_PRIORITY = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


def _seed_tickets(rows: _SeedRows) -> None:
    """Support tickets, some waiting in (or taken from) the human-handoff queue."""
    for tid, ticket in enumerate(TICKETS, 1):
        number, email, order_key, category, severity, subject, transcript, status, lang, handoff = (
            ticket
        )
        created, updated = rows.now - timedelta(hours=tid * 3), rows.now - timedelta(hours=tid)
        rows.add(
            SupportTicket,
            id=tid,
            ticket_number=number,
            customer_id=rows.customers[email]["id"] if email else None,
            order_id=rows.order_ids[order_key][0] if order_key else None,
            conversation_id=f"seed-conv-{tid}",
            category=category,
            severity=severity,
            subject=subject,
            transcript=transcript,
            language=lang,
            assignee="agent.li" if status == "in_progress" else None,
            status=status,
            created_at=created,
            updated_at=updated,
        )
        if handoff:
            rows.add(
                HandoffRequest,
                id=tid,
                ticket_id=tid,
                conversation_id=f"seed-conv-{tid}",
                language=lang,
                reason=subject,
                priority=_PRIORITY[severity],
                status=handoff,
                assigned_to="agent.li" if handoff == "assigned" else None,
                enqueued_at=created,
                assigned_at=updated if handoff == "assigned" else None,
                closed_at=None,
            )


def _seed_subscriptions(rows: _SeedRows) -> None:
    rows.add(
        BackInStockSubscription,
        id=1,
        variant_id=rows.by_sku["TRAIL-RUNNER-2-42-BLACK"]["id"],
        customer_id=rows.customers["alice@example.com"]["id"],
        contact="alice@example.com",
        created_at=rows.now,
        notified_at=None,
    )


def _reserve_stock_for_open_orders(rows: _SeedRows) -> None:
    """Reservations for orders not yet shipped, so stock numbers add up."""
    reserved: dict[tuple[int, int], int] = {}
    for o in rows.tables[Order]:
        if o["status"] in ("placed", "paid", "packed"):
            for it in rows.tables[OrderItem]:
                if it["order_id"] == o["id"]:
                    key = (it["variant_id"], it["warehouse_id"])
                    reserved[key] = reserved.get(key, 0) + it["quantity"]
    inv_by_key = {(r["variant_id"], r["warehouse_id"]): r for r in rows.tables[Inventory]}
    for (vid, wid), qty in reserved.items():
        row = inv_by_key.get((vid, wid))
        if row is None:
            row = rows.add(
                Inventory,
                id=rows.next_id("inventory"),
                variant_id=vid,
                warehouse_id=wid,
                on_hand=0,
                reserved=0,
                restock_date=None,
            )
            inv_by_key[(vid, wid)] = row
        row["on_hand"] = max(row["on_hand"], qty)
        row["reserved"] = qty
    variants = rows.tables[ProductVariant]
    for (vid, _), row in inv_by_key.items():
        if variants[vid - 1]["sku"] in OUT_OF_STOCK_SKUS:
            row["on_hand"] = row["reserved"]


def _write(engine: Engine, tables: dict[type, list[dict]]) -> None:
    """Replace every commerce table's rows with ``tables``, in one transaction."""
    with engine.begin() as conn:
        clear(conn)
        for table in Base.metadata.sorted_tables:
            model = next((m for m in tables if m.__table__ is table), None)
            if model is not None and tables[model]:
                conn.execute(insert(table), tables[model])
        _reset_sequences(conn)
