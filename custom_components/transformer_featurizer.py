"""Dense features from a local multilingual Transformer encoder (TensorFlow).

Replaces Rasa's `LanguageModelFeaturizer` for Kefu: the weights come from a verified local
folder (`make model`), texts are featurized in length-bucketed batches through one compiled
forward pass, and sub-word pieces are pooled back onto the pipeline tokenizer's tokens so DIET
and other stock components work on top. What it shares with the intent classifier (assets,
runtime, pooling) is in `custom_components.encoder.component`.

Example `config.yml` entry::

    - name: custom_components.transformer_featurizer.TransformerFeaturizer
      model_path: multilingual-e5-small
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.nlu.constants import TOKENS_NAMES
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from custom_components.component import read_json
from custom_components.config import Rule, int_at_least, is_int, one_of
from custom_components.encoder.component import EncoderComponent

VALID_POOLING = ("mean",)
PERSISTED_FILE = "transformer_featurizer.json"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=True)
class TransformerFeaturizer(EncoderComponent):
    """Sentence and token features from a Transformer encoder loaded from a local folder."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """The component's default config (see the comments for each key)."""
        return {
            **EncoderComponent.get_default_config(),
            # Sub-word pieces per text, special tokens included; longer texts keep the head.
            "max_length": 128,
            # Texts per forward pass during training and for `process` lists (128 is the
            # fastest batch on a 2-core CPU in bfloat16; docs/BENCHMARKS.md).
            "batch_size": 128,
            # Padded lengths to choose from (max_length is always added); fewer = fewer shapes.
            "buckets": [8, 16, 24, 32, 48, 64, 96, 128],
            # How the pieces of one Rasa token are combined.
            "pooling": "mean",
            # Hidden layer whose states become features (-1 = last).
            "layer": -1,
            # "auto" uses a GPU when TensorFlow sees one; "cpu" / "gpu" force it.
            "device": "auto",
            # Half-precision encoder: float16 on a GPU, bfloat16 on a CPU with native bfloat16
            # instructions (AVX512-BF16 / AMX), float32 elsewhere. Features stay float32 and
            # stay close to full precision (bench/encoder_bench.py measures how close).
            "mixed_precision": True,
        }

    @classmethod
    def config_rules(cls) -> dict[str, Rule]:
        """Value checks, in order (unknown keys are rejected too)."""
        return {
            "pooling": one_of(VALID_POOLING),
            **super().config_rules(),
            "batch_size": int_at_least(1),
            "layer": (is_int, "expected an int (-1 = last)"),
        }

    # ------------------------------------------------------------------ model storage

    @classmethod
    def _read_stored(cls, directory: Path) -> dict[str, Any]:
        return read_json(directory / PERSISTED_FILE)

    def _loaded(self) -> None:
        # Inference: trace the graph and set up every bucket shape now, not on the first user.
        cfg = self._config
        self.runtime.warm_up(cfg["max_length"], cfg["buckets"], cfg["layer"])

    def train(self, training_data: TrainingData) -> Resource:
        """Nothing to fit; records which encoder the model was trained with."""
        self.persist()
        return self._resource

    def persist(self) -> None:
        """Writes the config and the asset fingerprint to Rasa's model storage."""
        with self._model_storage.write_to(self._resource) as directory:
            payload = {
                **self._asset_record(),
                "files": self._manifest["files"],
                "prefix": self.prefix,
                "config": self._stored_config(),
            }
            (directory / PERSISTED_FILE).write_text(json.dumps(payload, indent=2), "utf-8")

    # ------------------------------------------------------------------ featurizing

    def _process_attribute(
        self, messages: Iterable[Message], attribute: str, classify: bool
    ) -> None:
        todo = [m for m in messages if m.get(attribute) and m.get(TOKENS_NAMES[attribute])]
        if not todo:
            return
        encoded = self.runtime.encode(
            self._prefixed(todo, attribute),
            max_length=self._config["max_length"],
            batch_size=self._config["batch_size"],
            buckets=self._config["buckets"],
            layer=self._config["layer"],
        )
        for message, result in zip(todo, encoded, strict=True):
            self._add_pooled_features(message, attribute, result)
