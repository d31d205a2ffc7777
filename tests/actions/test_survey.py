"""How a task ends: one satisfaction survey per task, or a person when a complaint looms."""

from __future__ import annotations

import time

import pytest
from rasa_sdk.events import SlotSet

from actions.survey import ActionRecordRating, close_task
from tests.helpers.actions import (
    ANGRY_LATEST,
    angry_history,
    make_tracker,
    responses,
    slot_events,
    survey_asked,
    verified,
)

ALICE = 1.0


async def test_a_task_ends_with_one_survey_per_task(dispatcher):
    tracker = make_tracker({"order_number": "KF-100004", **verified(ALICE)})
    events = await close_task(dispatcher, tracker, "track", "KF-100004")
    assert events == survey_asked("track:KF-100004")
    assert responses(dispatcher) == ["utter_ask_rating"]

    # Answered; the customer looks the same order up again: not asked twice.
    answered = {"surveyed_tasks": ["track:KF-100004"], "survey_pending": None}
    tracker = make_tracker({"order_number": "KF-100004", **answered})
    dispatcher.messages.clear()
    assert await close_task(dispatcher, tracker, "track", "KF-100004") == []
    assert dispatcher.messages == []

    # Another task is rated on its own.
    events = await close_task(dispatcher, tracker, "cancel", "KF-100004")
    assert events == survey_asked("cancel:KF-100004", before=("track:KF-100004",))


async def test_no_survey_after_one_the_customer_let_pass(dispatcher):
    ignored = {"surveyed_tasks": ["track:KF-100004"], "survey_pending": "track:KF-100004"}
    tracker = make_tracker(ignored)
    assert await close_task(dispatcher, tracker, "return", "KF-100006") == []
    assert dispatcher.messages == []


@pytest.mark.parametrize(
    "typed, response",
    [
        ("5", "utter_thanks_rating"),
        ("five stars", "utter_thanks_rating"),
        ("4/5", "utter_thanks_rating"),
        ("五星", "utter_thanks_rating"),
        ("1 star", "utter_thanks_rating_low"),
        ("两分", "utter_thanks_rating_low"),
    ],
)
async def test_a_typed_or_clicked_rating_is_thanked_and_closes_the_survey(
    dispatcher, typed, response
):
    tracker = make_tracker({"rating": typed, "survey_pending": "track:KF-100004"})
    events = await ActionRecordRating().run(dispatcher, tracker, {})
    assert events == [SlotSet("rating", None), SlotSet("survey_pending", None)]
    assert responses(dispatcher) == [response]


async def test_an_unreadable_rating_asks_again(dispatcher):
    tracker = make_tracker({"rating": "x", "survey_pending": "track:KF-100004"})
    events = await ActionRecordRating().run(dispatcher, tracker, {})
    assert events == [SlotSet("rating", None)]
    assert responses(dispatcher) == ["utter_ask_rating"]


async def test_a_high_complaint_risk_offers_a_person_before_the_customer_asks(
    risk_model, late_order_asked_about_before, dispatcher
):
    tracker = make_tracker(
        {"order_number": "KF-100004", **verified(ALICE)},
        events=angry_history(time.time()),
        **ANGRY_LATEST,
    )
    events = await close_task(dispatcher, tracker, "track", "KF-100004")
    slots = slot_events(events)
    assert slots["complaint_risk"] >= 0.5
    assert slots["human_offered"] is True
    assert "survey_pending" not in slots  # no rating asked of a customer about to complain
    assert responses(dispatcher) == ["utter_offer_human_risk"]


async def test_the_same_order_on_time_and_a_calm_customer_get_the_survey(
    risk_model, database, dispatcher
):
    tracker = make_tracker({"order_number": "KF-100004", **verified(ALICE)})
    events = await close_task(dispatcher, tracker, "track", "KF-100004")
    slots = slot_events(events)
    assert slots["complaint_risk"] < 0.5
    assert slots["survey_pending"] == "track:KF-100004"
    assert responses(dispatcher) == ["utter_ask_rating"]


async def test_a_customer_who_said_no_to_a_person_is_not_offered_one_again(
    risk_model, late_order_asked_about_before, dispatcher
):
    now = time.time()
    history = [
        *angry_history(now),
        {"event": "action", "timestamp": now - 5, "name": "action_decline_human"},
    ]
    tracker = make_tracker(
        {"order_number": "KF-100004", **verified(ALICE)}, events=history, **ANGRY_LATEST
    )
    events = await close_task(dispatcher, tracker, "track", "KF-100004")
    assert slot_events(events)["complaint_risk"] >= 0.5
    assert responses(dispatcher) == ["utter_ask_rating"]


async def test_without_a_risk_model_tasks_end_as_before(database, dispatcher):
    tracker = make_tracker({"order_number": "KF-100004", **verified(ALICE)})
    events = await close_task(dispatcher, tracker, "track", "KF-100004")
    assert events == survey_asked("track:KF-100004")
