"""The first stage of Rasa's two-stage fallback, in the customer's language.

Rasa's default `action_default_ask_affirmation` asks "Did you mean 'cancel_order'?" with the
raw intent name, in English. Kefu asks with a short description of the intent in the customer's
language and Yes / No buttons; "No" leads to `utter_ask_rephrase`, a second miss to
`utter_default` (both in domain/core.yml). The descriptions are responses a designer edits,
``utter_intent_<intent>`` in domain/intents.yml, read from the domain Rasa sends with the call.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import lang

NO_INTENT = "out_of_scope"
RETRIEVAL_INTENTS = frozenset({"faq", "chitchat"})


def intent_description(domain: DomainDict, intent: str, language: str) -> str | None:
    """The text of ``utter_intent_<intent>`` in ``language`` (None when the domain has none)."""
    variations = (domain or {}).get("responses", {}).get(f"utter_intent_{intent}") or []
    for variation in variations:
        conditions = variation.get("condition") or []
        if any(c.get("name") == "language" and c.get("value") == language for c in conditions):
            return variation.get("text")
    return None


def intent_to_affirm(parse_data: dict) -> str | None:
    """The intent to ask about: the top one, or the runner-up after an `nlu_fallback`."""
    intent = (parse_data.get("intent") or {}).get("name")
    ranking = parse_data.get("intent_ranking") or []
    if intent == "nlu_fallback" and len(ranking) > 1:
        intent = ranking[1].get("name")
    return intent


class ActionDefaultAskAffirmation(Action):
    """Asks "Did you mean …?" about the most likely intent, in the customer's language."""

    def name(self) -> str:
        return "action_default_ask_affirmation"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = intent_to_affirm(tracker.latest_message or {})
        topic = intent_description(domain, intent, lang(tracker)) if intent else None
        if topic is None or intent in RETRIEVAL_INTENTS:
            # A button payload cannot carry an FAQ's sub-intent, and an unknown intent has no
            # description: ask the customer to put it another way instead.
            dispatcher.utter_message(response="utter_ask_rephrase")
            return []
        dispatcher.utter_message(
            response="utter_ask_affirmation",
            topic=topic,
            buttons=[
                {"title": "Yes" if lang(tracker) == "en" else "是的", "payload": f"/{intent}"},
                {"title": "No" if lang(tracker) == "en" else "不是", "payload": f"/{NO_INTENT}"},
            ],
        )
        return []
