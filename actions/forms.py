"""The base of every form's validation: polite failures, and forms that stop explicitly.

A form ends in one of two ways, and the rules tell them apart by the ``form_stopped`` slot
(domain/forms.yml):

- **completed**: every required slot is filled; ``form_stopped`` is unset, and the form's
  "done" rule runs its submit action;
- **stopped early**: a validator explained why it cannot go on (three failures, an order that
  cannot be cancelled, "no" to the confirmation, an outage) and returned :meth:`stop`; the
  form ends with ``form_stopped: true`` and the longer "stopped" rule, which wins over the
  "done" rule, waits for the customer instead of running the submit action.

``form_stopped`` is cleared on the first run of the next form, so it never leaks into it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT, FormValidationAction
from rasa_sdk.types import DomainDict

from actions.common import ServiceUnavailable, utter_for_exception
from commerce.errors import CommerceError

FAILED_VALIDATIONS = "failed_validations"
HUMAN_OFFERED = "human_offered"
#: True once a form stopped early (read by the "stopped" rules); unset while a form runs.
FORM_STOPPED = "form_stopped"
#: Failed validations of one slot before the form stops and offers a human.
MAX_SLOT_FAILURES = 3


def offer_human(dispatcher: CollectingDispatcher) -> dict[str, Any]:
    """Utter the offer of a human agent; the slot update that lets "yes" accept it."""
    dispatcher.utter_message(response="utter_offer_human")
    return {HUMAN_OFFERED: True}


def stopped_form_events() -> list[EventType]:
    """Events that end the active form early (for a form's ask action as well)."""
    return [
        SlotSet(FAILED_VALIDATIONS, None),
        SlotSet(FORM_STOPPED, True),
        SlotSet(REQUESTED_SLOT, None),
    ]


def first_value(value: Any) -> Any:
    """Entities can fill a slot with a list when a message repeats them; use the first."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


class KefuFormValidation(FormValidationAction, ABC):
    """Form validation with polite failures and an explicit way for validators to stop the form.

    A validator returns :meth:`stop` (after uttering why) to end the form early; commerce
    errors and outages raised while validating utter their polite answer and end it too.
    """

    #: Task slots cleared when the form stops early, so a later form starts clean.
    task_slots: tuple[str, ...] = ()

    @abstractmethod
    def name(self) -> str:
        """``validate_<form>``; abstract so the action server does not register this base."""

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        # What the previous form's end left behind is not this form's outcome.
        cleared = [SlotSet(FORM_STOPPED, None)] if tracker.slots.get(FORM_STOPPED) else []
        tracker.slots[FORM_STOPPED] = None
        try:
            events = await super().run(dispatcher, tracker, domain)
        except (CommerceError, ServiceUnavailable) as e:
            utter_for_exception(dispatcher, e)
            return [*cleared, *self._stop_events()]
        if any(_is_slot(e, FORM_STOPPED) and e.get("value") for e in events):
            # The SDK may have named a next slot: the stop overrides it.
            kept = [e for e in events if not _is_slot(e, FORM_STOPPED, REQUESTED_SLOT)]
            return [*cleared, *kept, *self._stop_events()]
        return [*cleared, *events]

    def _stop_events(self) -> list[EventType]:
        resets = [SlotSet(slot, None) for slot in self.task_slots]
        return [*resets, *stopped_form_events()]

    # --- helpers for validators ---------------------------------------------------------------

    @staticmethod
    def failed(
        slot: str, dispatcher: CollectingDispatcher, tracker: Tracker, response: str, **kwargs
    ) -> dict[str, Any]:
        """Reject a slot value: re-ask with a hint, or after three failures offer a human."""
        counts = dict(tracker.get_slot(FAILED_VALIDATIONS) or {})
        counts[slot] = counts.get(slot, 0) + 1
        if counts[slot] >= MAX_SLOT_FAILURES:
            return KefuFormValidation.stop(**{slot: None}, **offer_human(dispatcher))
        dispatcher.utter_message(response=response, **kwargs)
        return {slot: None, FAILED_VALIDATIONS: counts}

    @staticmethod
    def stop(**slots: Any) -> dict[str, Any]:
        """Stop the form after the validator has explained why (``form_stopped: true``)."""
        return {**slots, FORM_STOPPED: True}

    @staticmethod
    def passed(slot: str, value: Any, tracker: Tracker) -> dict[str, Any]:
        counts = dict(tracker.get_slot(FAILED_VALIDATIONS) or {})
        counts.pop(slot, None)
        return {slot: value, FAILED_VALIDATIONS: counts or None}


def _is_slot(event: EventType, *names: str) -> bool:
    return event.get("event") == "slot" and event.get("name") in names
