"""FrustrationPolicy: offers a person after repeated strongly negative messages, once."""

from __future__ import annotations

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActiveLoop, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import InvalidConfigException

from custom_components.frustration_policy import FrustrationPolicy
from tests.helpers import ROOT

OFFER = "action_offer_human_frustrated"


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(ROOT / "domain"))


@pytest.fixture
def policy(tmp_path) -> FrustrationPolicy:
    return make_policy(tmp_path, {})


def make_policy(tmp_path, config) -> FrustrationPolicy:
    return FrustrationPolicy.create(
        {**FrustrationPolicy.get_default_config(), **config},
        LocalModelStorage(tmp_path),
        Resource("frustration"),
        ExecutionContext(GraphSchema({}), "test"),
    )


def said(text: str, frustration: float) -> list:
    parse = {
        "intent": {"name": "complaint", "confidence": 0.9},
        "entities": [],
        "sentiment": {
            "label": "negative" if frustration > 0.5 else "neutral",
            "frustration": frustration,
        },
        "text": text,
    }
    return [UserUttered(text, parse["intent"], parse_data=parse)]


def tracker_of(*turns: list, start: bool = True) -> DialogueStateTracker:
    events = [ActionExecuted("action_session_start"), SessionStarted()] if start else []
    events.append(ActionExecuted("action_listen"))
    for i, turn in enumerate(turns):
        events.extend(turn)
        if i < len(turns) - 1:
            events.extend([ActionExecuted("utter_default"), ActionExecuted("action_listen")])
    return DialogueStateTracker.from_events("customer", events)


def predicted(policy: FrustrationPolicy, tracker, domain) -> str | None:
    prediction = policy.predict_action_probabilities(tracker, domain)
    if max(prediction.probabilities) == 0:
        return None
    return domain.action_names_or_texts[prediction.max_confidence_index]


def test_second_angry_message_gets_the_offer(policy, domain):
    tracker = tracker_of(said("WHERE IS MY ORDER", 0.9), said("this is a joke!!!", 0.8))
    assert predicted(policy, tracker, domain) == OFFER
    assert policy.predict_action_probabilities(tracker, domain).policy_priority == 7


def test_one_angry_message_is_not_enough(policy, domain):
    tracker = tracker_of(said("hello", 0.05), said("气死了，快递还没到", 0.95))
    assert predicted(policy, tracker, domain) is None


def test_calm_latest_message_abstains(policy, domain):
    tracker = tracker_of(said("WORST SHOP EVER", 0.9), said("ok, order KF-100004", 0.1))
    assert predicted(policy, tracker, domain) is None


def test_offered_once_per_session(policy, domain):
    tracker = tracker_of(said("angry", 0.9), said("still angry", 0.9))
    tracker.update(ActionExecuted(OFFER))
    tracker.update(ActionExecuted("action_listen"))
    for event in said("so angry", 0.95):
        tracker.update(event)
    assert predicted(policy, tracker, domain) is None


def test_a_complaint_already_offered_a_person(policy, domain):
    tracker = tracker_of(said("bad", 0.9), said("worse", 0.9))
    tracker.update(ActionExecuted("action_open_complaint"))
    tracker.update(ActionExecuted("action_listen"))
    for event in said("worst", 0.9):
        tracker.update(event)
    assert predicted(policy, tracker, domain) is None


def test_quiet_inside_a_form(policy, domain):
    tracker = tracker_of(said("angry", 0.9), said("angry again", 0.9))
    tracker.update(ActiveLoop("order_status_form"))
    assert predicted(policy, tracker, domain) is None


def test_messages_without_sentiment_abstain(policy, domain):
    events = [ActionExecuted("action_listen"), UserUttered("hi", {"name": "greet"})]
    assert predicted(policy, DialogueStateTracker.from_events("x", events), domain) is None


def test_window_and_threshold_are_configurable(tmp_path, domain):
    strict = make_policy(tmp_path, {"min_strong_messages": 3, "window": 3})
    tracker = tracker_of(said("a", 0.9), said("b", 0.9))
    assert predicted(strict, tracker, domain) is None
    tracker = tracker_of(said("a", 0.9), said("b", 0.9), said("c", 0.9))
    assert predicted(strict, tracker, domain) == OFFER


@pytest.mark.parametrize(
    "config",
    [{"treshold": 0.5}, {"threshold": 0}, {"threshold": 1.5}, {"min_strong_messages": 5}],
)
def test_invalid_config_is_refused(tmp_path, config):
    with pytest.raises(InvalidConfigException):
        make_policy(tmp_path, config)


@pytest.mark.parametrize(
    "config", [{"threshold": "high"}, {"window": 0}, {"min_strong_messages": True}]
)
def test_a_bad_value_gets_the_coded_config_error(tmp_path, config):
    with pytest.raises(InvalidConfigException, match="E101"):
        make_policy(tmp_path, config)
