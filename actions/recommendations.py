"""Recommendations that listen: the constraints the customer names (category, colour, size,
a price ceiling, an attribute such as waterproof), picks from a verified customer's purchase
history, best sellers and new arrivals for everyone else, each with a one-line reason
(``commerce.services.recommendations.recommend``).

Constraints are read from the latest message only: a colour mentioned for a stock check three
turns ago is no wish for this request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import call_service, lang, money, pick
from actions.products import (
    ATTRIBUTE,
    PRODUCT,
    latest_entity_values,
    latest_text,
    product_card,
    store_of,
)
from actions.session import CustomerAction, Identity
from commerce.services import products, recommendations
from commerce.vocabulary import (
    CATEGORIES,
    PRODUCT_ATTRIBUTES,
    attribute_in,
    normalize_colour,
    normalize_size,
)

MAX_RECOMMENDATIONS = 3
#: Reasons that come from the customer's own purchases ("based on what you've bought").
PERSONAL_REASONS = frozenset({"co_purchase", "similar"})
#: A price ceiling above this is no ceiling (and keeps cents within an int column's range).
MAX_CEILING = 1_000_000

_AMOUNT = re.compile(r"\d[\d,]*(?:\.\d+)?")
# A currency the customer names picks the store it is spent in: "under ¥500" in an English
# conversation is about the China store's yuan prices, not 500 dollars.
_YUAN = re.compile(r"[¥￥元块]|\b(?:yuan|rmb|cny|kuai)\b|人民币", re.IGNORECASE)
_DOLLAR = re.compile(r"\$|美元|美金|\b(?:dollars?|usd|bucks)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Wishes:
    """What the customer asked for in this message; all None: just "recommend something"."""

    store: str
    category: str | None = None
    colour: str | None = None
    size: str | None = None
    max_price_cents: int | None = None
    attribute: str | None = None

    @property
    def any(self) -> bool:
        return any(
            v is not None
            for v in (self.category, self.colour, self.size, self.max_price_cents, self.attribute)
        )


def category_of(value: str) -> str | None:
    """A category key from its key or its Chinese name; None for anything else."""
    text = value.strip().lower()
    if text in CATEGORIES:
        return text
    return next((key for key, zh in CATEGORIES.items() if value.strip() == zh), None)


def price_ceiling(value: str, text: str, store: str, language: str) -> tuple[int | None, str]:
    """``("¥500", "under ¥500", "INTL", "en")`` → ``(50000, "CN")``: the ceiling in minor units
    and the store whose currency it is in (``store`` unless the text names another currency)."""
    match = _AMOUNT.search(value)
    if match is None:
        return None, store
    amount = float(match.group().replace(",", ""))
    if not 0 < amount <= MAX_CEILING:
        return None, store
    # The store of the region that pays in the named currency.
    if _YUAN.search(value) or _YUAN.search(text):
        store = products.store_for("CN", language)
    elif _DOLLAR.search(value) or _DOLLAR.search(text):
        store = products.store_for("INTL", language)
    return round(amount * 100), store


def wishes_of(tracker: Tracker) -> Wishes:
    """The constraints the latest message names, canonical, unknown values left out."""
    store = store_of(tracker)
    ceiling = None
    for value in latest_entity_values(tracker, "max_price"):
        ceiling, store = price_ceiling(value, latest_text(tracker), store, lang(tracker))
        if ceiling is not None:
            break
    categories = [c for c in map(category_of, latest_entity_values(tracker, "category")) if c]
    colours = [c for c in map(normalize_colour, latest_entity_values(tracker, "colour")) if c]
    sizes = [s for s in map(normalize_size, latest_entity_values(tracker, "size")) if s]
    attributes = [
        a
        for a in (
            v if v in PRODUCT_ATTRIBUTES else attribute_in(v)
            for v in latest_entity_values(tracker, ATTRIBUTE)
        )
        if a
    ]
    return Wishes(
        store=store,
        category=categories[0] if categories else None,
        colour=colours[0] if colours else None,
        size=sizes[0] if sizes else None,
        max_price_cents=ceiling,
        attribute=attributes[0] if attributes else None,
    )


class ActionRecommendProducts(CustomerAction):
    """Up to three in-stock products that fit what the customer asked for, each with why."""

    def name(self) -> str:
        return "action_recommend_products"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
        identity: Identity | None,
    ) -> list[EventType]:
        wishes = wishes_of(tracker)
        found = await call_service(
            recommendations.recommend,
            wishes.store,
            # Purchase history is personal: only a verified customer's is used.
            customer_id=identity.customer_id if identity else None,
            category=wishes.category,
            colour=wishes.colour,
            size=wishes.size,
            max_price_cents=wishes.max_price_cents,
            attribute=wishes.attribute,
            limit=MAX_RECOMMENDATIONS,
        )
        if not found:
            response = "utter_no_matching_products" if wishes.any else "utter_no_recommendations"
            dispatcher.utter_message(response=response)
            return []
        lines = []
        for r in found:
            reason = pick(tracker, r.reason_en, r.reason_zh)
            price = money(r.price_cents, r.currency)
            name = pick(tracker, r.name_en, r.name_zh)
            lines.append(f"{name} ({price})" + (f" — {reason}" if reason else ""))
        personal = all(r.reason in PERSONAL_REASONS for r in found)
        dispatcher.utter_message(
            response="utter_recommendations" if personal else "utter_recommendations_matching",
            products="; ".join(lines),
        )
        for r in found:
            dispatcher.utter_message(
                json_message=product_card(
                    tracker,
                    r.product_code,
                    r.name_en,
                    r.name_zh,
                    money(r.price_cents, r.currency),
                    note=pick(tracker, r.reason_en, r.reason_zh) or None,
                )
            )
        if identity is None and not wishes.any:
            # A guest asking in general gets the shop's favourites and how to get personal picks.
            dispatcher.utter_message(response="utter_recommend_needs_identity")
        # One product shown is the one in context ("how much is it?"); of several, none is.
        return [SlotSet(PRODUCT, found[0].product_code)] if len(found) == 1 else []
