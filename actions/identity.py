"""Identity verification shared by every form that touches an order.

A customer proves they own an order with the order number plus the email or phone on it, or the
channel vouches for them with a signed customer token in the message metadata
(``metadata.customer_token``), which skips the question. The commerce backend does the checking
and the rate limiting (:func:`commerce.services.identity.verify_order_owner`); this module asks,
re-asks with a helpful hint, and after three failures for the same slot offers a human.

Each order form (``order_status_form``, ``cancel_form`` ...) starts with the slots
``order_number`` and ``verify_contact`` and validates them with :class:`IdentityFormValidation`;
``verify_contact`` is dropped from the form once ``verified_customer_id`` is set.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT, FormValidationAction
from rasa_sdk.types import DomainDict

from actions.common import (
    ServiceUnavailable,
    call_service,
    utter_for_exception,
    verified_customer,
)
from commerce.errors import (
    CommerceError,
    InvalidInput,
    OrderNotFound,
    TooManyAttempts,
    VerificationFailed,
)
from commerce.services import orders
from commerce.services.identity import (
    customer_from_token,
    normalize_email,
    normalize_order_number,
    normalize_phone,
    verify_order_owner,
)

logger = logging.getLogger(__name__)

ORDER_NUMBER = "order_number"
VERIFY_CONTACT = "verify_contact"
VERIFIED_CUSTOMER_ID = "verified_customer_id"
VERIFIED_ORDER = "verified_order"
VERIFIED_METHOD = "verified_method"
FAILED_VALIDATIONS = "failed_validations"
HUMAN_OFFERED = "human_offered"
#: Failed validations of one slot before the form stops and offers a human.
MAX_SLOT_FAILURES = 3
# Internal marker a validator returns to stop the form; never leaves the action server.
_HALT = "_kefu_halt"


def customer_token(tracker: Tracker) -> str | None:
    """The signed customer token the channel attached to the latest message, if any."""
    token = ((tracker.latest_message or {}).get("metadata") or {}).get("customer_token")
    if token:
        return token
    # Rasa keeps the channel's metadata on the user event, not always in the parse data.
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return (event.get("metadata") or {}).get("customer_token") or None
    return None


async def token_events(tracker: Tracker) -> list[EventType]:
    """``verified_customer_id`` from a valid customer token; nothing for none or a bad one.

    A forged or expired token is not an error for the customer: the form simply asks for the
    order number and email instead.
    """
    token = customer_token(tracker)
    if not token:
        return []

    def check(sf):
        return customer_from_token(token, session_factory=sf)

    try:
        customer = await call_service(check)
    except CommerceError as e:
        logger.info("customer token not accepted: %s", e.code)
        return []
    return [
        SlotSet(VERIFIED_CUSTOMER_ID, float(customer.customer_id)),
        SlotSet(VERIFIED_METHOD, "token"),
    ]


def offer_human(dispatcher: CollectingDispatcher) -> dict[str, Any]:
    """Utter the offer of a human agent; the slot update that lets "yes" accept it."""
    dispatcher.utter_message(response="utter_offer_human")
    return {HUMAN_OFFERED: True}


class KefuFormValidation(FormValidationAction, ABC):
    """Form validation with polite failures and a way for validators to stop the form.

    A validator returns :meth:`stop` (after uttering why) to end the form early; commerce
    errors and outages raised while validating utter their polite answer and end it too.
    """

    #: Task slots cleared when the form stops early, so a later form starts clean.
    task_slots: tuple[str, ...] = ()

    @abstractmethod
    def name(self) -> str:
        """``validate_<form>``; abstract so the action server does not register this base."""

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        if tracker.slots.get(_HALT):
            return []
        return domain_slots

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        try:
            events = await super().run(dispatcher, tracker, domain)
        except (CommerceError, ServiceUnavailable) as e:
            utter_for_exception(dispatcher, e)
            return self._stop_events()
        if any(e.get("name") == _HALT and e.get("value") for e in events):
            events = [e for e in events if e.get("name") != _HALT]
            events += self._stop_events()
        return events

    def _stop_events(self) -> list[EventType]:
        resets = [SlotSet(slot, None) for slot in self.task_slots]
        return [*resets, SlotSet(FAILED_VALIDATIONS, None), SlotSet(REQUESTED_SLOT, None)]

    # --- helpers for validators ---------------------------------------------------------------

    @staticmethod
    def failed(
        slot: str, dispatcher: CollectingDispatcher, tracker: Tracker, response: str, **kwargs
    ) -> dict[str, Any]:
        """Reject a slot value: re-ask with a hint, or after three failures offer a human."""
        counts = dict(tracker.get_slot(FAILED_VALIDATIONS) or {})
        counts[slot] = counts.get(slot, 0) + 1
        if counts[slot] >= MAX_SLOT_FAILURES:
            return {slot: None, _HALT: True, **offer_human(dispatcher)}
        dispatcher.utter_message(response=response, **kwargs)
        return {slot: None, FAILED_VALIDATIONS: counts}

    @staticmethod
    def stop(**slots: Any) -> dict[str, Any]:
        """Stop the form after the validator has explained why."""
        return {**slots, _HALT: True}

    @staticmethod
    def passed(slot: str, value: Any, tracker: Tracker) -> dict[str, Any]:
        counts = dict(tracker.get_slot(FAILED_VALIDATIONS) or {})
        counts.pop(slot, None)
        return {slot: value, FAILED_VALIDATIONS: counts or None}


class IdentityFormValidation(KefuFormValidation, ABC):
    """Validates ``order_number`` and ``verify_contact``; subclasses add their task's slots.

    Subclasses may override :meth:`check_order` to refuse early (e.g. a shipped order cannot be
    cancelled) once the customer and the order are known.
    """

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        slots = await super().required_slots(domain_slots, dispatcher, tracker, domain)
        if verified_customer(tracker) is not None:
            return [s for s in slots if s != VERIFY_CONTACT]
        return slots

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events: list[EventType] = []
        if verified_customer(tracker) is None:
            try:
                events = await token_events(tracker)
            except ServiceUnavailable:
                events = []
            tracker.add_slots(events)
        return [*events, *await super().run(dispatcher, tracker, domain)]

    def _stop_events(self) -> list[EventType]:
        return [SlotSet(VERIFY_CONTACT, None), *super()._stop_events()]

    async def check_order(
        self,
        customer_id: int,
        order_number: str,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
    ) -> dict[str, Any]:
        """Hook run once the customer and order are known; return slot updates (or stop()).

        By default it only checks that the order is the customer's (OrderNotFound otherwise).
        """
        await call_service(orders.get_order, customer_id, order_number)
        return {}

    # --- validators ---------------------------------------------------------------------------

    async def validate_order_number(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        try:
            number = normalize_order_number(first_value(slot_value))
        except InvalidInput:
            return self.failed(ORDER_NUMBER, dispatcher, tracker, "utter_invalid_order_number")
        result = self.passed(ORDER_NUMBER, number, tracker)
        customer_id = verified_customer(tracker)
        if customer_id is not None:
            return {**result, **await self._checked(customer_id, number, dispatcher, tracker)}
        contact = tracker.get_slot(VERIFY_CONTACT)
        if contact and VERIFY_CONTACT not in tracker.slots_to_validate():
            # The contact came first ("it's anna@example.com"); verify now that both are known.
            tracker.slots[ORDER_NUMBER] = number
            return {**result, **await self._verify(number, contact, dispatcher, tracker)}
        return result

    async def validate_verify_contact(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        contact = first_value(slot_value)
        try:
            kind, contact = _normalize_contact(contact)
        except InvalidInput:
            return self.failed(VERIFY_CONTACT, dispatcher, tracker, "utter_invalid_contact")
        number = tracker.get_slot(ORDER_NUMBER)
        if not number:
            return {VERIFY_CONTACT: contact}
        return await self._verify(number, contact, dispatcher, tracker)

    async def _verify(
        self, number: str, contact: str, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        kind, contact = _normalize_contact(contact)
        try:
            who = await call_service(
                verify_order_owner,
                number,
                **{kind: contact},
                conversation_id=tracker.sender_id,
            )
        except TooManyAttempts as e:
            utter_for_exception(dispatcher, e)
            return self.stop(**offer_human(dispatcher))
        except VerificationFailed:
            # Same answer for an unknown order and a wrong contact: nothing is disclosed.
            return self.failed(VERIFY_CONTACT, dispatcher, tracker, "utter_verification_failed")
        except InvalidInput:
            return self.failed(VERIFY_CONTACT, dispatcher, tracker, "utter_invalid_contact")
        result = {
            **self.passed(VERIFY_CONTACT, contact, tracker),
            VERIFIED_CUSTOMER_ID: float(who.customer_id),
            VERIFIED_ORDER: who.order_number,
            VERIFIED_METHOD: who.method,
        }
        dispatcher.utter_message(response="utter_verified")
        return {**result, **await self._checked(who.customer_id, number, dispatcher, tracker)}

    async def _checked(
        self, customer_id: int, number: str, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        try:
            return await self.check_order(customer_id, number, dispatcher, tracker)
        except OrderNotFound:
            # A verified customer naming someone else's (or no) order: same words either way.
            return self.failed(ORDER_NUMBER, dispatcher, tracker, "utter_error_order_not_found")


def first_value(value: Any) -> Any:
    """Entities can fill a slot with a list when a message repeats them; use the first."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _normalize_contact(raw: Any) -> tuple[str, str]:
    """``("email", "anna@example.com")`` or ``("phone", "8613800138000")``.

    Raises:
        InvalidInput: neither a valid email nor a valid phone number.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(VERIFY_CONTACT, "expected an email or a phone number")
    if "@" in raw:
        return "email", normalize_email(raw)
    return "phone", normalize_phone(raw)


class ValidateOrderStatusForm(IdentityFormValidation):
    """Order status needs nothing beyond identity."""

    def name(self) -> str:
        return "validate_order_status_form"


class ValidateRefundForm(IdentityFormValidation):
    """Refund status needs nothing beyond identity."""

    def name(self) -> str:
        return "validate_refund_form"
