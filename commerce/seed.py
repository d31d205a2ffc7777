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
    STORE_CN,
    STORE_CURRENCIES,
    STORE_INTL,
    BackInStockSubscription,
    Base,
    Customer,
    HandoffRequest,
    Inventory,
    Order,
    OrderItem,
    OrderStatusEvent,
    Product,
    ProductAttribute,
    ProductVariant,
    Refund,
    RefundEvent,
    Return,
    ReturnItem,
    ReturnPolicy,
    Shipment,
    ShippingAddress,
    SizeGuide,
    SupportTicket,
    TrackingEvent,
    VariantPrice,
    Warehouse,
)
from commerce.policies import DEFAULT_POLICIES

RNG_SEED = 20240601
# The China store's prices are the international USD price times this, in CNY (the seeded
# orders were priced the same way, so order totals and today's price list agree).
CNY_PER_USD = 7
# Bigger sizes of jackets and dresses take more fabric: XL costs this much more (USD cents).
XL_SURCHARGE_CENTS = 500
XL_SURCHARGE_CATEGORIES = ("jackets", "dresses")

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
    ("DAY-BACKPACK", "bags", "Daypack 20L backpack", "20升双肩包", ONE, ("black", "grey"), 5900, "outdoor,travel", "backpack,daypack,rucksack,双肩包,背包", False),
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


@dataclass(frozen=True)
class ProductDetails:
    """What the shop writes about a product beyond its name: passages and attributes.

    ``passages_en`` / ``passages_zh`` are paragraph for paragraph the same text (each pair is
    one answerable passage); ``attributes`` maps a PRODUCT_ATTRIBUTES key to ``(en, zh)`` or,
    for yes/no attributes, ``(flag, en, zh)``.
    """

    passages_en: tuple[str, ...]
    passages_zh: tuple[str, ...]
    attributes: dict[str, tuple]
    rating: float | None
    reviews: int
    sales: int
    arrived_days_ago: int | None = None  # None: in the shop longer than the records go back


_CLOTHES_CARE = ("machine wash cold, tumble dry low", "冷水机洗，低温烘干")
_NO_WATER = (False, "no, it is not waterproof", "不防水")

# fmt: off
CATALOG_DETAILS: dict[str, ProductDetails] = {
    "TRAIL-RUNNER-2": ProductDetails(
        ("Our best-selling trail shoe, rebuilt for rocky and muddy paths with a deeper 5 mm lug outsole that grips on wet stone.",
         "The upper is a breathable engineered mesh with a toe bumper; it drains quickly after stream crossings but it is not waterproof, so feet get wet in deep puddles.",
         "A rock plate under the forefoot protects from sharp stones on long runs, and the cushioning suits half-marathon to ultra distances."),
        ("我们最畅销的越野跑鞋，为碎石和泥泞山路重新设计，5毫米深齿大底在湿滑岩石上也抓地牢靠。",
         "鞋面为透气工程网布并带防撞鞋头；涉水后排水很快，但鞋子本身不防水，踩进深水坑脚会湿。",
         "前掌内置防刺板，长距离奔跑时保护脚底不被尖石硌到，缓震适合半马到超马距离。"),
        {"material": ("engineered mesh upper, rubber lug outsole, rock plate", "工程网布鞋面，橡胶齿纹大底，防刺板"),
         "fit": ("runs small: order half a size up", "偏小，建议买大半码"),
         "waterproof": (False, "no — breathable mesh that drains fast, not waterproof", "不防水——透气网布，排水快"),
         "weight": ("about 290 g per shoe (size 42)", "单只约290克（42码）"),
         "care": ("hand wash with a soft brush, air dry away from heat", "软刷手洗，远离热源自然晾干"),
         "features": ("5 mm lugs, rock plate, toe bumper, gaiter hook", "5毫米齿纹、防刺板、防撞鞋头、绑腿扣")},
        4.6, 1284, 5120, 60),
    "ROAD-RUNNER": ProductDetails(
        ("A cushioned everyday trainer for pavement and treadmill runs, with a soft foam midsole that takes the sting out of long city miles.",
         "Its knit upper stretches around wide feet, and reflective heel details keep you visible on evening runs."),
        ("适合柏油路和跑步机的日常缓震跑鞋，柔软泡棉中底让城市长距离跑步更轻松。",
         "针织鞋面有弹性，适合脚型偏宽的人；后跟反光条让夜跑更安全。"),
        {"material": ("knit upper, foam midsole, rubber outsole", "针织鞋面，泡棉中底，橡胶大底"),
         "fit": ("true to size, roomy toe box", "正码，鞋头宽松"),
         "waterproof": _NO_WATER,
         "weight": ("about 250 g per shoe (size 42)", "单只约250克（42码）"),
         "care": ("hand wash, remove the insole to dry", "手洗，取出鞋垫晾干"),
         "features": ("reflective heel, removable insole", "后跟反光条，可拆卸鞋垫")},
        4.4, 812, 3310),
    "CITY-SNEAKER": ProductDetails(
        ("Clean white leather sneakers that go with jeans, chinos and dresses alike.",
         "The full-grain leather softens after a week of wear; a cushioned insole makes them comfortable for a day of walking around town."),
        ("百搭的真皮小白鞋，配牛仔裤、休闲裤或裙子都好看。",
         "头层牛皮穿一周左右会变软；缓震鞋垫让一整天逛街也舒适。"),
        {"material": ("full-grain leather upper, rubber cupsole", "头层牛皮鞋面，橡胶杯底"),
         "fit": ("runs large: order half a size down", "偏大，建议买小半码"),
         "waterproof": (False, "no — leather shrugs off a light splash but is not waterproof", "不防水——皮面可防少量溅水"),
         "care": ("wipe with a damp cloth, use leather cream monthly", "湿布擦拭，每月用皮革护理膏保养"),
         "weight": ("about 420 g per shoe", "单只约420克")},
        4.3, 530, 2760),
    "HIKING-BOOT": ProductDetails(
        ("Mid-cut leather hiking boots for day hikes and multi-day treks, with ankle support for uneven ground.",
         "A waterproof breathable membrane keeps feet dry through wet grass, snow and shallow streams, and the Vibram outsole grips on rock.",
         "Break them in with a few short walks before a long trek; the stiff sole is made for mountains rather than running."),
        ("中帮真皮登山靴，适合一日徒步和多日重装，脚踝支撑好，适合崎岖路面。",
         "防水透气内膜让双脚在湿草地、雪地和浅溪中保持干爽，Vibram大底在岩石上抓地力强。",
         "长途徒步前请先穿几次短途磨合；鞋底较硬，专为登山设计，不适合跑步。"),
        {"material": ("nubuck leather upper, waterproof membrane, Vibram rubber outsole", "磨砂牛皮鞋面，防水内膜，Vibram橡胶大底"),
         "fit": ("true to size; leave room for thick hiking socks", "正码，留出穿厚袜子的空间"),
         "waterproof": (True, "yes — waterproof breathable membrane with a gusseted tongue", "防水——防水透气内膜加防水鞋舌"),
         "weight": ("about 580 g per boot (size 42)", "单只约580克（42码）"),
         "care": ("brush off mud, air dry, re-wax the leather each season", "刷掉泥土后自然晾干，每季给皮面上蜡"),
         "features": ("ankle support, Vibram outsole, lace hooks", "脚踝支撑，Vibram大底，快速系带扣")},
        4.7, 640, 1980),
    "SLIDE-SANDAL": ProductDetails(
        ("Soft one-piece slides for the beach, the pool and the shower; they dry in minutes.",),
        ("适合海滩、泳池和浴室的一体成型软拖鞋，几分钟就能干。",),
        {"material": ("one-piece EVA foam", "一体成型EVA泡棉"),
         "fit": ("runs large: order one size down", "偏大，建议买小一码"),
         "waterproof": (True, "yes — all foam, fine to get wet", "防水——全泡棉材质，可沾水"),
         "weight": ("about 150 g per slide", "单只约150克"),
         "care": ("rinse with water", "清水冲洗即可")},
        4.1, 390, 2210),
    "BASIC-TEE": ProductDetails(
        ("Our everyday crew-neck tee in heavyweight 100% combed cotton that keeps its shape wash after wash.",
         "It is pre-shrunk, so it will not shrink more than about 3% in the wash; wear it alone or as a layer."),
        ("我们的日常圆领T恤，采用100%精梳重磅棉，多次洗涤后依然有型。",
         "面料经过预缩处理，洗后缩水不超过约3%；可单穿也可打底。"),
        {"material": ("100% combed cotton, 200 g/m²", "100%精梳棉，200克/平方米"),
         "fit": ("true to size, regular fit", "正码，常规版型"),
         "care": _CLOTHES_CARE,
         "waterproof": _NO_WATER},
        4.5, 2210, 8870),
    "DRY-FIT-TEE": ProductDetails(
        ("A light running tee that wicks sweat away and dries in about twenty minutes, made for hot-weather training.",
         "Flat seams prevent chafing on long runs and a reflective logo helps at dusk."),
        ("轻薄跑步T恤，快速排汗，约二十分钟即可干透，专为炎热天气训练设计。",
         "平缝线设计防止长跑摩擦，反光标志让黄昏跑步更安全。"),
        {"material": ("recycled polyester with mesh panels", "再生聚酯纤维，网眼拼接"),
         "fit": ("slim fit: size up for a relaxed fit", "修身版型，想宽松请买大一码"),
         "care": ("machine wash cold, no fabric softener, hang dry", "冷水机洗，勿用柔顺剂，挂干"),
         "features": ("quick-dry, flat seams, reflective logo", "速干，平缝线，反光标志"),
         "weight": ("about 110 g (size M)", "约110克（M码）")},
        4.4, 760, 3020),
    "GRAPHIC-TEE": ProductDetails(
        ("A soft cotton tee with our hand-drawn panda print, screen printed with water-based inks that do not crack.",),
        ("柔软纯棉T恤，印有我们手绘的熊猫图案，采用水性油墨丝网印刷，不易开裂。",),
        {"material": ("100% cotton, water-based print", "100%纯棉，水性印花"),
         "fit": ("relaxed fit, true to size", "宽松版型，正码"),
         "care": ("wash inside out in cold water, do not iron the print", "翻面冷水洗，勿熨烫印花")},
        4.6, 340, 1450, 12),
    "POLO-SHIRT": ProductDetails(
        ("A classic piqué polo with a ribbed collar that stays crisp, smart enough for the office and relaxed enough for weekends.",),
        ("经典珠地POLO衫，罗纹领挺括不变形，上班得体，周末休闲。",),
        {"material": ("cotton piqué", "珠地棉"),
         "fit": ("true to size, regular fit", "正码，常规版型"),
         "care": _CLOTHES_CARE},
        4.3, 280, 1320),
    "LONG-SLEEVE": ProductDetails(
        ("A long-sleeve cotton tee for cool mornings and for layering under a fleece or jacket.",),
        ("长袖纯棉T恤，适合微凉的早晨，也可在抓绒或外套里打底。",),
        {"material": ("100% cotton jersey", "100%纯棉平纹针织"),
         "fit": ("true to size", "正码"),
         "care": _CLOTHES_CARE},
        4.2, 150, 740),
    "RAIN-JACKET": ProductDetails(
        ("A fully waterproof rain jacket with taped seams and a 10,000 mm rating, for city downpours and hiking in bad weather alike.",
         "The adjustable hood has a small brim that keeps rain off your glasses, and pit zips let heat out when you walk uphill.",
         "It packs into its own chest pocket, so it fits in a daypack or a bike bag for sudden showers."),
        ("全防水风雨夹克，全压胶接缝，防水指数10000毫米，城市暴雨和恶劣天气徒步都适用。",
         "可调节帽兜带小帽檐，挡住雨水不打湿眼镜；腋下拉链在爬坡时帮助散热。",
         "可收纳进自身胸前口袋，放进双肩包或骑行包以备突然下雨。"),
        {"material": ("2.5-layer nylon with a waterproof breathable coating", "2.5层尼龙，防水透气涂层"),
         "fit": ("roomy: true to size with room for a fleece underneath", "宽松，正码即可在里面穿抓绒"),
         "waterproof": (True, "yes — 10,000 mm waterproof with fully taped seams", "防水——防水指数10000毫米，全压胶接缝"),
         "hood": (True, "yes — adjustable hood with a brim", "有——可调节帽兜，带帽檐"),
         "pockets": (True, "two zipped hand pockets and a chest pocket it packs into", "两个拉链手袋和一个可收纳的胸袋"),
         "weight": ("about 330 g (size M)", "约330克（M码）"),
         "care": ("machine wash cold, no softener; tumble dry low to refresh the water repellency", "冷水机洗，勿用柔顺剂；低温烘干可恢复防泼水性能"),
         "features": ("taped seams, pit zips, packable", "压胶接缝，腋下拉链，可收纳")},
        4.6, 905, 3880, 30),
    "DOWN-JACKET": ProductDetails(
        ("A light down jacket filled with 90/10 duck down that keeps you warm down to about -5 °C and packs into a small pouch.",
         "The shell is water-repellent against light snow and drizzle, but it is not a rain jacket; in heavy rain wear a shell on top.",
         "Down clumps when wet: tumble dry low with two clean tennis balls to restore the loft."),
        ("轻薄羽绒服，填充90/10鸭绒，约零下5度也能保暖，可收进小收纳袋。",
         "面料防泼水，可应对小雪和毛毛雨，但它不是雨衣；大雨时请在外面再穿一件冲锋衣。",
         "羽绒受潮会结团：低温烘干并放入两个干净的网球即可恢复蓬松。"),
        {"material": ("nylon shell, 90/10 duck down fill", "尼龙面料，90/10鸭绒填充"),
         "fit": ("slim: size up if you wear thick layers underneath", "修身，里面穿得厚建议买大一码"),
         "waterproof": (False, "no — water-repellent against drizzle and light snow only", "不防水——仅防泼水，可应对毛毛雨和小雪"),
         "hood": (False, "no hood", "没有帽兜"),
         "pockets": (True, "two zipped hand pockets and an inner pocket", "两个拉链手袋和一个内袋"),
         "weight": ("about 280 g (size M)", "约280克（M码）"),
         "care": ("machine wash on a gentle cycle with down detergent, tumble dry low", "使用羽绒洗涤剂轻柔机洗，低温烘干"),
         "features": ("packable into its pouch", "可收纳进收纳袋")},
        4.5, 720, 2650),
    "DENIM-JACKET": ProductDetails(
        ("A classic trucker-style denim jacket in rigid cotton denim that fades with wear.",
         "The indigo dye can rub off on light clothes in the first few washes; wash it alone at first."),
        ("经典款牛仔夹克，硬挺纯棉牛仔布，越穿越有褪色效果。",
         "靛蓝染料在头几次洗涤时可能染到浅色衣物，请先单独洗。"),
        {"material": ("100% cotton denim, 13 oz", "100%纯棉牛仔布，13盎司"),
         "fit": ("runs small in the shoulders: size up if between sizes", "肩部偏小，介于两个尺码之间请选大码"),
         "waterproof": _NO_WATER,
         "hood": (False, "no hood", "没有帽兜"),
         "pockets": (True, "two chest pockets and two hand pockets", "两个胸袋和两个侧袋"),
         "care": ("wash inside out in cold water, alone for the first washes", "翻面冷水洗，前几次单独洗")},
        4.2, 260, 980),
    "FLEECE": ProductDetails(
        ("A warm polar fleece jacket for camping evenings and as a mid-layer under a rain jacket.",
         "It is breathable and quick to dry but wind goes through it, so pair it with a shell on windy ridges."),
        ("保暖的摇粒绒外套，适合露营夜晚，也可作为冲锋衣里的中间层。",
         "透气速干，但不防风，在大风山脊上请搭配外壳。"),
        {"material": ("recycled polyester fleece, 300 g/m²", "再生聚酯摇粒绒，300克/平方米"),
         "fit": ("true to size", "正码"),
         "waterproof": _NO_WATER,
         "hood": (False, "no hood; stand-up collar", "没有帽兜，立领设计"),
         "pockets": (True, "two zipped hand pockets", "两个拉链侧袋"),
         "care": _CLOTHES_CARE,
         "weight": ("about 420 g (size M)", "约420克（M码）")},
        4.4, 410, 1760),
    "SAMPLE-JACKET": ProductDetails(
        ("A bomber jacket from our sample sale: showroom pieces in perfect condition, sold as final sale and not returnable.",),
        ("来自样品特卖的飞行夹克：展厅样品，品相完好，属于清仓最终销售，不可退货。",),
        {"material": ("nylon shell, polyester lining", "尼龙面料，聚酯内衬"),
         "fit": ("true to size", "正码"),
         "hood": (False, "no hood", "没有帽兜"),
         "care": ("machine wash cold", "冷水机洗")},
        4.0, 35, 120, 5),
    "SUMMER-DRESS": ProductDetails(
        ("An airy linen dress for hot days and beach holidays, with a relaxed A-line shape and hidden side pockets.",
         "Linen creases easily; that is part of its charm, but a quick steam makes it crisp again."),
        ("清爽透气的亚麻连衣裙，适合炎热天气和海边度假，A字宽松版型，两侧有隐藏口袋。",
         "亚麻容易起皱，这是它的特色；用挂烫机熨一下就能恢复平整。"),
        {"material": ("100% linen", "100%亚麻"),
         "fit": ("relaxed A-line, true to size", "宽松A字版型，正码"),
         "pockets": (True, "two hidden side pockets", "两侧各有一个隐藏口袋"),
         "care": ("hand wash or gentle machine wash cold, hang dry", "手洗或冷水轻柔机洗，挂干")},
        4.5, 590, 2140, 20),
    "WRAP-DRESS": ProductDetails(
        ("A flattering wrap dress in a fluid jersey that drapes well, for the office or dinner.",),
        ("修身显瘦的裹身裙，垂坠感好的针织面料，适合上班或晚餐。",),
        {"material": ("viscose jersey with elastane", "粘胶纤维针织，含氨纶"),
         "fit": ("true to size; the wrap tie adjusts the waist", "正码，系带可调节腰围"),
         "care": ("gentle machine wash cold, dry flat", "冷水轻柔机洗，平铺晾干")},
        4.3, 240, 860),
    "KNIT-DRESS": ProductDetails(
        ("A cosy midi dress in a soft wool-blend knit for autumn and winter, warm enough to wear with just tights.",),
        ("柔软羊毛混纺针织中长裙，适合秋冬，搭配打底袜就足够保暖。",),
        {"material": ("50% wool, 50% acrylic", "50%羊毛，50%腈纶"),
         "fit": ("runs large: size down for a close fit", "偏大，想贴身请买小一码"),
         "care": ("hand wash cold and dry flat; do not tumble dry", "冷水手洗，平铺晾干，勿烘干")},
        4.4, 180, 640, 8),
    "SHIRT-DRESS": ProductDetails(
        ("A crisp cotton poplin shirt dress with a removable belt, easy to dress up or down.",),
        ("挺括纯棉府绸衬衫裙，配可拆卸腰带，正式休闲皆宜。",),
        {"material": ("100% cotton poplin", "100%纯棉府绸"),
         "fit": ("true to size", "正码"),
         "pockets": (True, "two side pockets", "两个侧袋"),
         "care": _CLOTHES_CARE},
        4.2, 120, 510),
    "PARTY-DRESS": ProductDetails(
        ("A sequinned party dress from our clearance, final sale: it cannot be returned or exchanged.",),
        ("清仓亮片派对裙，属于最终销售，不可退换。",),
        {"material": ("polyester mesh with sequins", "聚酯网纱缀亮片"),
         "fit": ("runs small: size up", "偏小，建议买大一码"),
         "care": ("dry clean only", "仅限干洗")},
        3.9, 60, 210),
    "DAY-BACKPACK": ProductDetails(
        ("A 20-litre daypack for commuting and day hikes, with a padded sleeve that fits a 15-inch laptop.",
         "The fabric is water-resistant against showers, and a rain cover in the bottom pocket makes it fully waterproof in a downpour.",
         "A ventilated back panel and chest strap keep it comfortable on long walks."),
        ("20升双肩包，通勤和一日徒步都合适，带软垫电脑隔层，可放15英寸笔记本电脑。",
         "面料防泼水，可应对阵雨；底部口袋里的防雨罩能在大雨中做到完全防水。",
         "透气背板和胸带让长时间背负也舒适。"),
        {"material": ("recycled nylon ripstop with a water-resistant coating", "再生尼龙格子布，防泼水涂层"),
         "waterproof": (True, "yes with the included rain cover; the pack itself is water-resistant", "配合附带的防雨罩可完全防水，包身本身防泼水"),
         "pockets": (True, "laptop sleeve, front pocket, two bottle pockets", "电脑隔层、前袋、两个水壶袋"),
         "weight": ("about 650 g", "约650克"),
         "care": ("hand wash, air dry", "手洗，自然晾干"),
         "features": ("15-inch laptop sleeve, rain cover, chest strap", "15英寸电脑隔层，防雨罩，胸带")},
        4.6, 870, 3540),
    "TOTE-BAG": ProductDetails(
        ("A sturdy canvas tote for groceries, books or the beach, with an inner zip pocket for keys.",),
        ("结实的帆布托特包，可装日用品、书本或去海边，内有放钥匙的拉链小袋。",),
        {"material": ("heavy cotton canvas", "厚纯棉帆布"),
         "waterproof": _NO_WATER,
         "pockets": (True, "one inner zip pocket", "一个内置拉链袋"),
         "care": ("spot clean or hand wash cold", "局部清洁或冷水手洗")},
        4.3, 310, 1890),
    "CROSSBODY": ProductDetails(
        ("A compact crossbody bag in vegetable-tanned leather that fits a phone, wallet and keys, with an adjustable strap.",),
        ("小巧的植鞣真皮斜挎包，可放手机、钱包和钥匙，肩带可调节。",),
        {"material": ("vegetable-tanned leather", "植鞣牛皮"),
         "waterproof": _NO_WATER,
         "pockets": (True, "one main compartment and a back slip pocket", "一个主袋和一个背面插袋"),
         "care": ("wipe clean, condition the leather twice a year", "擦拭清洁，每年两次皮革护理")},
        4.5, 200, 760),
    "DUFFEL": ProductDetails(
        ("A 45-litre travel duffel that meets most airlines' cabin size limits, with a separate shoe compartment.",),
        ("45升旅行包，符合大多数航空公司登机尺寸，带独立鞋袋。",),
        {"material": ("coated polyester", "涂层聚酯纤维"),
         "waterproof": (False, "no — water-resistant coating only", "不防水——仅有防泼水涂层"),
         "pockets": (True, "shoe compartment and two outer pockets", "鞋袋和两个外袋"),
         "weight": ("about 900 g", "约900克")},
        4.2, 140, 520),
    "WAIST-PACK": ProductDetails(
        ("A slim running waist pack that holds a phone and keys without bouncing.",),
        ("轻薄跑步腰包，放手机和钥匙，跑步时不晃动。",),
        {"material": ("stretch lycra", "弹力莱卡"),
         "waterproof": (False, "no — sweat-resistant only", "不防水——仅防汗"),
         "features": ("bounce-free fit, reflective strip", "防晃动贴合，反光条")},
        4.2, 330, 2410),
    "WOOL-BEANIE": ProductDetails(
        ("A ribbed beanie in soft merino wool that keeps you warm without itching.",),
        ("柔软美利奴羊毛罗纹毛线帽，保暖不扎人。",),
        {"material": ("100% merino wool", "100%美利奴羊毛"),
         "care": ("hand wash cold, dry flat", "冷水手洗，平铺晾干")},
        4.5, 420, 2080),
    "CAP": ProductDetails(
        ("A six-panel cotton baseball cap with an adjustable strap at the back.",),
        ("六片式纯棉棒球帽，后部可调节。",),
        {"material": ("100% cotton twill", "100%纯棉斜纹布"),
         "fit": ("one size with an adjustable strap (54-60 cm)", "均码，可调节（54-60厘米）")},
        4.1, 260, 1930),
    "RUN-SOCKS": ProductDetails(
        ("Three pairs of cushioned running socks with arch support and a seamless toe to prevent blisters.",),
        ("三双装缓震跑步袜，足弓支撑，无缝袜头防止磨出水泡。",),
        {"material": ("cotton-polyester blend", "棉涤混纺"),
         "fit": ("S fits shoe sizes 36-39, M 40-42, L 43-45", "S码适合36-39码鞋，M码40-42，L码43-45"),
         "care": _CLOTHES_CARE},
        4.4, 610, 4350),
    "SUNGLASSES": ProductDetails(
        ("Polarised sunglasses that cut glare from water and snow, with UV400 protection.",),
        ("偏光太阳镜，减少水面和雪地反光，UV400防紫外线。",),
        {"material": ("TR90 frame, polarised lenses", "TR90镜框，偏光镜片"),
         "features": ("UV400, polarised, comes with a hard case", "UV400防护，偏光，附硬壳眼镜盒")},
        4.3, 190, 1240),
    "LEATHER-BELT": ProductDetails(
        ("A full-grain leather belt with a brushed steel buckle that ages well.",),
        ("头层牛皮皮带，拉丝钢扣，越用越有质感。",),
        {"material": ("full-grain leather, steel buckle", "头层牛皮，钢扣"),
         "fit": ("S fits waist 70-80 cm, M 80-90 cm, L 90-100 cm", "S码适合腰围70-80厘米，M码80-90，L码90-100")},
        4.4, 150, 690),
    "SCARF": ProductDetails(
        ("A soft cashmere scarf, warm and light, in a generous 180 x 30 cm.",),
        ("柔软羊绒围巾，轻盈保暖，尺寸180 x 30厘米。",),
        {"material": ("100% cashmere", "100%羊绒"),
         "care": ("hand wash cold with wool detergent or dry clean", "用羊毛洗涤剂冷水手洗或干洗")},
        4.7, 230, 910, 40),
    "EARBUDS-PRO": ProductDetails(
        ("Kefu Buds Pro wireless earbuds with active noise cancelling for commutes and flights.",
         "They are sweat- and splash-proof (IPX4), so they are fine for running in the rain, but not for swimming.",
         "Battery: 6 hours per charge with noise cancelling on, 24 hours with the case; ten minutes of charging gives an hour of music."),
        ("Kefu Buds Pro 无线耳机，带主动降噪，适合通勤和坐飞机。",
         "防汗防溅水（IPX4），雨中跑步没问题，但不能游泳时使用。",
         "续航：开启降噪单次6小时，配合充电盒共24小时；快充十分钟可听一小时。"),
        {"waterproof": (False, "splash-proof (IPX4): fine in rain and sweat, not for swimming", "防溅水（IPX4）：可防雨防汗，不能游泳"),
         "battery": ("6 hours with noise cancelling, 24 hours with the case", "降噪开启6小时，配合充电盒24小时"),
         "warranty": ("1-year warranty", "保修一年"),
         "weight": ("5 g per earbud", "单只5克"),
         "features": ("active noise cancelling, transparency mode, wireless charging case", "主动降噪，通透模式，无线充电盒")},
        4.5, 1530, 4670, 45),
    "SPORT-WATCH": ProductDetails(
        ("A GPS sport watch that tracks runs, rides and swims, with heart rate and sleep tracking.",
         "Water-resistant to 50 metres, so you can swim laps in a pool; the battery lasts 10 days, or 20 hours with GPS on."),
        ("GPS运动手表，记录跑步、骑行和游泳，带心率和睡眠监测。",
         "50米防水，可以在泳池游泳；续航10天，开启GPS为20小时。"),
        {"waterproof": (True, "yes — water-resistant to 50 m (5 ATM), fine for swimming", "防水——50米防水（5ATM），可游泳"),
         "battery": ("10 days, 20 hours with GPS", "10天，GPS模式20小时"),
         "warranty": ("2-year warranty", "保修两年"),
         "weight": ("42 g", "42克"),
         "features": ("GPS, heart rate, sleep tracking, swim tracking", "GPS，心率，睡眠监测，游泳记录")},
        4.6, 480, 1370, 15),
    "POWER-BANK": ProductDetails(
        ("A pocket 10,000 mAh power bank that charges a phone about twice, and it is allowed in airline cabin baggage.",),
        ("口袋大小的10000毫安充电宝，可给手机充约两次，可带上飞机随身行李。",),
        {"battery": ("10,000 mAh, about two phone charges; recharges in 3 hours", "10000毫安，约可充手机两次，3小时充满"),
         "warranty": ("1-year warranty", "保修一年"),
         "weight": ("about 180 g", "约180克"),
         "features": ("USB-C in/out, 20 W fast charging", "USB-C输入输出，20瓦快充")},
        4.3, 890, 5230),
    "SPEAKER": ProductDetails(
        ("A mini Bluetooth speaker with surprisingly full sound for picnics and camping.",
         "It is waterproof (IPX7): it survives a drop in the pool and plays for 12 hours."),
        ("迷你蓝牙音箱，音质出乎意料地饱满，适合野餐和露营。",
         "IPX7防水：掉进泳池也没事，可连续播放12小时。"),
        {"waterproof": (True, "yes — IPX7, survives a dunk in water", "防水——IPX7，可短时浸水"),
         "battery": ("12 hours", "12小时"),
         "warranty": ("1-year warranty", "保修一年"),
         "weight": ("about 260 g", "约260克")},
        4.4, 370, 1610),
    "BOXER-3": ProductDetails(
        ("Three soft cotton boxer briefs with a comfortable waistband that does not roll.",),
        ("三条装柔软纯棉平角内裤，腰头舒适不卷边。",),
        {"material": ("95% cotton, 5% elastane", "95%棉，5%氨纶"),
         "fit": ("true to size", "正码"),
         "care": _CLOTHES_CARE},
        4.3, 700, 3900),
    "SPORT-BRA": ProductDetails(
        ("A medium-support sports bra for running and gym training, with removable pads.",),
        ("中强度支撑运动内衣，适合跑步和健身，胸垫可拆卸。",),
        {"material": ("nylon with elastane", "锦纶含氨纶"),
         "fit": ("runs small: size up if between sizes", "偏小，介于两个尺码之间请选大码"),
         "care": ("machine wash cold in a laundry bag, hang dry", "装洗衣袋冷水机洗，挂干")},
        4.2, 260, 1180),
    "GIFT-CARD-50": ProductDetails(
        ("A gift card worth 50 in the store's currency, delivered by email and valid for three years on anything in the shop.",),
        ("面值50（按所在站点币种）的礼品卡，通过邮件发送，三年内可用于购买店内任何商品。",),
        {},
        None, 0, 830),
    "YOGA-PANTS": ProductDetails(
        ("High-waisted yoga leggings in a squat-proof stretch fabric, with a hidden waistband pocket for a key.",),
        ("高腰瑜伽裤，弹力面料深蹲不透，腰头有放钥匙的隐藏小袋。",),
        {"material": ("nylon with 25% elastane", "锦纶含25%氨纶"),
         "fit": ("true to size, compressive", "正码，有压缩感"),
         "pockets": (True, "one hidden waistband pocket", "腰头一个隐藏口袋"),
         "care": ("machine wash cold, no softener", "冷水机洗，勿用柔顺剂")},
        4.5, 650, 2980, 25),
    "TRAIL-RUNNER-1": ProductDetails(
        ("Last season's Trail Runner 1, now reduced and sold as final sale: not returnable.",
         "Compared with the Trail Runner 2 it has shallower 4 mm lugs and no rock plate, which makes it lighter and better on dry, packed trails."),
        ("上一季的越野跑鞋1代，现已降价，属于最终销售，不可退货。",
         "与2代相比，它的鞋底齿纹较浅（4毫米）且没有防刺板，因此更轻，更适合干燥平整的山路。"),
        {"material": ("mesh upper, rubber lug outsole", "网布鞋面，橡胶齿纹大底"),
         "fit": ("true to size", "正码"),
         "waterproof": (False, "no — mesh upper, not waterproof", "不防水——网布鞋面"),
         "weight": ("about 270 g per shoe (size 42)", "单只约270克（42码）"),
         "features": ("4 mm lugs, toe bumper", "4毫米齿纹，防撞鞋头")},
        4.2, 940, 3600),
}

# Category size guides: (size, measurements en, measurements zh), in the order shown.
SIZE_GUIDES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "shoes": tuple((s, f"foot length {cm} cm", f"脚长{cm}厘米") for s, cm in
                   (("39", "24.5"), ("40", "25"), ("41", "25.5"), ("42", "26.5"), ("43", "27"), ("44", "27.5"))),
    "t-shirts": (("S", "chest 88-94 cm", "胸围88-94厘米"), ("M", "chest 94-100 cm", "胸围94-100厘米"),
                 ("L", "chest 100-106 cm", "胸围100-106厘米"), ("XL", "chest 106-112 cm", "胸围106-112厘米")),
    "jackets": (("S", "chest 90-96 cm, sleeve 62 cm", "胸围90-96厘米，袖长62厘米"),
                ("M", "chest 96-102 cm, sleeve 64 cm", "胸围96-102厘米，袖长64厘米"),
                ("L", "chest 102-108 cm, sleeve 66 cm", "胸围102-108厘米，袖长66厘米"),
                ("XL", "chest 108-114 cm, sleeve 68 cm", "胸围108-114厘米，袖长68厘米")),
    "dresses": (("S", "bust 82-86 cm, waist 64-68 cm", "胸围82-86厘米，腰围64-68厘米"),
                ("M", "bust 86-90 cm, waist 68-72 cm", "胸围86-90厘米，腰围68-72厘米"),
                ("L", "bust 90-96 cm, waist 72-78 cm", "胸围90-96厘米，腰围72-78厘米"),
                ("XL", "bust 96-102 cm, waist 78-84 cm", "胸围96-102厘米，腰围78-84厘米")),
    "underwear": (("S", "waist 68-74 cm", "腰围68-74厘米"), ("M", "waist 74-80 cm", "腰围74-80厘米"),
                  ("L", "waist 80-88 cm", "腰围80-88厘米"), ("XL", "waist 88-96 cm", "腰围88-96厘米")),
}
# fmt: on


def sku_for(code: str, size: str | None, colour: str | None) -> str:
    """SKU = product code + size + colour, upper-case (``TRAIL-RUNNER-2-42-BLACK``)."""
    return "-".join(x for x in (code, size, colour.upper() if colour else None) if x)


def build_catalog() -> tuple[list[dict], list[dict]]:
    """Product and variant rows (pure, deterministic); variants carry their INTL price."""
    products, variants = [], []
    vid = 0
    for pid, (code, cat, en, zh, sizes, colours, price, tags, syn, final) in enumerate(PRODUCTS, 1):
        details = CATALOG_DETAILS.get(code)
        products.append(
            dict(
                id=pid,
                code=code,
                category=cat,
                name_en=en,
                name_zh=zh,
                description_en="\n\n".join(details.passages_en) if details else f"{en}.",
                description_zh="\n\n".join(details.passages_zh) if details else f"{zh}。",
                synonyms=syn,
                tags=tags,
                rating=details.rating if details else None,
                review_count=details.reviews if details else 0,
                sales_count=details.sales if details else 0,
                arrived_on=None,  # set relative to the seeding day in _seed_catalog
            )
        )
        for colour in colours:
            for size in sizes:
                vid += 1
                surcharge = (
                    XL_SURCHARGE_CENTS if size == "XL" and cat in XL_SURCHARGE_CATEGORIES else 0
                )
                variants.append(
                    dict(
                        id=vid,
                        product_id=pid,
                        sku=sku_for(code, size, colour),
                        size=size,
                        colour=colour,
                        price_cents=price + surcharge,
                        currency="USD",
                        final_sale=final,
                    )
                )
    return products, variants


def build_price_list(variants: list[dict]) -> list[dict]:
    """One price per variant and store: USD in the INTL store, CNY in the CN store."""
    prices = []
    for v in variants:
        for store, factor in ((STORE_INTL, 1), (STORE_CN, CNY_PER_USD)):
            prices.append(
                dict(
                    id=len(prices) + 1,
                    variant_id=v["id"],
                    store=store,
                    price_cents=v["price_cents"] * factor,
                    currency=STORE_CURRENCIES[store],
                )
            )
    return prices


def build_attributes() -> list[dict]:
    """Attribute rows of every product with catalog details (keys: PRODUCT_ATTRIBUTES)."""
    ids = {row[0]: pid for pid, row in enumerate(PRODUCTS, 1)}
    rows = []
    for code, details in CATALOG_DETAILS.items():
        for key, value in details.attributes.items():
            flag, en, zh = value if len(value) == 3 else (None, *value)
            rows.append(
                dict(
                    id=len(rows) + 1,
                    product_id=ids[code],
                    key=key,
                    flag=flag,
                    value_en=en,
                    value_zh=zh,
                )
            )
    return rows


def build_size_guides() -> list[dict]:
    """The size guide rows of every category that has one."""
    rows = []
    for category, sizes in SIZE_GUIDES.items():
        for position, (size, en, zh) in enumerate(sizes):
            rows.append(
                dict(
                    id=len(rows) + 1,
                    category=category,
                    size=size,
                    position=position,
                    measurements_en=en,
                    measurements_zh=zh,
                )
            )
    return rows


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
    for product in products:
        details = CATALOG_DETAILS.get(product["code"])
        if details is not None and details.arrived_days_ago is not None:
            product["arrived_on"] = rows.today - timedelta(days=details.arrived_days_ago)
    rows.tables[Product] = products
    rows.tables[ProductVariant] = variants
    rows.tables[VariantPrice] = build_price_list(variants)
    rows.tables[ProductAttribute] = build_attributes()
    rows.tables[SizeGuide] = build_size_guides()
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
