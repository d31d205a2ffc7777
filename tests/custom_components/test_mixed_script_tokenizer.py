"""Tests for MixedScriptTokenizer: text → tokens → offsets, in the style of Rasa's own."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from custom_components.errors import ComponentStorageError
from custom_components.mixed_script_tokenizer import MixedScriptTokenizer


@pytest.fixture()
def model_storage(tmp_path: Path) -> ModelStorage:
    return LocalModelStorage.create(tmp_path)


@pytest.fixture()
def execution_context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), uuid.uuid4().hex)


@pytest.fixture()
def resource() -> Resource:
    return Resource("MixedScriptTokenizer")


def create_tokenizer(
    model_storage: ModelStorage,
    resource: Resource,
    execution_context: ExecutionContext,
    **config,
) -> MixedScriptTokenizer:
    return MixedScriptTokenizer.create(
        {**MixedScriptTokenizer.get_default_config(), **config},
        model_storage,
        resource,
        execution_context,
    )


@pytest.fixture()
def tokenizer(
    model_storage: ModelStorage, resource: Resource, execution_context: ExecutionContext
) -> MixedScriptTokenizer:
    return create_tokenizer(model_storage, resource, execution_context)


@pytest.mark.parametrize(
    "text, expected_tokens, expected_indices",
    [
        ("Forecast for lunch", ["Forecast", "for", "lunch"], [(0, 8), (9, 12), (13, 18)]),
        (
            "hey how're you?",
            ["hey", "how", "re", "you"],
            [(0, 3), (4, 7), (8, 10), (11, 14)],
        ),
        ("我想退货", ["我", "想", "退货"], [(0, 1), (1, 2), (2, 4)]),
        (
            "「你好」，请问、退货？",
            ["你好", "请问", "退货"],
            [(1, 3), (5, 7), (8, 10)],
        ),
        (
            "我的order KF-100023到哪了",
            ["我", "的", "order", "KF-100023", "到", "哪", "了"],
            [(0, 1), (1, 2), (2, 7), (8, 17), (17, 18), (18, 19), (19, 20)],
        ),
        (
            "where is my 订单",
            ["where", "is", "my", "订单"],
            [(0, 5), (6, 8), (9, 11), (12, 14)],
        ),
        (
            "Where is order #A-10023?",
            ["Where", "is", "order", "#A-10023"],
            [(0, 5), (6, 8), (9, 14), (15, 23)],
        ),
        ("order 12345!", ["order", "12345"], [(0, 5), (6, 11)]),
        ("SKU TR2-BLK-42.", ["SKU", "TR2-BLK-42"], [(0, 3), (4, 14)]),
        (
            "mail john.doe+shop@gmail.com!",
            ["mail", "john.doe+shop@gmail.com"],
            [(0, 4), (5, 28)],
        ),
        (
            "see https://kefu.shop/orders?id=12#top. thanks",
            ["see", "https://kefu.shop/orders?id=12#top", "thanks"],
            [(0, 3), (4, 38), (40, 46)],
        ),
        (
            "www.kefu.cn/help。谢谢",
            ["www.kefu.cn/help", "谢谢"],
            [(0, 16), (17, 19)],
        ),
        (
            "call +86-13800138000 or 13800138000",
            ["call", "+86-13800138000", "or", "13800138000"],
            [(0, 4), (5, 20), (21, 23), (24, 35)],
        ),
        # Spaced phone numbers stay several tokens: tokens never hold whitespace.
        ("+86 138 0013 8000", ["+86", "138", "0013", "8000"], [(0, 3), (4, 7), (8, 12), (13, 17)]),
        (
            "$49.99 or ¥299, 299元",
            ["$49.99", "or", "¥299", "299", "元"],
            [(0, 6), (7, 9), (10, 14), (16, 19), (19, 20)],
        ),
        (
            "size XL or 42码",
            ["size", "XL", "or", "42", "码"],
            [(0, 4), (5, 7), (8, 10), (11, 13), (13, 14)],
        ),
        (
            "10,000 and 3.5 and 2nd",
            ["10,000", "and", "3.5", "and", "2nd"],
            [(0, 6), (7, 10), (11, 14), (15, 18), (19, 22)],
        ),
        (
            "太差劲了！！！😡👍🏽",
            ["太", "差劲", "了", "😡", "👍🏽"],
            [(0, 1), (1, 3), (3, 4), (7, 8), (8, 10)],
        ),
        ("thanks 👨‍👩‍👧 🇨🇳", ["thanks", "👨‍👩‍👧", "🇨🇳"], [(0, 6), (7, 12), (13, 15)]),
        (":)", [":)"], [(0, 2)]),
        ("  ?!  ", ["?!"], [(2, 4)]),
        ("", [""], [(0, 0)]),
        ("   ", ["   "], [(0, 3)]),
    ],
)
def test_tokenize(
    tokenizer: MixedScriptTokenizer,
    text: str,
    expected_tokens: list[str],
    expected_indices: list[tuple[int, int]],
):
    tokens = tokenizer.tokenize(Message.build(text=text), attribute=TEXT)

    assert [t.text for t in tokens] == expected_tokens
    assert [(t.start, t.end) for t in tokens] == expected_indices


@pytest.mark.parametrize(
    "text",
    [
        "我的order KF-100023到哪了，能帮我查一下吗？邮箱是 amy@kefu.cn",
        "退款 ¥299 还没到账!!! 气死了 😡 https://kefu.shop/r/9?x=1。",
        "Ｆｕｌｌ　ｗｉｄｔｈ　ＡＢＣ　１２３",
    ],
)
def test_offsets_always_slice_the_text(tokenizer: MixedScriptTokenizer, text: str):
    tokens = tokenizer.tokenize(Message.build(text=text), attribute=TEXT)

    assert tokens
    assert all(text[t.start : t.end] == t.text for t in tokens)


def test_process_training_data_tokenizes_text_and_intent(tokenizer: MixedScriptTokenizer):
    message = Message.build(text="我的order到哪了", intent="ask_order_status")

    tokenizer.process_training_data(TrainingData([message]))

    assert [t.text for t in message.get(TOKENS_NAMES[TEXT])] == [
        "我",
        "的",
        "order",
        "到",
        "哪",
        "了",
    ]
    # Without the flag the intent name stays whole.
    assert [t.text for t in message.get(TOKENS_NAMES[INTENT])] == ["ask_order_status"]


def test_process_sets_tokens(tokenizer: MixedScriptTokenizer):
    message = Message.build(text="where is KF-100023")

    tokenizer.process([message])

    assert [t.text for t in message.get(TOKENS_NAMES[TEXT])] == ["where", "is", "KF-100023"]


@pytest.mark.parametrize(
    "symbol, intent, expected",
    [
        ("_", "ask_order_status", ["ask", "order", "status"]),
        ("+", "greet+ask_order_status", ["greet", "ask_order_status"]),
    ],
)
def test_intent_split(
    model_storage: ModelStorage,
    resource: Resource,
    execution_context: ExecutionContext,
    symbol: str,
    intent: str,
    expected: list[str],
):
    tokenizer = create_tokenizer(
        model_storage,
        resource,
        execution_context,
        intent_tokenization_flag=True,
        intent_split_symbol=symbol,
    )
    message = Message.build(text="hi", intent=intent)

    tokenizer.process_training_data(TrainingData([message]))

    assert [t.text for t in message.get(TOKENS_NAMES[INTENT])] == expected


def test_unknown_config_key_is_rejected(
    model_storage: ModelStorage, resource: Resource, execution_context: ExecutionContext
):
    with pytest.raises(InvalidConfigException, match="case_sensitive.*dictionary_path"):
        create_tokenizer(model_storage, resource, execution_context, case_sensitive=False)


def test_missing_dictionary_is_rejected(
    model_storage: ModelStorage,
    resource: Resource,
    execution_context: ExecutionContext,
    tmp_path: Path,
):
    with pytest.raises(InvalidConfigException, match="E110"):
        create_tokenizer(
            model_storage, resource, execution_context, dictionary_path=str(tmp_path / "nope")
        )


def test_user_dictionary_round_trip(
    model_storage: ModelStorage,
    resource: Resource,
    execution_context: ExecutionContext,
    tmp_path: Path,
):
    dictionary = tmp_path / "jieba" / "shop.txt"
    dictionary.parent.mkdir()
    # A made-up product name jieba would otherwise split into single characters.
    dictionary.write_text("轻羽跑鞋 1000 n\n", encoding="utf-8")
    config = {"dictionary_path": str(dictionary.parent)}
    tokenizer = create_tokenizer(model_storage, resource, execution_context, **config)

    tokenizer.train(TrainingData())
    dictionary.unlink()  # a deployed model must not need the source file
    loaded = MixedScriptTokenizer.load(
        {**MixedScriptTokenizer.get_default_config(), **config},
        model_storage,
        resource,
        execution_context,
    )

    tokens = loaded.tokenize(Message.build(text="我要买轻羽跑鞋"), attribute=TEXT)
    assert "轻羽跑鞋" in [t.text for t in tokens]


def test_load_without_persisted_dictionary_fails_clearly(
    model_storage: ModelStorage, execution_context: ExecutionContext, tmp_path: Path
):
    config = {**MixedScriptTokenizer.get_default_config(), "dictionary_path": str(tmp_path)}

    with pytest.raises(ComponentStorageError, match="E111"):
        MixedScriptTokenizer.load(
            config, model_storage, Resource("never_trained"), execution_context
        )
