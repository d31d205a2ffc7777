"""The base of Kefu's encoder components (`TransformerFeaturizer`, `TransformerIntentClassifier`).

Both read a verified local encoder folder, record its fingerprint in Rasa's model storage and
refuse to load a model trained on other assets, share one loaded runtime per folder, and add
dense features by pooling sub-word pieces back onto the pipeline tokenizer's tokens. What they
do with the encoder (plain features; fine-tuning and intents) is theirs.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import DENSE_FEATURIZABLE_ATTRIBUTES, TOKENS_NAMES
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.nlu.constants import ACTION_TEXT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from custom_components.component import State, TrainedComponent
from custom_components.config import POSITIVE_INTS, Rule, int_in, one_of
from custom_components.encoder.alignment import pool_pieces_to_tokens
from custom_components.encoder.assets import read_manifest, resolve_model_path, verify_folder
from custom_components.encoder.device import VALID_DEVICES
from custom_components.encoder.runtime import EncoderRuntime, get_runtime
from custom_components.errors import EncoderAssetsMismatch, EncoderAssetsMissing, Errors

# Attributes featurized at inference; labels (intent, response) only during training.
PROCESS_ATTRIBUTES = (TEXT, ACTION_TEXT)


class PieceStates(Protocol):
    """One text's encoder output (`EncodedText`, `Prediction`)."""

    hidden: np.ndarray  # [n_pieces, dim]
    sentence: np.ndarray  # [dim]
    piece_offsets: np.ndarray  # [n_pieces, 2]


class EncoderComponent(TrainedComponent, DenseFeaturizer, GraphComponent):
    """Verified encoder assets, the shared runtime and pooled dense features.

    Subclasses extend `get_default_config` / `config_rules`, write their files in `persist`
    (starting from `_asset_record()`), read them in `_read_stored` (a dict with the asset
    record's keys), extend `_stored_state` with what they trained, and featurize in
    `_process_attribute`.
    """

    @classmethod
    def required_components(cls) -> list[type]:
        """Token features are aligned to the pipeline tokenizer's tokens."""
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """The keys both encoder components have (see the comments for each key)."""
        return {
            **DenseFeaturizer.get_default_config(),
            # A registered encoder name (resolved under the asset cache, see
            # `custom_components.encoder.assets`) or a path to a local HF BERT folder
            # built with `make model`.
            "model_path": "multilingual-e5-small",
            # Text put before every input; None = the asset manifest's ("query: " for E5).
            "prefix": None,
        }

    @classmethod
    def config_rules(cls) -> dict[str, Rule]:
        """Checks of the shared keys (subclasses add theirs)."""
        return {
            "device": one_of(VALID_DEVICES),
            "max_length": int_in(2, 512),
            "buckets": POSITIVE_INTS,
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        manifest: dict[str, Any],
    ) -> None:
        """Use `create` / `load`; they verify the encoder assets before building this."""
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
            # Only the featurizer has the key; the classifier fine-tunes in float32.
            mixed_precision=self._config.get("mixed_precision", False),
        )

    @classmethod
    def _created_state(
        cls, config: dict[str, Any], execution_context: ExecutionContext
    ) -> dict[str, Any]:
        """For training: the assets, verified against their manifest."""
        cls.validate_config(config)
        manifest = verify_folder(resolve_model_path(config["model_path"]))
        return {"execution_context": execution_context, "manifest": manifest}

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """Retrains when the encoder's code or assets change, not only its config or data.

        Rasa's training cache keys a component on its config and inputs only, so after a change
        to how the encoder trains or runs (this package, the component's module) or to the
        asset folder, `rasa train` would otherwise reuse a component trained by the old code
        on the old weights.
        """
        digest = hashlib.sha256()
        sources = sorted(Path(__file__).parent.glob("*.py")) + [Path(inspect.getfile(cls))]
        for path in sources:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        try:
            fingerprint = read_manifest(resolve_model_path(config["model_path"]))["fingerprint"]
        except (EncoderAssetsMissing, KeyError, ValueError):  # `create` reports it clearly
            fingerprint = "no assets"
        digest.update(str(fingerprint).encode())
        return digest.hexdigest()

    # ------------------------------------------------------------------ model storage

    def _asset_record(self) -> dict[str, Any]:
        """Which encoder this model was trained with; `load` insists on the same assets."""
        return {
            "model_name": self._manifest.get("name"),
            "fingerprint": self._manifest["fingerprint"],
        }

    def _stored_config(self) -> dict[str, Any]:
        """The config as persisted (the alias is the node's, not the model's)."""
        return {k: v for k, v in self._config.items() if k != "alias"}

    @classmethod
    def _storage_error(cls, resource: Resource, error: Exception) -> str:
        return Errors.E008.format(component=cls.__name__, detail=str(error))

    @classmethod
    def _stored_state(
        cls, config: dict[str, Any], stored: dict[str, Any], execution_context: ExecutionContext
    ) -> State:
        """The assets, which must be the ones the model was trained with.

        Raises:
            EncoderAssetsMissing / EncoderAssetsMismatch: the asset folder is missing, altered,
                or holds another encoder than the one used in training.
        """
        folder = resolve_model_path(config["model_path"])
        manifest = verify_folder(folder)
        if manifest["fingerprint"] != stored.get("fingerprint"):
            raise EncoderAssetsMismatch(
                Errors.E003.format(
                    expected=stored.get("model_name"),
                    expected_hash=str(stored.get("fingerprint"))[:16],
                    path=folder,
                    found=manifest.get("name"),
                    found_hash=manifest["fingerprint"][:16],
                )
            )
        return config, {"execution_context": execution_context, "manifest": manifest}

    # ------------------------------------------------------------------ featurizing

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Featurizes every dense-featurizable attribute of the training examples."""
        for attribute in DENSE_FEATURIZABLE_ATTRIBUTES:
            self._process_attribute(training_data.training_examples, attribute, classify=False)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        """Processes `text` / `action_text` of messages (one batched call per attribute)."""
        for attribute in PROCESS_ATTRIBUTES:
            self._process_attribute(messages, attribute, classify=attribute == TEXT)
        return messages

    def _process_attribute(
        self, messages: Iterable[Message], attribute: str, classify: bool
    ) -> None:
        """Adds features (and, where `classify` and the component can, intents)."""
        raise NotImplementedError

    def _prefixed(self, messages: Sequence[Message], attribute: str) -> list[str]:
        """The texts the encoder sees: the prefix, then the attribute's text."""
        return [self.prefix + m.get(attribute) for m in messages]

    def _add_pooled_features(self, message: Message, attribute: str, states: PieceStates) -> None:
        """Adds the sentence vector and the pieces pooled onto the message's tokens."""
        shift = len(self.prefix)
        tokens = message.get(TOKENS_NAMES[attribute])
        spans = [(token.start + shift, token.end + shift) for token in tokens]
        sequence = pool_pieces_to_tokens(states.hidden, states.piece_offsets, spans)
        self.add_features_to_message(
            sequence=sequence.astype(np.float32),
            sentence=states.sentence[None, :].astype(np.float32),
            attribute=attribute,
            message=message,
        )
