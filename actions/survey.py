"""How a task ends: a person for a conversation heading for a complaint, else the survey.

A task (an order's status, a cancel, an address change, a return, an exchange, a refund's
status) ends with :func:`close_task`:

- When the conversation's complaint risk is high (:func:`actions.support.complaint_risk`,
  ``contract.is_high_risk``), Kefu offers a person before the customer asks
  (``utter_offer_human_risk``; "yes" and "no" go through the same rules as any offer of a
  person) and does not ask for a rating. A customer who already said no to a person, or was
  already handed over, in this session is not offered again.
- Otherwise it asks the 1-5 survey, at most once per task (its kind and order) in a session,
  and not at all once the customer let a survey pass unanswered in this session: a survey after
  every answer is the survey customers stop answering.

The answer (a button, or typed: "4", "five stars", "五星", see ``contract.rating_of`` and the
``RatingReader`` NLU component) is recorded by :class:`ActionRecordRating`. The ``rating`` slot
event is what the analytics consumer stores against the conversation and, when one took part,
its agent.
"""

from __future__ import annotations

import logging

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.forms import HUMAN_OFFERED
from actions.support import complaint_risk, declined_or_handed_over
from contract import (
    COMPLAINT_RISK_SLOT,
    RATING_SLOT,
    SURVEY_PENDING_SLOT,
    is_high_risk,
    rating_of,
)

logger = logging.getLogger(__name__)

#: The tasks this session was asked to rate (``<task>:<order>``).
SURVEYED = "surveyed_tasks"
#: The task of a survey asked and not answered yet (the agent console sets it too).
SURVEY_PENDING = SURVEY_PENDING_SLOT


def task_key(task: str, order_number: str | None = None) -> str:
    """What one survey is about: the task's kind and its order (``track:KF-100001``)."""
    return f"{task}:{order_number}" if order_number else task


def ask_survey(dispatcher: CollectingDispatcher, tracker: Tracker, key: str) -> list[EventType]:
    """Ask for a 1-5 rating of the task ``key``, unless this session already did or was ignored.

    The buttons send ``/inform{"rating": "<n>"}``.
    """
    asked = list(tracker.get_slot(SURVEYED) or [])
    if tracker.get_slot(SURVEY_PENDING) or key in asked:
        return []
    dispatcher.utter_message(response="utter_ask_rating")
    return [SlotSet(SURVEYED, [*asked, key]), SlotSet(SURVEY_PENDING, key)]


async def close_task(
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
    task: str,
    order_number: str | None = None,
) -> list[EventType]:
    """End a task: offer a person when the complaint risk is high, else ask the survey once.

    Args:
        task: the task's kind (``track``, ``cancel``, ``address``, ``return``, ``exchange``,
            ``refund``).
        order_number: the order it was about (its delay is part of the risk).
    """
    score = await complaint_risk(tracker, order_number)
    events: list[EventType] = [] if score is None else [SlotSet(COMPLAINT_RISK_SLOT, score)]
    if (
        is_high_risk(score)
        and not tracker.get_slot(HUMAN_OFFERED)
        and not declined_or_handed_over(tracker)
    ):
        logger.info("complaint risk %.2f in %s: offering a person", score, tracker.sender_id)
        dispatcher.utter_message(response="utter_offer_human_risk")
        return [*events, SlotSet(HUMAN_OFFERED, True)]
    return [*events, *ask_survey(dispatcher, tracker, task_key(task, order_number))]


class ActionRecordRating(Action):
    """Thanks the customer for the rating; the slot event is what analytics stores."""

    def name(self) -> str:
        return "action_record_rating"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        rating = rating_of(tracker.get_slot(RATING_SLOT))
        if rating is None:
            dispatcher.utter_message(response="utter_ask_rating")
            return [SlotSet(RATING_SLOT, None)]
        logger.info("satisfaction rating %d from conversation %s", rating, tracker.sender_id)
        response = "utter_thanks_rating_low" if rating <= 2 else "utter_thanks_rating"
        dispatcher.utter_message(response=response)
        return [SlotSet(RATING_SLOT, None), SlotSet(SURVEY_PENDING, None)]
