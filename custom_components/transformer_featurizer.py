"""Dense features from a local multilingual Transformer encoder (TensorFlow).

Replaces Rasa's `LanguageModelFeaturizer` for Kefu: the weights come from a verified local
folder (`make model`), texts are featurized in length-bucketed batches through one compiled
forward pass, and sub-word pieces are pooled back onto the pipeline tokenizer's tokens so DIET
and other stock components work on top.

Example `config.yml` entry::

    - name: custom_components.transformer_featurizer.TransformerFeaturizer
      model_path: multilingual-e5-small
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import DENSE_FEATURIZABLE_ATTRIBUTES, TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import ACTION_TEXT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from custom_components.config import reject_unknown_keys
from custom_components.encoder.alignment import pool_pieces_to_tokens
from custom_components.encoder.assets import resolve_model_path, verify_folder
from custom_components.encoder.device import VALID_DEVICES
from custom_components.encoder.runtime import EncoderRuntime, get_runtime
from custom_components.errors import ComponentStorageError, EncoderAssetsMismatch, Errors

logger = logging.getLogger(__name__)

VALID_POOLING = ("mean",)
PERSISTED_FILE = "transformer_featurizer.json"
# Attributes featurized at inference; labels (intent, response) are featurized by classifiers.
_PROCESS_ATTRIBUTES = (TEXT, ACTION_TEXT)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=True)
class TransformerFeaturizer(DenseFeaturizer, GraphComponent):
    """Sentence and token features from a Transformer encoder loaded from a local folder."""

    @classmethod
    def required_components(cls) -> list[type]:
        """Sequence features are aligned to the tokens of the pipeline's tokenizer."""
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """The component's default config (see the comments for each key)."""
        return {
            **DenseFeaturizer.get_default_config(),
            # A registered name (resolved under the asset cache, see
            # `custom_components.encoder.assets`) or a path to a local HF BERT folder.
            "model_path": "multilingual-e5-small",
            # Text put before every input; None = the asset manifest's ("query: " for E5).
            "prefix": None,
            # Sub-word pieces per text, special tokens included; longer texts keep the head.
            "max_length": 128,
            # Texts per forward pass during training and for `process` lists (128 is the
            # fastest on a 2-core CPU in bfloat16: 662 msg/s, against 590 for 64).
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
            # differ from full precision by about 1e-4 in cosine (bench/encoder_bench.py).
            "mixed_precision": True,
        }

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Rejects unknown keys and invalid values, listing the valid choices.

        Raises:
            InvalidConfigException: on the first problem found.
        """
        defaults = cls.get_default_config()
        reject_unknown_keys(cls.__name__, config, defaults)
        choices = {"pooling": VALID_POOLING, "device": VALID_DEVICES}
        for key, valid in choices.items():
            if config.get(key, defaults[key]) not in valid:
                raise InvalidConfigException(
                    f"{cls.__name__}: {key}={config.get(key)!r}; choose one of {list(valid)}."
                )
        max_length = config.get("max_length", defaults["max_length"])
        if not isinstance(max_length, int) or not 2 <= max_length <= 512:
            raise InvalidConfigException(
                f"{cls.__name__}: max_length={max_length!r}; expected an int in [2, 512]."
            )
        batch_size = config.get("batch_size", defaults["batch_size"])
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidConfigException(
                f"{cls.__name__}: batch_size={batch_size!r}; expected a positive int."
            )
        buckets = config.get("buckets", defaults["buckets"])
        if not buckets or not all(isinstance(b, int) and b > 0 for b in buckets):
            raise InvalidConfigException(
                f"{cls.__name__}: buckets={buckets!r}; expected a list of positive ints."
            )
        if not isinstance(config.get("layer", defaults["layer"]), int):
            raise InvalidConfigException(f"{cls.__name__}: layer must be an int (-1 = last).")

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        manifest: dict[str, Any],
    ) -> None:
        """Use `create` / `load`; they verify the assets before building this."""
        self.validate_config(config)
        super().__init__(execution_context.node_name, config)
        self._model_storage = model_storage
        self._resource = resource
        self._manifest = manifest
        self._model_dir = resolve_model_path(config["model_path"])
        prefix = config["prefix"]
        self.prefix: str = manifest.get("prefix", "") if prefix is None else str(prefix)
        self.runtime: EncoderRuntime = self._load_runtime()

    def _load_runtime(self) -> EncoderRuntime:
        """Loads (or reuses) the shared encoder; tests patch this to count loads."""
        return get_runtime(
            self._model_dir,
            device=self._config["device"],
            mixed_precision=self._config["mixed_precision"],
        )

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> TransformerFeaturizer:
        """Creates the featurizer for training (assets verified against their manifest)."""
        cls.validate_config(config)
        manifest = verify_folder(resolve_model_path(config["model_path"]))
        return cls(config, model_storage, resource, execution_context, manifest)

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> TransformerFeaturizer:
        """Loads a trained featurizer: the assets must be the ones it was trained with.

        Raises:
            ComponentStorageError: the model storage entry is missing.
            EncoderAssetsMissing / EncoderAssetsMismatch: the asset folder is missing, altered,
                or holds another encoder than the one used in training.
        """
        cls.validate_config(config)
        try:
            with model_storage.read_from(resource) as directory:
                persisted = json.loads((directory / PERSISTED_FILE).read_text(encoding="utf-8"))
        except (ValueError, OSError) as e:
            raise ComponentStorageError(
                Errors.E008.format(component=cls.__name__, detail=str(e))
            ) from e
        folder = resolve_model_path(config["model_path"])
        manifest = verify_folder(folder)
        if manifest["fingerprint"] != persisted["fingerprint"]:
            raise EncoderAssetsMismatch(
                Errors.E003.format(
                    expected=persisted["model_name"],
                    expected_hash=persisted["fingerprint"][:16],
                    path=folder,
                    found=manifest.get("name"),
                    found_hash=manifest["fingerprint"][:16],
                )
            )
        featurizer = cls(config, model_storage, resource, execution_context, manifest)
        # Inference: trace the graph and set up every bucket shape now, not on the first user.
        featurizer.runtime.warm_up(config["max_length"], config["buckets"], config["layer"])
        return featurizer

    def train(self, training_data: TrainingData) -> Resource:
        """Nothing to fit; records which encoder the model was trained with."""
        self.persist()
        return self._resource

    def persist(self) -> None:
        """Writes the config and the asset fingerprint to Rasa's model storage."""
        with self._model_storage.write_to(self._resource) as directory:
            payload = {
                "model_name": self._manifest.get("name"),
                "fingerprint": self._manifest["fingerprint"],
                "files": self._manifest["files"],
                "prefix": self.prefix,
                "config": {k: v for k, v in self._config.items() if k != "alias"},
            }
            (directory / PERSISTED_FILE).write_text(json.dumps(payload, indent=2), "utf-8")

    # ------------------------------------------------------------------ featurizing

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Featurizes every dense-featurizable attribute of the training examples."""
        for attribute in DENSE_FEATURIZABLE_ATTRIBUTES:
            self._featurize(training_data.training_examples, attribute)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        """Featurizes `text` / `action_text` of messages (one batched call per attribute)."""
        for attribute in _PROCESS_ATTRIBUTES:
            self._featurize(messages, attribute)
        return messages

    def _featurize(self, messages: Iterable[Message], attribute: str) -> None:
        todo = [m for m in messages if m.get(attribute) and m.get(TOKENS_NAMES[attribute])]
        if not todo:
            return
        prefix = self.prefix
        encoded = self.runtime.encode(
            [prefix + m.get(attribute) for m in todo],
            max_length=self._config["max_length"],
            batch_size=self._config["batch_size"],
            buckets=self._config["buckets"],
            layer=self._config["layer"],
        )
        shift = len(prefix)
        for message, result in zip(todo, encoded, strict=True):
            tokens = message.get(TOKENS_NAMES[attribute])
            spans = [(token.start + shift, token.end + shift) for token in tokens]
            sequence = pool_pieces_to_tokens(result.hidden, result.piece_offsets, spans)
            self.add_features_to_message(
                sequence=sequence.astype(np.float32),
                sentence=result.sentence[None, :].astype(np.float32),
                attribute=attribute,
                message=message,
            )
