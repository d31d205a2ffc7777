"""Tests for what both encoder components get from `EncoderComponent`: the same config checks,
verified assets, a stored asset record that `load` insists on, and token-aligned features."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rasa.engine.storage.resource import Resource
from rasa.nlu.constants import TOKENS_NAMES
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.training_data import TrainingData

from custom_components.encoder.component import EncoderComponent
from custom_components.errors import ComponentStorageError, EncoderAssetsMissing
from custom_components.transformer_featurizer import PERSISTED_FILE, TransformerFeaturizer
from custom_components.transformer_intent_classifier import (
    METADATA_FILE,
    TransformerIntentClassifier,
)

DIM = 32  # hidden size of the tiny test encoder
COMPONENTS = [(TransformerFeaturizer, PERSISTED_FILE), (TransformerIntentClassifier, METADATA_FILE)]
both = pytest.mark.parametrize(
    "component, stored_file", COMPONENTS, ids=["featurizer", "classifier"]
)


def make_config(component: type[EncoderComponent], model_dir: Path, **overrides: Any) -> dict:
    return {
        **component.get_default_config(),
        "model_path": str(model_dir),
        "device": "cpu",
        **overrides,
    }


@both
@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"devise": "cpu"}, r"\[E100\].*'devise'"),
        ({"device": "tpu"}, r"\[E101\].*'device'.*\['auto', 'cpu', 'gpu'\]"),
        ({"max_length": 1}, r"\[E101\].*'max_length'.*\[2, 512\]"),
        ({"buckets": [16, 0]}, r"\[E101\].*'buckets'.*positive ints"),
    ],
)
def test_shared_keys_are_checked_alike(
    component, stored_file, tiny_encoder_dir, overrides, message
):
    with pytest.raises(InvalidConfigException, match=message):
        component.validate_config(make_config(component, tiny_encoder_dir, **overrides))


@both
def test_create_verifies_the_assets(
    component, stored_file, tmp_path, model_storage, resource, execution_context
):
    config = make_config(component, tmp_path / "not-built")

    with pytest.raises(EncoderAssetsMissing, match=r"\[E001\]"):
        component.create(config, model_storage, resource, execution_context)


@both
def test_load_without_a_trained_entry_names_the_component(
    component, stored_file, tiny_encoder_dir, model_storage, execution_context
):
    config = make_config(component, tiny_encoder_dir)

    with pytest.raises(ComponentStorageError, match=rf"\[E008\].*'{component.__name__}'"):
        component.load(config, model_storage, Resource("never-trained"), execution_context)


@both
def test_trained_model_records_its_assets_and_loads_with_token_features(
    component,
    stored_file,
    tiny_encoder_dir,
    model_storage,
    resource,
    execution_context,
    whitespace_tokenize,
    caplog,
):
    config = make_config(component, tiny_encoder_dir)
    created = component.create(config, model_storage, resource, execution_context)
    with caplog.at_level(logging.WARNING):
        created.train(TrainingData())  # no intents: the classifier only provides features
    with model_storage.read_from(resource) as directory:
        stored = json.loads((directory / stored_file).read_text())

    loaded = component.load(config, model_storage, resource, execution_context)
    (message,) = loaded.process(whitespace_tokenize(["track order A-10023"]))

    assert stored["fingerprint"] == created._manifest["fingerprint"]
    assert stored["model_name"] == created._manifest.get("name")
    assert "alias" not in stored["config"]
    sequence, sentence = message.get_dense_features(TEXT, [])
    assert sequence.features.shape == (len(message.get(TOKENS_NAMES[TEXT])), DIM)
    assert sentence.features.shape == (1, DIM)
    assert np.isfinite(sequence.features).all()
    if component is TransformerIntentClassifier:
        assert "[W001]" in caplog.text


def test_the_training_cache_key_follows_the_code_and_the_assets(tiny_encoder_dir, monkeypatch):
    import custom_components.encoder.component as module

    config = make_config(TransformerIntentClassifier, tiny_encoder_dir)
    first = TransformerIntentClassifier.fingerprint_addon(config)

    assert TransformerIntentClassifier.fingerprint_addon(config) == first
    # Another component's module is other code.
    assert TransformerFeaturizer.fingerprint_addon(config) != first
    # Other weights under the same name: retrain.
    monkeypatch.setattr(module, "read_manifest", lambda folder: {"fingerprint": "other"})
    assert TransformerIntentClassifier.fingerprint_addon(config) != first
    # No assets yet: still a key (`create` then says how to build them).
    missing = make_config(TransformerIntentClassifier, tiny_encoder_dir / "nowhere")
    monkeypatch.undo()
    assert TransformerIntentClassifier.fingerprint_addon(missing)
