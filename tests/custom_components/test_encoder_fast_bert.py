"""FastBert computes what TFBertModel computes, from the same weights, padding or not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from custom_components.encoder.runtime import get_runtime


@pytest.fixture(scope="module")
def runtime(tiny_encoder_dir: Path):
    return get_runtime(tiny_encoder_dir, device="cpu")


@pytest.fixture(scope="module")
def batch(runtime):
    """Ragged rows padded to one width: full, half, a single piece, and the specials only."""
    rng = np.random.default_rng(7)
    width = 12
    ids = rng.integers(5, 90, size=(4, width)).astype(np.int32)
    mask = np.zeros_like(ids)
    for row, length in enumerate((width, 6, 1, 2)):
        mask[row, :length] = 1
        ids[row, length:] = runtime.pad_id
    return ids, mask


def reference(runtime, ids, mask):
    """All hidden states of the loaded TFBertModel (index 0 = embeddings)."""
    import tensorflow as tf

    out = runtime.model(
        input_ids=tf.constant(ids),
        attention_mask=tf.constant(mask),
        token_type_ids=tf.zeros_like(ids),
        output_hidden_states=True,
        training=False,
    )
    return [h.numpy() for h in out.hidden_states]


def test_float32_matches_tfbertmodel_on_real_pieces_of_every_layer(runtime, batch):
    from custom_components.encoder.fast_bert import FastBert

    ids, mask = batch
    expected = reference(runtime, ids, mask)
    fast = FastBert(runtime.model, "float32")
    real = mask.astype(bool)

    assert len(expected) == fast.num_layers + 1
    for layers, states in enumerate(expected):
        hidden = fast(ids, mask, layers=layers).numpy()
        assert hidden.shape == states.shape
        np.testing.assert_allclose(hidden[real], states[real], atol=2e-5, rtol=1e-4)
        # Padding positions are zero, never states of other rows.
        assert not hidden[~real].any()


def test_padding_does_not_change_a_row(runtime, batch):
    from custom_components.encoder.fast_bert import FastBert

    ids, mask = batch
    fast = FastBert(runtime.model, "float32")
    padded = fast(ids, mask).numpy()
    alone = fast(ids[1:2, :6], mask[1:2, :6]).numpy()

    np.testing.assert_allclose(padded[1, :6], alone[0], atol=1e-5)


def test_bfloat16_stays_close_to_float32(runtime, batch):
    from custom_components.encoder.fast_bert import FastBert

    ids, mask = batch
    full = FastBert(runtime.model, "float32")(ids, mask).numpy()
    half = FastBert(runtime.model, "bfloat16")(ids, mask).numpy()
    real = mask.astype(bool)

    assert half.dtype == np.float32
    a, b = full[real], half[real]
    cosine = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.min() > 0.99


def test_runtime_layers_map_to_hugging_face_hidden_states(runtime):
    assert runtime.layer_count(-1) == runtime.num_layers
    assert runtime.layer_count(0) == 0
    assert runtime.layer_count(-(runtime.num_layers + 1)) == 0
    with pytest.raises(ValueError, match="hidden states 0.."):
        runtime.layer_count(runtime.num_layers + 1)


def test_runtime_forward_returns_the_requested_layer(runtime, batch):
    import tensorflow as tf

    ids, mask = batch
    expected = reference(runtime, ids, mask)
    real = mask.astype(bool)
    for layer in (-1, 1):
        hidden, sentence = runtime.forward_fn(layer)(tf.constant(ids), tf.constant(mask))
        np.testing.assert_allclose(hidden.numpy()[real], expected[layer][real], atol=2e-5)
        weights = mask[:, :, None].astype(np.float32)
        mean = (expected[layer] * weights).sum(axis=1) / weights.sum(axis=1)
        np.testing.assert_allclose(sentence.numpy(), mean, atol=2e-5)


def test_unsupported_activation_is_refused(runtime, monkeypatch):
    from custom_components.encoder.fast_bert import FastBert

    monkeypatch.setattr(runtime.model.config, "hidden_act", "relu")
    with pytest.raises(ValueError, match="relu"):
        FastBert(runtime.model, "float32")
