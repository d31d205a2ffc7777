"""Fine-tune the top layers of a shared encoder with a classification head (TensorFlow).

`FineTunedEncoder` runs the frozen part of an `EncoderRuntime`'s encoder (embeddings and the
lower `num_layers - trainable_layers` layers) through the runtime's inference-only `FastBert`,
shared with the featurizer, and owns trainable copies of the top layers plus linear heads, all
trained together in one run (multi-task):

- the intent head on the mean-pooled sentence vector (always);
- a tag head (`num_tags` > 0) on each *word* of the pipeline tokenizer: the pieces that
  overlap a word are averaged (`alignment.overlap_matrix`), so the head tags the same tokens
  Rasa's entities are aligned to, in any script. A few word-shape features (`word_shapes`:
  digits, Latin capitals, Han, punctuation, length) are added to the averaged vector: one
  sentencepiece piece often covers two words ("M码", "2件"), which would otherwise look alike;
- a response head (`num_responses` > 0) on the sentence vector, trained only on the examples
  that have a response label (a retrieval intent's answer key).

Training runs the frozen part once per text and caches its output, so each epoch only pays
the forward + backward pass of the top layers (the reason `trainable_layers` drives the
training time). Batches are length-sorted and padded to a bucket; every compiled function
has a fixed `[None, None]` input signature, so it is traced once whatever the batch.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from custom_components.encoder.alignment import overlap_matrix
from custom_components.encoder.runtime import (
    EncoderRuntime,
    normalise_buckets,
    pick_bucket,
    trim_offsets,
)

logger = logging.getLogger(__name__)

# Head weights, stored after the top layers' weights in `FineTunedEncoder.get_weights`.
_HEAD_KERNEL, _HEAD_BIAS = "head/kernel", "head/bias"
# The optional heads' keys (absent when the head is).
_TAGS, _RESPONSES = "tags", "responses"
# Word-shape features beside each word's vector at the tag head (`word_shapes`).
SHAPE_FEATURES = 8


@dataclasses.dataclass
class FitHistory:
    """What happened during `FineTunedEncoder.fit` (all floats are plain Python numbers)."""

    epochs: list[dict[str, float]]
    seconds: float
    steps: int
    frozen_seconds: float = 0.0


@dataclasses.dataclass
class Prediction:
    """Output of the fine-tuned encoder for one text.

    Attributes:
        logits: `[num_labels]` raw head scores (divide by the temperature before softmax).
        hidden: `[n_pieces, dim]` last hidden states of the fine-tuned encoder.
        sentence: `[dim]` mean of `hidden` (masked), the head's input.
        piece_offsets: `[n_pieces, 2]` character spans of the pieces (specials `(0, 0)`).
        text: the text the encoder read (the spans index into it).
    """

    logits: np.ndarray
    hidden: np.ndarray
    sentence: np.ndarray
    piece_offsets: np.ndarray
    text: str = ""


def warmup_linear_decay(peak: float, warmup_steps: int, total_steps: int):
    """A Keras schedule: linear warm-up to `peak` over `warmup_steps`, then linear decay to 0."""
    import tensorflow as tf

    class WarmupLinearDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            warm = tf.cast(max(1, warmup_steps), tf.float32)
            total = tf.cast(max(total_steps, warmup_steps + 1), tf.float32)
            down = tf.maximum(0.0, (total - step) / (total - warm))
            return peak * tf.where(step < warm, step / warm, down)

        def get_config(self):
            return {"peak": peak, "warmup_steps": warmup_steps, "total_steps": total_steps}

    return WarmupLinearDecay()


def length_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None = None
) -> list[np.ndarray]:
    """Groups indices into batches of similar length (shuffled when `rng` is given).

    With `rng`, indices are shuffled, cut into pools of 50 batches, sorted by length inside
    each pool and the batches shuffled again: little padding, still random order.
    """
    n = len(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    order = rng.permutation(n)
    pool = batch_size * 50
    batches: list[np.ndarray] = []
    for start in range(0, n, pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def _call_layers(layers, hidden, mask, training: bool = False):
    """Runs BERT layers with the padding mask (a static helper autograph can convert)."""
    import tensorflow as tf

    # BERT's additive mask: 0 where attended, -10000 on padding.
    extended = (1.0 - tf.cast(mask, tf.float32)[:, None, None, :]) * -10000.0
    for layer in layers:
        hidden = layer(
            hidden_states=hidden,
            attention_mask=extended,
            head_mask=None,
            encoder_hidden_states=None,
            encoder_attention_mask=None,
            past_key_value=None,
            output_attentions=False,
            training=training,
        )[0]
    return hidden


class FineTunedEncoder:
    """Trainable top layers + head over the frozen lower part of a shared encoder."""

    def __init__(
        self,
        runtime: EncoderRuntime,
        trainable_layers: int,
        num_labels: int,
        dropout: float = 0.1,
        seed: int = 0,
        num_tags: int = 0,
        num_responses: int = 0,
    ) -> None:
        """Copies the top `trainable_layers` layers of `runtime.model` (weights included).

        Args:
            runtime: the shared encoder; its embeddings and lower layers are used, never changed.
            trainable_layers: how many of the top layers are copied and fine-tuned (0 = head only).
            num_labels: intent head outputs (at least 1).
            dropout: dropout on the pooled vectors before the heads (training only).
            seed: initialises the heads.
            num_tags: tag head outputs per word (0 = no tag head).
            num_responses: response head outputs (0 = no response head).
        """
        import tensorflow as tf
        from transformers.models.bert.modeling_tf_bert import TFBertLayer

        self.runtime = runtime
        self.num_layers = runtime.num_layers
        self.trainable_layers = max(0, min(int(trainable_layers), self.num_layers))
        self.split = self.num_layers - self.trainable_layers
        self.num_labels = max(1, int(num_labels))
        self.hidden_size = runtime.hidden_size
        main = runtime.model.bert
        self._fast = runtime.fast
        with tf.device(runtime.device):
            # Keras draws each Dropout's seed from Python's `random` when the layer is built;
            # seeding all three generators makes training repeatable.
            tf.keras.utils.set_random_seed(seed)
            self.top = []
            for index in range(self.split, self.num_layers):
                layer = TFBertLayer(runtime.model.config, name=f"kefu_finetuned_layer_{index}")
                _call_layers([layer], tf.zeros((1, 2, self.hidden_size)), tf.ones((1, 2)))
                layer.set_weights(main.encoder.layer[index].get_weights())
                self.top.append(layer)
            self._dropout = tf.keras.layers.Dropout(dropout)
            self.head = tf.keras.layers.Dense(
                self.num_labels,
                kernel_initializer=tf.keras.initializers.TruncatedNormal(stddev=0.02, seed=seed),
                name="kefu_intent_head",
            )
            self.head.build((None, self.hidden_size))
            self.extra_heads = {
                name: self._dense(size, seed, f"kefu_{name}_head", inputs)
                for name, size, inputs in (
                    (_TAGS, num_tags, self.hidden_size + SHAPE_FEATURES),
                    (_RESPONSES, num_responses, self.hidden_size),
                )
                if size > 0
            }
        self._numpy_heads: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        ids = tf.TensorSpec([None, None], tf.int32)
        states = tf.TensorSpec([None, None, self.hidden_size], tf.float32)
        self._lower_fn = tf.function(self._lower, input_signature=[ids, ids])
        self._upper_fn = tf.function(
            lambda hidden, mask: self._upper(hidden, mask, training=False),
            input_signature=[states, ids],
        )
        self._infer_fn = tf.function(
            lambda input_ids, mask: self._upper(self._lower(input_ids, mask), mask, training=False),
            input_signature=[ids, ids],
        )

    def _dense(self, size: int, seed: int, name: str, inputs: int):
        import tensorflow as tf

        dense = tf.keras.layers.Dense(
            size,
            kernel_initializer=tf.keras.initializers.TruncatedNormal(stddev=0.02, seed=seed),
            name=name,
        )
        dense.build((None, inputs))
        return dense

    @property
    def num_tags(self) -> int:
        """Tag head outputs (0 = no tag head)."""
        head = self.extra_heads.get(_TAGS)
        return 0 if head is None else int(head.units)

    @property
    def num_responses(self) -> int:
        """Response head outputs (0 = no response head)."""
        head = self.extra_heads.get(_RESPONSES)
        return 0 if head is None else int(head.units)

    # ------------------------------------------------------------------ graph pieces

    def _lower(self, input_ids, mask):
        # The runtime's inference-only pass over the frozen layers (zeros at padding, which
        # the top layers mask out).
        return self._fast(input_ids, mask, layers=self.split)

    def _upper(self, hidden, mask, training: bool):
        import tensorflow as tf

        hidden = _call_layers(self.top, hidden, mask, training=training)
        weights = tf.cast(mask, tf.float32)[:, :, None]
        sentence = tf.reduce_sum(hidden * weights, axis=1) / tf.maximum(
            tf.reduce_sum(weights, axis=1), 1.0
        )
        logits = self.head(self._dropout(sentence, training=training))
        return hidden, sentence, logits

    @property
    def trainable_variables(self) -> list:
        """The variables `fit` updates: top layers and head (never embeddings or lower layers)."""
        return [v for layer in self.top for v in layer.trainable_variables] + self._head_vars()

    def _head_vars(self) -> list:
        heads = [self.head, *self.extra_heads.values()]
        return [v for head in heads for v in head.trainable_variables]

    # ------------------------------------------------------------------ tokenizing

    def _tokenize(self, texts: Sequence[str], max_length: int):
        max_length = max(2, min(int(max_length), self.runtime.max_positions))
        encodings = self.runtime.tokenizer_for(max_length).encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
        return encodings, lengths, max_length

    @staticmethod
    def _pad_states(states, lengths, batch, width, dim):
        hidden = np.zeros((len(batch), width, dim), dtype=np.float32)
        mask = np.zeros((len(batch), width), dtype=np.int32)
        for row, index in enumerate(batch):
            n = min(int(lengths[index]), width)
            hidden[row, :n] = states[index][:n]
            mask[row, :n] = 1
        return hidden, mask

    def frozen_states(
        self,
        texts: Sequence[str],
        max_length: int,
        batch_size: int = 64,
        buckets: Sequence[int] | None = None,
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Output of the frozen part for each text (`[n_pieces, dim]`), and the piece counts."""
        import tensorflow as tf

        encodings, lengths, max_length = self._tokenize(texts, max_length)
        bucket_list = normalise_buckets(buckets, max_length)
        states: list[np.ndarray] = [np.zeros((0, self.hidden_size), np.float32)] * len(texts)
        for batch in length_batches(lengths, batch_size):
            width = pick_bucket(int(lengths[batch].max()), bucket_list)
            ids, mask = pad_ids(encodings, lengths, batch, width, self.runtime.pad_id)
            with tf.device(self.runtime.device):
                hidden = self._lower_fn(tf.constant(ids), tf.constant(mask)).numpy()
            for row, index in enumerate(batch):
                states[index] = hidden[row, : lengths[index]].copy()
        return states, lengths

    # ------------------------------------------------------------------ training

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[int],
        *,
        val_texts: Sequence[str] = (),
        val_labels: Sequence[int] = (),
        epochs: int = 4,
        learning_rate: float = 1e-4,
        head_learning_rate: float | None = 2e-3,
        batch_size: int = 32,
        warmup_ratio: float = 0.1,
        weight_decay: float = 0.01,
        label_smoothing: float = 0.0,
        max_length: int = 64,
        buckets: Sequence[int] | None = None,
        seed: int = 0,
        patience: int = 0,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
        word_spans: Sequence[Sequence[tuple[int, int]]] | None = None,
        tags: Sequence[Sequence[int]] | None = None,
        responses: Sequence[int] | None = None,
    ) -> FitHistory:
        """Fine-tunes the top layers and the heads with AdamW and linear warm-up / decay.

        The layers use `learning_rate`, the freshly initialised heads `head_learning_rate`
        (None = the same rate). With held-out texts and `patience` > 0, training stops once
        held-out intent accuracy has not improved for `patience` epochs, and the weights of
        the best epoch are kept (`epochs` is then the most it runs; the schedule still spans it).

        The loss is the intent cross-entropy plus, for the heads there are, the mean tag
        cross-entropy over the words of the batch and the mean response cross-entropy over the
        batch's examples that have a response label.

        Args:
            word_spans: with a tag head, each text's word `(start, end)` character spans.
            tags: with a tag head, each text's tag id per word.
            responses: with a response head, each text's response id (-1 = none).

        Returns:
            Per-epoch loss (and held-out accuracy when `val_texts` are given), wall time, steps.
        """
        import tensorflow as tf

        started = time.perf_counter()
        # Resets TensorFlow's op-seed sequence, so dropout (traced below) repeats run to run.
        tf.random.set_seed(seed)
        labels_arr = np.asarray(labels, dtype=np.int32)
        states, lengths = self.frozen_states(texts, max_length, buckets=buckets)
        has_tags, has_responses = self.num_tags > 0, self.num_responses > 0
        pools = self.word_pools(texts, word_spans or [], max_length) if has_tags else []
        shapes = (
            [word_shapes(text, spans) for text, spans in zip(texts, word_spans or [], strict=True)]
            if has_tags
            else []
        )
        tag_rows = [np.asarray(t, dtype=np.int32) for t in tags or []] if has_tags else []
        response_arr = np.asarray(
            responses if has_responses and responses is not None else [-1] * len(texts),
            dtype=np.int32,
        )
        val_states, val_lengths = self.frozen_states(val_texts, max_length, buckets=buckets)
        val_labels_arr = np.asarray(val_labels, dtype=np.int32)
        frozen_seconds = time.perf_counter() - started
        logger.info("frozen layers ran over %d texts in %.1f s", len(texts), frozen_seconds)
        bucket_list = normalise_buckets(
            buckets, max(2, min(max_length, self.runtime.max_positions))
        )
        steps_per_epoch = math.ceil(len(texts) / batch_size)
        total_steps = max(1, steps_per_epoch * int(epochs))
        warmup = int(round(total_steps * warmup_ratio))

        def adamw(peak: float):
            optimizer = tf.keras.optimizers.AdamW(
                learning_rate=warmup_linear_decay(peak, warmup, total_steps),
                weight_decay=weight_decay,
                epsilon=1e-6,
                clipnorm=1.0,
            )
            # Standard BERT recipe: no weight decay on LayerNorm and biases.
            optimizer.exclude_from_weight_decay(var_names=["LayerNorm", "bias"])
            return optimizer

        # The head starts from random weights and needs a larger step than the pre-trained
        # layers (with one rate, either the head underfits or the layers forget).
        layer_vars = [v for layer in self.top for v in layer.trainable_variables]
        head_vars = self._head_vars()
        layer_opt = adamw(learning_rate) if layer_vars else None
        head_opt = adamw(head_learning_rate or learning_rate)
        loss_fn = tf.keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=float(label_smoothing)
        )
        states_spec = tf.TensorSpec([None, None, self.hidden_size], tf.float32)
        int_spec = tf.TensorSpec([None, None], tf.int32)

        def masked_mean_ce(labels, logits):
            # Cross-entropy averaged over the labels that are there (>= 0).
            kept = tf.cast(labels >= 0, tf.float32)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.maximum(labels, 0), logits=logits
            )
            return tf.reduce_sum(ce * kept) / tf.maximum(tf.reduce_sum(kept), 1.0)

        @tf.function(
            input_signature=[
                states_spec,
                int_spec,
                tf.TensorSpec([None], tf.int32),
                tf.TensorSpec([None, None, None], tf.float32),
                tf.TensorSpec([None, None, SHAPE_FEATURES], tf.float32),
                int_spec,
                tf.TensorSpec([None], tf.int32),
            ]
        )
        def train_step(hidden, mask, target, pool, shape, word_tags, response):
            with tf.GradientTape() as tape:
                top, sentence, logits = self._upper(hidden, mask, training=True)
                loss = loss_fn(tf.one_hot(target, self.num_labels), logits)
                if has_tags:
                    words = self._dropout(tf.matmul(pool, top), training=True)
                    words = tf.concat([words, shape], axis=-1)
                    loss += masked_mean_ce(word_tags, self.extra_heads[_TAGS](words))
                if has_responses:
                    pooled = self._dropout(sentence, training=True)
                    loss += masked_mean_ce(response, self.extra_heads[_RESPONSES](pooled))
            grads = tape.gradient(loss, layer_vars + head_vars)
            # autograph's zip takes no `strict`; the lists are split by the same length.
            if layer_opt is not None:
                layer_opt.apply_gradients(zip(grads[: len(layer_vars)], layer_vars))  # noqa: B905
            head_opt.apply_gradients(zip(grads[len(layer_vars) :], head_vars))  # noqa: B905
            return loss

        rng = np.random.default_rng(seed)
        history: list[dict[str, float]] = []
        steps = 0
        watch = bool(patience) and len(val_labels_arr) > 0
        best_accuracy, best_epoch, best_weights = -1.0, 0, None
        for epoch in range(int(epochs)):
            losses = []
            for batch in length_batches(lengths, batch_size, rng):
                width = pick_bucket(int(lengths[batch].max()), bucket_list)
                hidden, mask = self._pad_states(states, lengths, batch, width, self.hidden_size)
                pool, shape, word_tags = _pad_words(pools, shapes, tag_rows, batch, width)
                with tf.device(self.runtime.device):
                    loss = train_step(
                        tf.constant(hidden),
                        tf.constant(mask),
                        tf.constant(labels_arr[batch]),
                        tf.constant(pool),
                        tf.constant(shape),
                        tf.constant(word_tags),
                        tf.constant(response_arr[batch]),
                    )
                losses.append(float(loss))
                steps += 1
            record = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else 0.0}
            if len(val_labels_arr):
                logits = self.logits_from_states(val_states, val_lengths, max_length, buckets)
                record["val_accuracy"] = float((logits.argmax(axis=1) == val_labels_arr).mean())
            record["seconds"] = time.perf_counter() - started
            history.append(record)
            logger.info("fine-tune epoch %s", record)
            if on_epoch:
                on_epoch(record)
            if not watch:
                continue
            if record["val_accuracy"] > best_accuracy:
                best_accuracy, best_epoch = record["val_accuracy"], epoch + 1
                best_weights = [v.numpy() for v in layer_vars + head_vars]
            elif epoch + 1 - best_epoch >= patience:
                logger.info(
                    "fine-tune early stop after epoch %d: best held-out accuracy %.4f at epoch %d",
                    epoch + 1,
                    best_accuracy,
                    best_epoch,
                )
                break
        if best_weights is not None and best_epoch != len(history):
            for variable, value in zip(layer_vars + head_vars, best_weights, strict=True):
                variable.assign(value)
        self._numpy_heads.clear()
        return FitHistory(history, time.perf_counter() - started, steps, frozen_seconds)

    def logits_from_states(
        self,
        states: list[np.ndarray],
        lengths: np.ndarray,
        max_length: int,
        buckets: Sequence[int] | None = None,
        batch_size: int = 64,
    ) -> np.ndarray:
        """Head logits for cached frozen states (evaluation without the lower layers)."""
        import tensorflow as tf

        out = np.zeros((len(states), self.num_labels), dtype=np.float32)
        if not states:
            return out
        bucket_list = normalise_buckets(
            buckets, max(2, min(max_length, self.runtime.max_positions))
        )
        for batch in length_batches(lengths, batch_size):
            width = pick_bucket(int(lengths[batch].max()), bucket_list)
            hidden, mask = self._pad_states(states, lengths, batch, width, self.hidden_size)
            with tf.device(self.runtime.device):
                _, _, logits = self._upper_fn(tf.constant(hidden), tf.constant(mask))
            out[batch] = logits.numpy()
        return out

    def word_pools(
        self,
        texts: Sequence[str],
        word_spans: Sequence[Sequence[tuple[int, int]]],
        max_length: int,
    ) -> list[np.ndarray]:
        """Per text, the `[n_words, n_pieces]` matrix that averages pieces onto its words."""
        encodings, _, _ = self._tokenize(texts, max_length)
        return [
            word_pool(trim_offsets(text, encoding.offsets), spans)
            for text, encoding, spans in zip(texts, encodings, word_spans, strict=True)
        ]

    def head_arrays(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """A head's `(kernel, bias)` as numpy arrays (`tags`, `responses`), cached."""
        if name not in self._numpy_heads:
            kernel, bias = self.extra_heads[name].get_weights()
            self._numpy_heads[name] = (kernel, bias)
        return self._numpy_heads[name]

    def tag_logits(self, prediction: Prediction, word_spans: Sequence[tuple[int, int]]):
        """`[n_words, num_tags]` tag scores of a predicted text's words (spans in its text)."""
        return tag_logits(prediction, word_spans, *self.head_arrays(_TAGS))

    def response_logits(self, prediction: Prediction) -> np.ndarray:
        """`[num_responses]` response scores of a predicted text."""
        return response_logits(prediction, *self.head_arrays(_RESPONSES))

    # ------------------------------------------------------------------ inference

    def predict(
        self,
        texts: Sequence[str],
        max_length: int = 64,
        batch_size: int = 64,
        buckets: Sequence[int] | None = None,
    ) -> list[Prediction]:
        """One full forward pass (frozen + fine-tuned layers + head) per bucketed batch."""
        import tensorflow as tf

        def forward(ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
            with tf.device(self.runtime.device):
                outputs = self._infer_fn(tf.constant(ids), tf.constant(mask))
            return tuple(output.numpy() for output in outputs)

        return predict_in_batches(self.runtime, texts, max_length, batch_size, buckets, forward)

    def warm_up(self, buckets: Sequence[int], max_length: int) -> None:
        """Traces and runs every bucket once so the first message pays no graph cost."""
        for bucket in normalise_buckets(buckets, max_length):
            self.predict([" ".join(["kefu"] * max(1, bucket - 2))], max_length, 1, (bucket,))

    # ------------------------------------------------------------------ weights

    def get_weights(self) -> dict[str, np.ndarray]:
        """Top layers' and heads' weights: `layer_<index>/<position>`, `head/...`, `tags/...`."""
        arrays: dict[str, np.ndarray] = {}
        for offset, layer in enumerate(self.top):
            for position, value in enumerate(layer.get_weights()):
                arrays[f"layer_{self.split + offset}/{position:02d}"] = value
        kernel, bias = self.head.get_weights()
        arrays[_HEAD_KERNEL], arrays[_HEAD_BIAS] = kernel, bias
        for name, head in self.extra_heads.items():
            arrays[f"{name}/kernel"], arrays[f"{name}/bias"] = head.get_weights()
        return arrays

    def set_weights(self, arrays: dict[str, np.ndarray]) -> None:
        """Restores what `get_weights` returned.

        Raises:
            ValueError: an array is missing or has another shape (another encoder / config).
        """
        for offset, layer in enumerate(self.top):
            prefix = f"layer_{self.split + offset}/"
            names = sorted(k for k in arrays if k.startswith(prefix))
            expected = [w.shape for w in layer.get_weights()]
            found = [arrays[name].shape for name in names]
            if found != expected:
                raise ValueError(f"{prefix[:-1]}: weight shapes {found} != expected {expected}")
            layer.set_weights([arrays[name] for name in names])
        heads = {"head": self.head, **self.extra_heads}
        for name, layer in heads.items():
            pair = [arrays.get(f"{name}/kernel"), arrays.get(f"{name}/bias")]
            expected = [w.shape for w in layer.get_weights()]
            if any(a is None for a in pair) or [a.shape for a in pair] != expected:
                raise ValueError(f"{name}: weights missing or not of shapes {expected}")
            layer.set_weights(pair)
        self._numpy_heads.clear()


def predict_in_batches(
    runtime: EncoderRuntime,
    texts: Sequence[str],
    max_length: int,
    batch_size: int,
    buckets: Sequence[int] | None,
    forward: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]],
) -> list[Prediction]:
    """`Prediction`s for `texts`: length-sorted batches, each padded to the smallest bucket.

    `forward(ids, mask)` (`[batch, width]` int32) runs one padded batch through an encoder
    (TensorFlow's graph, ONNX Runtime's session) and returns numpy `hidden`, `sentence` and
    `logits`; everything around it is the same for every encoder.
    """
    if not texts:
        return []
    max_length = max(2, min(int(max_length), runtime.max_positions))
    encodings = runtime.tokenizer_for(max_length).encode_batch(list(texts))
    lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
    bucket_list = normalise_buckets(buckets, max_length)
    results: list[Prediction | None] = [None] * len(texts)
    for batch in length_batches(lengths, max(1, int(batch_size))):
        width = pick_bucket(int(lengths[batch].max()), bucket_list)
        ids, mask = pad_ids(encodings, lengths, batch, width, runtime.pad_id)
        hidden, sentence, logits = forward(ids, mask)
        for row, index in enumerate(batch):
            n = int(lengths[index])
            results[index] = Prediction(
                logits=logits[row],
                hidden=hidden[row, :n],
                sentence=sentence[row],
                piece_offsets=trim_offsets(texts[index], encodings[index].offsets),
                text=texts[index],
            )
    return results  # type: ignore[return-value]


def pad_ids(
    encodings, lengths: np.ndarray, batch: np.ndarray, width: int, pad_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """A batch's piece ids `[B, width]` (padded with `pad_id`) and attention mask, int32."""
    ids = np.full((len(batch), width), pad_id, dtype=np.int32)
    mask = np.zeros((len(batch), width), dtype=np.int32)
    for row, index in enumerate(batch):
        n = lengths[index]
        ids[row, :n] = encodings[index].ids[:n]
        mask[row, :n] = 1
    return ids, mask


def tag_logits(
    prediction: Prediction,
    word_spans: Sequence[tuple[int, int]],
    kernel: np.ndarray,
    bias: np.ndarray,
) -> np.ndarray:
    """`[n_words, num_tags]`: the tag head over the prediction's pieces averaged onto words.

    The same arithmetic as training (`word_pool`, `word_shapes`, then the dense head), for any
    encoder that returns a `Prediction` (TensorFlow or ONNX Runtime).
    """
    words = word_pool(prediction.piece_offsets, word_spans) @ prediction.hidden
    words = np.concatenate([words, word_shapes(prediction.text, word_spans)], axis=1)
    return words @ kernel + bias


def response_logits(prediction: Prediction, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """`[num_responses]`: the response head over the prediction's sentence vector."""
    return prediction.sentence @ kernel + bias


def word_pool(
    piece_offsets: Sequence[tuple[int, int]], word_spans: Sequence[tuple[int, int]]
) -> np.ndarray:
    """`[n_words, n_pieces]` float32: each word's row averages the pieces overlapping it."""
    weights = overlap_matrix(piece_offsets, word_spans).astype(np.float32)
    return weights / np.maximum(weights.sum(axis=1, keepdims=True), 1.0)


def word_shapes(text: str, word_spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """`[n_words, SHAPE_FEATURES]` 0/1 float32: what each word of `text` looks like.

    All digits; has a digit; Latin capitals only; Latin letters; Han characters; no letter or
    digit (punctuation, symbols); one character; four or more. What tells "M" from "码" in
    "M码" when one encoder piece covers both, and "2" (a quantity) from "XL" (a size).
    """
    rows = np.zeros((len(word_spans), SHAPE_FEATURES), dtype=np.float32)
    for i, (start, end) in enumerate(word_spans):
        word = text[start:end]
        latin = [c for c in word if c.isascii() and c.isalpha()]
        rows[i] = (
            word.isdigit(),
            any(c.isdigit() for c in word),
            bool(latin) and len(latin) == len(word) and word.isupper(),
            bool(latin),
            any("\u4e00" <= c <= "\u9fff" for c in word),
            not any(c.isalnum() for c in word),
            len(word) == 1,
            len(word) >= 4,
        )
    return rows


def _pad_words(
    pools: list[np.ndarray],
    shapes: list[np.ndarray],
    tags: list[np.ndarray],
    batch: np.ndarray,
    width: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch's word pools `[B, words, width]`, shapes `[B, words, SHAPE_FEATURES]` and tags
    `[B, words]` (-1 = padding).

    Without a tag head (`pools` empty) one padding word, so the step keeps its signature.
    """
    words = max([1, *(len(tags[i]) for i in batch)]) if pools else 1
    pool = np.zeros((len(batch), words, width), dtype=np.float32)
    shape = np.zeros((len(batch), words, SHAPE_FEATURES), dtype=np.float32)
    tag = np.full((len(batch), words), -1, dtype=np.int32)
    if not pools:
        return pool, shape, tag
    for row, index in enumerate(batch):
        matrix = pools[index][:, :width]
        pool[row, : matrix.shape[0], : matrix.shape[1]] = matrix
        shape[row, : len(shapes[index])] = shapes[index]
        tag[row, : len(tags[index])] = tags[index]
    return pool, shape, tag
