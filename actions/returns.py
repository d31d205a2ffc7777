"""Returns and exchanges (eligibility with the reason, RMA number, next steps) and refund status."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import call_service, idempotency_key, money, pick
from actions.forms import first_value
from actions.identity import IdentityFormValidation
from actions.session import VERIFY_CONTACT, CustomerAction, Identity, has_second_factor
from actions.stock import describe_choice
from actions.survey import close_task
from commerce.dto import ItemEligibility, ReturnView
from commerce.lifecycles import REFUND
from commerce.policies import returnable_items
from commerce.services import refunds, returns

RETURN_REASON = "return_reason"
EXCHANGE_SIZE = "exchange_size"


async def _eligibility_or_stop(form, customer_id, order_number, dispatcher) -> dict[str, Any]:
    elig = await call_service(returns.check_return_eligibility, customer_id, order_number)
    if not elig.eligible:
        dispatcher.utter_message(response=f"utter_return_not_eligible_{elig.reason}")
        return form.stop()
    if elig.deadline:
        response = "utter_return_eligible_no_reason" if elig.no_reason else "utter_return_eligible"
        dispatcher.utter_message(response=response, deadline=elig.deadline.isoformat())
    return {}


def _wanted_items(tracker: Tracker, items: tuple[ItemEligibility, ...]) -> list[ItemEligibility]:
    """Eligible items, narrowed to the product the customer named when one matches."""
    return returnable_items(items, first_value(tracker.get_slot("product")))


def _items_text(tracker: Tracker, view: ReturnView) -> str:
    return "; ".join(f"{i.quantity} × {pick(tracker, i.name_en, i.name_zh)}" for i in view.items)


class ValidateReturnForm(IdentityFormValidation):
    """Verifies the customer, explains ineligibility up front, then asks for the reason."""

    task_slots = (RETURN_REASON,)
    needs_second_factor = True

    def name(self) -> str:
        return "validate_return_form"

    async def check_order(self, customer_id, order_number, dispatcher, tracker) -> dict[str, Any]:
        return await _eligibility_or_stop(self, customer_id, order_number, dispatcher)

    async def validate_return_reason(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain
    ) -> dict[str, Any]:
        text = slot_value.strip() if isinstance(slot_value, str) else ""
        if not 2 <= len(text) <= 300:
            return self.failed(RETURN_REASON, dispatcher, tracker, "utter_invalid_return_reason")
        return self.passed(RETURN_REASON, text, tracker)


class ActionOpenReturn(CustomerAction):
    """Opens the RMA for the eligible items (or the product named) and gives the next steps."""

    reset_slots = (RETURN_REASON, VERIFY_CONTACT)

    def name(self) -> str:
        return "action_open_return"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
        identity: Identity | None,
    ) -> list[EventType]:
        number, reason = tracker.get_slot("order_number"), tracker.get_slot(RETURN_REASON)
        if not has_second_factor(identity, dispatcher):
            return []
        customer_id = identity.customer_id
        elig = await call_service(returns.check_return_eligibility, customer_id, number)
        items = {i.sku: i.returnable_quantity for i in _wanted_items(tracker, elig.items)}
        view = await call_service(
            returns.open_return,
            customer_id,
            number,
            reason,
            items or None,
            idempotency_key=idempotency_key(tracker, "return"),
        )
        dispatcher.utter_message(
            response="utter_return_opened",
            rma_number=view.rma_number,
            order_number=view.order_number,
            items=_items_text(tracker, view),
            refund=money(view.refund_estimate_cents, view.currency),
        )
        return await close_task(dispatcher, tracker, "return", view.order_number)


class ValidateExchangeForm(IdentityFormValidation):
    """Verifies the customer, checks eligibility, then asks which size to swap to."""

    task_slots = (EXCHANGE_SIZE,)
    needs_second_factor = True

    def name(self) -> str:
        return "validate_exchange_form"

    async def check_order(self, customer_id, order_number, dispatcher, tracker) -> dict[str, Any]:
        return await _eligibility_or_stop(self, customer_id, order_number, dispatcher)

    async def validate_exchange_size(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain
    ) -> dict[str, Any]:
        size = first_value(slot_value)
        if not isinstance(size, str) or not 1 <= len(size.strip()) <= 10:
            return self.failed(EXCHANGE_SIZE, dispatcher, tracker, "utter_ask_exchange_size")
        return self.passed(EXCHANGE_SIZE, size.strip(), tracker)


class ActionOpenExchange(CustomerAction):
    """Swaps one item for the same product in another size (and colour, when asked)."""

    reset_slots = (EXCHANGE_SIZE, VERIFY_CONTACT)

    def name(self) -> str:
        return "action_open_exchange"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
        identity: Identity | None,
    ) -> list[EventType]:
        number, size = tracker.get_slot("order_number"), tracker.get_slot(EXCHANGE_SIZE)
        if not has_second_factor(identity, dispatcher):
            return []
        customer_id = identity.customer_id
        elig = await call_service(returns.check_return_eligibility, customer_id, number)
        candidates = _wanted_items(tracker, elig.items)
        if not candidates:
            dispatcher.utter_message(response="utter_return_not_eligible_already_returned")
            return []
        item = candidates[0]
        colour = first_value(tracker.get_slot("colour"))
        offer = await call_service(returns.exchange_offer, item.sku, size, colour)
        replacement = offer.replacement
        if replacement is None:
            dispatcher.utter_message(
                response="utter_exchange_unavailable",
                choice=describe_choice(tracker, offer.size, offer.colour),
            )
            return []
        view = await call_service(
            returns.open_return,
            customer_id,
            number,
            f"exchange for size {size}",
            {item.sku: 1},
            kind="exchange",
            exchange_for={item.sku: replacement.sku},
            idempotency_key=idempotency_key(tracker, "exchange"),
        )
        dispatcher.utter_message(
            response="utter_exchange_opened",
            rma_number=view.rma_number,
            order_number=view.order_number,
            items=_items_text(tracker, view),
            choice=describe_choice(tracker, replacement.size, replacement.colour),
        )
        return await close_task(dispatcher, tracker, "exchange", view.order_number)


class ActionShowRefundStatus(CustomerAction):
    """The latest refund of a verified order and where it stands."""

    reset_slots = (VERIFY_CONTACT,)

    def name(self) -> str:
        return "action_show_refund_status"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
        identity: Identity | None,
    ) -> list[EventType]:
        if identity is None:
            return []
        number = tracker.get_slot("order_number")
        found = await call_service(refunds.list_refunds, identity.customer_id, number)
        if not found:
            dispatcher.utter_message(response="utter_no_refund", order_number=number)
            return []
        latest = found[0]
        status = latest.status if latest.status in REFUND.statuses else "requested"
        dispatcher.utter_message(
            response=f"utter_refund_status_{status}",
            refund_number=latest.refund_number,
            order_number=latest.order_number,
            amount=money(latest.amount_cents, latest.currency),
        )
        return await close_task(dispatcher, tracker, "refund", latest.order_number)
