"""OnnxEncoder: the exported fine-tuned encoder gives FineTunedEncoder's predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="the ONNX path needs `onnx` (pip install onnx)")
pytest.importorskip("onnxruntime", reason="the ONNX path needs `onnxruntime`")

from custom_components.encoder.finetune import FineTunedEncoder  # noqa: E402
from custom_components.encoder.onnx_encoder import OnnxEncoder, export_onnx  # noqa: E402
from custom_components.encoder.runtime import EncoderRuntime, get_runtime  # noqa: E402

TEXTS = [
    "where is my order",
    "我想退货",
    "track order number A-10023 please, it has been a very long time since i paid for it",
    "ok 😀",
    "iPhone 的保修期多长",
    "cancel my order please",
    "",
]
LABELS = [0, 1, 0, 2, 1, 2, 0]
BUCKETS = (8, 16, 32)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def encoder(tiny_encoder_dir: Path) -> FineTunedEncoder:
    """A fine-tuned encoder with all three heads, trained a few steps so the top layer differs
    from the frozen model's copy of it."""
    encoder = FineTunedEncoder(
        get_runtime(tiny_encoder_dir, device="cpu"),
        trainable_layers=1,
        num_labels=3,
        seed=1,
        num_tags=3,
        num_responses=2,
    )
    spans = [[(i, i + 1)] for i, _ in enumerate(TEXTS)]  # any span works for the tag loss
    encoder.fit(
        TEXTS,
        LABELS,
        epochs=3,
        learning_rate=1e-2,
        head_learning_rate=1e-2,
        batch_size=4,
        word_spans=spans,
        tags=[[label] for label in LABELS],
        responses=[label % 2 for label in LABELS],
    )
    return encoder


@pytest.fixture(scope="module")
def exported(encoder, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("onnx")
    export_onnx(encoder, folder / "fp32.onnx", quantize=False)
    export_onnx(encoder, folder / "int8.onnx", quantize=True)
    return {"fp32": folder / "fp32.onnx", "int8": folder / "int8.onnx"}


def onnx_encoder(path: Path, encoder: FineTunedEncoder, runtime=None) -> OnnxEncoder:
    onnx = OnnxEncoder(path, runtime or encoder.runtime, threads=1)
    onnx.set_weights(encoder.get_weights())
    return onnx


def test_fine_tuning_moved_the_top_layer_away_from_the_frozen_copy(encoder):
    frozen = encoder.runtime.model.bert.encoder.layer[1].get_weights()
    tuned = encoder.top[0].get_weights()

    assert any(not np.allclose(a, b) for a, b in zip(frozen, tuned, strict=True))


def test_float32_export_matches_tensorflow(encoder, exported):
    expected = encoder.predict(TEXTS, max_length=64, batch_size=4, buckets=BUCKETS)

    got = onnx_encoder(exported["fp32"], encoder).predict(TEXTS, 64, 4, BUCKETS)

    for a, b in zip(expected, got, strict=True):
        assert b.hidden.shape == a.hidden.shape
        np.testing.assert_array_equal(b.piece_offsets, a.piece_offsets)
        np.testing.assert_allclose(b.hidden, a.hidden, atol=1e-4)
        np.testing.assert_allclose(b.sentence, a.sentence, atol=1e-4)
        np.testing.assert_allclose(b.logits, a.logits, atol=1e-4)


def test_heads_score_onnx_predictions_as_tensorflow_does(encoder, exported):
    onnx = onnx_encoder(exported["fp32"], encoder)
    (expected,) = encoder.predict(["where is my order"])
    (got,) = onnx.predict(["where is my order"])
    words = [(0, 5), (6, 8), (9, 11), (12, 17)]

    np.testing.assert_allclose(
        onnx.tag_logits(got, words), encoder.tag_logits(expected, words), atol=1e-4
    )
    np.testing.assert_allclose(
        onnx.response_logits(got), encoder.response_logits(expected), atol=1e-4
    )
    assert (onnx.num_tags, onnx.num_responses) == (3, 2)


def test_int8_keeps_the_intent_and_the_sentence_direction(encoder, exported):
    full = onnx_encoder(exported["fp32"], encoder).predict(TEXTS, 64, 4, BUCKETS)

    int8 = onnx_encoder(exported["int8"], encoder).predict(TEXTS, 64, 4, BUCKETS)

    for a, b in zip(full, int8, strict=True):
        assert b.logits.argmax() == a.logits.argmax()
        assert cosine(a.sentence, b.sentence) > 0.99


def test_int8_stores_the_word_embeddings_once_and_looks_rows_up(encoder, exported):
    import onnx

    model = onnx.load(str(exported["int8"]))
    vocab = encoder.runtime.tokenizer.get_vocab_size()
    tables = [t for t in model.graph.initializer if t.dims and t.dims[0] == vocab]
    (table,) = tables  # one copy of the word embeddings ...
    readers = [n.op_type for n in model.graph.node if table.name in n.input]

    assert table.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    assert readers == ["Gather"]  # ... only ever looked up, row by row
    assert exported["int8"].stat().st_size < exported["fp32"].stat().st_size


# int8 quantizes activations with one scale per matrix product over the whole padded batch,
# so batch-mates and padding move its outputs by round-off of the int8 grid (~1e-3).
@pytest.mark.parametrize("kind, atol", [("fp32", 1e-5), ("int8", 1e-2)])
def test_batches_and_buckets_give_the_same_result_as_one_by_one(encoder, exported, kind, atol):
    onnx = onnx_encoder(exported[kind], encoder)

    together = onnx.predict(TEXTS, max_length=64, batch_size=3, buckets=BUCKETS)

    for text, batched in zip(TEXTS, together, strict=True):
        (alone,) = onnx.predict([text], max_length=64, buckets=None)
        np.testing.assert_array_equal(alone.piece_offsets, batched.piece_offsets)
        np.testing.assert_allclose(alone.hidden, batched.hidden, atol=atol)
        np.testing.assert_allclose(alone.sentence, batched.sentence, atol=atol)
        np.testing.assert_allclose(alone.logits, batched.logits, atol=atol)


def test_empty_input_gives_no_predictions(encoder, exported):
    assert onnx_encoder(exported["int8"], encoder).predict([]) == []


def test_long_text_is_truncated_to_max_length(encoder, exported):
    onnx = onnx_encoder(exported["fp32"], encoder)

    (prediction,) = onnx.predict([" ".join(["order"] * 100)], max_length=16)

    assert prediction.hidden.shape == (16, encoder.hidden_size)
    assert prediction.piece_offsets.shape == (16, 2)


def test_onnx_path_never_loads_the_tensorflow_model(tiny_encoder_dir, encoder, exported):
    runtime = EncoderRuntime(tiny_encoder_dir, device="cpu")  # not the cached, loaded one
    onnx = onnx_encoder(exported["int8"], encoder, runtime)

    (prediction,) = onnx.predict(["where is my order"])
    onnx.tag_logits(prediction, [(0, 5)])
    onnx.warm_up(BUCKETS, 64)

    assert not runtime.model_loaded
    assert runtime.model is not None and runtime.model_loaded  # loads on first use


def test_graph_exported_from_other_weights_is_refused(encoder, exported):
    onnx = OnnxEncoder(exported["fp32"], encoder.runtime)
    weights = encoder.get_weights()
    weights["head/bias"] = weights["head/bias"] + 1.0

    with pytest.raises(ValueError, match="export it again"):
        onnx.set_weights(weights)


def test_metadata_describes_the_exported_encoder(encoder, exported):
    onnx = OnnxEncoder(exported["int8"], encoder.runtime)

    assert onnx.quantized and not OnnxEncoder(exported["fp32"], encoder.runtime).quantized
    assert (onnx.num_labels, onnx.hidden_size) == (3, encoder.hidden_size)
    assert (onnx.num_layers, onnx.trainable_layers) == (2, 1)


def test_graph_can_be_opened_from_bytes(encoder, exported):
    onnx = OnnxEncoder(exported["fp32"].read_bytes(), encoder.runtime)
    onnx.set_weights(encoder.get_weights())
    (expected,) = onnx_encoder(exported["fp32"], encoder).predict(["我想退货"])

    (got,) = onnx.predict(["我想退货"])

    np.testing.assert_allclose(got.logits, expected.logits, atol=1e-6)
