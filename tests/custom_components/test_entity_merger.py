"""EntityMerger: where extractors overlap, the most trusted one's entity is kept."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message

from custom_components.component import entity_at, whole_text_entity
from custom_components.entity_merger import EntityMerger


def create(tmp_path: Path, **config) -> EntityMerger:
    return EntityMerger.create(
        {**EntityMerger.get_default_config(), **config},
        LocalModelStorage.create(tmp_path),
        Resource("EntityMerger"),
        ExecutionContext(GraphSchema({}), uuid.uuid4().hex),
    )


def message_with(text: str, *entities: dict) -> Message:
    message = Message.build(text=text)
    message.set("entities", list(entities), add_to_output=True)
    return message


def kept(message: Message) -> list[tuple[str, str, str]]:
    return [(e["entity"], e["value"], e["extractor"]) for e in message.get("entities")]


def test_a_rule_beats_the_model_on_the_same_words(tmp_path):
    text = "track order 100234 in the trail runner"
    message = message_with(
        text,
        entity_at("order_number", "100234", 12, 18, 0.97, "TransformerIntentClassifier"),
        entity_at("order_number", "100234", 12, 18, 1.0, "RegexEntityExtractor"),
        entity_at("product", "trail runner", 26, 38, 0.91, "TransformerIntentClassifier"),
        entity_at("product", "TRAIL-RUNNER-2", 26, 38, 1.0, "CatalogEntityExtractor"),
    )

    create(tmp_path).process([message])

    assert kept(message) == [
        ("order_number", "100234", "RegexEntityExtractor"),
        ("product", "TRAIL-RUNNER-2", "CatalogEntityExtractor"),
    ]


def test_partial_overlap_counts_and_what_no_rule_found_stays(tmp_path):
    text = "2 navy blue jackets"
    message = message_with(
        text,
        entity_at("quantity", "2", 0, 1, 0.9, "TransformerIntentClassifier"),
        entity_at("colour", "navy blue", 2, 11, 0.8, "TransformerIntentClassifier"),
        entity_at("colour", "navy", 2, 6, 1.0, "CatalogEntityExtractor"),
    )

    create(tmp_path).process([message])

    assert kept(message) == [
        ("quantity", "2", "TransformerIntentClassifier"),
        ("colour", "navy", "CatalogEntityExtractor"),
    ]


def test_of_two_readings_of_the_same_value_the_narrower_span_stays(tmp_path):
    text = "换M码 in Black"
    message = message_with(
        text,
        entity_at("size", "M", 1, 3, 1.0, "CatalogEntityExtractor"),  # "M码"
        entity_at("size", "M", 1, 2, 0.9, "TransformerIntentClassifier"),  # "M"
        entity_at("colour", "black", 7, 12, 1.0, "CatalogEntityExtractor"),
        entity_at("colour", "black", 7, 12, 0.8, "TransformerIntentClassifier"),
    )

    create(tmp_path).process([message])

    assert [
        (e["value"], e["start"], e["end"], e["extractor"]) for e in message.get("entities")
    ] == [
        ("M", 1, 2, "TransformerIntentClassifier"),
        ("black", 7, 12, "CatalogEntityExtractor"),  # same span: precedence decides
    ]


def test_rule_only_types_never_come_from_the_learnt_tags(tmp_path):
    text = "1 Market St, San Francisco, 94105 for KF-100001"
    message = message_with(
        text,
        entity_at("quantity", "1", 0, 1, 0.6, "TransformerIntentClassifier"),
        entity_at("order_number", "94105", 28, 33, 0.7, "TransformerIntentClassifier"),
        entity_at("order_number", "KF-100001", 38, 47, 0.9, "TransformerIntentClassifier"),
        entity_at("order_number", "KF-100001", 38, 47, 1.0, "RegexEntityExtractor"),
    )

    create(tmp_path, rule_only_types=["order_number"]).process([message])

    assert kept(message) == [
        ("quantity", "1", "TransformerIntentClassifier"),
        ("order_number", "KF-100001", "RegexEntityExtractor"),
    ]


def test_unlisted_extractors_are_never_touched_and_never_win(tmp_path):
    text = "size 42 please"
    message = message_with(
        text,
        whole_text_entity("language", "en", text, 0.99, "LanguageDetector"),
        entity_at("size", "42", 5, 7, 0.9, "TransformerIntentClassifier"),
        whole_text_entity("sentiment", "neutral", text, 0.7, "SentimentAnalyzer"),
    )

    create(tmp_path).process([message])

    assert [e[0] for e in kept(message)] == ["language", "size", "sentiment"]


def test_one_extractors_own_overlaps_are_its_business(tmp_path):
    message = message_with(
        "navy blue",
        entity_at("colour", "navy", 0, 4, 1.0, "CatalogEntityExtractor"),
        entity_at("colour", "navy blue", 0, 9, 1.0, "CatalogEntityExtractor"),
    )

    create(tmp_path).process([message])

    assert len(message.get("entities")) == 2


def test_precedence_is_configurable(tmp_path):
    message = message_with(
        "size 42",
        entity_at("size", "42", 5, 7, 1.0, "CatalogEntityExtractor"),
        entity_at("size", "42", 5, 7, 0.9, "TransformerIntentClassifier"),
    )

    create(tmp_path, precedence=["TransformerIntentClassifier", "CatalogEntityExtractor"]).process(
        [message]
    )

    assert kept(message) == [("size", "42", "TransformerIntentClassifier")]


def test_a_message_without_entities_is_left_alone(tmp_path):
    message = Message.build(text="hello")

    create(tmp_path).process([message])

    assert message.get("entities") is None


@pytest.mark.parametrize("precedence", ["RegexEntityExtractor", ["a", "a"], [""]])
def test_invalid_precedence_is_rejected(tmp_path, precedence):
    with pytest.raises(InvalidConfigException, match="distinct extractor names"):
        create(tmp_path, precedence=precedence)


def test_registered_as_an_untrained_entity_extractor():
    registered = DefaultV1Recipe._from_registry(EntityMerger.__name__)

    assert not registered.is_trainable
    assert DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR in registered.types
