"""Stock by product, size and colour, with restock dates, alternatives and back-in-stock alerts."""

from __future__ import annotations

from abc import ABC
from contextvars import ContextVar
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import call_service, lang, money, pick, polite_failures
from actions.forms import KefuFormValidation, first_value
from actions.session import identify
from commerce.dto import ProductOptions
from commerce.errors import InvalidInput, ProductNotFound, VariantNotFound
from commerce.privacy import is_sealed, seal, unseal
from commerce.services import stock
from commerce.services.identity import normalize_email
from commerce.vocabulary import COLOURS

PRODUCT = "product"
SIZE = "size"
COLOUR = "colour"
QUANTITY = "quantity"
RESTOCK_EMAIL = "restock_email"


def describe_choice(tracker: Tracker, size: str | None, colour: str | None) -> str:
    """``size 42, black`` / ``42码 黑色``; empty when neither was asked for."""
    if lang(tracker) == "zh":
        parts = [f"{size}码" if size else "", COLOURS.get(colour, colour) if colour else ""]
        return " ".join(p for p in parts if p)
    return ", ".join(p for p in (f"size {size}" if size else "", colour or "") if p)


def _quantity(tracker: Tracker) -> int:
    try:
        return max(1, min(100, int(str(first_value(tracker.get_slot(QUANTITY))))))
    except (TypeError, ValueError):
        return 1


CARD_VARIANTS = 8


def product_card(tracker: Tracker, report) -> dict[str, Any]:
    """A product card for channels that draw one (the web chat): name, price and the
    availability of each matching size / colour, with restock dates."""
    variants = report.variants[:CARD_VARIANTS]
    prices = sorted({(v.price_cents, v.currency) for v in variants})
    price = " – ".join(dict.fromkeys(money(*p) for p in (prices[:1] + prices[-1:])))
    return {
        "type": "product_card",
        "product_code": report.product_code,
        "name": pick(tracker, report.name_en, report.name_zh),
        "price": price,
        "variants": [
            {
                "sku": v.sku,
                "size": v.size,
                "colour": pick(tracker, v.colour, v.colour_zh) if v.colour else None,
                "available": v.available,
                "restock_date": v.restock_date.isoformat() if v.restock_date else None,
            }
            for v in variants
        ],
    }


#: Product options looked up during the current form run (one turn), by product name; None
#: outside a run. A form asks for them up to four times a turn (extraction, validation, the
#: product's own check, the next slot to ask), the database is asked once.
_TURN_OPTIONS: ContextVar[dict[str, ProductOptions | None] | None] = ContextVar(
    "kefu_turn_product_options", default=None
)


async def product_options(name: Any) -> ProductOptions | None:
    """The sizes and colours of the product a customer named (None: no such product), looked
    up once per turn inside a form run."""
    memo = _TURN_OPTIONS.get()
    if memo is not None and isinstance(name, str) and name in memo:
        return memo[name]
    try:
        options = await call_service(stock.product_options, name)
    except (ProductNotFound, InvalidInput):
        options = None
    if memo is not None and isinstance(name, str):
        memo[name] = options
    return options


class ProductFormValidation(KefuFormValidation, ABC):
    """A form that asks which product: the product must exist (looked up once per turn)."""

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        turn = _TURN_OPTIONS.set({})
        try:
            return await super().run(dispatcher, tracker, domain)
        finally:
            _TURN_OPTIONS.reset(turn)

    async def validate_product(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain
    ) -> dict[str, Any]:
        name = first_value(slot_value)
        if await product_options(name) is None:
            return self.failed(PRODUCT, dispatcher, tracker, "utter_error_product_not_found")
        return self.passed(PRODUCT, name, tracker)


class ValidateStockForm(ProductFormValidation):
    """Asks which product; size and colour are optional and used when given."""

    def name(self) -> str:
        return "validate_stock_form"


class ActionCheckStock(Action):
    """Availability of the product in the asked size / colour, or when it comes back."""

    def name(self) -> str:
        return "action_check_stock"

    @polite_failures()
    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        product = first_value(tracker.get_slot(PRODUCT))
        size, colour = first_value(tracker.get_slot(SIZE)), first_value(tracker.get_slot(COLOUR))
        report = await call_service(stock.check_stock, product, size, colour, _quantity(tracker))
        name = pick(tracker, report.name_en, report.name_zh)
        choice = describe_choice(tracker, report.size, report.colour)
        card = product_card(tracker, report)
        if report.in_stock:
            dispatcher.utter_message(
                response="utter_in_stock",
                product=name,
                choice=choice or "-",
                available=report.total_available,
            )
            dispatcher.utter_message(json_message=card)
            return []
        dispatcher.utter_message(response="utter_out_of_stock", product=name, choice=choice or "-")
        dispatcher.utter_message(json_message=card)
        if report.next_restock_date:
            dispatcher.utter_message(
                response="utter_restock_date", date=report.next_restock_date.isoformat()
            )
        else:
            dispatcher.utter_message(response="utter_no_restock_date")
        if report.alternatives:
            options = "; ".join(
                f"{pick(tracker, a.name_en, a.name_zh)} "
                f"({describe_choice(tracker, a.size, a.colour) or a.sku})"
                for a in report.alternatives
            )
            dispatcher.utter_message(response="utter_stock_alternatives", alternatives=options)
        dispatcher.utter_message(response="utter_offer_restock_alert")
        return []


class ValidateRestockForm(ProductFormValidation):
    """Collects what to watch (product, and size / colour when it has several) and an email."""

    task_slots = (RESTOCK_EMAIL,)

    def name(self) -> str:
        return "validate_restock_form"

    async def required_slots(self, domain_slots, dispatcher, tracker, domain) -> list[str]:
        slots = await super().required_slots(domain_slots, dispatcher, tracker, domain)
        product = first_value(tracker.slots.get(PRODUCT))
        if not slots or not product:
            return slots
        options = await product_options(product)
        if options is None:
            return slots
        # Ask only for what tells the variants apart.
        return [
            s
            for s in slots
            if (s != SIZE or len(options.sizes) > 1) and (s != COLOUR or len(options.colours) > 1)
        ]

    async def validate_restock_email(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain
    ) -> dict[str, Any]:
        try:
            email = normalize_email(first_value(slot_value))
        except InvalidInput:
            return self.failed(RESTOCK_EMAIL, dispatcher, tracker, "utter_invalid_email")
        # Kept sealed until the subscription is made: stored events never hold it in clear.
        return self.passed(RESTOCK_EMAIL, seal(email), tracker)


class ActionSubscribeRestock(Action):
    """Signs the customer up for one back-in-stock email (idempotent)."""

    def name(self) -> str:
        return "action_subscribe_restock"

    @polite_failures(RESTOCK_EMAIL)
    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        product, email = first_value(tracker.get_slot(PRODUCT)), tracker.get_slot(RESTOCK_EMAIL)
        if is_sealed(email):
            email = unseal(email)  # None when the key changed since: the form asks again
        if not email:
            return [SlotSet(RESTOCK_EMAIL, None)]
        size, colour = first_value(tracker.get_slot(SIZE)), first_value(tracker.get_slot(COLOUR))
        resolved = await identify(tracker)
        identity = resolved.identity
        try:
            result = await call_service(
                stock.subscribe_back_in_stock,
                product,
                email,
                size=size,
                colour=colour,
                customer_id=identity.customer_id if identity else None,
            )
        except VariantNotFound:
            dispatcher.utter_message(response="utter_error_variant_not_found")
            return [*resolved.events, SlotSet(RESTOCK_EMAIL, None)]
        response = "utter_restock_subscribed" if result.created else "utter_restock_already"
        dispatcher.utter_message(response=response, sku=result.sku)
        return [*resolved.events, SlotSet(RESTOCK_EMAIL, None)]
