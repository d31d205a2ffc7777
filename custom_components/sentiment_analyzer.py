"""Scores how frustrated a customer sounds, in English and Chinese.

``SentimentAnalyzer`` is a small, fast classifier trained from labelled examples kept
beside the NLU data, ``data/sentiment/<language>.yml``::

    version: "1"
    language: en
    labels:
      - label: angry          # one of: angry, negative, neutral, positive
        examples: |
          - WHERE IS MY ORDER???

Model: character n-grams (``char_wb``, 1-4 by default; the same features work for both
scripts, so one model serves both languages) hashed into a fixed space, sub-linear TF-IDF,
plus a few hand-written cues the n-grams can't see (exclamation density, ``??``/``！！``
runs, share of capitals, angry emoji), fed to a one-vs-rest logistic regression (its
cross-validated accuracy is in docs/BENCHMARKS.md; add examples to improve it).
Weights are stored in Rasa's model storage as ``.npz`` + JSON (no pickle), so
``rasa train`` then ``rasa run`` just works and the YAML files aren't needed at runtime.

Output, on every message with text:

* ``message.get("sentiment")`` → ``{"label": "negative"|"neutral"|"positive",
  "frustration": float in [0, 1]}``, where ``frustration = P(angry) + 0.5 * P(negative)``
  and ``label`` is ``negative`` when the top class is ``angry`` or ``negative``. The key is
  an output property, so it is part of the parse data and the action server reads it as
  ``tracker.latest_message["sentiment"]["frustration"]`` (Rasa copies the whole parse
  data into ``UserUttered.parse_data``; only keys set with ``add_to_output`` get there).
* an entity ``{"entity": "sentiment", "value": <label>, "confidence": <P(label)>,
  "start": 0, "end": len(text), "extractor": "SentimentAnalyzer"}`` so a ``sentiment``
  slot (``from_entity``) and rules can use it. Declare ``sentiment`` under ``entities:``.

The message ``metadata`` is left alone: it belongs to the channel.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import rasa.shared.utils.io
import regex
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.exceptions import InvalidConfigException, YamlException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from scipy import sparse

from custom_components.component import (
    State,
    TrainedComponent,
    add_entities,
    files_in,
    read_json,
    whole_text_entity,
)
from custom_components.config import Rule, a_path
from custom_components.errors import KefuComponentError
from custom_components.messages import Errors

SENTIMENT = "sentiment"
# Training labels, and how much frustration each one stands for.
LABELS = ("angry", "negative", "neutral", "positive")
FRUSTRATION = {"angry": 1.0, "negative": 0.5, "neutral": 0.0, "positive": 0.0}
# What the rest of the bot sees: anger is a strong form of "negative".
OUTPUT_LABEL = {
    "angry": "negative",
    "negative": "negative",
    "neutral": "neutral",
    "positive": "positive",
}

WEIGHTS_FILE = "sentiment_weights.npz"
META_FILE = "sentiment_meta.json"
# Featurization settings stored with the weights; the trained ones win at load time.
_TRAINED_KEYS = ("char_ngram_range", "hash_features", "cue_weight")

_ANGRY_EMOJI = set("😡🤬😠💢👎😤🖕")
_PUNCT_RUN = regex.compile(r"[!?！？]{2,}")
_LATIN = regex.compile(r"\p{Latin}")
_UPPER = regex.compile(r"\p{Lu}")


def cue_features(text: str) -> list[float]:
    """Returns the hand-written cues of one text, each in [0, 1].

    Args:
        text: The message text.

    Returns:
        ``[exclamation density, punctuation runs, capitals share, angry emoji]``.
    """
    exclamations = text.count("!") + text.count("！")
    latin = len(_LATIN.findall(text))
    # A capitals share means little in "OK" or "KF"; require a few letters.
    capitals = len(_UPPER.findall(text)) / latin if latin >= 6 else 0.0
    return [
        min(1.0, exclamations / 3.0),
        1.0 if _PUNCT_RUN.search(text) else 0.0,
        capitals,
        1.0 if any(ch in _ANGRY_EMOJI for ch in text) else 0.0,
    ]


def read_examples(path: str) -> list[tuple[str, str]]:
    """Reads ``(text, label)`` pairs from every ``*.yml`` file in a folder (or one file).

    Args:
        path: ``data/sentiment`` or a single file in that format.

    Returns:
        The examples in file order.

    Raises:
        InvalidConfigException: If the path does not exist or holds no YAML file.
        KefuComponentError: If a file does not follow the format.
    """
    files = files_in(path, "*.yml")
    if not files or not os.path.isfile(files[0]):
        raise InvalidConfigException(Errors.E130.format(path=path))
    examples = []
    for file in files:

        def invalid(problem: str, file: str = file) -> KefuComponentError:
            return KefuComponentError(Errors.E131.format(path=file, problem=problem, labels=LABELS))

        try:
            content = rasa.shared.utils.io.read_yaml_file(file)
        except YamlException as e:
            raise invalid(f"it is not YAML ({e})") from e
        if not isinstance(content, dict) or not isinstance(content.get("labels"), list):
            raise invalid("no 'labels:' list")
        for item in content["labels"]:
            if not isinstance(item, dict) or item.get("label") not in LABELS:
                raise invalid(f"unknown or missing label in {item!r}"[:200])
            lines = str(item.get("examples") or "").splitlines()
            for line in lines:
                line = line.strip()
                if line.startswith("- ") and line[2:].strip():
                    examples.append((line[2:].strip(), item["label"]))
    return examples


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
class SentimentAnalyzer(TrainedComponent, GraphComponent, EntityExtractorMixin):
    """Adds a sentiment label and a frustration score to every message."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Returns the component's default config."""
        return {
            # Folder of <language>.yml files with labelled examples (or one such file),
            # relative to where `rasa train` runs.
            "training_data_path": "data/sentiment",
            # Character n-gram lengths; 1-4 covers Chinese words and English stems.
            "char_ngram_range": [1, 4],
            # Size of the hashed n-gram space (a power of two keeps collisions rare).
            "hash_features": 2**16,
            # Inverse regularisation strength of the logistic regression.
            "C": 10.0,
            # Scale of the hand-written cues relative to the n-gram features.
            "cue_weight": 1.0,
        }

    @classmethod
    def config_rules(cls) -> dict[str, Rule]:
        """Value checks, in order (unknown keys are rejected too)."""
        return {
            "training_data_path": a_path(
                "expected the path of a folder of <language>.yml files (or of one file)"
            ),
            "char_ngram_range": (
                lambda v: (
                    isinstance(v, list | tuple)
                    and len(v) == 2
                    and all(isinstance(n, int) for n in v)
                    and 1 <= v[0] <= v[1]
                ),
                "expected two integers [min, max] with 1 <= min <= max",
            ),
            "hash_features": (
                lambda v: isinstance(v, int) and v >= 1024,
                "expected an integer of at least 1024",
            ),
            "C": (lambda v: float(v) > 0, "expected a positive number"),
            "cue_weight": (lambda v: float(v) >= 0, "expected a number >= 0"),
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        weights: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Creates the analyzer.

        Args:
            config: The component config.
            model_storage: Where the weights are persisted.
            resource: This component's resource in the model storage.
            weights: Trained ``idf``, ``coef`` and ``intercept`` arrays (None: untrained).
        """
        from sklearn.feature_extraction.text import HashingVectorizer

        self._config = self.merged_config(config)
        self._model_storage = model_storage
        self._resource = resource
        self._weights = weights
        # Stateless, so the same object featurizes at training and inference time.
        self._hasher = HashingVectorizer(
            analyzer="char_wb",
            ngram_range=tuple(self._config["char_ngram_range"]),
            n_features=self._config["hash_features"],
            alternate_sign=False,
            norm=None,
        )

    @classmethod
    def _read_stored(cls, directory: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = read_json(directory / META_FILE)
        with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as data:
            return meta, {name: data[name] for name in data.files}

    @classmethod
    def _storage_error(cls, resource: Resource, error: Exception) -> str:
        return Errors.E133.format(resource=resource.name, file=WEIGHTS_FILE)

    @classmethod
    def _stored_state(
        cls,
        config: dict[str, Any],
        stored: tuple[dict[str, Any], dict[str, np.ndarray]],
        execution_context: ExecutionContext,
    ) -> State:
        meta, weights = stored
        # Featurize exactly as at training time, whatever config.yml says today.
        return {**config, **{key: meta[key] for key in _TRAINED_KEYS}}, {"weights": weights}

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """Retrains when the example files change, not only when the config does."""
        path = config.get("training_data_path") or cls.get_default_config()["training_data_path"]
        files = files_in(path, "*.yml")
        digest = hashlib.sha256()
        for file in files:
            if os.path.isfile(file):
                digest.update(Path(file).read_bytes())
        return digest.hexdigest()

    @staticmethod
    def required_packages() -> list[str]:
        """Python packages this component needs besides Rasa."""
        return ["sklearn", "scipy", "regex"]

    def _featurize(self, texts: list[str], idf: np.ndarray) -> sparse.csr_matrix:
        from sklearn.preprocessing import normalize

        counts = self._hasher.transform(texts).astype(np.float64)
        counts.data = 1.0 + np.log(counts.data)  # sub-linear TF: "!!!!!!" isn't 6x "!"
        tfidf = normalize(sparse.csr_matrix(counts.multiply(idf)))
        cues = np.array([cue_features(t) for t in texts]) * float(self._config["cue_weight"])
        return sparse.hstack([tfidf, sparse.csr_matrix(cues)], format="csr")

    def train(self, training_data: TrainingData) -> Resource:
        """Trains on the examples in ``training_data_path`` and persists the weights.

        Args:
            training_data: Unused; sentiment has its own labelled examples.

        Returns:
            This component's resource.

        Raises:
            InvalidConfigException: If the examples can't be found.
            KefuComponentError: If the examples are malformed or a label has none.
        """
        from sklearn.linear_model import LogisticRegression

        path = self._config["training_data_path"]
        examples = read_examples(path)
        found = sorted({label for _, label in examples})
        missing = sorted(set(LABELS) - set(found))
        if missing:
            raise KefuComponentError(Errors.E132.format(found=found, path=path, missing=missing))

        texts = [text for text, _ in examples]
        labels = [label for _, label in examples]
        counts = self._hasher.transform(texts)
        document_frequency = np.bincount(counts.indices, minlength=counts.shape[1])
        # Smoothed IDF, as sklearn's TfidfTransformer computes it.
        idf = np.log((1.0 + len(texts)) / (1.0 + document_frequency)) + 1.0

        # liblinear (one-vs-rest) fits much faster here than lbfgs, for the same
        # cross-validated accuracy.
        classifier = LogisticRegression(C=float(self._config["C"]), solver="liblinear")
        classifier.fit(self._featurize(texts, idf), labels)

        self._weights = {
            "idf": idf.astype(np.float32),
            "coef": classifier.coef_.astype(np.float32),
            "intercept": classifier.intercept_.astype(np.float32),
            "classes": np.array(classifier.classes_, dtype="U16"),
        }
        self.persist()
        return self._resource

    def persist(self) -> None:
        """Writes the weights and the featurization settings to the model storage."""
        meta = {key: self._config[key] for key in _TRAINED_KEYS}
        with self._model_storage.write_to(self._resource) as directory:
            np.savez_compressed(Path(directory) / WEIGHTS_FILE, **self._weights)
            (Path(directory) / META_FILE).write_text(json.dumps(meta), encoding="utf-8")

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """Scores texts.

        Args:
            texts: Message texts.

        Returns:
            One ``{"label", "frustration", "confidence"}`` dict per text.

        Raises:
            KefuComponentError: If the component was never trained.
        """
        if self._weights is None:
            raise KefuComponentError(
                Errors.E133.format(resource=self._resource.name, file=WEIGHTS_FILE)
            )
        features = self._featurize(texts, self._weights["idf"])
        scores = features @ self._weights["coef"].T + self._weights["intercept"]
        # One-vs-rest probabilities, normalised, as LogisticRegression(liblinear) gives.
        probabilities = 1.0 / (1.0 + np.exp(-scores))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        classes = [str(c) for c in self._weights["classes"]]
        results = []
        for row in probabilities:
            by_class = dict(zip(classes, row.tolist(), strict=True))
            label = OUTPUT_LABEL[classes[int(row.argmax())]]
            confidence = sum(p for c, p in by_class.items() if OUTPUT_LABEL[c] == label)
            frustration = sum(FRUSTRATION[c] * p for c, p in by_class.items())
            results.append(
                {
                    "label": label,
                    "frustration": round(min(1.0, max(0.0, frustration)), 4),
                    "confidence": round(confidence, 4),
                }
            )
        return results

    def process(self, messages: list[Message]) -> list[Message]:
        """Adds ``sentiment`` (key and entity) to every message with text.

        Args:
            messages: The incoming messages.

        Returns:
            The same messages.
        """
        scored = [m for m in messages if (m.get(TEXT) or "").strip()]
        if not scored:
            return messages
        for message, result in zip(
            scored, self.predict([m.get(TEXT) for m in scored]), strict=True
        ):
            text = message.get(TEXT)
            message.set(
                SENTIMENT,
                {"label": result["label"], "frustration": result["frustration"]},
                add_to_output=True,
            )
            entity = whole_text_entity(
                SENTIMENT, result["label"], text, result["confidence"], self.name
            )
            add_entities(message, [entity])
        return messages
