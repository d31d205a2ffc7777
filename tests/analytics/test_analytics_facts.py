"""A conversation's events → its facts (analytics.facts), on the recorded conversations."""

from __future__ import annotations

from collections import defaultdict

import pytest

from analytics.events import check_event, mask_order_number, order_key
from analytics.facts import ConversationFacts, conversation_facts, outcome_of
from tests.analytics.conftest import NOW, ORDER_SECRET


@pytest.fixture(scope="module")
def facts(recorded_lines) -> dict[str, ConversationFacts]:
    events = defaultdict(list)
    for line in recorded_lines:
        checked = check_event(line, now=NOW, order_secret=ORDER_SECRET)
        events[checked.sender_id].append(checked.data)
    return {
        sender: conversation_facts(sender, evs, order_secret=ORDER_SECRET)
        for sender, evs in events.items()
    }


def users(facts: ConversationFacts):
    return [t for t in facts.turns if t.kind == "user"]


def test_tracking_with_verification_and_a_rating(facts):
    f = facts["rest-en-track"]
    assert (f.language, f.user_messages, f.flows, f.csat) == ("en", 4, ["tracking"], 5)
    assert [(t.flow, t.outcome) for t in f.tasks] == [("tracking", "completed")]
    assert f.contained and f.resolved and not f.handoff
    assert f.order_numbers == ["KF-****23"]
    assert f.order_keys == [order_key("KF-100023", ORDER_SECRET)]
    rating_turn = users(f)[-1]
    # The survey button skips NLU: no sentiment, so no score (not a calm 0).
    assert (rating_turn.rating, rating_turn.frustration, rating_turn.language) == (5, None, "en")
    form_turns = [t for t in f.turns if t.action == "order_status_form"]
    assert [t.form_event for t in form_turns] == ["started", "completed"]


def test_the_fallback_is_counted_once_and_the_clarified_copy_is_no_turn(facts):
    f = facts["rest-en-fallback"]
    turns = users(f)
    assert [t.intent for t in turns] == ["nlu_fallback", "out_of_scope", "order_status", "stop"]
    first = turns[0]
    # Under its nearest intent; the customer's next own request was the same intent reworded.
    assert (first.fallback, first.nearest_intent, first.rephrased) == (True, "order_status", True)
    assert f.fallbacks == 1
    assert [(t.flow, t.outcome) for t in f.tasks] == [("tracking", "abandoned")]
    assert f.contained and not f.resolved


def test_a_refused_return_then_asking_for_a_person(facts):
    f = facts["web-en-return"]
    assert [(t.flow, t.outcome, t.outcome_code) for t in f.tasks] == [
        ("return", "stopped", "not_eligible:window_expired")
    ]
    assert (f.handoff, f.handoff_reason, f.agent, f.agent_wait_s) == (True, "asked", "anna", 95.0)
    assert not f.contained
    # The request the bot failed at is the return, not the email or the request for a person.
    assert [t.intent for t in users(f) if t.followed_by_handoff] == ["return_item"]
    handoff = next(t for t in f.turns if t.action == "action_handoff")
    assert (handoff.outcome, handoff.handoff_reason) == ("handoff", "asked")


def test_an_accepted_offer_after_a_complaint_is_a_complaint_handoff(facts):
    f = facts["web-zh-complaint"]
    assert (f.language, f.handoff_reason, f.agent, f.agent_wait_s) == (
        "zh",
        "complaint",
        "李娜",
        240.0,
    )
    assert (f.frustration_max, f.frustration_last) == (0.86, 0.7)
    assert [t.agent for t in f.turns if t.kind == "agent"] == ["李娜"]


def test_a_form_that_gives_up_is_stopped_and_the_declined_offer_keeps_it_contained(facts):
    f = facts["rest-zh-verify"]
    assert [(t.flow, t.outcome) for t in f.tasks] == [("tracking", "stopped")]
    assert f.contained and not f.resolved and not f.handoff
    # Three emails are answers to the form's question, not rephrases.
    assert not any(t.rephrased for t in users(f))


def test_two_faqs_are_two_questions_not_a_rephrase(facts):
    f = facts["rest-en-faq"]
    assert [(t.flow, t.outcome) for t in f.tasks] == [("faq", "completed")] * 2
    assert not any(t.rephrased for t in users(f))


def test_cancel_and_stock_flows(facts):
    cancel, stock = facts["rest-zh-cancel"], facts["rest-zh-stock"]
    assert (cancel.flows, cancel.csat, cancel.order_numbers) == (["cancel"], 4, ["KF-****31"])
    assert [(t.flow, t.outcome) for t in stock.tasks] == [
        ("stock", "completed"),
        ("faq", "completed"),
    ]


def test_a_failed_submit_action_fails_its_task():
    events = [
        {"event": "user", "timestamp": 1.0, "parse_data": {"intent": {"name": "cancel_order"}}},
        {"event": "action", "timestamp": 2.0, "name": "cancel_form"},
        {"event": "active_loop", "timestamp": 2.1, "name": "cancel_form"},
        {"event": "active_loop", "timestamp": 2.2, "name": None},
        {"event": "action", "timestamp": 3.0, "name": "action_cancel_order"},
        {
            "event": "bot",
            "timestamp": 3.1,
            "metadata": {"utter_action": "utter_error_order_not_cancellable"},
        },
    ]
    f = conversation_facts("s", events)
    assert [(t.flow, t.outcome, t.outcome_code) for t in f.tasks] == [
        ("cancel", "failed", "error:order_not_cancellable")
    ]
    assert not f.resolved


def test_a_person_accepted_after_the_risk_offer_is_a_risk_handoff():
    events = [
        {"event": "user", "timestamp": 1.0, "parse_data": {"intent": {"name": "order_status"}}},
        {"event": "action", "timestamp": 2.0, "name": "action_show_order_status"},
        {"event": "bot", "timestamp": 2.1, "metadata": {"utter_action": "utter_order_eta"}},
        {"event": "bot", "timestamp": 2.2, "metadata": {"utter_action": "utter_offer_human_risk"}},
        {"event": "slot", "timestamp": 2.3, "name": "complaint_risk", "value": 0.72},
        {"event": "user", "timestamp": 5.0, "parse_data": {"intent": {"name": "affirm"}}},
        {"event": "action", "timestamp": 6.0, "name": "action_handoff"},
        {"event": "pause", "timestamp": 6.1},
    ]
    f = conversation_facts("s", events)
    assert (f.handoff, f.handoff_reason, f.contained) == (True, "risk", False)
    # What the bot failed at is the tracking request, not the "yes" to the person.
    assert [t.followed_by_handoff for t in users(f)] == [True, False]


def test_a_declined_request_is_contained_but_not_resolved():
    events = [
        {"event": "user", "timestamp": 1.0, "parse_data": {"intent": {"name": "decline"}}},
        {"event": "action", "timestamp": 2.0, "name": "action_decline"},
        {"event": "bot", "timestamp": 2.1, "metadata": {"utter_action": "utter_decline/password"}},
    ]
    f = conversation_facts("s", events)
    assert [(t.flow, t.outcome) for t in f.tasks] == [("declined", "completed")]
    assert (f.contained, f.resolved) == (True, False)  # redirected, not done for them


def test_yes_to_a_person_after_a_payment_problem_is_a_payment_handoff():
    events = [
        {"event": "user", "timestamp": 1.0, "parse_data": {"intent": {"name": "payment_problem"}}},
        {"event": "action", "timestamp": 2.0, "name": "action_payment_problem"},
        {"event": "bot", "timestamp": 2.1, "metadata": {"utter_action": "utter_payment_problem"}},
        {"event": "bot", "timestamp": 2.2, "metadata": {"utter_action": "utter_offer_human"}},
        {"event": "user", "timestamp": 5.0, "parse_data": {"intent": {"name": "affirm"}}},
        {"event": "action", "timestamp": 6.0, "name": "action_handoff"},
        {"event": "pause", "timestamp": 6.1},
    ]
    assert conversation_facts("s", events).handoff_reason == "payment"


@pytest.mark.parametrize(
    "value, masked",
    [("KF-100023", "KF-****23"), ("kf100023", "KF-****23"), ("#KF-100023", None), ("x", None)],
)
def test_order_numbers_are_stored_masked(value, masked):
    assert mask_order_number(value) == masked


def rated(*values) -> list[dict]:
    """A user message then a ``rating`` slot event per value (the survey answers)."""
    events = []
    for i, value in enumerate(values):
        user = {"event": "user", "timestamp": 2.0 * i, "parse_data": {"intent": {"name": "inform"}}}
        events += [
            user,
            {"event": "slot", "timestamp": 2.0 * i + 1, "name": "rating", "value": value},
        ]
    return events


@pytest.mark.parametrize(
    "values, turn_ratings, csat",
    [
        (["5"], [5], 5),
        ([4], [4], 4),
        (["５"], [5], 5),
        ([["3"]], [3], 3),
        # The last rating counts; the action's reset to None and a value outside 1-5 do not.
        (["2", None], [2, None], 2),
        (["4", "6"], [4, None], 4),
        ([True], [None], None),
        (["5 pairs"], [None], None),
    ],
)
def test_the_csat_is_the_last_rating_slot_value(values, turn_ratings, csat):
    f = conversation_facts("s", rated(*values))
    assert [t.rating for t in users(f)] == turn_ratings
    assert f.csat == csat


@pytest.mark.parametrize(
    "response, code",
    [
        ("utter_try_again_later", "unavailable"),  # a commerce call failed or timed out
        ("utter_service_trouble", "unavailable"),  # the action server failed (channels.faults)
        ("utter_error_order_not_found", "error:order_not_found"),
        ("utter_order_status_shipped", None),
    ],
)
def test_outcome_of_reads_failures_from_the_response(response, code):
    assert outcome_of(response) == code
