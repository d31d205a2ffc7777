"""Stock checks, alternatives and back-in-stock alerts against the seeded database."""

from __future__ import annotations

from rasa_sdk.events import SlotSet

from actions.stock import (
    ActionCheckStock,
    ActionSubscribeRestock,
    ValidateRestockForm,
    ValidateStockForm,
    describe_choice,
)
from commerce.privacy import unseal
from commerce.services import stock
from tests.helpers.actions import cards, domain_for, kwargs_of, make_tracker, responses

STOCK_DOMAIN = domain_for("stock_form", ["product"])
RESTOCK_DOMAIN = domain_for("restock_form", ["product", "size", "colour", "restock_email"])


async def test_in_stock(database, dispatcher):
    tracker = make_tracker({"product": "Trail Runner 2", "size": "43", "colour": "black"})
    assert await ActionCheckStock().run(dispatcher, tracker, {}) == []
    assert responses(dispatcher) == ["utter_in_stock"]
    message = kwargs_of(dispatcher, "utter_in_stock")
    assert message["product"].startswith("Trail Runner 2") and message["available"] > 0
    [card] = cards(dispatcher)
    assert card["type"] == "product_card" and card["name"] == message["product"]
    assert card["price"].startswith("$")
    [variant] = card["variants"]
    assert (variant["size"], variant["colour"]) == ("43", "black") and variant["available"] > 0


async def test_out_of_stock_gives_restock_date_alternatives_and_offers_an_alert(
    database, dispatcher
):
    tracker = make_tracker({"product": "Trail Runner 2", "size": "42", "colour": "black"})
    await ActionCheckStock().run(dispatcher, tracker, {})
    assert responses(dispatcher) == [
        "utter_out_of_stock",
        "utter_restock_date",
        "utter_stock_alternatives",
        "utter_offer_restock_alert",
    ]
    assert kwargs_of(dispatcher, "utter_out_of_stock")["choice"] == "size 42, black"
    [card] = cards(dispatcher)
    [variant] = card["variants"]
    assert variant["available"] == 0
    assert variant["restock_date"] == kwargs_of(dispatcher, "utter_restock_date")["date"]


async def test_out_of_stock_in_chinese_names_things_in_chinese(database, dispatcher):
    tracker = make_tracker(
        {"language": "zh", "product": "越野跑鞋", "size": "42", "colour": "黑色"}
    )
    await ActionCheckStock().run(dispatcher, tracker, {})
    message = kwargs_of(dispatcher, "utter_out_of_stock")
    assert message["choice"] == "42码 黑色"
    assert any("\u4e00" <= c <= "\u9fff" for c in message["product"])
    [card] = cards(dispatcher)
    assert card["name"] == message["product"] and card["variants"][0]["colour"] == "黑色"


async def test_unknown_product(database, dispatcher):
    tracker = make_tracker({"product": "flux capacitor"})
    await ActionCheckStock().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_error_product_not_found"]


async def test_unknown_colour_for_a_product(database, dispatcher):
    tracker = make_tracker({"product": "Trail Runner 2", "colour": "purple"})
    await ActionCheckStock().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_error_variant_not_found"]


async def test_stock_form_re_asks_an_unknown_product(database, dispatcher):
    tracker = make_tracker({"product": "flux capacitor"}, active_loop="stock_form")
    events = await ValidateStockForm().run(dispatcher, tracker, STOCK_DOMAIN)
    assert SlotSet("product", None) in events
    assert responses(dispatcher) == ["utter_error_product_not_found"]


async def test_stock_when_the_database_is_down(database_down, dispatcher):
    tracker = make_tracker({"product": "Trail Runner 2"})
    assert await ActionCheckStock().run(dispatcher, tracker, {}) == []
    assert responses(dispatcher) == ["utter_try_again_later"]


async def test_restock_form_asks_only_what_tells_variants_apart(database, dispatcher):
    form = ValidateRestockForm()
    wanted = ["product", "size", "colour", "restock_email"]
    shoes = make_tracker({"product": "Trail Runner 2"}, active_loop="restock_form")
    cap = make_tracker({"product": "CAP"}, active_loop="restock_form")  # one size, two colours
    assert await form.required_slots(wanted, dispatcher, shoes, RESTOCK_DOMAIN) == wanted
    assert await form.required_slots(wanted, dispatcher, cap, RESTOCK_DOMAIN) == [
        "product",
        "colour",
        "restock_email",
    ]


async def test_restock_form_rejects_a_malformed_email(database, dispatcher):
    tracker = make_tracker(
        {"product": "Trail Runner 2", "size": "42", "colour": "black", "restock_email": "me@"},
        active_loop="restock_form",
    )
    events = await ValidateRestockForm().run(dispatcher, tracker, RESTOCK_DOMAIN)
    assert SlotSet("restock_email", None) in events
    assert responses(dispatcher) == ["utter_invalid_email"]


async def test_the_email_for_a_restock_alert_is_kept_sealed_until_used(database, dispatcher):
    choice = {"product": "Trail Runner 2", "size": "42", "colour": "black"}
    tracker = make_tracker(
        {**choice, "restock_email": "New.Customer@example.com"}, active_loop="restock_form"
    )
    events = await ValidateRestockForm().run(dispatcher, tracker, RESTOCK_DOMAIN)
    [kept] = [e["value"] for e in events if e.get("name") == "restock_email"]
    assert kept.startswith("sealed:") and unseal(kept) == "new.customer@example.com"
    subscribe = make_tracker({**choice, "restock_email": kept})
    assert await ActionSubscribeRestock().run(dispatcher, subscribe, {}) == [
        SlotSet("restock_email", None)
    ]
    assert responses(dispatcher) == ["utter_restock_subscribed"]


async def test_subscribe_then_subscribe_again_is_idempotent(database, dispatcher):
    slots = {
        "product": "Trail Runner 2",
        "size": "42",
        "colour": "black",
        "restock_email": "new.customer@example.com",
    }
    events = await ActionSubscribeRestock().run(dispatcher, make_tracker(slots), {})
    assert events == [SlotSet("restock_email", None)]
    await ActionSubscribeRestock().run(dispatcher, make_tracker(slots), {})
    assert responses(dispatcher) == ["utter_restock_subscribed", "utter_restock_already"]
    assert kwargs_of(dispatcher, "utter_restock_subscribed")["sku"] == "TRAIL-RUNNER-2-42-BLACK"


def test_describe_choice_in_both_languages():
    en, zh = make_tracker(), make_tracker({"language": "zh"})
    assert describe_choice(en, "M", "navy") == "size M, navy"
    assert describe_choice(zh, "M", "navy") == "M码 藏青色"
    assert describe_choice(en, None, None) == ""


async def test_the_restock_form_looks_the_product_up_once_per_turn(
    database, dispatcher, monkeypatch
):
    looked_up = []
    options_of = stock.product_options

    def counted(session_factory, product):
        looked_up.append(product)
        return options_of(session_factory, product)

    def full_check(*args, **kwargs):
        raise AssertionError("the form needs the sizes and colours, not the stock")

    monkeypatch.setattr(stock, "product_options", counted)
    monkeypatch.setattr(stock, "check_stock", full_check)
    tracker = make_tracker({"product": "Trail Runner 2"}, active_loop="restock_form")
    events = await ValidateRestockForm().run(dispatcher, tracker, RESTOCK_DOMAIN)
    assert looked_up == ["Trail Runner 2"]
    assert SlotSet("product", "Trail Runner 2") in events
    # The next turn looks it up again (stock and catalog may change between turns).
    await ValidateRestockForm().run(dispatcher, tracker, RESTOCK_DOMAIN)
    assert looked_up == ["Trail Runner 2"] * 2
