"""Recommendations against the seeded catalog: constraints first, best sellers for guests,
purchase history for verified customers, a reason for every pick, prices in the store's
currency."""

from __future__ import annotations

import re

import pytest
from rasa_sdk.events import SlotSet

from actions.recommendations import ActionRecommendProducts, price_ceiling, wishes_of
from tests.helpers.actions import (
    cards,
    kwargs_of,
    make_tracker,
    responses,
    verified,
    without_refresh,
)

BAGS = {"DAY-BACKPACK", "TOTE-BAG", "CROSSBODY", "DUFFEL", "WAIST-PACK"}


def entity(name: str, value: str) -> dict:
    return {"entity": name, "value": value}


def amount(price: str) -> float:
    """``$89.00`` / ``¥1,203.00`` → 89.0 / 1203.0"""
    return float(re.sub(r"[^\d.]", "", price))


@pytest.mark.parametrize(
    "value, text, store, language, expected",
    [
        ("¥500", "anything waterproof under ¥500?", "INTL", "en", (50000, "CN")),
        ("500", "500元以内的包", "CN", "zh", (50000, "CN")),
        ("$80", "有没有$80以内的", "CN", "zh", (8000, "INTL")),
        ("50", "a bag under 50 dollars", "INTL", "en", (5000, "INTL")),
        ("1,000", "under 1,000", "CN", "zh", (100000, "CN")),
        ("19.99", "under 19.99", "INTL", "en", (1999, "INTL")),
        ("0", "under 0", "INTL", "en", (None, "INTL")),
        ("cheap", "something cheap", "INTL", "en", (None, "INTL")),
    ],
)
def test_price_ceiling_in_the_currency_the_customer_names(value, text, store, language, expected):
    assert price_ceiling(value, text, store, language) == expected


def test_wishes_are_read_from_the_latest_message_and_made_canonical():
    tracker = make_tracker(
        {"language": "zh", "colour": "black"},  # a colour from an earlier stock check
        text="有没有500块以内防水的外套，蓝色M码",
        entities=[
            entity("max_price", "500"),
            entity("attribute", "防水"),
            entity("category", "jackets"),
            entity("colour", "蓝色"),
            entity("size", "m码"),
        ],
    )
    wishes = wishes_of(tracker)
    assert (wishes.store, wishes.max_price_cents, wishes.attribute) == ("CN", 50000, "waterproof")
    assert (wishes.category, wishes.colour, wishes.size) == ("jackets", "blue", "M")
    assert wishes.any


def test_no_wishes_in_a_plain_request():
    wishes = wishes_of(make_tracker(text="recommend something", intent="recommend"))
    assert not wishes.any and wishes.store == "INTL"


async def test_a_guest_gets_best_sellers_with_reasons_and_how_to_get_personal_picks(
    database, dispatcher
):
    tracker = make_tracker(text="what are your best sellers?", intent="recommend")
    assert await ActionRecommendProducts().run(dispatcher, tracker, {}) == []
    assert responses(dispatcher) == [
        "utter_recommendations_matching",
        "utter_recommend_needs_identity",
    ]
    picks = cards(dispatcher)
    assert len(picks) == 3
    assert all(card["note"] and card["price"].startswith("$") for card in picks)
    listed = kwargs_of(dispatcher, "utter_recommendations_matching")["products"]
    assert all(card["name"] in listed for card in picks) and " — " in listed


async def test_a_guest_asking_for_best_selling_bags_in_chinese(database, dispatcher):
    tracker = make_tracker(
        {"language": "zh"},
        text="卖得最好的包包是哪款",
        intent="recommend",
        entities=[entity("category", "bags")],
    )
    await ActionRecommendProducts().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_recommendations_matching"]
    picks = cards(dispatcher)
    assert picks and {card["product_code"] for card in picks} <= BAGS
    assert all(card["price"].startswith("¥") for card in picks)
    assert all(any("\u4e00" <= c <= "\u9fff" for c in card["note"]) for card in picks)


async def test_constraints_are_met_by_every_pick(database, dispatcher):
    tracker = make_tracker(
        text="anything waterproof under $100?",
        intent="recommend",
        entities=[entity("attribute", "waterproof"), entity("max_price", "$100")],
    )
    await ActionRecommendProducts().run(dispatcher, tracker, {})
    picks = cards(dispatcher)
    assert "RAIN-JACKET" in {card["product_code"] for card in picks}
    assert all(amount(card["price"]) <= 100 for card in picks)
    # Wishes were named: no nudge to sign in.
    assert responses(dispatcher) == ["utter_recommendations_matching"]


async def test_a_ceiling_in_yuan_prices_picks_in_the_china_store(database, dispatcher):
    tracker = make_tracker(
        text="anything under ¥300?",
        intent="recommend",
        entities=[entity("max_price", "¥300")],
    )
    await ActionRecommendProducts().run(dispatcher, tracker, {})
    picks = cards(dispatcher)
    assert picks and all(card["price"].startswith("¥") for card in picks)
    assert all(amount(card["price"]) <= 300 for card in picks)


async def test_nothing_matches_says_so(database, dispatcher):
    tracker = make_tracker(
        text="waterproof dresses under $5",
        intent="recommend",
        entities=[
            entity("attribute", "waterproof"),
            entity("category", "dresses"),
            entity("max_price", "$5"),
        ],
    )
    assert await ActionRecommendProducts().run(dispatcher, tracker, {}) == []
    assert responses(dispatcher) == ["utter_no_matching_products"]
    assert cards(dispatcher) == []


async def test_a_single_pick_becomes_the_product_in_context(database, dispatcher):
    tracker = make_tracker(
        text="blue electronics?",
        intent="recommend",
        entities=[entity("category", "electronics"), entity("colour", "blue")],
    )
    events = await ActionRecommendProducts().run(dispatcher, tracker, {})
    [card] = cards(dispatcher)
    assert card["product_code"] == "SPEAKER"
    assert events == [SlotSet("product", "SPEAKER")]


async def test_a_verified_customer_gets_picks_from_their_history(database, dispatcher):
    tracker = make_tracker({"language": "zh", **verified(14.0)}, intent="recommend")
    assert without_refresh(await ActionRecommendProducts().run(dispatcher, tracker, {})) == []
    assert responses(dispatcher) == ["utter_recommendations"]
    products = kwargs_of(dispatcher, "utter_recommendations")["products"]
    assert any("\u4e00" <= c <= "\u9fff" for c in products)
    assert len(cards(dispatcher)) == 3


async def test_recommendations_when_the_database_is_down(database_down, dispatcher):
    tracker = make_tracker(text="best sellers?", intent="recommend")
    assert await ActionRecommendProducts().run(dispatcher, tracker, {}) == []
    assert responses(dispatcher) == ["utter_try_again_later"]
