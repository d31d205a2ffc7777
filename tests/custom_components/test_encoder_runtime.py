"""EncoderRuntime: bucketing, batching equivalence, single compiled graph, truncation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from custom_components.encoder.device import resolve_device
from custom_components.encoder.runtime import get_runtime, normalise_buckets, pick_bucket

TEXTS = [
    "where is my order",
    "我想退货",
    "track order number A-10023 please, it has been a very long time since i paid for it",
    "ok 😀",
    "iPhone 的保修期多长",
]


@pytest.fixture(scope="module")
def runtime(tiny_encoder_dir: Path):
    return get_runtime(tiny_encoder_dir, device="cpu")


@pytest.mark.parametrize("length, expected", [(1, 16), (16, 16), (17, 32), (64, 64), (200, 64)])
def test_pick_bucket(length, expected):
    assert pick_bucket(length, (16, 32, 64)) == expected


def test_buckets_are_capped_and_end_at_max_length():
    assert normalise_buckets([128, 16, 64, 16], 48) == (16, 48)


def test_runtime_is_shared_per_folder(tiny_encoder_dir: Path, runtime):
    assert get_runtime(tiny_encoder_dir, device="cpu") is runtime


def test_runtime_is_shared_per_resolved_device(tiny_encoder_dir: Path, runtime):
    if runtime.device != resolve_device("auto"):
        pytest.skip("a GPU is visible, so 'auto' and 'cpu' are different devices here")
    assert get_runtime(tiny_encoder_dir, device="auto") is runtime


def test_other_precision_on_the_same_folder_reuses_the_loaded_model(
    tiny_encoder_dir: Path, runtime
):
    other = get_runtime(tiny_encoder_dir, device="cpu", mixed_precision=True)

    assert other is not runtime
    assert other.model is runtime.model


def test_batch_and_single_give_the_same_features(runtime):
    batched = runtime.encode(TEXTS, max_length=64, batch_size=3)
    for text, together in zip(TEXTS, batched, strict=True):
        (alone,) = runtime.encode([text], max_length=64)
        np.testing.assert_allclose(alone.hidden, together.hidden, atol=1e-5)
        np.testing.assert_allclose(alone.sentence, together.sentence, atol=1e-5)


def test_outputs_keep_input_order_and_shapes(runtime):
    encoded = runtime.encode(TEXTS, max_length=64)

    assert len(encoded) == len(TEXTS)
    for result in encoded:
        assert result.hidden.shape == (len(result.piece_offsets), runtime.hidden_size)
        assert result.sentence.shape == (runtime.hidden_size,)
        np.testing.assert_allclose(result.sentence, result.hidden.mean(axis=0), atol=1e-5)


def test_forward_is_traced_once_for_every_shape(runtime):
    forward = runtime.forward_fn()
    runtime.encode(TEXTS, max_length=64, batch_size=2)
    runtime.encode(TEXTS[:1], max_length=16)
    runtime.encode(TEXTS * 5, max_length=32, batch_size=7)

    assert forward.experimental_get_tracing_count() == 1


def test_long_text_is_truncated_to_max_length(runtime):
    (result,) = runtime.encode([" ".join(["order"] * 100)], max_length=16)

    assert result.truncated
    assert result.hidden.shape[0] == 16


def test_empty_inputs(runtime):
    assert runtime.encode([]) == []
    (result,) = runtime.encode([""])
    assert result.hidden.shape == (2, runtime.hidden_size)  # [CLS] [SEP]
    assert np.isfinite(result.sentence).all()


def test_piece_offsets_skip_leading_whitespace(runtime):
    (result,) = runtime.encode(["  where   is"])
    spans = [tuple(s) for s in result.piece_offsets if s[1] > s[0]]

    assert spans == [(2, 7), (10, 12)]


def test_other_layer_is_a_separate_compiled_function(runtime):
    (last,) = runtime.encode(["where is my order"])
    (first,) = runtime.encode(["where is my order"], layer=1)

    assert first.hidden.shape == last.hidden.shape
    assert not np.allclose(first.hidden, last.hidden)


@pytest.mark.parametrize(
    "device, mixed, bf16_cpu, expected",
    [
        ("/CPU:0", False, True, "float32"),
        ("/CPU:0", True, True, "mixed_bfloat16"),
        ("/CPU:0", True, False, "float32"),  # emulated bfloat16 would only be slower
        ("/GPU:0", True, False, "mixed_float16"),
        ("/GPU:0", False, True, "float32"),
    ],
)
def test_precision_policy(monkeypatch, device, mixed, bf16_cpu, expected):
    from custom_components.encoder import device as device_module

    monkeypatch.setattr(device_module, "cpu_supports_bfloat16", lambda: bf16_cpu)
    assert device_module.precision_policy(device, mixed) == expected


def test_half_precision_features_match_full_precision(tiny_encoder_dir: Path, runtime):
    from custom_components.encoder.device import cpu_supports_bfloat16
    from custom_components.encoder.runtime import EncoderRuntime

    if not cpu_supports_bfloat16():
        pytest.skip("this CPU has no native bfloat16 instructions: the encoder stays float32")
    half = EncoderRuntime(tiny_encoder_dir, device="cpu", mixed_precision=True)
    assert half.precision == "mixed_bfloat16"
    full_out, half_out = runtime.encode(TEXTS), half.encode(TEXTS)
    for full, reduced in zip(full_out, half_out, strict=True):
        assert reduced.hidden.dtype == np.float32 and reduced.hidden.shape == full.hidden.shape
        cosine = float(
            full.sentence
            @ reduced.sentence
            / (np.linalg.norm(full.sentence) * np.linalg.norm(reduced.sentence))
        )
        assert cosine > 0.99
