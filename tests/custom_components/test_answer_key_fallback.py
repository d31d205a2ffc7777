"""AnswerKeyFallback: an FAQ (chitchat, decline) whose answer is a guess falls back."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.data import TrainingType
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message

from custom_components.answer_key_fallback import AnswerKeyFallback
from tests.helpers import ROOT


def create(tmp_path: Path, **config) -> AnswerKeyFallback:
    return AnswerKeyFallback.create(
        {**AnswerKeyFallback.get_default_config(), **config},
        LocalModelStorage.create(tmp_path),
        Resource("AnswerKeyFallback"),
        ExecutionContext(GraphSchema({}), uuid.uuid4().hex),
    )


def parsed(intent: str, confidence: float, answer: str | None, answer_confidence: float):
    """A message as the ResponseSelector leaves it (Rasa's output format, selector "default")."""
    message = Message.build(text="…")
    message.set("intent", {"name": intent, "confidence": confidence}, add_to_output=True)
    ranking = [{"name": intent, "confidence": confidence}, {"name": "help", "confidence": 0.01}]
    message.set("intent_ranking", ranking, add_to_output=True)
    if answer is not None:
        selector = {
            "all_retrieval_intents": ["faq", "chitchat", "decline"],
            "default": {
                "response": {
                    "intent_response_key": answer,
                    "confidence": answer_confidence,
                    "responses": [{"text": "…"}],
                    "utter_action": f"utter_{answer}",
                },
                "ranking": [],
            },
        }
        message.set("response_selector", selector, add_to_output=True)
    return message


@pytest.mark.parametrize(
    "intent, answer, answer_confidence, falls_back",
    [
        # "can you move my money to my savings": surely an FAQ, but which? a guess.
        ("faq", "faq/contact", 0.21, True),
        ("faq", "faq/shipping_time", 0.97, False),  # "how long does shipping take?"
        ("chitchat", "chitchat/joke", 0.3, True),
        ("decline", "decline/password", 0.45, True),
        ("decline", "decline/password", 0.5, False),  # the threshold itself passes
        ("order_status", None, 0.0, False),  # no retrieval intent: the selector is not asked
        # The selector's pick belongs to another retrieval intent than the classifier's.
        ("chitchat", "faq/contact", 0.1, False),
    ],
)
def test_an_uncertain_answer_key_falls_back(
    tmp_path, intent, answer, answer_confidence, falls_back
):
    message = parsed(intent, 0.96, answer, answer_confidence)
    create(tmp_path).process([message])
    if falls_back:
        assert message.get("intent") == {"name": "nlu_fallback", "confidence": 0.5}
        ranking = [r["name"] for r in message.get("intent_ranking")]
        assert ranking == ["nlu_fallback", intent, "help"]  # the nearest intents stay below
    else:
        assert message.get("intent") == {"name": intent, "confidence": 0.96}


def test_a_message_the_fallback_classifier_already_rejected_is_left_alone(tmp_path):
    message = parsed("nlu_fallback", 0.5, "faq/contact", 0.1)
    create(tmp_path).process([message])
    assert [r["name"] for r in message.get("intent_ranking")] == ["nlu_fallback", "help"]


def test_the_threshold_is_configurable_and_checked(tmp_path):
    message = parsed("faq", 0.96, "faq/contact", 0.6)
    create(tmp_path, threshold=0.7).process([message])
    assert message.get("intent")["name"] == "nlu_fallback"
    with pytest.raises(InvalidConfigException, match="threshold"):
        create(tmp_path, threshold=1.5)
    with pytest.raises(InvalidConfigException, match="E100"):
        create(tmp_path, thresold=0.5)


def test_it_runs_after_the_answer_key_is_picked_and_is_never_trained():
    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    graph = DefaultV1Recipe().graph_config_for_recipe(config, {}, TrainingType.BOTH)
    nodes = graph.predict_schema.nodes
    [node] = [n for n in nodes if "AnswerKeyFallback" in n]
    upstream = []
    while node in nodes and "messages" in nodes[node].needs:  # the ones before it, nearest first
        node = nodes[node].needs["messages"]
        upstream.append(node)
    # The classifier's answer-key head picks the answer (config.yml has no ResponseSelector).
    assert any("TransformerIntentClassifier" in n for n in upstream)
    assert any(n.startswith("run_FallbackClassifier") for n in upstream)
    assert not [n for n in graph.train_schema.nodes if "AnswerKeyFallback" in n]
