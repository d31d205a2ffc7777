"""Questions about products before buying: an attribute, an open question, the price, a
comparison (``commerce.services.products`` answers, in both languages).

The product in context is the ``product`` slot: filled by the latest product the customer named
(the catalog entity) and set by these actions to the product they last showed, so "is it
waterproof?" after "how much is the Storm rain jacket?" is about the jacket. A name the shop
does not know gets "did you mean …?" (several products share it) or "we don't carry that" with
the nearest names, never an answer about some other product. An open question the catalog cannot
answer with confidence gets "I'm not sure" and the offer of a colleague (``human_offered``, so
"yes" hands over: data/rules/support.yml).

Prices are the store's: the China store (CNY) for a Chinese conversation, the international
store (USD) otherwise (:func:`store_of`). The web chat draws a product card next to each answer;
REST clients read the text.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import call_service, lang, money, pick, polite_failures
from actions.forms import first_value, offer_human
from commerce.dto import ProductFacts
from commerce.errors import ConfigurationError
from commerce.services import products
from commerce.vocabulary import PRODUCT_ATTRIBUTES, attribute_in

logger = logging.getLogger(__name__)

PRODUCT = "product"
ATTRIBUTE = "attribute"
#: How many "did you mean" names a clarifying question offers.
MAX_CANDIDATES = 3


def store_of(tracker: Tracker) -> str:
    """The store whose prices the customer sees (``CN`` or ``INTL``).

    The conversation's language decides: the verified customer's region is not known to the
    action server (no service names it yet), and a guest has none.
    """
    return products.store_for(None, lang(tracker))


def latest_entity_values(tracker: Tracker, entity: str) -> list[str]:
    """The values of ``entity`` in the latest message, in order, without repeats."""
    entities = (tracker.latest_message or {}).get("entities") or []
    values = [str(e["value"]) for e in entities if e.get("entity") == entity and e.get("value")]
    return list(dict.fromkeys(values))


def latest_text(tracker: Tracker) -> str:
    return ((tracker.latest_message or {}).get("text") or "").strip()


def price_range(facts: ProductFacts) -> str:
    """``$129.00`` or ``¥599.00 – ¥699.00`` in the store's currency."""
    low = money(facts.price_min.amount_cents, facts.price_min.currency)
    high = money(facts.price_max.amount_cents, facts.price_max.currency)
    return low if low == high else f"{low} – {high}"


def product_card(
    tracker: Tracker,
    code: str,
    name_en: str,
    name_zh: str,
    price: str,
    *,
    note: str | None = None,
    in_stock: bool | None = None,
) -> dict[str, Any]:
    """A product card for channels that draw one (the web chat's ``product_card``): the name,
    the price and, for a recommendation, why it was picked."""
    card: dict[str, Any] = {
        "type": "product_card",
        "product_code": code,
        "name": pick(tracker, name_en, name_zh),
        "price": price,
        "variants": [],
    }
    if note:
        card["note"] = note
    if in_stock is not None:
        card["in_stock"] = in_stock
    return card


def facts_card(tracker: Tracker, facts: ProductFacts) -> dict[str, Any]:
    return product_card(
        tracker,
        facts.code,
        facts.name_en,
        facts.name_zh,
        price_range(facts),
        in_stock=facts.in_stock,
    )


def _names(tracker: Tracker, candidates: tuple[ProductFacts, ...]) -> str:
    sep = "、" if lang(tracker) == "zh" else ", "
    return sep.join(pick(tracker, c.name_en, c.name_zh) for c in candidates[:MAX_CANDIDATES])


#: Questions a "did you mean" button can ask again about the product it names: the slots hold
#: the rest of the question (the attribute); an open question's words would be lost.
ASKED_AGAIN = ("product_attribute", "product_price")


def _ask_again_about(tracker: Tracker, candidates: tuple[ProductFacts, ...]) -> list[dict]:
    """One button per candidate that asks the same question about it (web chat quick replies)."""
    intent = ((tracker.latest_message or {}).get("intent") or {}).get("name")
    if intent not in ASKED_AGAIN:
        return []
    return [
        {
            "title": pick(tracker, c.name_en, c.name_zh),
            "payload": f'/{intent}{{"{PRODUCT}": "{c.code}"}}',
        }
        for c in candidates[:MAX_CANDIDATES]
    ]


async def find_product(
    dispatcher: CollectingDispatcher, tracker: Tracker, name: Any, store: str
) -> ProductFacts | None:
    """The product ``name`` names, or None after telling the customer why not.

    No name: asks which product. A name several products share, or one the shop does not know
    but some product's name resembles: asks whether it is one of those (or something the shop
    does not carry). Nothing resembles it: says the shop does not carry it.
    """
    name = first_value(name)
    if not isinstance(name, str) or not name.strip():
        dispatcher.utter_message(response="utter_which_product")
        return None
    name = name.strip()
    lookup = await call_service(products.lookup_product, name, lang(tracker), store)
    if lookup.found is not None:
        return lookup.found
    if lookup.candidates:
        # The service does not say whether several products share the name or none has it and
        # these are merely the nearest: one question that is right either way.
        dispatcher.utter_message(
            response="utter_product_did_you_mean",
            name=name,
            candidates=_names(tracker, lookup.candidates),
            buttons=_ask_again_about(tracker, lookup.candidates),
        )
        return None
    dispatcher.utter_message(response="utter_product_not_carried", name=name)
    return None


def attribute_asked(tracker: Tracker) -> str | None:
    """The attribute key this message asks about: its ``attribute`` entity, else an attribute
    word in its text, else, when it names another product ("and the Road Runner?"), the
    attribute asked about before."""
    for value in latest_entity_values(tracker, ATTRIBUTE):
        key = value if value in PRODUCT_ATTRIBUTES else attribute_in(value)
        if key:
            return key
    key = attribute_in(latest_text(tracker))
    if key:
        return key
    previous = first_value(tracker.get_slot(ATTRIBUTE))
    if latest_entity_values(tracker, PRODUCT) and isinstance(previous, str) and previous:
        return previous if previous in PRODUCT_ATTRIBUTES else attribute_in(previous)
    return None


async def answer_open_question(
    dispatcher: CollectingDispatcher, tracker: Tracker, store: str, code: str | None
) -> list[EventType]:
    """The catalog passage or FAQ answer nearest to the customer's words, or "I'm not sure"
    and the offer of a colleague when nothing answers it with confidence."""
    question = latest_text(tracker)
    answer = None
    if question:
        try:
            answer = await call_service(
                products.answer_question, question, lang(tracker), store, code
            )
        except ConfigurationError as e:
            # No passage index (`make catalog` not run): a person can still answer.
            logger.warning("open product question not searched: %s", e.message)
    if answer is None:
        dispatcher.utter_message(response="utter_product_not_sure")
        return [SlotSet(key, value) for key, value in offer_human(dispatcher).items()]
    text = pick(tracker, answer.text_en, answer.text_zh)
    if not answer.code:
        dispatcher.utter_message(response="utter_product_faq_answer", answer=text)
        return []
    facts = await call_service(products.product_facts, answer.code, store)
    dispatcher.utter_message(
        response="utter_product_passage",
        product=pick(tracker, facts.name_en, facts.name_zh),
        answer=text,
    )
    dispatcher.utter_message(json_message=facts_card(tracker, facts))
    return [SlotSet(PRODUCT, facts.code)]


class ActionAnswerProductAttribute(Action):
    """One attribute (material, fit, waterproof …) of the named product or the one in context,
    from the catalog's structured facts; a question with no attribute we keep is searched as an
    open question about that product."""

    def name(self) -> str:
        return "action_answer_product_attribute"

    @polite_failures()
    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        store = store_of(tracker)
        facts = await find_product(dispatcher, tracker, tracker.get_slot(PRODUCT), store)
        if facts is None:
            return [SlotSet(PRODUCT, None)] if tracker.get_slot(PRODUCT) else []
        key = attribute_asked(tracker)
        if key is None:
            return [
                SlotSet(PRODUCT, facts.code),
                *await answer_open_question(dispatcher, tracker, store, facts.code),
            ]
        answer = await call_service(products.answer_attribute, facts.code, key, store)
        dispatcher.utter_message(
            response="utter_product_attribute", answer=pick(tracker, answer.text_en, answer.text_zh)
        )
        dispatcher.utter_message(json_message=facts_card(tracker, facts))
        return [SlotSet(PRODUCT, facts.code), SlotSet(ATTRIBUTE, key)]


class ActionAnswerProductQuestion(Action):
    """An open question ("is this good for running in the rain?"), searched in the passages of
    the product named or in context (all products when there is none) and the FAQ answers."""

    def name(self) -> str:
        return "action_answer_product_question"

    @polite_failures()
    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        store = store_of(tracker)
        code = None
        if tracker.get_slot(PRODUCT):
            facts = await find_product(dispatcher, tracker, tracker.get_slot(PRODUCT), store)
            if facts is None:
                return [SlotSet(PRODUCT, None)]
            code = facts.code
        return await answer_open_question(dispatcher, tracker, store, code)


class ActionAnswerProductPrice(Action):
    """The price of the named product or the one in context, in the store's currency, with the
    variants that cost more."""

    def name(self) -> str:
        return "action_answer_product_price"

    @polite_failures()
    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        store = store_of(tracker)
        facts = await find_product(dispatcher, tracker, tracker.get_slot(PRODUCT), store)
        if facts is None:
            return [SlotSet(PRODUCT, None)] if tracker.get_slot(PRODUCT) else []
        answer = await call_service(products.price_answer, facts.code, store)
        dispatcher.utter_message(
            response="utter_product_price", answer=pick(tracker, answer.text_en, answer.text_zh)
        )
        dispatcher.utter_message(json_message=facts_card(tracker, facts))
        return [SlotSet(PRODUCT, facts.code)]


def previous_product(tracker: Tracker) -> str | None:
    """The product in context before the latest message ("how does it compare to …?")."""
    latest_user = max(
        (i for i, e in enumerate(tracker.events) if e.get("event") == "user"), default=None
    )
    if latest_user is None:
        return None
    for event in reversed(tracker.events[:latest_user]):
        if event.get("event") == "slot" and event.get("name") == PRODUCT:
            value = first_value(event.get("value"))
            return value if isinstance(value, str) and value else None
    return None


class ActionCompareProducts(Action):
    """Two products side by side: the two the message names, or the one it names against the
    one in context."""

    def name(self) -> str:
        return "action_compare_products"

    @polite_failures()
    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        named = latest_entity_values(tracker, PRODUCT)
        if len(named) < 2:
            before = previous_product(tracker)
            named = [before, *named] if before and before not in named else named
        if len(named) < 2:
            dispatcher.utter_message(response="utter_compare_which_products")
            return []
        store = store_of(tracker)
        found = []
        for name in named[:2]:
            facts = await find_product(dispatcher, tracker, name, store)
            if facts is None:
                return []
            found.append(facts)
        first, second = found
        if first.code == second.code:
            dispatcher.utter_message(response="utter_compare_which_products")
            return []
        answer = await call_service(
            products.compare_products, first.code, second.code, store, lang(tracker)
        )
        dispatcher.utter_message(
            response="utter_product_comparison",
            answer=pick(tracker, answer.text_en, answer.text_zh),
        )
        for facts in found:
            dispatcher.utter_message(json_message=facts_card(tracker, facts))
        return [SlotSet(PRODUCT, second.code)]
