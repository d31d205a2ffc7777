"""One fine-tuned multilingual encoder pass for intents, entities and FAQ answers.

During `rasa train` it copies the top `trainable_layers` layers of the local encoder and trains
them, in one run, with three linear heads on the NLU examples (embeddings and lower layers stay
frozen and shared with any `TransformerFeaturizer` on the same folder):

- **intents** on the pooled sentence vector, with calibrated confidences (below);
- **entities** (`entity_recognition`): a BIO tag per token of the pipeline's tokenizer (the
  encoder's pieces are averaged onto each token), decoded into Rasa's entity format with this
  component as the `extractor`. Entity roles and groups are not learnt;
- **answers of retrieval intents** (`response_selection`): a softmax over the answer keys
  (`faq/returns`, `chitchat/bot_identity`, …), reported under `response_selector` exactly as
  Rasa's `ResponseSelector` does (key `default`), so `utter_faq` and friends work unchanged.

A head is only built when the data has what it learns (entity annotations, retrieval
intents). It fits softmax temperatures on a held-out slice of the training data and persists
only the fine-tuned part in Rasa's model storage. At inference one forward pass gives all three
and, with `provide_features: true`, dense sentence / token features for any component
downstream. The whole NLU of a pipeline can then be:

    - name: custom_components.mixed_script_tokenizer.MixedScriptTokenizer
    - name: custom_components.transformer_intent_classifier.TransformerIntentClassifier
      model_path: multilingual-e5-small
      provide_features: false
    - name: RegexEntityExtractor
    - name: custom_components.entity_merger.EntityMerger
    - name: EntitySynonymMapper
    - name: FallbackClassifier
      threshold: 0.5

Out-of-scope messages are not trained on. Confidences are a softmax over the intents plus
one constant "none of these" logit `b`: `p_i = exp(z_i / T) / (exp(b) + sum_j exp(z_j / T))`.
A message the model has little evidence for (a low log-sum-exp of its logits, which separates
out-of-scope text better than the top probability alone) loses most of its mass to "none", so
its confidence is low and Rasa's `FallbackClassifier` (unchanged) sets `nlu_fallback`. `b` is
set on the held-out in-scope examples: the `out_of_scope_quantile` quantile of their
log-sum-exp, so a message with less evidence than all but that share of real in-scope messages
keeps at most half of its confidence. The ranking's confidences then add up to less than 1;
the rest is the out-of-scope mass. The maths is in `custom_components.encoder.calibration`; what
the classifier shares with `TransformerFeaturizer` is in `custom_components.encoder.component`.

Confidence cannot catch a message the head maps onto a shop intent *with high confidence*
("set a timer", "translate this", "move money to savings"). `out_of_scope_distance_quantile`
adds a check of distance to the training data (`custom_components.encoder.distance`): after
training, one mean per intent and a shared Ledoit-Wolf covariance are fitted on the training
examples' sentence vectors, computed by the encoder that will parse (the exported ONNX graph
with `inference: onnx-*`); the threshold is that quantile of the held-out in-scope examples'
smallest Mahalanobis distance. A message farther than it from every intent becomes
`out_of_scope_intent` (the shop's `out_of_scope`, answered by a rule "that's outside what I can
help with"), with every other intent keeping `1 - quantile` of its confidence. Every parsed
message reports `out_of_scope_distance: {distance, threshold, nearest_intent}`.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.constants import (
    RESPONSE_SELECTOR_DEFAULT_INTENT,
    RESPONSE_SELECTOR_PREDICTION_KEY,
    RESPONSE_SELECTOR_PROPERTY_NAME,
    RESPONSE_SELECTOR_RANKING_KEY,
    RESPONSE_SELECTOR_RESPONSES_KEY,
    RESPONSE_SELECTOR_RETRIEVAL_INTENTS,
    RESPONSE_SELECTOR_UTTER_ACTION_KEY,
    TOKENS_NAMES,
)
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.constants import UTTER_PREFIX
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    INTENT_RESPONSE_KEY,
    PREDICTED_CONFIDENCE_KEY,
    RESPONSE_IDENTIFIER_DELIMITER,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from custom_components.component import State, add_entities, entity_at, read_json
from custom_components.config import Rule, int_in, number_in, one_of
from custom_components.encoder.calibration import (
    background_logit,
    calibrated_confidences,
    expected_calibration_error,
    fit_temperature,
    softmax,
)
from custom_components.encoder.component import EncoderComponent
from custom_components.encoder.distance import (
    IntentGaussians,
    fit_intent_gaussians,
    out_of_scope_confidences,
)
from custom_components.encoder.finetune import FineTunedEncoder
from custom_components.encoder.onnx_encoder import (
    SERVING_THREADS,
    OnnxEncoder,
    export_onnx,
    onnx_available,
)
from custom_components.messages import Errors, Warnings

logger = logging.getLogger(__name__)

METADATA_FILE = "transformer_intent_classifier.json"
WEIGHTS_FILE = "finetuned_weights.npz"
# The whole fine-tuned encoder as one ONNX graph (`inference: onnx-*`).
ONNX_FILE = "encoder.onnx"
# Intent means and tied precision of the distance check (`out_of_scope_distance_quantile`).
DISTANCE_FILE = "out_of_scope_distance.npz"
# Parse-output key of every classified message while the distance check is on.
DISTANCE_KEY = "out_of_scope_distance"
INFERENCE_CHOICES = ("onnx-int8", "onnx-float32", "tensorflow")


@DefaultV1Recipe.register(
    [
        DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER,
        DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR,
        # Also a featurizer: Rasa then runs `process_training_data` of the *trained* node, so
        # components downstream train on the fine-tuned features.
        DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER,
    ],
    is_trainable=True,
)
class TransformerIntentClassifier(EncoderComponent, IntentClassifier, EntityExtractorMixin):
    """Fine-tuned encoder + heads: calibrated intents, entities, answer keys, dense features."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """The component's default config (see the comments for each key)."""
        return {
            **EncoderComponent.get_default_config(),
            # Pieces per message, specials included (intents are short; longer keep the head).
            "max_length": 64,
            # Padded lengths to choose from (max_length is always added).
            "buckets": [16, 32, 64],
            # Top encoder layers fine-tuned (0 = head only; all = full fine-tuning). The frozen
            # lower layers run once per example, so fewer layers train much faster on a CPU.
            "trainable_layers": 4,
            # Passes over the training data (at most, with `patience`) ...
            "epochs": 4,
            # ... raised until there are at least this many optimizer steps: the new head needs
            # a few hundred steps however small the data (0 = exactly `epochs`).
            "min_steps": 600,
            # Stop when held-out accuracy has not improved for this many epochs and keep the
            # best epoch's weights (0 = run every epoch). Needs `validation_fraction` > 0.
            "patience": 0,
            # Peak AdamW learning rate, reached after `warmup_ratio` of the steps, then linear
            # decay to 0.
            "learning_rate": 2e-4,
            # Peak rate of the randomly initialised head (None = `learning_rate`).
            "head_learning_rate": 2e-3,
            "warmup_ratio": 0.1,
            # AdamW decoupled weight decay (not applied to LayerNorm and biases).
            "weight_decay": 0.01,
            # Examples per training step.
            "batch_size": 32,
            # Label smoothing of the cross-entropy (0 = off).
            "label_smoothing": 0.0,
            # Dropout on the pooled sentence vector before the head.
            "dropout": 0.1,
            # Share of each intent's examples held out to fit the softmax temperature and the
            # out-of-scope logit (and report held-out accuracy / ECE); 0 = no calibration
            # (temperature 1, no out-of-scope logit).
            "validation_fraction": 0.1,
            # Out-of-scope logit: the evidence (log-sum-exp of the logits) below which a
            # message keeps at most half its confidence, as this quantile of the held-out
            # in-scope messages' evidence. Higher flags more messages as out of scope;
            # 0 = plain softmax (confidences sum to 1).
            "out_of_scope_quantile": 0.01,
            # Out of scope by distance to the training data: a message farther (Mahalanobis,
            # sentence vectors) from every intent than this quantile of the held-out in-scope
            # examples becomes `out_of_scope_intent`. Higher flags fewer messages (0.98: 2% of
            # real in-scope ones); 0 = off. Needs `validation_fraction` > 0.
            "out_of_scope_distance_quantile": 0.0,
            # The trained intent that far messages become (answered by a rule). Its own
            # examples are left out of the means, covariance and threshold: they are the
            # shop's collection of unrelated requests, not one cluster of in-scope messages.
            "out_of_scope_intent": "out_of_scope",
            # Seeds the split, the shuffling and the head initialisation.
            "seed": 42,
            # Add dense sentence + token features from the fine-tuned encoder (then no separate
            # TransformerFeaturizer is needed in the pipeline).
            "provide_features": True,
            # Intents (and answer keys) listed in the rankings (0 = all).
            "ranking_length": 10,
            # Learn the annotated entities (a tag head over the tokenizer's tokens).
            "entity_recognition": True,
            # Learn the answer keys of retrieval intents (a head in place of a ResponseSelector).
            "response_selection": True,
            # "auto" uses a GPU when TensorFlow sees one; "cpu" / "gpu" force it.
            "device": "auto",
            # What runs the trained encoder at inference. "onnx-int8": the whole encoder is
            # exported after training as one ONNX graph, int8 weights with per-column scales
            # (ONNX Runtime; the TensorFlow model is never loaded to parse); "onnx-float32": the
            # same graph in float32; "tensorflow": the training graph (also used on a GPU,
            # and when onnxruntime is not installed). Training always runs in TensorFlow.
            "inference": "onnx-int8",
        }

    @classmethod
    def config_rules(cls) -> dict[str, Rule]:
        """Value checks, in order (unknown keys are rejected too)."""
        return {
            **super().config_rules(),
            "trainable_layers": int_in(0, 1000),
            "epochs": int_in(0, 10_000),
            "patience": int_in(0, 10_000),
            "min_steps": int_in(0, 10_000_000),
            "batch_size": int_in(1, 100_000),
            "ranking_length": int_in(0, 100_000),
            "seed": int_in(-(2**31), 2**31 - 1),
            "warmup_ratio": number_in(0.0, 1.0),
            "validation_fraction": number_in(0.0, 0.5),
            "out_of_scope_quantile": number_in(0.0, 1.0),
            "out_of_scope_distance_quantile": number_in(0.0, 1.0),
            "out_of_scope_intent": (
                lambda v: isinstance(v, str) and bool(v),
                "expected the name of a trained intent",
            ),
            "label_smoothing": number_in(0.0, 1.0),
            "dropout": number_in(0.0, 1.0),
            "weight_decay": number_in(0.0, 1.0),
            "learning_rate": number_in(0.0, 1.0),
            # None = `learning_rate`.
            "head_learning_rate": (
                lambda v: v is None or number_in(0.0, 1.0)[0](v),
                "expected null or a number in [0.0, 1.0)",
            ),
            "provide_features": (lambda v: isinstance(v, bool), "expected true or false"),
            "entity_recognition": (lambda v: isinstance(v, bool), "expected true or false"),
            "inference": one_of(INFERENCE_CHOICES),
            "response_selection": (lambda v: isinstance(v, bool), "expected true or false"),
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        manifest: dict[str, Any],
        labels: list[str] | None = None,
        weights: dict[str, np.ndarray] | None = None,
        temperature: float = 1.0,
        background_logit: float | None = None,
        entity_tags: list[str] | None = None,
        response_keys: list[str] | None = None,
        responses: dict[str, list[dict[str, Any]]] | None = None,
        response_temperature: float = 1.0,
        onnx_model: bytes | None = None,
        gaussians: IntentGaussians | None = None,
    ) -> None:
        """Use `create` / `load`; they verify the encoder assets before building this."""
        super().__init__(config, model_storage, resource, execution_context, manifest)
        # The exported graph read from the model storage (None: run the encoder in TensorFlow).
        self._onnx_model = onnx_model if self._onnx_wanted() else None
        self.labels: list[str] = list(labels or [])
        # "O", then "B-<type>" / "I-<type>" per entity type (empty = no tag head).
        self.entity_tags: list[str] = list(entity_tags or [])
        # Answer keys of retrieval intents ("faq/returns"), and their responses by utter name.
        self.response_keys: list[str] = list(response_keys or [])
        self.responses: dict[str, list[dict[str, Any]]] = dict(responses or {})
        self.response_temperature = float(response_temperature)
        self.temperature = float(temperature)
        # The constant out-of-scope logit (None = plain softmax); see the module docstring.
        self.background_logit = None if background_logit is None else float(background_logit)
        # The distance check's intent means, precision and threshold (None = off).
        self.gaussians = gaussians
        self.metrics: dict[str, Any] = {}
        self.encoder = self._new_encoder()
        if weights is not None:
            self.encoder.set_weights(weights)

    def _onnx_wanted(self) -> bool:
        """ONNX Runtime is asked for, installed, and the encoder runs on the CPU."""
        if not self._config["inference"].startswith("onnx-"):
            return False
        if self.runtime.device != "/CPU:0" or not onnx_available():
            logger.warning(Warnings.W002.format(inference=self._config["inference"]))
            return False
        return True

    def _new_encoder(self) -> FineTunedEncoder | OnnxEncoder:
        if self._onnx_model is not None:
            return OnnxEncoder(self._onnx_model, self.runtime, threads=SERVING_THREADS)
        return FineTunedEncoder(
            self.runtime,
            trainable_layers=self._config["trainable_layers"],
            num_labels=len(self.labels),
            dropout=self._config["dropout"],
            seed=self._config["seed"],
            num_tags=len(self.entity_tags),
            num_responses=len(self.response_keys),
        )

    # ------------------------------------------------------------------ training

    def train(self, training_data: TrainingData) -> Resource:
        """Fine-tunes on the intent examples, calibrates, and persists the trained part."""
        examples = [m for m in training_data.intent_examples if m.get(TEXT) and m.get(INTENT)]
        self.labels = sorted({m.get(INTENT) for m in examples})
        cfg = self._config
        self._onnx_model = None  # training runs in TensorFlow; the result is exported after
        self.gaussians = None
        self.entity_tags = entity_tag_names(examples) if cfg["entity_recognition"] else []
        self.response_keys = (
            sorted({key for m in examples if (key := answer_key(m))})
            if cfg["response_selection"]
            else []
        )
        self.responses = {
            UTTER_PREFIX + key: training_data.responses.get(UTTER_PREFIX + key, [])
            for key in self.response_keys
        }
        self.encoder = self._new_encoder()
        if len(self.labels) < 2:
            logger.warning(
                Warnings.W001.format(component=self.__class__.__name__, count=len(self.labels))
            )
            self.persist()
            return self._resource

        index = {label: i for i, label in enumerate(self.labels)}
        texts = [self.prefix + m.get(TEXT) for m in examples]
        targets = np.array([index[m.get(INTENT)] for m in examples], dtype=np.int32)
        fit_rows, held_rows = stratified_split(
            targets, self._config["validation_fraction"], self._config["seed"]
        )
        heads: dict[str, list] = {}
        if self.entity_tags:
            spans = [self._word_spans(m) for m in examples]
            tags = [word_tags(m, self.entity_tags) for m in examples]
            heads.update(word_spans=[spans[i] for i in fit_rows], tags=[tags[i] for i in fit_rows])
        key_index = {key: i for i, key in enumerate(self.response_keys)}
        response_targets = np.array(
            [key_index.get(answer_key(m) or "", -1) for m in examples], dtype=np.int32
        )
        if self.response_keys:
            heads["responses"] = response_targets[fit_rows].tolist()
        steps_per_epoch = -(-len(fit_rows) // cfg["batch_size"])
        epochs = max(cfg["epochs"], -(-cfg["min_steps"] // steps_per_epoch))
        started = time.perf_counter()
        history = self.encoder.fit(
            [texts[i] for i in fit_rows],
            targets[fit_rows],
            val_texts=[texts[i] for i in held_rows],
            val_labels=targets[held_rows],
            epochs=epochs,
            learning_rate=cfg["learning_rate"],
            head_learning_rate=cfg["head_learning_rate"],
            batch_size=cfg["batch_size"],
            warmup_ratio=cfg["warmup_ratio"],
            weight_decay=cfg["weight_decay"],
            label_smoothing=cfg["label_smoothing"],
            max_length=cfg["max_length"],
            buckets=cfg["buckets"],
            seed=cfg["seed"],
            patience=cfg["patience"],
            **heads,
        )
        self.temperature, self.metrics = 1.0, {"epochs": history.epochs}
        self.background_logit = None
        self.response_temperature = 1.0
        if len(held_rows):
            held_predictions = self._predict([texts[i] for i in held_rows])
            self._calibrate_responses(held_predictions, response_targets[held_rows])
            logits = np.stack([p.logits for p in held_predictions]).astype(np.float64)
            held = targets[held_rows]
            self.temperature = fit_temperature(logits, held)
            self.background_logit = background_logit(
                logits / self.temperature, cfg["out_of_scope_quantile"]
            )
            self.metrics.update(
                held_out_examples=len(held_rows),
                held_out_accuracy=float((logits.argmax(axis=1) == held).mean()),
                ece_before=expected_calibration_error(softmax(logits), held),
                ece_after=expected_calibration_error(softmax(logits / self.temperature), held),
                background_logit=self.background_logit,
                held_out_confidence_p05=float(
                    np.quantile(self.confidences(logits).max(axis=1), 0.05)
                ),
            )
        self.metrics["train_seconds"] = time.perf_counter() - started
        if cfg["out_of_scope_distance_quantile"] > 0:
            self._fit_distance(texts, targets, fit_rows, held_rows)
        logger.info("%s trained: %s", self.__class__.__name__, self.metrics)
        self.persist()
        return self._resource

    def _fit_distance(
        self, texts: list[str], targets: np.ndarray, fit_rows: np.ndarray, held_rows: np.ndarray
    ) -> None:
        """Fits the distance check on the vectors of the encoder that will parse.

        The means and covariance come from the training rows, the threshold from the held-out
        rows; neither uses `out_of_scope_intent`'s examples. They are sentence vectors of the
        exported graph when the model will parse with it: int8 weights move a vector a little
        (cosine >= 0.995 to float32), and the precision matrix magnifies whatever moves along
        the directions the training data barely spans. The int8 graph reads each example alone,
        as a served message is: its activations are quantized with one scale per padded batch,
        so a vector also moves with its batch-mates (on the shop's model, batches of 64 against
        one at a time: median distance change 0.7, at most 4.7, threshold 36; 7 of 200
        decisions changed).

        Raises:
            InvalidConfigException: `out_of_scope_intent` is not one of the trained intents.
        """
        cfg = self._config
        intent, quantile = cfg["out_of_scope_intent"], cfg["out_of_scope_distance_quantile"]
        if intent not in self.labels:
            raise InvalidConfigException(Errors.E009.format(intent=intent, labels=self.labels))
        out_of_scope = self.labels.index(intent)
        fit = fit_rows[targets[fit_rows] != out_of_scope]
        held = held_rows[targets[held_rows] != out_of_scope]
        if len(held) == 0:
            logger.warning(Warnings.W003.format(fraction=cfg["validation_fraction"]))
            return
        started = time.perf_counter()
        self._export_for_inference()
        encoder = self._inference_encoder()
        held_oos = held_rows[targets[held_rows] == out_of_scope]
        rows = np.concatenate([fit, held, held_oos])
        alone = isinstance(encoder, OnnxEncoder) and encoder.quantized
        predictions = self._predict([texts[i] for i in rows], encoder, 1 if alone else 64)
        vectors = np.stack([p.sentence for p in predictions])
        fit_vectors = vectors[: len(fit)]
        held_vectors = vectors[len(fit) : len(fit) + len(held)]
        self.gaussians = fit_intent_gaussians(
            fit_vectors, [self.labels[t] for t in targets[fit]], held_vectors, quantile
        )
        oos_distances, _ = self.gaussians.nearest(vectors[len(fit) + len(held) :])
        self.metrics["out_of_scope_distance"] = {
            "threshold": self.gaussians.threshold,
            "quantile": quantile,
            "fitted_on": "onnx" if isinstance(encoder, OnnxEncoder) else "tensorflow",
            "intents": len(self.gaussians.intents),
            "fit_examples": len(fit),
            "held_out_in_scope": len(held),
            # How many of the held-out examples of the out-of-scope intent the check flags.
            "held_out_out_of_scope": len(held_oos),
            "held_out_out_of_scope_flagged": int((oos_distances > self.gaussians.threshold).sum()),
            "seconds": round(time.perf_counter() - started, 2),
        }

    def _calibrate_responses(self, predictions: list, targets: np.ndarray) -> None:
        """Fits the answer-key temperature on the held-out examples that have a key."""
        rows = np.flatnonzero(targets >= 0)
        if not self.response_keys or len(rows) == 0:
            return
        logits = np.stack([self.encoder.response_logits(predictions[i]) for i in rows]).astype(
            np.float64
        )
        self.response_temperature = fit_temperature(logits, targets[rows])
        self.metrics.update(
            held_out_answer_keys=len(rows),
            held_out_answer_key_accuracy=float((logits.argmax(axis=1) == targets[rows]).mean()),
            response_temperature=self.response_temperature,
        )

    def _word_spans(self, message: Message) -> list[tuple[int, int]]:
        """The message's tokens as character spans of the prefixed text the encoder reads."""
        shift = len(self.prefix)
        return [(t.start + shift, t.end + shift) for t in message.get(TOKENS_NAMES[TEXT]) or []]

    def _export_for_inference(self) -> None:
        """Exports the trained encoder as the graph that will parse (`inference: onnx-*`), once.

        The bytes are kept (the encoder in hand stays the TensorFlow one) for the distance fit
        and for `persist`.
        """
        if (
            self._onnx_model is not None
            or not self.labels
            or not isinstance(self.encoder, FineTunedEncoder)
            or not self._onnx_wanted()
        ):
            return
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / ONNX_FILE
            facts = export_onnx(
                self.encoder, path, quantize=self._config["inference"] == "onnx-int8"
            )
            self._onnx_model = path.read_bytes()
        self.metrics["onnx_export"] = {**facts, "path": ONNX_FILE}

    def _inference_encoder(self) -> FineTunedEncoder | OnnxEncoder:
        """The encoder a loaded model parses with: the exported graph where there is one."""
        if self._onnx_model is None or isinstance(self.encoder, OnnxEncoder):
            return self.encoder
        encoder = self._new_encoder()  # the exported graph, as a loaded model builds it
        encoder.set_weights(self.encoder.get_weights())
        return encoder

    def persist(self) -> None:
        """Writes the fine-tuned weights, the exported graph, labels, calibration and assets."""
        self._export_for_inference()
        with self._model_storage.write_to(self._resource) as directory:
            np.savez(directory / WEIGHTS_FILE, **self.encoder.get_weights())
            if self._onnx_model is not None:
                (directory / ONNX_FILE).write_bytes(self._onnx_model)
            distance = None
            if self.gaussians is not None:
                np.savez(
                    directory / DISTANCE_FILE,
                    means=self.gaussians.means,
                    precision=self.gaussians.precision,
                )
                distance = {
                    "intents": list(self.gaussians.intents),
                    "threshold": self.gaussians.threshold,
                    "quantile": self._config["out_of_scope_distance_quantile"],
                    "out_of_scope_intent": self._config["out_of_scope_intent"],
                }
            payload = {
                **self._asset_record(),
                "prefix": self.prefix,
                "labels": self.labels,
                "temperature": self.temperature,
                "background_logit": self.background_logit,
                "out_of_scope_distance": distance,
                "entity_tags": self.entity_tags,
                "response_keys": self.response_keys,
                "responses": self.responses,
                "response_temperature": self.response_temperature,
                "trainable_layers": self.encoder.trainable_layers,
                "num_layers": self.encoder.num_layers,
                "hidden_size": self.encoder.hidden_size,
                "metrics": self.metrics,
                "config": self._stored_config(),
            }
            (directory / METADATA_FILE).write_text(json.dumps(payload, indent=2), "utf-8")

    @classmethod
    def _read_stored(cls, directory: Path) -> dict[str, Any]:
        meta = read_json(directory / METADATA_FILE)
        with np.load(directory / WEIGHTS_FILE) as npz:
            meta["weights"] = {name: npz[name] for name in npz.files}
        onnx_path = directory / ONNX_FILE
        # Read now: the storage directory may be gone when the component is built.
        meta["onnx_model"] = onnx_path.read_bytes() if onnx_path.is_file() else None
        distance = meta.get("out_of_scope_distance")
        meta["gaussians"] = None
        if distance is not None:
            with np.load(directory / DISTANCE_FILE) as npz:
                meta["gaussians"] = IntentGaussians(
                    tuple(distance["intents"]),
                    npz["means"],
                    npz["precision"],
                    float(distance["threshold"]),
                )
        return meta

    @classmethod
    def _stored_state(
        cls, config: dict[str, Any], stored: dict[str, Any], execution_context: ExecutionContext
    ) -> State:
        """What was trained: labels, weights, calibration (the assets checked by the base)."""
        config, state = super()._stored_state(config, stored, execution_context)
        # The trained layer count and distance check win over a config edited after training.
        distance = stored.get("out_of_scope_distance")
        config = {
            **config,
            "trainable_layers": int(stored["trainable_layers"]),
            "out_of_scope_distance_quantile": float(distance["quantile"]) if distance else 0.0,
        }
        if distance:
            config["out_of_scope_intent"] = distance["out_of_scope_intent"]
        state.update(
            labels=stored["labels"],
            weights=stored["weights"],
            temperature=stored["temperature"],
            background_logit=stored.get("background_logit"),
            entity_tags=stored.get("entity_tags", []),
            response_keys=stored.get("response_keys", []),
            responses=stored.get("responses", {}),
            response_temperature=stored.get("response_temperature", 1.0),
            onnx_model=stored.get("onnx_model"),
            gaussians=stored.get("gaussians"),
        )
        return config, state

    # ------------------------------------------------------------------ inference

    def _predict(
        self,
        texts: list[str],
        encoder: FineTunedEncoder | OnnxEncoder | None = None,
        batch_size: int = 64,
    ):
        cfg = self._config
        return (encoder or self.encoder).predict(
            texts, cfg["max_length"], batch_size, cfg["buckets"]
        )

    def _process_attribute(
        self, messages: Iterable[Message], attribute: str, classify: bool
    ) -> None:
        """Sets `intent` / `intent_ranking` where `classify`, and adds features if enabled."""
        features = self._config["provide_features"]
        # A message whose intent is already a name (story / e2e lookups) keeps it.
        classify = classify and len(self.labels) > 0
        todo = [
            m
            for m in messages
            if m.get(attribute)
            and (
                (features and m.get(TOKENS_NAMES[attribute]))
                or (classify and not isinstance(m.get(INTENT), str))
            )
        ]
        if not todo:
            return
        predictions = self._predict(self._prefixed(todo, attribute))
        for message, prediction in zip(todo, predictions, strict=True):
            if classify and not isinstance(message.get(INTENT), str):
                self._set_intent(message, prediction)
                if self.entity_tags and message.get(TOKENS_NAMES[attribute]):
                    self._set_entities(message, prediction)
                if self.response_keys:
                    self._set_answer_key(message, prediction)
            if features and message.get(TOKENS_NAMES[attribute]):
                self._add_pooled_features(message, attribute, prediction)

    def confidences(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated intent confidences for `[..., num_labels]` logits (see the docstring)."""
        return calibrated_confidences(logits, self.temperature, self.background_logit)

    def _set_intent(self, message: Message, prediction) -> None:
        probs = self.confidences(prediction.logits)
        if self.gaussians is not None:
            probs = self._check_distance(message, prediction.sentence, probs)
        order = np.argsort(-probs, kind="stable")
        limit = self._config["ranking_length"] or len(order)
        ranking = [
            {INTENT_NAME_KEY: self.labels[i], PREDICTED_CONFIDENCE_KEY: float(probs[i])}
            for i in order[:limit]
        ]
        message.set(INTENT, ranking[0], add_to_output=True)
        message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)

    def _check_distance(self, message: Message, sentence: np.ndarray, probs: np.ndarray):
        """Reports the message's distance; far from every intent, it becomes out of scope.

        The out-of-scope intent rather than low confidences: the shop answers it by a rule
        ("that's outside what I can help with"), whereas `nlu_fallback` would ask whether the
        customer meant the (confidently wrong) shop intent.
        """
        gaussians = self.gaussians
        distance, nearest = gaussians.nearest(sentence)
        message.set(
            DISTANCE_KEY,
            {
                "distance": float(distance[0]),
                "threshold": gaussians.threshold,
                "nearest_intent": gaussians.intents[nearest[0]],
            },
            add_to_output=True,
        )
        if distance[0] <= gaussians.threshold:
            return probs
        return out_of_scope_confidences(
            probs,
            self.labels.index(self._config["out_of_scope_intent"]),
            self._config["out_of_scope_distance_quantile"],
        )

    def _set_entities(self, message: Message, prediction) -> None:
        tokens = message.get(TOKENS_NAMES[TEXT])
        probs = softmax(self.encoder.tag_logits(prediction, self._word_spans(message)))
        tags = [self.entity_tags[i] for i in probs.argmax(axis=1)]
        text = message.get(TEXT)
        entities = []
        for kind, first, last, confidence in decode_bio(tags, probs.max(axis=1)):
            start, end = tokens[first].start, tokens[last].end
            entities.append(entity_at(kind, text[start:end], start, end, confidence, self.name))
        if entities:
            add_entities(message, entities)

    def _set_answer_key(self, message: Message, prediction) -> None:
        """Sets `response_selector` as Rasa's ResponseSelector does (key `default`)."""
        probs = softmax(self.encoder.response_logits(prediction) / self.response_temperature)
        order = np.argsort(-probs, kind="stable")
        limit = self._config["ranking_length"] or len(order)
        ranking = [
            {PREDICTED_CONFIDENCE_KEY: float(probs[i]), INTENT_RESPONSE_KEY: self.response_keys[i]}
            for i in order[:limit]
        ]
        top = self.response_keys[order[0]]
        selectors = dict(message.get(RESPONSE_SELECTOR_PROPERTY_NAME) or {})
        selectors[RESPONSE_SELECTOR_RETRIEVAL_INTENTS] = sorted(
            {key.split(RESPONSE_IDENTIFIER_DELIMITER)[0] for key in self.response_keys}
        )
        selectors[RESPONSE_SELECTOR_DEFAULT_INTENT] = {
            RESPONSE_SELECTOR_PREDICTION_KEY: {
                RESPONSE_SELECTOR_RESPONSES_KEY: self.responses.get(UTTER_PREFIX + top, []),
                PREDICTED_CONFIDENCE_KEY: float(probs[order[0]]),
                INTENT_RESPONSE_KEY: top,
                RESPONSE_SELECTOR_UTTER_ACTION_KEY: UTTER_PREFIX + top,
            },
            RESPONSE_SELECTOR_RANKING_KEY: ranking,
        }
        message.set(RESPONSE_SELECTOR_PROPERTY_NAME, selectors, add_to_output=True)


def stratified_split(
    targets: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (fit, held out): `fraction` of each label held out, at least one kept.

    Labels with fewer than `1 / fraction` examples contribute nothing to the held-out part,
    so rare intents keep all their examples for training.
    """
    rng = np.random.default_rng(seed)
    fit, held = [], []
    for label in np.unique(targets):
        rows = rng.permutation(np.flatnonzero(targets == label))
        n_held = int(len(rows) * fraction) if len(rows) > 1 else 0
        held.extend(rows[:n_held])
        fit.extend(rows[n_held:])
    return np.sort(np.asarray(fit, dtype=np.int64)), np.sort(np.asarray(held, dtype=np.int64))


def answer_key(message: Message) -> str | None:
    """A retrieval intent example's answer key (`faq/returns`), else None."""
    key = message.get(INTENT_RESPONSE_KEY)
    return key if isinstance(key, str) and RESPONSE_IDENTIFIER_DELIMITER in key else None


def entity_tag_names(examples: Iterable[Message]) -> list[str]:
    """Tag names: `O`, then `B-` and `I-` of each annotated entity type (none = no types)."""
    kinds = sorted({e[ENTITY_ATTRIBUTE_TYPE] for m in examples for e in m.get(ENTITIES) or []})
    if not kinds:
        return []
    return ["O", *(f"{prefix}-{kind}" for kind in kinds for prefix in ("B", "I"))]


def word_tags(message: Message, tag_names: list[str]) -> list[int]:
    """The BIO tag id of each of the message's tokens, from its annotated entities.

    A token inside (or overlapping) an entity's characters is `I-<type>`, the entity's first
    such token `B-<type>`; every other token is `O`.
    """
    index = {name: i for i, name in enumerate(tag_names)}
    tokens = message.get(TOKENS_NAMES[TEXT]) or []
    tags = [index["O"]] * len(tokens)
    for entity in message.get(ENTITIES) or []:
        start, end = entity[ENTITY_ATTRIBUTE_START], entity[ENTITY_ATTRIBUTE_END]
        inside = [i for i, t in enumerate(tokens) if t.start < end and t.end > start]
        for position, i in enumerate(inside):
            prefix = "B" if position == 0 else "I"
            tags[i] = index[f"{prefix}-{entity[ENTITY_ATTRIBUTE_TYPE]}"]
    return tags


def decode_bio(tags: list[str], confidences: np.ndarray) -> list[tuple[str, int, int, float]]:
    """Entities `(type, first token, last token, confidence)` from per-token BIO tags.

    An `I-` tag that continues no entity of its type starts one (the head's small slips
    should not lose an entity). The confidence is the lowest of the entity's tokens.
    """
    found: list[tuple[str, int, int, float]] = []
    current: list[Any] | None = None
    for i, tag in enumerate(tags):
        prefix, _, kind = tag.partition("-")
        if current is not None and prefix == "I" and kind == current[0]:
            current[2], current[3] = i, min(current[3], float(confidences[i]))
            continue
        if current is not None:
            found.append(tuple(current))  # type: ignore[arg-type]
            current = None
        if prefix in ("B", "I") and kind:
            current = [kind, i, i, float(confidences[i])]
    if current is not None:
        found.append(tuple(current))  # type: ignore[arg-type]
    return found
