"""Tests for LanguageDetector: which language each message is answered in."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message

from custom_components.language_detector import LanguageDetector


def create_detector(tmp_path: Path, **config) -> LanguageDetector:
    return LanguageDetector.create(
        {**LanguageDetector.get_default_config(), **config},
        LocalModelStorage.create(tmp_path),
        Resource("LanguageDetector"),
        ExecutionContext(GraphSchema({}), uuid.uuid4().hex),
    )


@pytest.fixture()
def detector(tmp_path: Path) -> LanguageDetector:
    return create_detector(tmp_path)


def language_entities(message: Message) -> list[dict]:
    return [e for e in message.get("entities", []) if e["entity"] == "language"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Where is my order?", "en"),
        ("我的订单到哪了？", "zh"),
        ("我的order到哪了", "zh"),
        # A customer who writes Chinese words gets Chinese back.
        ("where is my 订单", "zh"),
        ("do you have the 旗袍 in red", "zh"),
        # ...but one Chinese term in a long English message does not flip it.
        ("I ordered two pairs last week but the 尺码 is wrong, can you exchange them", "en"),
        # Identifiers don't vote: the letters in an order number are not English.
        ("订单 KF-100023 https://kefu.shop/track amy@kefu.cn", "zh"),
        ("hi", "en"),
        ("好", "zh"),
    ],
)
def test_language(detector: LanguageDetector, text: str, expected: str):
    message = Message.build(text=text)

    detector.process([message])

    assert message.get("language") == expected
    [entity] = language_entities(message)
    assert entity["value"] == expected
    assert (entity["start"], entity["end"]) == (0, len(text))
    assert entity["extractor"] == "LanguageDetector"
    assert 0.5 <= entity["confidence"] <= 1.0


@pytest.mark.parametrize("text", ["", "   ", "😡😡", "12345", "KF-100023", "#A-10023 ?!"])
def test_no_letters_sets_nothing(detector: LanguageDetector, text: str):
    message = Message.build(text=text)

    detector.process([message])

    assert message.get("language") is None
    assert language_entities(message) == []


def test_keeps_other_entities_and_survives_into_parse_data(detector: LanguageDetector):
    other = {"entity": "order_id", "value": "KF-100023", "start": 6, "end": 15}
    message = Message.build(text="order KF-100023 please", entities=[other])

    detector.process([message])
    parse_data = message.as_dict(only_output_properties=True)

    assert parse_data["entities"][0] == other
    assert parse_data["language"] == "en"


def test_confidence_grows_with_purity(detector: LanguageDetector):
    _, mixed = detector.detect("where is my 订单")
    _, pure = detector.detect("我的订单在哪里")

    assert pure > mixed
    assert pure == pytest.approx(1.0)


def test_tie_goes_to_chinese(tmp_path: Path):
    # 1 Han x weight 3 against 3 Latin letters: share 0.5, exactly the threshold.
    detector = create_detector(tmp_path, zh_threshold=0.5)

    assert detector.detect("abc 好")[0] == "zh"


@pytest.mark.parametrize(
    "config, match",
    [
        ({"threshold": 0.3}, "E100.*han_weight, zh_threshold"),
        ({"zh_threshold": 1.5}, "E101.*zh_threshold"),
        ({"han_weight": 0}, "E101.*han_weight"),
    ],
)
def test_invalid_config_is_rejected(tmp_path: Path, config: dict, match: str):
    with pytest.raises(InvalidConfigException, match=match):
        create_detector(tmp_path, **config)
