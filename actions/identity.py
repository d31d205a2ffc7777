"""Identity verification shared by every form that touches an order, and the one-time code.

A customer proves they own an order with the order number plus the email or phone on it, or the
channel vouches for them with a signed identity claim in the message metadata
(``metadata.kefu_identity``, see :mod:`actions.session`), which skips the question. The commerce
backend does the checking and the rate limiting (:func:`commerce.services.identity.verify_order_owner`);
this module asks, re-asks with a helpful hint, and after three failures for the same slot offers a
human.

Reading an order needs nothing more. Changing one (``cancel_form``, ``address_form``,
``return_form``, ``exchange_form``: :attr:`IdentityFormValidation.needs_second_factor`) needs proof
of possession as well: a token claim, or a 6-digit one-time code that
:class:`ActionAskVerifyCode` sends to the email (or, for a phone check, the phone) on file and
``validate_verify_code`` checks.

Each order form starts with the slots ``order_number`` and ``verify_contact`` (and, for the
forms that change an order, ``verify_code``); ``verify_contact`` is dropped from the form once an
identity is known and ``verify_code`` once it has a second factor. The pending contact is kept
sealed (:func:`commerce.privacy.seal`), and neither the contact nor the code stays in a slot once
used.

The form base class (polite failures, stopping early with ``form_stopped``) is
:class:`actions.forms.KefuFormValidation`; this module adds what is specific to identity.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from abc import ABC
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT
from rasa_sdk.types import DomainDict

from actions.common import ServiceUnavailable, call_service, lang, utter_for_exception
from actions.forms import (
    KefuFormValidation,
    first_value,
    offer_human,
    stopped_form_events,
)
from actions.session import (
    VERIFY_CODE,
    VERIFY_CODE_SENT,
    VERIFY_CONTACT,
    Identity,
    client_of,
    current_identity,
    identify,
    verified_slots,
)
from commerce.errors import (
    CodeExpired,
    CommerceError,
    InvalidInput,
    OrderNotFound,
    TooManyAttempts,
    VerificationFailed,
)
from commerce.privacy import seal, unseal
from commerce.services import orders
from commerce.services.identity import (
    check_verification_code,
    normalize_email,
    normalize_order_number,
    normalize_phone,
    send_verification_code,
    verify_order_owner,
)

logger = logging.getLogger(__name__)

ORDER_NUMBER = "order_number"


class IdentityFormValidation(KefuFormValidation, ABC):
    """Validates ``order_number``, ``verify_contact`` and ``verify_code``; subclasses add their
    task's slots.

    Subclasses may override :meth:`check_order` to refuse early (e.g. a shipped order cannot be
    cancelled) once the customer and the order are known, and set :attr:`needs_second_factor`
    when the task changes the order.
    """

    #: The task changes an order: a token claim or a one-time code must prove possession.
    needs_second_factor = False

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        slots = await super().required_slots(domain_slots, dispatcher, tracker, domain)
        identity = current_identity(tracker)
        if identity is not None:
            slots = [s for s in slots if s != VERIFY_CONTACT]
        if not self.needs_second_factor or (identity is not None and identity.second_factor):
            slots = [s for s in slots if s != VERIFY_CODE]
        return slots

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        resolved = await identify(tracker)
        answered = tracker.slots_to_validate()
        events = await super().run(dispatcher, tracker, domain)
        # A contact or code the form no longer needs is not validated by the SDK: never keep it.
        returned = {e.get("name") for e in events if e.get("event") == "slot"}
        unused = [
            SlotSet(slot, None)
            for slot in (VERIFY_CONTACT, VERIFY_CODE)
            if answered.get(slot) is not None and slot not in returned
        ]
        return [*resolved.events, *events, *unused]

    def _stop_events(self) -> list[EventType]:
        return [SlotSet(VERIFY_CONTACT, None), SlotSet(VERIFY_CODE, None), *super()._stop_events()]

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
        previous = value_before_latest_message(tracker, ORDER_NUMBER)
        if tracker.get_slot(REQUESTED_SLOT) == VERIFY_CODE and previous:
            # Digits of a one-time code read as an order number: the order stays as it was.
            return {ORDER_NUMBER: previous}
        try:
            number = normalize_order_number(first_value(slot_value))
        except InvalidInput:
            return self.failed(ORDER_NUMBER, dispatcher, tracker, "utter_invalid_order_number")
        result = self.passed(ORDER_NUMBER, number, tracker)
        identity = current_identity(tracker)
        if identity is not None:
            return {
                **result,
                **await self._checked(identity.customer_id, number, dispatcher, tracker),
            }
        pending = tracker.get_slot(VERIFY_CONTACT)
        if pending and VERIFY_CONTACT not in tracker.slots_to_validate():
            # The contact came first ("it's anna@example.com"); verify now that both are known.
            contact = unseal(pending)
            if contact is None:
                return {**result, VERIFY_CONTACT: None}  # unreadable: the form asks again
            tracker.slots[ORDER_NUMBER] = number
            kind = "email" if "@" in contact else "phone"
            return {**result, **await self._verify(number, kind, contact, dispatcher, tracker)}
        return result

    async def validate_verify_contact(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        if current_identity(tracker) is not None:
            # Already verified: an email or phone in a later answer is no new claim.
            return {VERIFY_CONTACT: None}
        try:
            kind, contact = contact_from_text(first_value(slot_value))
        except InvalidInput:
            return self.failed(VERIFY_CONTACT, dispatcher, tracker, "utter_invalid_contact")
        number = tracker.get_slot(ORDER_NUMBER)
        if not number:
            # Kept until the order number comes, sealed: stored events never hold it in clear.
            return {VERIFY_CONTACT: seal(contact)}
        return await self._verify(number, kind, contact, dispatcher, tracker)

    async def validate_verify_code(
        self,
        slot_value: Any,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> dict[str, Any]:
        identity = current_identity(tracker)
        if (
            identity is None
            or identity.second_factor
            or tracker.get_slot(REQUESTED_SLOT) != VERIFY_CODE
        ):
            return {VERIFY_CODE: None}
        text = first_value(slot_value)
        if wants_new_code(text):
            # The form asks again, and action_ask_verify_code sends a fresh code.
            return {VERIFY_CODE: None, VERIFY_CODE_SENT: None}
        code = code_from_text(text)
        if code is None:
            return self.failed(VERIFY_CODE, dispatcher, tracker, "utter_invalid_verify_code")
        try:
            who = await call_service(
                check_verification_code,
                identity.customer_id,
                code,
                conversation_id=tracker.sender_id[:100],
                client=client_of(tracker),
            )
        except CodeExpired:
            dispatcher.utter_message(response="utter_verify_code_expired")
            return {VERIFY_CODE: None, VERIFY_CODE_SENT: None}
        except TooManyAttempts as e:
            utter_for_exception(dispatcher, e)
            return self.stop(**{VERIFY_CODE_SENT: None}, **offer_human(dispatcher))
        except (VerificationFailed, InvalidInput):
            return self.failed(VERIFY_CODE, dispatcher, tracker, "utter_verify_code_wrong")
        dispatcher.utter_message(response="utter_verify_code_accepted")
        proved = verified_slots(
            who.customer_id,
            "code",
            order_number=identity.order_number,
            second_factor=True,
        )
        return {**self.passed(VERIFY_CODE, None, tracker), **proved, VERIFY_CODE_SENT: None}

    async def _verify(
        self,
        number: str,
        kind: str,
        contact: str,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
    ) -> dict[str, Any]:
        """Verify ``contact`` (already normalised: ``kind`` is ``email`` or ``phone``)."""
        try:
            who = await call_service(
                verify_order_owner,
                number,
                **{kind: contact},
                conversation_id=tracker.sender_id[:100],
                client=client_of(tracker),
            )
        except TooManyAttempts as e:
            utter_for_exception(dispatcher, e)
            return self.stop(**offer_human(dispatcher))
        except VerificationFailed:
            # Same answer for an unknown order and a wrong contact: nothing is disclosed.
            return self.failed(VERIFY_CONTACT, dispatcher, tracker, "utter_verification_failed")
        except InvalidInput:
            return self.failed(VERIFY_CONTACT, dispatcher, tracker, "utter_invalid_contact")
        # The contact has done its job: it is not kept.
        result = {
            **self.passed(VERIFY_CONTACT, None, tracker),
            **verified_slots(who.customer_id, who.method, order_number=who.order_number),
        }
        dispatcher.utter_message(response="utter_verified")
        tracker.slots.update(result)
        return {**result, **await self._checked(who.customer_id, number, dispatcher, tracker)}

    async def _checked(
        self, customer_id: int, number: str, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        try:
            return await self.check_order(customer_id, number, dispatcher, tracker)
        except OrderNotFound:
            # A verified customer naming someone else's (or no) order: same words either way.
            return self.failed(ORDER_NUMBER, dispatcher, tracker, "utter_error_order_not_found")


class ActionAskVerifyCode(Action):
    """Asks for the one-time code, sending it first unless one is already on its way.

    The code goes to the email on file (to the phone when the customer verified with it); the
    answer says where, masked. If no code can be sent (too many, or an outage) the form ends
    with a polite answer and the offer of a person.
    """

    def name(self) -> str:
        return "action_ask_verify_code"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        resolved = await identify(tracker)
        identity = resolved.identity
        if identity is None:
            # The identity ran out while the form was open: check again.
            dispatcher.utter_message(response="utter_verify_again")
            return [*resolved.events, SlotSet(REQUESTED_SLOT, VERIFY_CONTACT)]
        if identity.second_factor:
            return resolved.events
        pending = pending_code(tracker, identity)
        if pending is not None:
            dispatcher.utter_message(
                response="utter_ask_verify_code_again", destination=pending["destination"]
            )
            return resolved.events
        channel = "sms" if identity.method == "phone" else "email"
        try:
            sent = await call_service(
                send_verification_code,
                identity.customer_id,
                conversation_id=tracker.sender_id[:100],
                client=client_of(tracker),
                language=lang(tracker),
                channel=channel,
            )
        except (CommerceError, ServiceUnavailable) as e:
            utter_for_exception(dispatcher, e)
            offer = offer_human(dispatcher)
            return [
                *resolved.events,
                *(SlotSet(k, v) for k, v in offer.items()),
                *stopped_form_events(),  # ends the form: the "stopped" rule waits
            ]
        dispatcher.utter_message(
            response="utter_code_sent_sms" if sent.channel == "sms" else "utter_code_sent_email",
            destination=sent.destination,
            minutes=max(1, int(sent.expires_in_s) // 60),
        )
        return [
            *resolved.events,
            SlotSet(
                VERIFY_CODE_SENT,
                {
                    "customer_id": identity.customer_id,
                    "channel": sent.channel,
                    "destination": sent.destination,
                    "expires_at": time.time() + int(sent.expires_in_s),
                },
            ),
        ]


def pending_code(
    tracker: Tracker, identity: Identity, *, now: float | None = None
) -> dict[str, Any] | None:
    """The code on its way to ``identity``'s customer, while it is still valid."""
    value = tracker.get_slot(VERIFY_CODE_SENT)
    if not isinstance(value, dict):
        return None
    now = time.time() if now is None else now
    try:
        mine = int(value.get("customer_id")) == identity.customer_id
        valid = float(value.get("expires_at", 0)) > now
    except (TypeError, ValueError):
        return None
    return value if mine and valid and value.get("destination") else None


def value_before_latest_message(tracker: Tracker, slot: str) -> Any:
    """What ``slot`` held before the latest user message (None when unset)."""
    value = None
    last_user = max(
        (i for i, e in enumerate(tracker.events) if e.get("event") == "user"), default=None
    )
    for i, event in enumerate(tracker.events):
        if last_user is not None and i >= last_user:
            break
        if event.get("event") == "slot" and event.get("name") == slot:
            value = event.get("value")
        elif event.get("event") == "session_started":
            value = None
    return value


_EMAIL_IN_TEXT = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_PHONE_IN_TEXT = re.compile(r"(?:\+|00)?\d[\d\s().\-]{5,}\d")


def contact_from_text(raw: Any) -> tuple[str, str]:
    """The email or phone in an answer, normalised once (the service reads it back unchanged).

    ``"it's Anna@Example.com"`` → ``("email", "anna@example.com")``. A phone typed with its
    country code (``"+1 415 555 0101"``, ``"0086 138 0013 8001"``) → ``"+"`` and its digits
    (``"+14155550101"``), which :func:`~commerce.services.identity.normalize_phone` keeps as they
    are. A national number (``"4155550101"``, ``"415-555-0101"``, ``"1 (415) 555-0101"``,
    ``"138 0013 8001"``) → its digits only, which the service reads both ways (US and Chinese),
    so an 11-digit US number with its leading 1 is not taken for a Chinese mobile.

    Raises:
        InvalidInput: neither a valid email nor a valid phone number.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidInput(VERIFY_CONTACT, "expected an email or a phone number")
    text = unicodedata.normalize("NFKC", raw).strip()
    if "@" in text:
        found = _EMAIL_IN_TEXT.search(text)
        if found is None:
            raise InvalidInput(VERIFY_CONTACT, "not an email address")
        return "email", normalize_email(found.group(0))
    found = _PHONE_IN_TEXT.search(text)
    if found is None:
        raise InvalidInput(VERIFY_CONTACT, "expected an email or a phone number")
    typed = found.group(0).strip()
    digits = normalize_phone(typed)  # validates; with a +/00 prefix these are the digits
    if typed.startswith(("+", "00")):
        return "phone", "+" + digits
    return "phone", re.sub(r"\D", "", typed)


_CODE = re.compile(r"(?<!\d)\d{6}(?!\d)")
_NEW_CODE = re.compile(
    r"resend|new code|another code|send (?:it |the code |a code )?again|"
    r"(?:didn'?t|did not|haven'?t|not) (?:get|got|receive|received|arrive)|"
    r"重发|重新发|再发|没收到|没有收到|收不到|新的验证码",
    re.IGNORECASE,
)


def code_from_text(raw: Any) -> str | None:
    """The 6 digits of a one-time code in an answer (``"123 456"``, ``"code: 123456"``)."""
    if not isinstance(raw, str):
        return None
    text = unicodedata.normalize("NFKC", raw)
    found = _CODE.findall(re.sub(r"(?<=\d)[\s\-](?=\d)", "", text))
    return found[0] if len(found) == 1 else None


def wants_new_code(raw: Any) -> bool:
    """The customer asks for a new code ("resend", "I didn't get it", "重新发送")."""
    return isinstance(raw, str) and bool(_NEW_CODE.search(unicodedata.normalize("NFKC", raw)))


class ValidateOrderStatusForm(IdentityFormValidation):
    """Order status needs nothing beyond identity."""

    def name(self) -> str:
        return "validate_order_status_form"


class ValidateRefundForm(IdentityFormValidation):
    """Refund status needs nothing beyond identity."""

    def name(self) -> str:
        return "validate_refund_form"
