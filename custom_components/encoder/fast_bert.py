"""An inference-only BERT forward pass for the frozen encoder, built for CPU throughput.

`TFBertModel` runs each Dense layer as Tensordot (reshape, MatMul, reshape, BiasAdd) and,
under a Keras mixed-precision policy, casts every weight to the compute dtype on every call
and runs bias, GELU, LayerNorm and residual additions as separate element-wise ops. On a
small CPU that is most of the time: profiled in bfloat16, the matrix products are the smaller
part of the forward pass, weight casts and element-wise ops the larger.

`FastBert` runs the same computation from the same weights, arranged for the hardware:

- weights are converted once to the matrix dtype (bfloat16 on a CPU with AMX / AVX512-BF16,
  float16 on a GPU, float32 otherwise) and become graph constants when traced, so oneDNN
  reorders them into its blocked layout once; query, key and value are one matrix product;
- each dense layer is `bias_add(matmul)` (+ GELU), which TensorFlow's remapper fuses into one
  oneDNN call; activations stay in the matrix dtype, LayerNorm is computed in float32;
- padding is dropped for everything but the attention scores: the dense layers (two thirds
  of the arithmetic) run on the real pieces of the batch only, their row count rounded up so
  that oneDNN sees few distinct shapes.

Its throughput against `TFBertModel` is measured by `bench/encoder_bench.py` (figures in
docs/BENCHMARKS.md). The embeddings layer of the loaded `TFBertModel` is reused as is (a lookup
is cheap). In float32 the output matches `TFBertModel` to round-off; in bfloat16 to a cosine
above 0.9999. Tests check both.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

# Packed piece rows are rounded up to a multiple of ROW_MULTIPLE (see `packing`), or of
# SMALL_ROW_MULTIPLE up to ROW_MULTIPLE rows, so that one short message pays for little filler.
ROW_MULTIPLE = 64
SMALL_ROW_MULTIPLE = 16


class _Layout(NamedTuple):
    row_to_slot: object  # [rows] int32: padded slot of each packed row
    slot_to_row: object  # [batch * width] int32: 1 + packed row of each slot, 0 for padding


def packing(attention_mask) -> _Layout:
    """Where each real piece of a padded `[batch, width]` batch goes in the packed rows.

    The packed row count is rounded up (to SMALL_ROW_MULTIPLE while it is below
    ROW_MULTIPLE, to ROW_MULTIPLE above) with repeats of the first slot, so matrix products
    see few distinct shapes (oneDNN compiles a kernel per shape); those filler rows are
    computed and never read back.
    """
    import tensorflow as tf

    flat = tf.reshape(attention_mask, [-1]) > 0
    real = tf.cast(tf.where(flat)[:, 0], tf.int32)
    count = tf.shape(real)[0]
    multiple = tf.where(count < ROW_MULTIPLE, SMALL_ROW_MULTIPLE, ROW_MULTIPLE)
    filler = tf.zeros([(-count) % multiple], tf.int32)
    row_to_slot = tf.concat([real, filler], axis=0)
    slot_to_row = tf.scatter_nd(real[:, None], tf.range(1, count + 1), tf.shape(flat))
    return _Layout(row_to_slot, slot_to_row)


def unpack(rows, slot_to_row):
    """Packed `[rows, dim]` back to the padded `[slots, dim]` layout, zeros at padding."""
    import tensorflow as tf

    zero = tf.zeros([1, tf.shape(rows)[1]], rows.dtype)
    return tf.gather(tf.concat([zero, rows], axis=0), slot_to_row)


@dataclasses.dataclass
class _LayerWeights:
    qkv_kernel: np.ndarray
    qkv_bias: np.ndarray
    attention_out_kernel: np.ndarray
    attention_out_bias: np.ndarray
    attention_norm: tuple[np.ndarray, np.ndarray]
    intermediate_kernel: np.ndarray
    intermediate_bias: np.ndarray
    output_kernel: np.ndarray
    output_bias: np.ndarray
    output_norm: tuple[np.ndarray, np.ndarray]


class FastBert:
    """The frozen forward pass of a loaded HF `TFBertModel`, returning any layer's states."""

    def __init__(self, model, matmul_dtype: str = "float32") -> None:
        """Copies the encoder layers' weights: matrices and biases in `matmul_dtype`,
        LayerNorm parameters in float32.

        Args:
            model: a loaded `TFBertModel` with float32 weights; its embeddings layer is reused.
            matmul_dtype: "float32", "bfloat16" or "float16": the dtype of the matrix products.
        """
        import tensorflow as tf

        config = model.config
        if getattr(config, "hidden_act", "gelu") not in ("gelu", "gelu_new", "gelu_python"):
            raise ValueError(f"FastBert supports GELU encoders, not {config.hidden_act!r}")
        self.hidden_size = int(config.hidden_size)
        self.heads = int(config.num_attention_heads)
        self.head_size = self.hidden_size // self.heads
        self.eps = float(config.layer_norm_eps)
        self.approximate_gelu = config.hidden_act == "gelu_new"
        self.matmul_dtype = tf.as_dtype(matmul_dtype)
        self.num_layers = int(config.num_hidden_layers)
        self._embeddings = model.bert.embeddings

        # NumPy arrays, turned into graph constants when the forward pass is traced: oneDNN
        # then converts each weight matrix to its blocked layout once, not on every call.
        def kernel(*variables) -> np.ndarray:
            return np.concatenate([v.numpy() for v in variables], axis=-1).astype(np.float32)

        def matrix(*variables) -> np.ndarray:
            return tf.cast(kernel(*variables), self.matmul_dtype).numpy()

        self.scale = tf.constant(1.0 / math.sqrt(self.head_size), self.matmul_dtype)

        self.layers: list[_LayerWeights] = []
        for layer in model.bert.encoder.layer:
            attention = layer.attention.self_attention
            out = layer.attention.dense_output
            self.layers.append(
                _LayerWeights(
                    qkv_kernel=matrix(
                        attention.query.kernel, attention.key.kernel, attention.value.kernel
                    ),
                    qkv_bias=matrix(attention.query.bias, attention.key.bias, attention.value.bias),
                    attention_out_kernel=matrix(out.dense.kernel),
                    attention_out_bias=matrix(out.dense.bias),
                    attention_norm=(kernel(out.LayerNorm.gamma), kernel(out.LayerNorm.beta)),
                    intermediate_kernel=matrix(layer.intermediate.dense.kernel),
                    intermediate_bias=matrix(layer.intermediate.dense.bias),
                    output_kernel=matrix(layer.bert_output.dense.kernel),
                    output_bias=matrix(layer.bert_output.dense.bias),
                    output_norm=(
                        kernel(layer.bert_output.LayerNorm.gamma),
                        kernel(layer.bert_output.LayerNorm.beta),
                    ),
                )
            )

    # ------------------------------------------------------------------ pieces

    def _dense(self, x, kernel, bias, gelu: bool = False):
        """`x @ kernel + bias` (then GELU), one fused oneDNN call in the matrix dtype."""
        import tensorflow as tf

        y = tf.nn.bias_add(tf.matmul(x, tf.constant(kernel)), tf.constant(bias))
        return tf.nn.gelu(y, approximate=self.approximate_gelu) if gelu else y

    def _norm(self, x, norm):
        """LayerNorm, computed in float32 whatever the matrix dtype."""
        import tensorflow as tf

        x = tf.cast(x, tf.float32)
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        gamma, beta = (tf.constant(v) for v in norm)
        out = tf.nn.batch_normalization(x, mean, variance, beta, gamma, self.eps)
        return tf.cast(out, self.matmul_dtype)

    def _attention(self, packed, layout, batch, width, additive_mask, weights: _LayerWeights):
        """Self-attention: projections on the packed pieces, scores on the padded batch."""
        import tensorflow as tf

        qkv = self._dense(packed, weights.qkv_kernel, weights.qkv_bias)
        # Back to the padded [batch * width] layout (padding slots are zero, and masked out).
        padded = unpack(qkv, layout.slot_to_row)
        padded = tf.reshape(padded, [batch, width, 3, self.heads, self.head_size])
        padded = tf.transpose(padded, [2, 0, 3, 1, 4])
        query, key, value = padded[0], padded[1], padded[2]
        scores = tf.matmul(query * self.scale, key, transpose_b=True)
        probs = tf.nn.softmax(scores + additive_mask, axis=-1)
        context = tf.matmul(probs, value)
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, self.hidden_size])
        context = tf.gather(context, layout.row_to_slot)
        out = self._dense(context, weights.attention_out_kernel, weights.attention_out_bias)
        return self._norm(out + packed, weights.attention_norm)

    def _feed_forward(self, x, weights: _LayerWeights):
        h = self._dense(x, weights.intermediate_kernel, weights.intermediate_bias, gelu=True)
        out = self._dense(h, weights.output_kernel, weights.output_bias)
        return self._norm(out + x, weights.output_norm)

    # ------------------------------------------------------------------ forward

    def __call__(self, input_ids, attention_mask, layers: int | None = None):
        """Hidden states after `layers` encoder layers (None = all), `[batch, width, dim]`.

        Padding positions hold zeros (callers slice each row to its real length). Meant to
        be called inside a `tf.function`; `layers` is a Python int fixed at tracing time.
        """
        import tensorflow as tf

        count = self.num_layers if layers is None else max(0, min(int(layers), self.num_layers))
        shape = tf.shape(input_ids)
        batch, width = shape[0], shape[1]
        embedded = self._embeddings(
            input_ids=input_ids, token_type_ids=tf.zeros_like(input_ids), training=False
        )
        embedded = tf.cast(
            tf.reshape(embedded, [batch * width, self.hidden_size]), self.matmul_dtype
        )
        layout = packing(attention_mask)
        packed = tf.gather(embedded, layout.row_to_slot)
        mask = tf.cast(attention_mask, tf.float32)[:, None, None, :]
        additive_mask = tf.cast((1.0 - mask) * -10000.0, self.matmul_dtype)
        for weights in self.layers[:count]:
            packed = self._attention(packed, layout, batch, width, additive_mask, weights)
            packed = self._feed_forward(packed, weights)
        hidden = unpack(tf.cast(packed, tf.float32), layout.slot_to_row)
        return tf.reshape(hidden, [batch, width, self.hidden_size])
