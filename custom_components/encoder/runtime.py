"""One loaded encoder per model folder per process: tokenizer, TFBertModel, compiled forward.

`get_runtime(folder)` returns the shared `EncoderRuntime`, so the featurizer and any other
component (an intent classifier, a benchmark) reuse the same weights and compiled graph.
The tokenizer is loaded at once, the `TFBertModel` (~1.5 GB resident for multilingual-e5-small)
only on first use of `.model`, `.fast` or `encode`: a process that runs the encoder through
ONNX Runtime (`onnx_encoder.OnnxEncoder`) only needs the tokenizer and never pays for it.
`EncoderRuntime.encode(texts)` tokenizes once with the fast tokenizer, sorts texts by length,
pads each batch to the smallest fitting length bucket and runs a `tf.function` whose input
signature is `[None, None]`, so it is traced once and never again, whatever the batch. The
function runs `FastBert` (see `fast_bert.py`): the same weights as the loaded `TFBertModel`,
matrix products in the runtime's precision, padding skipped outside attention.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from custom_components.encoder.device import (
    configure_tensorflow,
    precision_policy,
    resolve_device,
    set_offline_env,
)
from custom_components.encoder.fast_bert import FastBert
from custom_components.errors import EncoderAssetsMissing, Errors

logger = logging.getLogger(__name__)

# The matrix dtype FastBert uses for each precision policy of `precision_policy`.
MATMUL_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


# Texts are sorted by length before batching, so fine buckets waste little padding; each
# bucket is only a distinct input shape, the compiled graph is the same for all of them.
DEFAULT_BUCKETS = (8, 16, 24, 32, 48, 64, 96, 128)


@dataclasses.dataclass
class EncodedText:
    """Encoder output for one text.

    Attributes:
        piece_offsets: `[n_pieces, 2]` character spans of the pieces in the input text, leading
            whitespace trimmed; special tokens are `(0, 0)`.
        hidden: `[n_pieces, dim]` hidden states of the selected layer.
        sentence: `[dim]` mean of `hidden` over all pieces (E5's pooling, specials included).
        truncated: whether the text was cut at `max_length` pieces.
    """

    piece_offsets: np.ndarray
    hidden: np.ndarray
    sentence: np.ndarray
    truncated: bool


def pick_bucket(length: int, buckets: Sequence[int]) -> int:
    """Smallest bucket >= `length` (the largest bucket if none fits)."""
    for bucket in buckets:
        if length <= bucket:
            return bucket
    return buckets[-1]


def normalise_buckets(buckets: Sequence[int] | None, max_length: int) -> tuple[int, ...]:
    """Sorted buckets capped at `max_length`, always ending with `max_length` itself."""
    kept = sorted({int(b) for b in (buckets or DEFAULT_BUCKETS) if 0 < int(b) < max_length})
    return (*kept, max_length)


class EncoderRuntime:
    """A Hugging Face BERT folder loaded for fast batched and single-text inference."""

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "auto",
        mixed_precision: bool = False,
        model=None,
    ) -> None:
        """Loads tokenizer and weights from a local folder (never the network).

        Args:
            model_dir: folder with config.json, tokenizer.json and model weights.
            device: "auto" (GPU if TensorFlow sees one), "cpu" or "gpu".
            mixed_precision: run the encoder in half precision: float16 on a GPU, bfloat16 on a
                CPU with native bfloat16 instructions, float32 elsewhere
                (:func:`custom_components.encoder.device.precision_policy`).
            model: the folder's `TFBertModel`, already loaded by another runtime on the same
                device (its weights are float32 whatever the precision), or the `ModelSlot`
                another runtime loads it into; None = load it here on first use.
        """
        set_offline_env()
        self.model_dir = Path(model_dir).resolve()
        for name in ("config.json", "tokenizer.json"):
            if not (self.model_dir / name).is_file():
                raise EncoderAssetsMissing(
                    Errors.E001.format(model=self.model_dir.name, path=self.model_dir)
                )
        config = json.loads((self.model_dir / "config.json").read_text(encoding="utf-8"))
        self.hidden_size = int(config["hidden_size"])
        self.num_layers = int(config["num_hidden_layers"])
        self.max_positions = int(config.get("max_position_embeddings", 512))
        self.device = resolve_device(device)
        self.precision = precision_policy(self.device, bool(mixed_precision))
        self.mixed_precision = self.precision != "float32"
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()  # we pad per length bucket ourselves
        self._tokenizer_lock = threading.Lock()
        self._tokenizers: dict[int, _TruncatingTokenizer] = {}
        self.pad_id = self._pad_id(config)
        if isinstance(model, ModelSlot):
            self._model_slot = model
        else:
            self._model_slot = ModelSlot(self._load_model, loaded=model)
        self._fast: FastBert | None = None
        self._forward_fns: dict[int, object] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ loading

    def _pad_id(self, config: dict) -> int:
        for token in ("<pad>", "[PAD]"):
            token_id = self.tokenizer.token_to_id(token)
            if token_id is not None:
                return int(token_id)
        return int(config.get("pad_token_id") or 0)

    def tokenizer_for(self, max_length: int) -> _TruncatingTokenizer:
        """The fast tokenizer truncating to `max_length` pieces.

        All lengths share one backend (a 250k-piece Unigram vocabulary costs ~100 MB per copy);
        the view sets the truncation length under a lock before each batch.
        """
        if max_length not in self._tokenizers:
            self._tokenizers[max_length] = _TruncatingTokenizer(
                self.tokenizer, max_length, self._tokenizer_lock
            )
        return self._tokenizers[max_length]

    @property
    def model(self):
        """The folder's `TFBertModel` (float32, frozen), loaded on first use."""
        return self._model_slot.get()

    @property
    def model_loaded(self) -> bool:
        """Whether the `TFBertModel` is in memory (False until `.model`, `.fast` or `encode`)."""
        return self._model_slot.loaded

    def _load_model(self):
        """Builds TFBertModel from the folder (safetensors read without torch), in float32.

        The model keeps float32 weights whatever the precision: `FastBert` converts its own
        copy of the matrices, and fine-tuning (`FineTunedEncoder`) trains from these.
        """
        import tensorflow as tf
        import transformers
        from transformers import TFBertModel

        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()  # the unused-pooler notes are expected
        policy = tf.keras.mixed_precision.global_policy()
        try:
            # Layers read the global policy when built (DIET may have set another one).
            tf.keras.mixed_precision.set_global_policy("float32")
            with tf.device(self.device):
                model = TFBertModel.from_pretrained(str(self.model_dir), local_files_only=True)
        finally:
            tf.keras.mixed_precision.set_global_policy(policy)
            transformers.logging.set_verbosity(verbosity)
        model.trainable = False
        return model

    @property
    def fast(self) -> FastBert:
        """The inference-only forward pass over this model's weights (built on first use)."""
        import tensorflow as tf

        if self._fast is None:
            with tf.device(self.device):
                self._fast = FastBert(self.model, matmul_dtype=MATMUL_DTYPES[self.precision])
        return self._fast

    def layer_count(self, layer: int) -> int:
        """Encoder layers to run for HF's `hidden_states[layer]` (0 = embeddings, -1 = last).

        Raises:
            ValueError: the layer does not exist in this encoder.
        """
        count = layer if layer >= 0 else self.num_layers + 1 + layer
        if not 0 <= count <= self.num_layers:
            raise ValueError(
                f"layer={layer}: this encoder has hidden states 0..{self.num_layers} "
                f"(or -1..-{self.num_layers + 1})"
            )
        return count

    def forward_fn(self, layer: int = -1):
        """The compiled forward pass returning (hidden states of `layer`, masked mean)."""
        import tensorflow as tf

        if layer not in self._forward_fns:
            fast, count = self.fast, self.layer_count(layer)
            spec = tf.TensorSpec([None, None], tf.int32)

            @tf.function(input_signature=[spec, spec])
            def forward(input_ids, attention_mask):
                hidden = fast(input_ids, attention_mask, layers=count)
                mask = tf.cast(attention_mask, tf.float32)[:, :, None]
                sentence = tf.reduce_sum(hidden * mask, axis=1) / tf.maximum(
                    tf.reduce_sum(mask, axis=1), 1.0
                )
                return hidden, sentence

            self._forward_fns[layer] = forward
        return self._forward_fns[layer]

    # ------------------------------------------------------------------ inference

    def encode(
        self,
        texts: Sequence[str],
        max_length: int = 128,
        batch_size: int = 64,
        buckets: Sequence[int] | None = DEFAULT_BUCKETS,
        layer: int = -1,
    ) -> list[EncodedText]:
        """Encodes texts in length-sorted, bucket-padded batches.

        Args:
            texts: input strings (any prefix such as E5's "query: " already applied).
            max_length: pieces per text, specials included; longer texts keep their head.
            batch_size: texts per forward pass.
            buckets: padded lengths to choose from; `max_length` is always added.
            layer: which hidden layer to return (-1 = last).

        Returns:
            One `EncodedText` per input, in input order.
        """
        import tensorflow as tf

        if not texts:
            return []
        max_length = max(2, min(int(max_length), self.max_positions))
        bucket_list = normalise_buckets(buckets, max_length)
        tokenizer = self.tokenizer_for(max_length)
        encodings = tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
        order = np.argsort(lengths, kind="stable")
        forward = self.forward_fn(layer)
        results: list[EncodedText | None] = [None] * len(texts)

        for start in range(0, len(order), max(1, int(batch_size))):
            batch = order[start : start + batch_size]
            width = pick_bucket(int(lengths[batch].max()), bucket_list)
            ids = np.full((len(batch), width), self.pad_id, dtype=np.int32)
            mask = np.zeros((len(batch), width), dtype=np.int32)
            for row, index in enumerate(batch):
                n = lengths[index]
                ids[row, :n] = encodings[index].ids
                mask[row, :n] = 1
            with self._lock, tf.device(self.device):
                hidden, sentence = forward(tf.constant(ids), tf.constant(mask))
            hidden, sentence = hidden.numpy(), sentence.numpy()
            for row, index in enumerate(batch):
                n = int(lengths[index])
                encoding = encodings[index]
                results[index] = EncodedText(
                    piece_offsets=trim_offsets(texts[index], encoding.offsets),
                    hidden=hidden[row, :n],
                    sentence=sentence[row],
                    truncated=bool(encoding.overflowing),
                )
        return results  # type: ignore[return-value]

    def warm_up(
        self,
        max_length: int = 128,
        buckets: Sequence[int] | None = DEFAULT_BUCKETS,
        layer: int = -1,
    ) -> None:
        """Runs one dummy input per bucket so the first real message pays no set-up cost."""
        import tensorflow as tf

        max_length = max(2, min(int(max_length), self.max_positions))
        forward = self.forward_fn(layer)
        for bucket in normalise_buckets(buckets, max_length):
            ids = tf.fill([1, bucket], self.pad_id)
            with self._lock, tf.device(self.device):
                forward(ids, tf.ones_like(ids))


class ModelSlot:
    """A `TFBertModel` loaded on first `get()`, shared by the runtimes of one folder and device."""

    def __init__(self, load, loaded=None) -> None:
        self._load, self._model, self._lock = load, loaded, threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model


class _TruncatingTokenizer:
    """A view of the shared fast tokenizer that truncates to one `max_length`."""

    def __init__(self, backend, max_length: int, lock: threading.Lock) -> None:
        self._backend, self.max_length, self._lock = backend, max_length, lock

    def encode_batch(self, texts: list[str]) -> list:
        """`tokenizers.Tokenizer.encode_batch` with this view's truncation length."""
        with self._lock:
            if (self._backend.truncation or {}).get("max_length") != self.max_length:
                self._backend.enable_truncation(max_length=self.max_length)
            return self._backend.encode_batch(texts)

    def __getattr__(self, name: str):
        return getattr(self._backend, name)


def trim_offsets(text: str, offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    """Drops leading whitespace from piece spans (SentencePiece's `▁` covers the space).

    Otherwise a piece like `▁world` would overlap the token before it when tokens are
    separated by a space that the Rasa tokenizer left out of both tokens' spans.
    """
    spans = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    for row in spans:
        start, end = int(row[0]), int(row[1])
        while start < end and text[start].isspace():
            start += 1
        row[0] = start
    return spans


_RUNTIMES: dict[tuple[str, str, bool], EncoderRuntime] = {}
_RUNTIMES_LOCK = threading.Lock()


def get_runtime(
    model_dir: str | Path, device: str = "auto", mixed_precision: bool = False
) -> EncoderRuntime:
    """The process-wide `EncoderRuntime` for a folder (loaded on first use).

    Components call this instead of constructing `EncoderRuntime`, so one Rasa model with a
    featurizer and a classifier on the same encoder holds its weights in memory once: a
    runtime in another precision on the same folder and device shares its model (loaded once,
    by whichever runtime needs it first).
    """
    configure_tensorflow()
    folder = str(Path(model_dir).resolve())
    # Keyed by the device TensorFlow will use, so "auto" and "cpu" on a machine without a GPU
    # share one runtime instead of loading the model twice.
    placed = resolve_device(device)
    key = (folder, placed, bool(mixed_precision))
    with _RUNTIMES_LOCK:
        if key not in _RUNTIMES:
            slot = next(
                (r._model_slot for (f, d, _), r in _RUNTIMES.items() if (f, d) == (folder, placed)),
                None,
            )
            _RUNTIMES[key] = EncoderRuntime(
                model_dir, device=device, mixed_precision=mixed_precision, model=slot
            )
        return _RUNTIMES[key]


def clear_runtimes() -> None:
    """Forgets every cached runtime (tests; freeing memory after a benchmark)."""
    with _RUNTIMES_LOCK:
        _RUNTIMES.clear()
