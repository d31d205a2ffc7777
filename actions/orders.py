"""Order status and tracking, cancelling, and changing the shipping address.

Each flow is a form (``order_status_form``, ``cancel_form``, ``address_form``) that verifies the
customer first (:mod:`actions.identity`), then one action that calls the commerce service. Reading
the status needs the order number and the email or phone; cancelling and changing the address also
need proof of possession (a token claim or a one-time code), checked by the form and again by the
action before it calls the service.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import call_service, money, pick
from actions.identity import IdentityFormValidation
from actions.session import VERIFY_CONTACT, CustomerAction, Identity, has_second_factor
from actions.survey import close_task
from commerce.errors import InvalidInput
from commerce.lifecycles import ORDER
from commerce.privacy import is_sealed, seal, unseal
from commerce.services import orders

CANCEL_CONFIRMED = "cancel_confirmed"
NEW_ADDRESS = "new_address"


def address_text(value: Any) -> str | None:
    """The new address a slot holds (sealed by the form; plain text is accepted too)."""
    if is_sealed(value):
        return unseal(value)
    return value if isinstance(value, str) and value.strip() else None


class ActionShowOrderStatus(CustomerAction):
    """Status, carrier, latest tracking event and expected delivery of a verified order."""

    reset_slots = (VERIFY_CONTACT,)

    def name(self) -> str:
        return "action_show_order_status"

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
        info = await call_service(orders.track_order, identity.customer_id, number)
        status = info.status if info.status in ORDER.statuses else "placed"
        dispatcher.utter_message(
            response=f"utter_order_status_{status}", order_number=info.order_number
        )
        if info.carrier:
            event = info.latest_event
            dispatcher.utter_message(
                response="utter_order_tracking",
                carrier=info.carrier,
                tracking_number=info.tracking_number or "-",
                last_event=pick(tracker, event.description_en, event.description_zh)
                if event
                else "-",
                last_event_at=event.at.strftime("%Y-%m-%d %H:%M") if event else "-",
            )
            if info.estimated_delivery and not info.delivered_at:
                dispatcher.utter_message(
                    response="utter_order_eta", eta=info.estimated_delivery.isoformat()
                )
        dispatcher.utter_message(json_message=order_card(tracker, info, status))
        return await close_task(dispatcher, tracker, "track", info.order_number)


def order_card(tracker: Tracker, info, status: str) -> dict[str, Any]:
    """An order-tracking card for channels that draw one (the web chat)."""
    event = info.latest_event
    return {
        "type": "order_card",
        "order_number": info.order_number,
        "status": status,
        "carrier": info.carrier,
        "tracking_number": info.tracking_number,
        "last_event": pick(tracker, event.description_en, event.description_zh) if event else None,
        "last_event_at": event.at.isoformat(timespec="minutes") if event else None,
        "eta": info.estimated_delivery.isoformat()
        if info.estimated_delivery and not info.delivered_at
        else None,
    }


class ValidateCancelForm(IdentityFormValidation):
    """Verifies the customer, refuses shipped orders up front, then asks for confirmation."""

    task_slots = (CANCEL_CONFIRMED,)
    needs_second_factor = True

    def name(self) -> str:
        return "validate_cancel_form"

    async def check_order(self, customer_id, order_number, dispatcher, tracker) -> dict[str, Any]:
        details = await call_service(orders.get_order, customer_id, order_number)
        if details.status == "cancelled":
            dispatcher.utter_message(
                response="utter_order_already_cancelled", order_number=order_number
            )
            return self.stop()
        if not details.can_cancel:
            # Past cancelling: say why and point to a return instead.
            dispatcher.utter_message(
                response="utter_error_order_not_cancellable", order_number=order_number
            )
            return self.stop()
        return {}

    async def validate_cancel_confirmed(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain
    ) -> dict[str, Any]:
        if slot_value is True:
            return {CANCEL_CONFIRMED: True}
        dispatcher.utter_message(
            response="utter_cancel_kept", order_number=tracker.get_slot("order_number")
        )
        return self.stop()


class ActionCancelOrder(CustomerAction):
    """Cancels a verified, confirmed order; says whether and how much is refunded."""

    # Whatever happens the confirmation is used up: a later cancel asks again.
    reset_slots = (CANCEL_CONFIRMED, VERIFY_CONTACT)

    def name(self) -> str:
        return "action_cancel_order"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
        identity: Identity | None,
    ) -> list[EventType]:
        if tracker.get_slot(CANCEL_CONFIRMED) is not True:
            return []  # an order is never cancelled without the customer's "yes"
        number = tracker.get_slot("order_number")
        if not has_second_factor(identity, dispatcher):
            return []
        result = await call_service(orders.cancel_order, identity.customer_id, number)
        if result.refund_number:
            dispatcher.utter_message(
                response="utter_order_cancelled_refund",
                order_number=result.order_number,
                refund_number=result.refund_number,
                amount=money(result.refund_amount_cents, result.currency),
            )
        else:
            dispatcher.utter_message(
                response="utter_order_cancelled", order_number=result.order_number
            )
        return await close_task(dispatcher, tracker, "cancel", result.order_number)


_ADDRESS_SPLIT = re.compile(r"\s*[,，;；\n]\s*")
_POSTCODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 \-]{2,9}$")


def parse_address(text: Any) -> dict[str, str]:
    """``"88 Century Ave, Apt 5, Shanghai, 200120"`` → line1 / line2 / city / postcode.

    The customer types street first and city last (a postcode may follow the city), separated by
    commas (full-width ``，`` too).

    Raises:
        InvalidInput: fewer than two parts, or parts that are too short or too long.
    """
    if not isinstance(text, str):
        raise InvalidInput("address", "expected text")
    parts = [p for p in _ADDRESS_SPLIT.split(text.strip()) if p]
    postcode = None
    if len(parts) >= 3 and _POSTCODE.match(parts[-1]) and any(c.isdigit() for c in parts[-1]):
        postcode = parts.pop()
    if len(parts) < 2:
        raise InvalidInput("address", "give the street and the city, separated by a comma")
    line1, *middle, city = parts
    if not 3 <= len(line1) <= 200 or not 2 <= len(city) <= 100 or len(middle) > 1:
        raise InvalidInput("address", "street 3-200 characters, city 2-100")
    fields = {"line1": line1, "city": city}
    if middle:
        fields["line2"] = middle[0]
    if postcode:
        fields["postcode"] = postcode
    return fields


class ValidateAddressForm(IdentityFormValidation):
    """Verifies the customer, refuses packed orders up front, then takes the new address."""

    task_slots = (NEW_ADDRESS,)
    needs_second_factor = True

    def name(self) -> str:
        return "validate_address_form"

    async def check_order(self, customer_id, order_number, dispatcher, tracker) -> dict[str, Any]:
        details = await call_service(orders.get_order, customer_id, order_number)
        if not details.can_change_address:
            dispatcher.utter_message(
                response="utter_error_address_change_not_allowed", order_number=order_number
            )
            return self.stop()
        return {}

    async def validate_new_address(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain
    ) -> dict[str, Any]:
        try:
            parse_address(slot_value)
        except InvalidInput:
            return self.failed(NEW_ADDRESS, dispatcher, tracker, "utter_invalid_address")
        # Kept sealed until the action uses it: stored events never hold it in clear.
        return self.passed(NEW_ADDRESS, seal(slot_value.strip()), tracker)


class ActionChangeAddress(CustomerAction):
    """Replaces the shipping address of a verified order that is not packed yet."""

    reset_slots = (NEW_ADDRESS, VERIFY_CONTACT)

    def name(self) -> str:
        return "action_change_address"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
        identity: Identity | None,
    ) -> list[EventType]:
        number = tracker.get_slot("order_number")
        text = address_text(tracker.get_slot(NEW_ADDRESS))
        if not has_second_factor(identity, dispatcher):
            return []
        address = await call_service(
            orders.change_shipping_address, identity.customer_id, number, **parse_address(text)
        )
        shown = ", ".join(
            p for p in (address.line1, address.line2, address.city, address.postcode) if p
        )
        dispatcher.utter_message(
            response="utter_address_changed", order_number=number, address=shown
        )
        return await close_task(dispatcher, tracker, "address", number)
