"""Satisfaction survey at the end of a resolved flow (1-5 buttons) and recording the answer."""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

logger = logging.getLogger(__name__)

RATING = "rating"


def ask_survey(dispatcher: CollectingDispatcher) -> None:
    """Ask for a 1-5 rating; the buttons send ``/inform{"rating": "<n>"}``."""
    dispatcher.utter_message(response="utter_ask_rating")


def parse_rating(value: Any) -> int | None:
    """``"5"``, ``5``, ``"５"`` → 5; anything outside 1-5 → None."""
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        rating = int(str(value).strip().translate(str.maketrans("１２３４５", "12345")))
    except (TypeError, ValueError):
        return None
    return rating if 1 <= rating <= 5 else None


class ActionRecordRating(Action):
    """Thanks the customer for the rating and logs it for the satisfaction report."""

    def name(self) -> str:
        return "action_record_rating"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        rating = parse_rating(tracker.get_slot(RATING))
        if rating is None:
            dispatcher.utter_message(response="utter_ask_rating")
            return [SlotSet(RATING, None)]
        logger.info("satisfaction rating %d from conversation %s", rating, tracker.sender_id)
        response = "utter_thanks_rating_low" if rating <= 2 else "utter_thanks_rating"
        dispatcher.utter_message(response=response)
        return [SlotSet(RATING, None)]
