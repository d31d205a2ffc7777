"""commerce.policies: return rules, what a return or an exchange takes, complaint triage."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from commerce.dto import ItemEligibility, VariantStock
from commerce.errors import ConfigurationError
from commerce.models import TICKET_CATEGORIES
from commerce.policies import (
    COMPLAINT_KEYWORDS_PATH,
    DEFAULT_COMPLAINT_CATEGORY,
    DEFAULT_POLICIES,
    FALLBACK_POLICY,
    CategoryKeywords,
    complaint_category,
    complaint_severity,
    item_return_block,
    load_complaint_keywords,
    order_return_block,
    pick_policy,
    pick_replacement,
    return_deadline,
    returnable_items,
)
from contract import STRONG_FRUSTRATION, URGENT_FRUSTRATION

DELIVERED = datetime(2026, 3, 1, 15, 30)

# ---- return policies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "region, category, window, returnable",
    [
        ("CN", "shoes", 7, True),
        ("US", "electronics", 15, True),
        ("US", "shoes", 30, True),
        ("INTL", "underwear", 0, False),
        ("MARS", "shoes", 30, True),  # no rule for the region: the documented fallback
    ],
)
def test_the_most_specific_policy_wins(region, category, window, returnable):
    rule = pick_policy(DEFAULT_POLICIES, region, category)
    assert (rule.window_days, rule.returnable) == (window, returnable)


def test_a_region_without_rules_gets_the_fallback():
    assert pick_policy(DEFAULT_POLICIES, "MARS", "shoes") is FALLBACK_POLICY


def test_the_deadline_counts_from_the_delivery_day():
    assert return_deadline(DELIVERED, 7) == date(2026, 3, 8)
    assert return_deadline(date(2026, 3, 1), 0) == date(2026, 3, 1)


@pytest.mark.parametrize(
    "status, delivered_at, reason",
    [
        ("cancelled", None, "order_cancelled"),
        ("returned", DELIVERED, "already_returned"),
        ("shipped", None, "not_delivered"),
        ("delivered", None, "not_delivered"),
        ("delivered", DELIVERED, None),
    ],
)
def test_order_level_blocks(status, delivered_at, reason):
    assert order_return_block(status, delivered_at) == reason


@pytest.mark.parametrize(
    "final_sale, category, left, today, reason",
    [
        (True, "shoes", 1, date(2026, 3, 2), "final_sale"),
        (False, "underwear", 1, date(2026, 3, 2), "non_returnable_category"),
        (False, "shoes", 0, date(2026, 3, 2), "already_returned"),
        (False, "shoes", 1, date(2026, 4, 1), "window_expired"),
        (False, "shoes", 1, date(2026, 3, 31), None),
    ],
)
def test_item_level_blocks_most_permanent_first(final_sale, category, left, today, reason):
    policy = pick_policy(DEFAULT_POLICIES, "US", category)
    block = item_return_block(
        policy=policy,
        final_sale=final_sale,
        delivered_at=DELIVERED,
        today=today,
        returnable_quantity=left,
    )
    assert block == reason


# ---- what a return or an exchange takes ----------------------------------------------------------


def item(sku: str, name_en: str, name_zh: str, *, left: int = 1, eligible: bool = True):
    return ItemEligibility(
        order_item_id=1,
        sku=sku,
        name_en=name_en,
        name_zh=name_zh,
        quantity=max(left, 1),
        returnable_quantity=left,
        eligible=eligible,
        reason=None if eligible else "final_sale",
    )


ITEMS = (
    item("TR2-41-WHI", "Trail Runner 2", "越野跑鞋 2代"),
    item("TEE-M-WHI", "Basic tee", "基础T恤", left=2),
    item("RJ-M-NAV", "Rain jacket", "雨衣夹克", eligible=False, left=0),
    item("BOX-M-BLA", "Boxer 3-pack", "平角内裤三条装", left=0),
)


@pytest.mark.parametrize(
    "product, skus",
    [
        (None, ["TR2-41-WHI", "TEE-M-WHI"]),
        ("basic TEE", ["TEE-M-WHI"]),
        ("越野跑鞋 2代", ["TR2-41-WHI"]),
        ("tr2-41-whi", ["TR2-41-WHI"]),
        ("Rain jacket", ["TR2-41-WHI", "TEE-M-WHI"]),  # not returnable: everything eligible
        ("socks", ["TR2-41-WHI", "TEE-M-WHI"]),  # not in the order: everything eligible
    ],
)
def test_a_return_takes_the_named_product_or_every_eligible_item(product, skus):
    assert [i.sku for i in returnable_items(ITEMS, product)] == skus


def variant(sku: str, colour: str | None, available: int) -> VariantStock:
    return VariantStock(sku, "42", colour, None, 12000, "USD", available, None, ())


SIZE_42 = (variant("TR2-42-BLA", "black", 0), variant("TR2-42-WHI", "white", 3))


def test_the_replacement_keeps_the_colour_when_it_is_in_stock():
    chosen = pick_replacement(
        SIZE_42 + (variant("TR2-42-RED", "red", 9),),
        "TR2-41-WHI",
        returned_colour="white",
        colour_named=False,
    )
    assert chosen.sku == "TR2-42-WHI"


def test_another_colour_when_the_same_is_sold_out():
    chosen = pick_replacement(SIZE_42, "TR2-41-BLA", returned_colour="black", colour_named=False)
    assert chosen.sku == "TR2-42-WHI"


def test_a_named_colour_sold_out_has_no_replacement():
    only_black = SIZE_42[:1]
    assert (
        pick_replacement(only_black, "TR2-41-WHI", returned_colour="white", colour_named=True)
        is None
    )


def test_the_returned_variant_is_never_its_own_replacement():
    same = (variant("TR2-42-WHI", "white", 3),)
    assert pick_replacement(same, "TR2-42-WHI", returned_colour="white", colour_named=False) is None


# ---- complaint triage --------------------------------------------------------------------------


def test_the_designers_keyword_file_loads_with_known_categories():
    rules = load_complaint_keywords(COMPLAINT_KEYWORDS_PATH)
    assert rules and all(r.category in TICKET_CATEGORIES for r in rules)
    assert all(r.keywords for r in rules)
    assert DEFAULT_COMPLAINT_CATEGORY in TICKET_CATEGORIES


@pytest.mark.parametrize(
    "text, category",
    [
        ("I was charged twice", "refund"),
        ("快递太慢了", "delivery"),
        ("meh", "complaint"),
        ("The card PAYMENT failed", "payment"),
        ("my parcel arrived damaged", "delivery"),  # the first category that matches wins
        ("鞋子质量太差", "product"),
        ("", "complaint"),
    ],
)
def test_complaint_categories_from_the_words(text, category):
    assert complaint_category(text) == category


def test_categories_can_come_from_other_rules():
    rules = (CategoryKeywords("account", ("password",)),)
    assert complaint_category("forgot my PASSWORD", rules) == "account"
    assert complaint_category("refund", rules) == DEFAULT_COMPLAINT_CATEGORY


@pytest.mark.parametrize(
    "text, message",
    [
        ("categories:\n  - category: shipping\n    keywords: [late]\n", "unknown category"),
        ("categories:\n  - category: refund\n    keywords: []\n", "needs a list of words"),
        ("categories: []\n", "non-empty 'categories'"),
        ("categories: [\n", "cannot read"),
    ],
)
def test_a_broken_keyword_file_says_what_to_fix(tmp_path, text, message):
    path = tmp_path / "complaint_keywords.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        load_complaint_keywords(path)


def test_a_missing_keyword_file_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_complaint_keywords(tmp_path / "nowhere.yml")


@pytest.mark.parametrize(
    "frustration, repeated, severity",
    [
        (0.0, False, "normal"),
        (STRONG_FRUSTRATION - 0.01, False, "normal"),
        (STRONG_FRUSTRATION, False, "high"),
        (0.1, True, "high"),
        (URGENT_FRUSTRATION - 0.01, True, "high"),
        (URGENT_FRUSTRATION, True, "urgent"),
        (0.99, False, "high"),  # one furious message is high, not urgent
    ],
)
def test_complaint_severity(frustration, repeated, severity):
    assert complaint_severity(frustration, repeated) == severity
