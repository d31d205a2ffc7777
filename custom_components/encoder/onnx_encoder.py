"""The fine-tuned encoder as one ONNX graph, run by ONNX Runtime without TensorFlow's model.

A trained `FineTunedEncoder` is frozen lower layers (the shared runtime's `TFBertModel`), Keras
copies of the top layers and an intent head. Serving it through TensorFlow keeps the whole
`TFBertModel` resident (~1.5 GB for multilingual-e5-small) plus a `tf.function` with every
weight baked in as a graph constant (another copy). `export_onnx` writes the same computation,
from the same numpy weights, as one ONNX graph; `OnnxEncoder` runs it with the runtime's
tokenizer and returns the same `Prediction`s as `FineTunedEncoder.predict`.

The graph uses ONNX Runtime's fused CPU kernels for BERT (`com.microsoft` domain): one
`Attention` per layer (query/key/value as one matrix, the -10000 additive padding mask BERT
uses), `SkipLayerNormalization` for each residual + LayerNorm and `BiasGelu` (erf GELU, or
`FastGelu` for `gelu_new`), so no pattern-matching optimizer is needed. With `quantize=True`
`onnxruntime.quantization.quantize_dynamic` stores the weight matrices in int8 (activations
quantized per call) and the 250k-row word embedding in 8 bits too: it stays a `Gather` (a row
lookup, then dequantized), never a matrix product. The intent head stays float32. Activations
are quantized with one scale per matrix product over the padded batch, so an int8 output moves
slightly (~1e-3) with its batch-mates and padding; float32 outputs do not.

Usage::

    facts = export_onnx(encoder, directory / "encoder.onnx")  # after fit / set_weights
    onnx = OnnxEncoder(directory / "encoder.onnx", runtime)    # runtime.model never loaded
    onnx.set_weights(encoder.get_weights())                    # tag / response heads
    predictions = onnx.predict(texts, max_length=64, buckets=(16, 32, 64))
"""

from __future__ import annotations

import collections
import hashlib
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from custom_components.encoder.finetune import (
    Prediction,
    predict_in_batches,
    response_logits,
    tag_logits,
)
from custom_components.encoder.runtime import (
    EncoderRuntime,
    normalise_buckets,
)

if TYPE_CHECKING:
    from custom_components.encoder.finetune import FineTunedEncoder

OPSET = 17
MS_DOMAIN = "com.microsoft"
# Graph metadata keys (`onnx.ModelProto.metadata_props`); read back by `OnnxEncoder`.
META_PREFIX = "kefu."
# Op types `quantize_dynamic` turns into int8 (the only Gather is the word embedding lookup).
# The intent head stays float32.
QUANTIZED_OPS = ("MatMul", "Attention", "Gather")
_HEAD_NODES = ("head/matmul", "head/add")


def onnx_available() -> bool:
    """Whether `onnx` and `onnxruntime` import (the ONNX path is optional)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def weights_fingerprint(arrays: dict[str, np.ndarray]) -> str:
    """sha256 of `FineTunedEncoder.get_weights()`: ties an exported graph to its weights file."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        value = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{value.dtype.str}:{value.shape};".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------- building the graph


class _Graph:
    """Collects nodes and initializers with unique names (a thin layer over `onnx.helper`)."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []

    def constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], name: str, domain: str = "", **attrs) -> str:
        """Adds one node with a single output named like the node; returns the output name."""
        from onnx import helper

        self.nodes.append(
            helper.make_node(op_type, list(inputs), [name], name=name, domain=domain, **attrs)
        )
        return name


def _layer_arrays(layer) -> dict[str, np.ndarray]:
    """A Hugging Face `TFBertLayer`'s weights as float32 numpy, query/key/value concatenated."""

    def value(variable) -> np.ndarray:
        return np.asarray(variable.numpy(), dtype=np.float32)

    attention = layer.attention.self_attention
    out = layer.attention.dense_output
    projections = (attention.query, attention.key, attention.value)
    return {
        "qkv_kernel": np.concatenate([value(p.kernel) for p in projections], axis=1),
        "qkv_bias": np.concatenate([value(p.bias) for p in projections]),
        "attention_out_kernel": value(out.dense.kernel),
        "attention_out_bias": value(out.dense.bias),
        "attention_gamma": value(out.LayerNorm.gamma),
        "attention_beta": value(out.LayerNorm.beta),
        "intermediate_kernel": value(layer.intermediate.dense.kernel),
        "intermediate_bias": value(layer.intermediate.dense.bias),
        "output_kernel": value(layer.bert_output.dense.kernel),
        "output_bias": value(layer.bert_output.dense.bias),
        "output_gamma": value(layer.bert_output.LayerNorm.gamma),
        "output_beta": value(layer.bert_output.LayerNorm.beta),
    }


def _add_embeddings(graph: _Graph, embeddings, eps: float) -> str:
    """word + position + token type 0, then LayerNorm (`TFBertEmbeddings`, token types all 0)."""
    word = graph.constant("embeddings/word", embeddings.weight.numpy().astype(np.float32))
    positions = embeddings.position_embeddings.numpy().astype(np.float32)
    token_type = embeddings.token_type_embeddings.numpy()[0].astype(np.float32)
    # Position and token type rows summed once: (a + b) + c differs from a + (b + c) only
    # by float round-off.
    graph.constant("embeddings/position_and_type", positions + token_type)
    graph.constant("embeddings/gamma", embeddings.LayerNorm.gamma.numpy().astype(np.float32))
    graph.constant("embeddings/beta", embeddings.LayerNorm.beta.numpy().astype(np.float32))
    graph.constant("const/zero_1d", np.array([0], np.int64))

    looked_up = graph.op("Gather", [word, "input_ids"], "embeddings/word_gather")
    width = graph.op("Shape", ["input_ids"], "embeddings/width", start=1, end=2)
    position = graph.op(
        "Slice",
        ["embeddings/position_and_type", "const/zero_1d", width, "const/zero_1d"],
        "embeddings/positions",
    )
    summed = graph.op("Add", [looked_up, position], "embeddings/sum")
    return graph.op(
        "LayerNormalization",
        [summed, "embeddings/gamma", "embeddings/beta"],
        "embeddings/norm",
        axis=-1,
        epsilon=eps,
    )


def _add_layer(
    graph: _Graph, x: str, mask: str, weights: dict[str, np.ndarray], index: int, config
) -> str:
    """One BERT layer: fused attention, residual LayerNorms, GELU feed-forward."""
    p = f"layer_{index}/"
    for key, array in weights.items():
        graph.constant(p + key, array)
    eps = float(config.layer_norm_eps)
    attended = graph.op(
        "Attention",
        [x, p + "qkv_kernel", p + "qkv_bias", mask],
        p + "attention",
        domain=MS_DOMAIN,
        num_heads=int(config.num_attention_heads),
        mask_filter_value=-10000.0,  # BERT's additive mask, as TFBertModel and FastBert
    )
    projected = graph.op("MatMul", [attended, p + "attention_out_kernel"], p + "attention_out")
    x = graph.op(
        "SkipLayerNormalization",
        [projected, x, p + "attention_gamma", p + "attention_beta", p + "attention_out_bias"],
        p + "attention_norm",
        domain=MS_DOMAIN,
        epsilon=eps,
    )
    inner = graph.op("MatMul", [x, p + "intermediate_kernel"], p + "intermediate")
    gelu = "FastGelu" if config.hidden_act == "gelu_new" else "BiasGelu"
    inner = graph.op(gelu, [inner, p + "intermediate_bias"], p + "gelu", domain=MS_DOMAIN)
    out = graph.op("MatMul", [inner, p + "output_kernel"], p + "output")
    return graph.op(
        "SkipLayerNormalization",
        [out, x, p + "output_gamma", p + "output_beta", p + "output_bias"],
        p + "output_norm",
        domain=MS_DOMAIN,
        epsilon=eps,
    )


def _add_pooling_and_head(graph: _Graph, hidden: str, head) -> tuple[str, str]:
    """Masked mean of the last states (as `FineTunedEncoder._upper`), then the intent head."""
    from onnx import TensorProto

    kernel, bias = (np.asarray(w, np.float32) for w in head.get_weights())
    graph.constant("head/kernel", kernel)
    graph.constant("head/bias", bias)
    graph.constant("const/axis_seq", np.array([1], np.int64))
    graph.constant("const/axis_last", np.array([-1], np.int64))
    graph.constant("const/one_float", np.array(1.0, np.float32))

    mask = graph.op("Cast", ["attention_mask"], "pool/mask_float", to=TensorProto.FLOAT)
    mask = graph.op("Unsqueeze", [mask, "const/axis_last"], "pool/mask_column")
    weighted = graph.op("Mul", [hidden, mask], "pool/weighted")
    total = graph.op("ReduceSum", [weighted, "const/axis_seq"], "pool/sum", keepdims=0)
    count = graph.op("ReduceSum", [mask, "const/axis_seq"], "pool/count", keepdims=0)
    count = graph.op("Max", [count, "const/one_float"], "pool/count_at_least_one")
    sentence = graph.op("Div", [total, count], "sentence")
    scores = graph.op("MatMul", [sentence, "head/kernel"], _HEAD_NODES[0])
    return sentence, graph.op("Add", [scores, "head/bias"], _HEAD_NODES[1])


def build_graph(encoder: FineTunedEncoder):
    """The whole fine-tuned encoder as a float32 `onnx.ModelProto` (nothing written)."""
    from onnx import TensorProto, helper

    runtime = encoder.runtime
    bert = runtime.model.bert
    config = runtime.model.config
    if config.hidden_act not in ("gelu", "gelu_new", "gelu_python"):
        raise ValueError(f"ONNX export supports GELU encoders, not {config.hidden_act!r}")
    graph = _Graph()
    mask32 = graph.op("Cast", ["attention_mask"], "mask_int32", to=TensorProto.INT32)
    x = _add_embeddings(graph, bert.embeddings, float(config.layer_norm_eps))
    layers = [*bert.encoder.layer[: encoder.split], *encoder.top]
    for index, layer in enumerate(layers):
        x = _add_layer(graph, x, mask32, _layer_arrays(layer), index, config)
    hidden = graph.op("Identity", [x], "hidden")
    sentence, logits = _add_pooling_and_head(graph, hidden, encoder.head)
    graph.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="logits"))

    dim, labels = encoder.hidden_size, encoder.num_labels
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "kefu_finetuned_encoder",
            [
                helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
                helper.make_tensor_value_info(
                    "attention_mask", TensorProto.INT64, ["batch", "seq"]
                ),
            ],
            [
                helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq", dim]),
                helper.make_tensor_value_info(sentence, TensorProto.FLOAT, ["batch", dim]),
                helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", labels]),
            ],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="kefu",
    )
    metadata = {
        "num_labels": labels,
        "hidden_size": dim,
        "num_layers": encoder.num_layers,
        "trainable_layers": encoder.trainable_layers,
        "weights_sha256": weights_fingerprint(encoder.get_weights()),
        "model_dir": runtime.model_dir.name,
    }
    helper.set_model_props(model, {META_PREFIX + k: str(v) for k, v in metadata.items()})
    return model


def export_onnx(encoder: FineTunedEncoder, path: str | Path, quantize: bool = True) -> dict:
    """Writes the fine-tuned encoder (embeddings, all layers, intent head) as one ONNX file.

    Args:
        encoder: a trained (or restored) `FineTunedEncoder`; its runtime's `TFBertModel`
            provides the embeddings and frozen layers.
        path: the `.onnx` file to write (its folder is created).
        quantize: int8 weight matrices and word embeddings (`quantize_dynamic`), float32
            everywhere else; False = all float32 (matches TensorFlow to round-off).

    Returns:
        What was written: path, bytes, quantized, op counts, seconds.
    """
    import onnx

    started = time.perf_counter()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = build_graph(encoder)
    props = {prop.key: prop.value for prop in model.metadata_props}
    if not quantize:
        onnx.save(model, str(path))
    else:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
            source = Path(scratch) / "float32.onnx"
            onnx.save(model, str(source))
            del model
            quantize_dynamic(
                source,
                path,
                op_types_to_quantize=list(QUANTIZED_OPS),
                nodes_to_exclude=list(_HEAD_NODES),
                # One scale per output column: per-tensor scales cost a sentence cosine of
                # 0.976 (min over 200 shop messages) against float32, per-column 0.993.
                per_channel=True,
                weight_type=QuantType.QInt8,
                # ONNX shape inference does not type the outputs of com.microsoft ops.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    written = onnx.load(str(path))
    if quantize:
        # quantize_dynamic writes a new model; the metadata is carried over here.
        del written.metadata_props[:]
        onnx.helper.set_model_props(written, {**props, META_PREFIX + "quantized": "true"})
        onnx.save(written, str(path))
    ops = collections.Counter(node.op_type for node in written.graph.node)
    return {
        "path": str(path),
        "bytes": path.stat().st_size,
        "quantized": quantize,
        "ops": dict(sorted(ops.items())),
        "seconds": round(time.perf_counter() - started, 2),
    }


# ---------------------------------------------------------------------- inference


#: Intra-op threads of the session that parses in a server. A Rasa server parses one message at
#: a time and scales by replicas, one process each. On a 2-core machine, the shop's int8 graph
#: took 2.4-2.8 CPU-ms a message on one thread against 3.5 on two, and no longer (wall 2.4-3.2
#: against 3.3-3.4 ms; 300 test-story messages, alternating rounds in one process).
SERVING_THREADS = 1


def default_threads() -> int:
    """Threads for one session: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def session_options(threads: int | None = None, arena: bool = False, spin: bool = False):
    """ONNX Runtime options for serving: sequential, `threads` intra-op, no arena, no spinning.

    Measured on multilingual-e5-small int8, one message per call, on a 2-core machine with
    another CPU-bound process running (bench/onnx_encoder_bench.py and alternating blocks in
    one process):

    - the CPU memory arena (with memory patterns) changes no latency (p50 8.10 vs 8.09 ms) and
      keeps the largest batch's buffers (+25 MiB after batches of 64): off;
    - spinning intra-op threads fight whatever else runs on the cores (a Rasa server's event
      loop, the action server): p50 8.0 ms spinning vs 4.1 ms not, on 2 threads: off.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or default_threads())
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = bool(arena)
    options.enable_mem_pattern = bool(arena)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.log_severity_level = 3  # errors only
    return options


class OnnxEncoder:
    """`FineTunedEncoder`'s inference API over an exported graph (no TensorFlow model)."""

    def __init__(
        self,
        path: str | Path | bytes,
        runtime: EncoderRuntime,
        threads: int | None = None,
        arena: bool = False,
        spin: bool = False,
    ) -> None:
        """Opens the graph; only the runtime's tokenizer is used (`runtime.model` stays unloaded).

        Args:
            path: a file written by `export_onnx`, or its bytes (read from a model storage
                directory that may be gone by the time the component is built).
            runtime: the encoder folder's runtime (tokenizer, pad id, position limit).
            threads: intra-op threads (None = the cores this process may use).
            arena: ONNX Runtime's CPU memory arena (see `session_options`).
            spin: let idle intra-op threads spin (see `session_options`).
        """
        import onnxruntime as ort

        self.path = Path("<bytes>") if isinstance(path, bytes) else Path(path)
        self.runtime = runtime
        self.session = ort.InferenceSession(
            path if isinstance(path, bytes) else str(path),
            session_options(threads, arena, spin),
            providers=["CPUExecutionProvider"],
        )
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = {
            k[len(META_PREFIX) :]: v for k, v in meta.items() if k.startswith(META_PREFIX)
        }
        self.num_labels = int(self.metadata["num_labels"])
        self.hidden_size = int(self.metadata["hidden_size"])
        self.num_layers = int(self.metadata["num_layers"])
        self.trainable_layers = int(self.metadata["trainable_layers"])
        self.quantized = self.metadata.get("quantized") == "true"
        self._weights: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ heads

    def set_weights(self, arrays: dict[str, np.ndarray]) -> None:
        """Takes the tag / response heads from `FineTunedEncoder.get_weights()`' arrays.

        The layers and the intent head are in the graph already; the arrays must be the
        ones it was exported from.

        Raises:
            ValueError: the graph was exported from other weights (export it again).
        """
        expected = self.metadata.get("weights_sha256")
        if expected and weights_fingerprint(arrays) != expected:
            raise ValueError(
                f"{self.path} was exported from other weights than the ones given: "
                "export it again from the trained encoder (export_onnx)"
            )
        self._weights = dict(arrays)

    def get_weights(self) -> dict[str, np.ndarray]:
        """The arrays given to `set_weights` (so a loaded classifier persists as it was)."""
        return dict(self._weights)

    def head_arrays(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """A head's `(kernel, bias)` (`tags`, `responses`) from the arrays given."""
        return self._weights[f"{name}/kernel"], self._weights[f"{name}/bias"]

    @property
    def num_tags(self) -> int:
        """Tag head outputs (0 = no tag head)."""
        kernel = self._weights.get("tags/kernel")
        return 0 if kernel is None else int(kernel.shape[1])

    @property
    def num_responses(self) -> int:
        """Response head outputs (0 = no response head)."""
        kernel = self._weights.get("responses/kernel")
        return 0 if kernel is None else int(kernel.shape[1])

    def tag_logits(self, prediction: Prediction, word_spans: Sequence[tuple[int, int]]):
        """`[n_words, num_tags]` tag scores of a predicted text's words (spans in its text)."""
        return tag_logits(prediction, word_spans, *self.head_arrays("tags"))

    def response_logits(self, prediction: Prediction) -> np.ndarray:
        """`[num_responses]` response scores of a predicted text."""
        return response_logits(prediction, *self.head_arrays("responses"))

    # ------------------------------------------------------------------ inference

    def run(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
        """One padded batch (`[batch, width]` int64) -> hidden, sentence, logits."""
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        hidden, sentence, logits = self.session.run(None, feeds)
        return hidden, sentence, logits

    def predict(
        self,
        texts: Sequence[str],
        max_length: int = 64,
        batch_size: int = 64,
        buckets: Sequence[int] | None = None,
    ) -> list[Prediction]:
        """As `FineTunedEncoder.predict`: length-sorted batches, each padded to a bucket."""

        def forward(ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
            return self.run(ids.astype(np.int64), mask.astype(np.int64))

        return predict_in_batches(self.runtime, texts, max_length, batch_size, buckets, forward)

    def warm_up(self, buckets: Sequence[int], max_length: int) -> None:
        """Runs every bucket once so the first message pays no kernel set-up."""
        for bucket in normalise_buckets(buckets, max_length):
            self.predict([" ".join(["kefu"] * max(1, bucket - 2))], max_length, 1, (bucket,))
