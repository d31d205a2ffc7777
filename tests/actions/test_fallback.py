"""Two-stage fallback, first stage: "did you mean …?" in the customer's language."""

from __future__ import annotations

from pathlib import Path

import pytest
from rasa.shared.core.domain import Domain

from actions.fallback import ActionDefaultAskAffirmation, intent_description, intent_to_affirm
from tests.helpers.actions import kwargs_of, make_tracker, responses

# The domain as Rasa sends it with the call: the descriptions are utter_intent_<intent> responses.
DOMAIN = Domain.load(str(Path(__file__).resolve().parents[2] / "domain")).as_dict()


def fallback_tracker(language: str, ranking: list[tuple[str, float]]):
    tracker = make_tracker({"language": language}, text="hmm cancel?", intent="nlu_fallback")
    tracker.latest_message["intent_ranking"] = [
        {"name": name, "confidence": confidence} for name, confidence in ranking
    ]
    return tracker


def test_runner_up_after_nlu_fallback_is_affirmed():
    parse = {
        "intent": {"name": "nlu_fallback", "confidence": 0.5},
        "intent_ranking": [{"name": "nlu_fallback"}, {"name": "cancel_order"}],
    }
    assert intent_to_affirm(parse) == "cancel_order"
    assert intent_to_affirm({"intent": {"name": "greet"}}) == "greet"
    assert intent_to_affirm({}) is None


@pytest.mark.parametrize(
    "language, topic, yes, no",
    [("en", "cancelling an order", "Yes", "No"), ("zh", "取消订单", "是的", "不是")],
)
async def test_asks_about_the_likely_intent_in_the_customers_language(
    dispatcher, language, topic, yes, no
):
    tracker = fallback_tracker(language, [("nlu_fallback", 0.5), ("cancel_order", 0.4)])
    assert await ActionDefaultAskAffirmation().run(dispatcher, tracker, DOMAIN) == []
    assert responses(dispatcher) == ["utter_ask_affirmation"]
    assert kwargs_of(dispatcher, "utter_ask_affirmation")["topic"] == topic
    buttons = dispatcher.messages[0]["buttons"]
    assert buttons == [
        {"title": yes, "payload": "/cancel_order"},
        {"title": no, "payload": "/out_of_scope"},
    ]


@pytest.mark.parametrize("candidate", ["faq", "chitchat", "some_unknown_intent"])
async def test_faq_or_unknown_candidate_asks_to_rephrase(dispatcher, candidate):
    tracker = fallback_tracker("en", [("nlu_fallback", 0.5), (candidate, 0.4)])
    await ActionDefaultAskAffirmation().run(dispatcher, tracker, DOMAIN)
    assert responses(dispatcher) == ["utter_ask_rephrase"]


def test_an_intent_is_described_by_its_domain_response_in_the_customers_language():
    assert intent_description(DOMAIN, "refund_status", "en") == "the status of a refund"
    assert intent_description(DOMAIN, "refund_status", "zh") == "查询退款进度"
    assert intent_description(DOMAIN, "no_such_intent", "en") is None
    assert intent_description({}, "refund_status", "en") is None
