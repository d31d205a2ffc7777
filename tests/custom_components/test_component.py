"""Tests for what Kefu's components share: coded config checks, `create`, `load`, entities."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rasa.engine.graph import ExecutionContext, GraphComponent, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message

from custom_components.catalog_entity_extractor import CatalogEntityExtractor
from custom_components.component import (
    TrainedComponent,
    add_entities,
    files_in,
    read_json,
    whole_text_entity,
)
from custom_components.config import POSITIVE_INTS, check_values, int_in, number_in, one_of
from custom_components.errors import ComponentStorageError
from custom_components.language_detector import LanguageDetector
from custom_components.mixed_script_tokenizer import MixedScriptTokenizer
from custom_components.sentiment_analyzer import SentimentAnalyzer


class Counter(TrainedComponent, GraphComponent):
    """A minimal trained component: stores one number."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"start": 0, "mode": "up"}

    @classmethod
    def config_rules(cls):
        return {"start": int_in(0, 10), "mode": one_of(["up", "down"])}

    def __init__(self, config, model_storage, resource, count: int | None = None) -> None:
        self.config = self.merged_config(config)
        if count is not None and count < 0:
            raise ValueError(f"a count of {count}")
        self.count = count

    @classmethod
    def _read_stored(cls, directory: Path) -> dict[str, Any]:
        return read_json(directory / "count.json")

    @classmethod
    def _storage_error(cls, resource: Resource, error: Exception) -> str:
        return f"[E999] no count in {resource.name}"

    @classmethod
    def _stored_state(cls, config, stored, execution_context):
        return config, {"count": stored["count"]}


@pytest.fixture()
def storage(tmp_path: Path) -> LocalModelStorage:
    return LocalModelStorage(tmp_path)


CONTEXT = ExecutionContext(GraphSchema({}), node_name="counter")


@pytest.mark.parametrize(
    "rule, good, bad",
    [
        (int_in(1, 3), 2, [0, 4, 2.0, True, "2"]),
        (number_in(0.0, 1.0), 0.0, [1.0, -0.1, "0.5", False, None]),
        (one_of(("a", "b")), "a", ["c", None]),
        (POSITIVE_INTS, [8, 16], [[], [0], [8, "16"], 8, None]),
    ],
)
def test_rules_accept_good_values_and_reject_bad_ones_with_e101(rule, good, bad):
    check_values("Thing", {"key": good}, {"key": rule})
    for value in bad:
        with pytest.raises(InvalidConfigException, match=r"\[E101\].*'key'.*'Thing'"):
            check_values("Thing", {"key": value}, {"key": rule})


def test_a_rule_that_raises_rejects_the_value_with_the_expectation():
    rule = (lambda v: float(v) > 0, "expected a positive number")

    with pytest.raises(InvalidConfigException, match=r"\[E101\].*'fast'.*expected a positive"):
        check_values("Thing", {"rate": "fast"}, {"rate": rule})


def test_validate_config_rejects_unknown_keys_then_checks_values_with_defaults():
    Counter.validate_config({"mode": "down"})  # missing keys take their defaults

    with pytest.raises(InvalidConfigException, match=r"\[E100\].*'strat'.*mode, start"):
        Counter.validate_config({"strat": 1})
    with pytest.raises(InvalidConfigException, match=r"\[E101\].*'start'.*\[0, 10\]"):
        Counter.validate_config({"start": 11})


def test_create_builds_an_untrained_component(storage):
    counter = Counter.create({"start": 3}, storage, Resource("counter"), CONTEXT)

    assert counter.config == {"start": 3, "mode": "up"} and counter.count is None


def test_load_reads_what_was_stored(storage):
    resource = Resource("counter")
    with storage.write_to(resource) as directory:
        (directory / "count.json").write_text('{"count": 7}')

    assert Counter.load({}, storage, resource, CONTEXT).count == 7


def test_load_turns_a_missing_entry_into_the_components_coded_error(storage):
    with pytest.raises(ComponentStorageError, match=r"\[E999\] no count in never-trained"):
        Counter.load({}, storage, Resource("never-trained"), CONTEXT)


def test_load_turns_a_stored_entry_that_does_not_fit_into_the_coded_error(storage):
    resource = Resource("counter")
    with storage.write_to(resource) as directory:
        (directory / "count.json").write_text('{"count": -1}')

    with pytest.raises(ComponentStorageError, match=r"\[E999\] no count in counter"):
        Counter.load({}, storage, resource, CONTEXT)


def test_load_checks_the_config_first(storage):
    with pytest.raises(InvalidConfigException, match=r"\[E101\]"):
        Counter.load({"mode": "sideways"}, storage, Resource("never-trained"), CONTEXT)


@pytest.mark.parametrize(
    "component, config, key",
    [
        (LanguageDetector, {"han_weight": "heavy"}, "han_weight"),
        (SentimentAnalyzer, {"C": "strong"}, "C"),
        (SentimentAnalyzer, {"training_data_path": None}, "training_data_path"),
        (CatalogEntityExtractor, {"catalog_path": None}, "catalog_path"),
        (MixedScriptTokenizer, {"dictionary_path": 5}, "dictionary_path"),
    ],
)
def test_every_component_rejects_a_value_of_the_wrong_type_with_a_code(component, config, key):
    with pytest.raises(InvalidConfigException, match=rf"\[E101\].*'{key}'.*'{component.__name__}'"):
        component.validate_config(config)


def test_whole_text_entities_are_appended_to_the_message():
    message = Message(data={"text": "你好", "entities": [{"entity": "x"}]})

    add_entities(message, [whole_text_entity("language", "zh", "你好", 0.9, "Detector")])

    assert message.get("entities") == [
        {"entity": "x"},
        {
            "entity": "language",
            "value": "zh",
            "start": 0,
            "end": 2,
            "confidence": 0.9,
            "extractor": "Detector",
        },
    ]
    assert "entities" in message.as_dict_nlu()


def test_files_in_lists_a_folder_by_pattern_or_returns_the_file(tmp_path: Path):
    for name in ("b.yml", "a.yml", "c.txt"):
        (tmp_path / name).write_text("")

    assert [Path(f).name for f in files_in(str(tmp_path), "*.yml")] == ["a.yml", "b.yml"]
    assert len(files_in(str(tmp_path))) == 3
    assert files_in(str(tmp_path / "a.yml")) == [str(tmp_path / "a.yml")]
