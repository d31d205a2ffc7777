"""Personalised recommendations from the verified customer's purchase history."""

from __future__ import annotations

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import call_service, money, pick
from actions.session import CustomerAction, Identity
from commerce.services import recommendations

MAX_RECOMMENDATIONS = 3


class ActionRecommendProducts(CustomerAction):
    """Up to three in-stock products that go with what the customer bought."""

    def name(self) -> str:
        return "action_recommend_products"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
        identity: Identity | None,
    ) -> list[EventType]:
        if identity is None:
            # Purchase history is personal: only for a verified customer.
            dispatcher.utter_message(response="utter_recommend_needs_identity")
            return []
        found = await call_service(
            recommendations.recommend_for_customer, identity.customer_id, MAX_RECOMMENDATIONS
        )
        if not found:
            dispatcher.utter_message(response="utter_no_recommendations")
            return []
        products = "; ".join(
            f"{pick(tracker, r.name_en, r.name_zh)} ({money(r.price_cents, r.currency)})"
            for r in found
        )
        dispatcher.utter_message(response="utter_recommendations", products=products)
        return []
