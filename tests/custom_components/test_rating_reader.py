"""Tests for RatingReader: a typed survey answer becomes intent inform + entity rating."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.classifiers.fallback_classifier import FallbackClassifier
from rasa.shared.data import TrainingType
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message

from custom_components.rating_reader import RatingReader
from tests.helpers import ROOT


def create_reader(tmp_path: Path, **config) -> RatingReader:
    return RatingReader.create(
        {**RatingReader.get_default_config(), **config},
        LocalModelStorage.create(tmp_path),
        Resource("RatingReader"),
        ExecutionContext(GraphSchema({}), uuid.uuid4().hex),
    )


@pytest.fixture()
def reader(tmp_path: Path) -> RatingReader:
    return create_reader(tmp_path)


def classified(text: str, *ranking: tuple[str, float], **data) -> Message:
    """A message as the classifiers before RatingReader left it: top intent and ranking."""
    ranked = [{"name": name, "confidence": confidence} for name, confidence in ranking]
    message = Message.build(text=text, **data)
    message.set("intent", ranked[0], add_to_output=True)
    message.set("intent_ranking", ranked, add_to_output=True)
    return message


def ratings(message: Message) -> list[dict]:
    return [e for e in message.get("entities", []) if e["entity"] == "rating"]


@pytest.mark.parametrize(
    "text, value",
    [
        ("5", "5"),
        ("Five!", "5"),
        ("4 out of 5", "4"),
        ("I'd give you a 4", "4"),
        ("2 stars", "2"),
        ("５", "5"),
        ("五星", "5"),
        ("打4分", "4"),
        ("满分", "5"),
        ("一星差评", "1"),
    ],
)
def test_a_whole_message_rating_is_an_inform_with_a_rating(
    reader: RatingReader, text: str, value: str
):
    message = classified(text, ("order_status", 0.55), ("inform", 0.3), ("greet", 0.15))

    reader.process([message])
    parse_data = message.as_dict(only_output_properties=True)

    assert parse_data["intent"] == {"name": "inform", "confidence": 1.0}
    assert parse_data["intent_ranking"] == [
        {"name": "inform", "confidence": 1.0},
        {"name": "order_status", "confidence": 0.55},
        {"name": "greet", "confidence": 0.15},
    ]
    assert parse_data["entities"] == [
        {
            "entity": "rating",
            "value": value,
            "start": 0,
            "end": len(text),
            "confidence": 1.0,
            "extractor": "RatingReader",
        }
    ]


@pytest.mark.parametrize("text", ["5", "五星"])
def test_a_rating_overrides_the_nlu_fallback(tmp_path: Path, reader: RatingReader, text: str):
    fallback = FallbackClassifier.create(
        {**FallbackClassifier.get_default_config(), "threshold": 0.5},
        LocalModelStorage.create(tmp_path / "fallback"),
        Resource("FallbackClassifier"),
        ExecutionContext(GraphSchema({}), uuid.uuid4().hex),
    )
    message = classified(text, ("greet", 0.35), ("thanks", 0.3))
    fallback.process([message])
    assert message.get("intent")["name"] == "nlu_fallback"

    reader.process([message])

    assert message.get("intent") == {"name": "inform", "confidence": 1.0}
    assert [r["name"] for r in message.get("intent_ranking")] == [
        "inform",
        "nlu_fallback",
        "greet",
        "thanks",
    ]
    assert [e["value"] for e in ratings(message)] == ["5"]


@pytest.mark.parametrize(
    "text",
    [
        "5 pairs",
        "order 5",
        "KF-100005",
        "is size 4 in stock",
        "3 days late",
        "6",
        "五双",
        "我的订单到哪了",
        "",
        '/inform{"rating": "5"}',
    ],
)
def test_other_messages_are_untouched(reader: RatingReader, text: str):
    message = classified(text, ("order_status", 0.9), ("inform", 0.1))
    before = message.as_dict()

    reader.process([message])

    assert message.as_dict() == before


def test_an_existing_rating_entity_is_kept(reader: RatingReader):
    found = {"entity": "rating", "value": "five", "start": 0, "end": 4, "extractor": "DIET"}
    language = {"entity": "language", "value": "en", "start": 0, "end": 4}
    message = classified("five", ("inform", 0.8), ("greet", 0.2), entities=[found, language])

    reader.process([message])

    assert message.get("entities") == [found, language]
    assert message.get("intent") == {"name": "inform", "confidence": 1.0}
    assert [r["name"] for r in message.get("intent_ranking")] == ["inform", "greet"]


def test_a_message_no_classifier_ranked_gets_a_ranking(reader: RatingReader):
    rated, other = Message.build(text="4/5"), Message.build(text="hi")

    reader.process([rated, other])

    assert rated.get("intent_ranking") == [{"name": "inform", "confidence": 1.0}]
    assert [e["value"] for e in ratings(rated)] == ["4"]
    assert other.get("intent") is None and ratings(other) == []


def test_unknown_config_keys_are_rejected(tmp_path: Path):
    with pytest.raises(InvalidConfigException, match="E100.*'threshold'.*RatingReader"):
        create_reader(tmp_path, threshold=0.5)


def test_it_runs_last_in_the_pipeline_and_is_never_trained():
    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    graph = DefaultV1Recipe().graph_config_for_recipe(config, {}, TrainingType.BOTH)

    [node] = [n for n in graph.predict_schema.nodes if "RatingReader" in n]
    # After every component that sets the intent (the AnswerKeyFallback included): "5" wins.
    assert "AnswerKeyFallback" in graph.predict_schema.nodes[node].needs["messages"]
    assert graph.predict_schema.nodes["run_RegexMessageHandler"].needs["messages"] == node
    assert not [n for n in graph.train_schema.nodes if "RatingReader" in n]
