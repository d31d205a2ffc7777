"""Tests for CatalogEntityExtractor with the fixture catalog, in both languages."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from custom_components import mixed_script_tokenizer
from custom_components.catalog_entity_extractor import CatalogEntityExtractor
from custom_components.errors import ComponentStorageError, KefuComponentError
from custom_components.mixed_script_tokenizer import MixedScriptTokenizer

CATALOG = str(Path(__file__).parent / "fixtures" / "catalog.yml")


@pytest.fixture()
def model_storage(tmp_path: Path) -> ModelStorage:
    return LocalModelStorage.create(tmp_path)


@pytest.fixture()
def execution_context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), uuid.uuid4().hex)


@pytest.fixture()
def resource() -> Resource:
    return Resource("CatalogEntityExtractor")


@pytest.fixture(scope="module")
def tokenizer() -> Iterator[MixedScriptTokenizer]:
    # jieba is one tokenizer per process and keeps every user dictionary a loaded model added
    # (a test that loads the shop's trained model adds the shop's catalog words, which segment
    # "黑色的越野跑鞋二代" differently); these tests start from jieba's own dictionary.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mixed_script_tokenizer, "_jieba_tokenizer", None)
        patch.setattr(mixed_script_tokenizer, "_loaded_dictionaries", set())
        yield MixedScriptTokenizer(MixedScriptTokenizer.get_default_config())


def config(**overrides) -> dict:
    return {**CatalogEntityExtractor.get_default_config(), "catalog_path": CATALOG, **overrides}


def train_extractor(
    model_storage: ModelStorage,
    resource: Resource,
    execution_context: ExecutionContext,
    **overrides,
) -> CatalogEntityExtractor:
    extractor = CatalogEntityExtractor.create(
        config(**overrides), model_storage, resource, execution_context
    )
    extractor.train(TrainingData())
    return extractor


@pytest.fixture()
def extractor(
    model_storage: ModelStorage, resource: Resource, execution_context: ExecutionContext
) -> CatalogEntityExtractor:
    return train_extractor(model_storage, resource, execution_context)


def extract(
    extractor: CatalogEntityExtractor, tokenizer: MixedScriptTokenizer, text: str
) -> list[tuple[str, str, str]]:
    message = Message.build(text=text)
    tokenizer.process([message])
    extractor.process([message])
    entities = message.get("entities", [])
    for entity in entities:
        assert entity["extractor"] == "CatalogEntityExtractor"
        assert entity["processors"] == ["CatalogEntityExtractor"]
    return [(e["entity"], e["value"], text[e["start"] : e["end"]]) for e in entities]


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "Do you have the Trail Runner 2 in black, size 42?",
            [
                ("product", "trail-runner-2", "Trail Runner 2"),
                ("colour", "black", "black"),
                ("size", "42", "42"),
            ],
        ),
        (
            "我想要黑色的越野跑鞋二代，42码",
            [
                ("colour", "black", "黑色"),
                ("product", "trail-runner-2", "越野跑鞋二代"),
                ("size", "42", "42码"),
            ],
        ),
        # Case-insensitive Latin, separators read as spaces.
        (
            "is the STORM-SHELL jacket waterproof",
            [("product", "storm-shell-jacket", "STORM-SHELL jacket")],
        ),
        ("tr2 extra large", [("product", "trail-runner-2", "tr2"), ("size", "XL", "extra large")]),
        (
            "防风外套，加大码，有红色吗",
            [
                ("product", "storm-shell-jacket", "防风外套"),
                ("size", "XL", "加大码"),
                ("colour", "red", "红色"),
            ],
        ),
        # Longest match: the product wins over the colour inside its name.
        (
            "Red Line Tee in white",
            [("product", "red-line-tee", "Red Line Tee"), ("colour", "white", "white")],
        ),
        ("红线T恤", [("product", "red-line-tee", "红线T恤")]),
        ("size M please", [("size", "M", "M")]),
        ("中号的冲锋衣", [("size", "M", "中号"), ("product", "storm-shell-jacket", "冲锋衣")]),
    ],
)
def test_extracts_canonical_values(
    extractor: CatalogEntityExtractor,
    tokenizer: MixedScriptTokenizer,
    text: str,
    expected: list[tuple[str, str, str]],
):
    assert extract(extractor, tokenizer, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "please reduce the price",  # "red" only as a whole token
        "I'm fine, thanks",  # the "m" of I'm is not size M
        "我明白了",  # 白 (white) inside the word 明白
        "order KF-100042",  # 42 inside an order number
        "",
    ],
)
def test_no_false_matches(
    extractor: CatalogEntityExtractor, tokenizer: MixedScriptTokenizer, text: str
):
    assert extract(extractor, tokenizer, text) == []


def test_entity_types_filter(
    model_storage: ModelStorage,
    resource: Resource,
    execution_context: ExecutionContext,
    tokenizer: MixedScriptTokenizer,
):
    extractor = train_extractor(model_storage, resource, execution_context, entity_types=["colour"])

    assert extract(extractor, tokenizer, "TR2 in black") == [("colour", "black", "black")]


def test_keeps_entities_of_other_extractors(
    extractor: CatalogEntityExtractor, tokenizer: MixedScriptTokenizer
):
    other = {"entity": "order_id", "value": "KF-1", "start": 0, "end": 4}
    message = Message.build(text="KF-1 black", entities=[other])
    tokenizer.process([message])

    extractor.process([message])

    assert [e["entity"] for e in message.get("entities")] == ["order_id", "colour"]


def test_persist_and_load_round_trip(
    model_storage: ModelStorage,
    resource: Resource,
    execution_context: ExecutionContext,
    tokenizer: MixedScriptTokenizer,
    tmp_path: Path,
):
    catalog = tmp_path / "catalog.yml"
    catalog.write_text(Path(CATALOG).read_text(encoding="utf-8"), encoding="utf-8")
    trained = train_extractor(model_storage, resource, execution_context, catalog_path=str(catalog))
    catalog.unlink()  # a deployed model must not need the file

    loaded = CatalogEntityExtractor.load(
        config(catalog_path=str(catalog)), model_storage, resource, execution_context
    )

    text = "我想要黑色的越野跑鞋二代，42码"
    assert extract(loaded, tokenizer, text) == extract(trained, tokenizer, text)


def test_missing_catalog_fails_clearly_at_training(
    model_storage: ModelStorage, resource: Resource, execution_context: ExecutionContext
):
    with pytest.raises(InvalidConfigException, match="E140"):
        train_extractor(model_storage, resource, execution_context, catalog_path="nowhere.yml")


def test_load_without_training_fails_clearly(
    model_storage: ModelStorage, execution_context: ExecutionContext
):
    with pytest.raises(ComponentStorageError, match="E143"):
        CatalogEntityExtractor.load(
            config(), model_storage, Resource("untrained"), execution_context
        )


@pytest.mark.parametrize(
    "content, match",
    [
        ("- just a list\n", "E141"),
        ("version: 2\nentities: {}\n", "E141.*version"),
        (
            "version: 1\nentities:\n  colour:\n    - {value: black, synonyms: [dark]}\n"
            "    - {value: navy, synonyms: [dark]}\n",
            "E142.*dark",
        ),
    ],
)
def test_invalid_catalog_fails_clearly(
    model_storage: ModelStorage,
    resource: Resource,
    execution_context: ExecutionContext,
    tmp_path: Path,
    content: str,
    match: str,
):
    catalog = tmp_path / "catalog.yml"
    catalog.write_text(content, encoding="utf-8")

    with pytest.raises(KefuComponentError, match=match):
        train_extractor(
            model_storage,
            resource,
            execution_context,
            catalog_path=str(catalog),
            entity_types=["colour"],
        )


def test_json_catalog_is_accepted(
    model_storage: ModelStorage,
    resource: Resource,
    execution_context: ExecutionContext,
    tokenizer: MixedScriptTokenizer,
    tmp_path: Path,
):
    catalog = tmp_path / "catalog.json"
    catalog.write_text(
        '{"version": 1, "entities": {"colour": [{"value": "black", "synonyms": ["黑色"]}]}}',
        encoding="utf-8",
    )
    extractor = train_extractor(
        model_storage,
        resource,
        execution_context,
        catalog_path=str(catalog),
        entity_types=["colour"],
    )

    assert extract(extractor, tokenizer, "要黑色") == [("colour", "black", "黑色")]


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"lookup_path": "x"}, "E100.*catalog_path, entity_types"),
        ({"entity_types": []}, "E101.*entity_types"),
    ],
)
def test_invalid_config_is_rejected(
    model_storage: ModelStorage,
    resource: Resource,
    execution_context: ExecutionContext,
    overrides: dict,
    match: str,
):
    with pytest.raises(InvalidConfigException, match=match):
        CatalogEntityExtractor.create(
            config(**overrides), model_storage, resource, execution_context
        )
