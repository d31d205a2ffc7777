"""Tests for SentimentAnalyzer: training round trip, scores, persistence, config."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from custom_components.errors import ComponentStorageError, KefuComponentError
from custom_components.sentiment_analyzer import SentimentAnalyzer

SHIPPED_DATA = str(Path(__file__).parents[2] / "data" / "sentiment")

ANGRY = [
    "WHERE IS MY REFUND??? This is ridiculous!!!",
    "worst service ever, I want to file a complaint",
    "气死了！什么破服务",
    "太差劲了，我要投诉！！！",
]
CALM = [
    "what sizes do you have for the trail runner?",
    "can I change my delivery address?",
    "可以改收货地址吗",
    "有哪些颜色",
]


@pytest.fixture()
def model_storage(tmp_path: Path) -> ModelStorage:
    return LocalModelStorage.create(tmp_path)


@pytest.fixture()
def execution_context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), uuid.uuid4().hex)


@pytest.fixture()
def resource() -> Resource:
    return Resource("SentimentAnalyzer")


def config(**overrides) -> dict:
    return {
        **SentimentAnalyzer.get_default_config(),
        "training_data_path": SHIPPED_DATA,
        **overrides,
    }


@pytest.fixture(scope="module")
def trained_storage(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[SentimentAnalyzer, ModelStorage, Resource]:
    # Trained once per module: the scoring tests only read the model.
    storage = LocalModelStorage.create(tmp_path_factory.mktemp("sentiment"))
    resource = Resource("SentimentAnalyzer")
    context = ExecutionContext(GraphSchema({}), uuid.uuid4().hex)
    analyzer = SentimentAnalyzer.create(config(), storage, resource, context)
    analyzer.train(TrainingData())
    return analyzer, storage, resource


@pytest.fixture()
def trained(trained_storage: tuple[SentimentAnalyzer, ModelStorage, Resource]) -> SentimentAnalyzer:
    return trained_storage[0]


def frustration(analyzer: SentimentAnalyzer, text: str) -> float:
    [message] = analyzer.process([Message.build(text=text)])
    return message.get("sentiment")["frustration"]


@pytest.mark.parametrize("text", ANGRY)
def test_angry_messages_score_high(trained: SentimentAnalyzer, text: str):
    [message] = trained.process([Message.build(text=text)])

    assert message.get("sentiment")["label"] == "negative"
    assert message.get("sentiment")["frustration"] >= 0.5


@pytest.mark.parametrize("text", CALM)
def test_neutral_messages_score_low(trained: SentimentAnalyzer, text: str):
    [message] = trained.process([Message.build(text=text)])

    assert message.get("sentiment")["label"] == "neutral"
    assert message.get("sentiment")["frustration"] < 0.35


@pytest.mark.parametrize("text", ["thank you so much, great service!", "太感谢了，服务很好"])
def test_praise_is_positive(trained: SentimentAnalyzer, text: str):
    [message] = trained.process([Message.build(text=text)])

    assert message.get("sentiment")["label"] == "positive"


def test_caps_and_exclamations_raise_frustration(trained: SentimentAnalyzer):
    calm = frustration(trained, "where is my order")
    shouted = frustration(trained, "WHERE IS MY ORDER!!!")

    assert shouted > calm


def test_output_is_a_parse_data_key_and_an_entity(trained: SentimentAnalyzer):
    text = "我的退款还没到账，气死了！！"
    [message] = trained.process([Message.build(text=text)])
    parse_data = message.as_dict(only_output_properties=True)

    sentiment = parse_data["sentiment"]
    assert set(sentiment) == {"label", "frustration"}
    assert 0.0 <= sentiment["frustration"] <= 1.0
    [entity] = [e for e in parse_data["entities"] if e["entity"] == "sentiment"]
    assert entity["value"] == sentiment["label"]
    assert (entity["start"], entity["end"]) == (0, len(text))
    assert entity["extractor"] == "SentimentAnalyzer"
    assert 0.0 <= entity["confidence"] <= 1.0


def test_empty_text_is_left_alone(trained: SentimentAnalyzer):
    [message] = trained.process([Message.build(text="  ")])

    assert message.get("sentiment") is None
    assert message.get("entities", []) == []


def test_persist_and_load_round_trip(
    trained_storage: tuple[SentimentAnalyzer, ModelStorage, Resource],
    execution_context: ExecutionContext,
):
    trained, model_storage, resource = trained_storage
    # Loading must not need the example files any more.
    loaded = SentimentAnalyzer.load(
        config(training_data_path="nowhere"), model_storage, resource, execution_context
    )

    texts = ANGRY + CALM
    assert loaded.predict(texts) == trained.predict(texts)


def test_load_without_training_fails_clearly(
    model_storage: ModelStorage, execution_context: ExecutionContext
):
    with pytest.raises(ComponentStorageError, match="E133"):
        SentimentAnalyzer.load(config(), model_storage, Resource("untrained"), execution_context)


def test_missing_training_data_fails_clearly(
    model_storage: ModelStorage,
    resource: Resource,
    execution_context: ExecutionContext,
    tmp_path: Path,
):
    analyzer = SentimentAnalyzer.create(
        config(training_data_path=str(tmp_path / "missing")),
        model_storage,
        resource,
        execution_context,
    )

    with pytest.raises(InvalidConfigException, match="E130"):
        analyzer.train(TrainingData())


def test_missing_label_fails_clearly(
    model_storage: ModelStorage,
    resource: Resource,
    execution_context: ExecutionContext,
    tmp_path: Path,
):
    data = tmp_path / "en.yml"
    data.write_text("labels:\n  - label: angry\n    examples: |\n      - argh\n", encoding="utf-8")
    analyzer = SentimentAnalyzer.create(
        config(training_data_path=str(tmp_path)), model_storage, resource, execution_context
    )

    with pytest.raises(KefuComponentError, match="E132.*negative"):
        analyzer.train(TrainingData())


def test_unknown_label_fails_clearly(
    model_storage: ModelStorage,
    resource: Resource,
    execution_context: ExecutionContext,
    tmp_path: Path,
):
    (tmp_path / "en.yml").write_text(
        "labels:\n  - label: furious\n    examples: |\n      - argh\n", encoding="utf-8"
    )
    analyzer = SentimentAnalyzer.create(
        config(training_data_path=str(tmp_path)), model_storage, resource, execution_context
    )

    with pytest.raises(KefuComponentError, match="E131"):
        analyzer.train(TrainingData())


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"data_path": "x"}, "E100.*training_data_path"),
        ({"char_ngram_range": [4, 1]}, "E101.*char_ngram_range"),
        ({"hash_features": 10}, "E101.*hash_features"),
        ({"C": 0}, "E101.*C"),
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
        SentimentAnalyzer.create(config(**overrides), model_storage, resource, execution_context)


def test_fingerprint_follows_the_example_files(tmp_path: Path):
    data = tmp_path / "en.yml"
    data.write_text("labels: []\n", encoding="utf-8")
    before = SentimentAnalyzer.fingerprint_addon({"training_data_path": str(tmp_path)})
    data.write_text("labels: [] # edited\n", encoding="utf-8")

    assert SentimentAnalyzer.fingerprint_addon({"training_data_path": str(tmp_path)}) != before
