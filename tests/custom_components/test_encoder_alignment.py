"""`align_pieces_to_tokens` / `pool_pieces_to_tokens`: sub-word pieces -> Rasa tokens."""

from __future__ import annotations

import numpy as np
import pytest

from custom_components.encoder.alignment import align_pieces_to_tokens, pool_pieces_to_tokens


@pytest.mark.parametrize(
    "piece_offsets, token_spans, expected",
    [
        # English: "where is my order", pieces "where", "is", "my", "or", "##der"
        (
            [(0, 5), (6, 8), (9, 11), (12, 14), (14, 17)],
            [(0, 5), (6, 8), (9, 11), (12, 17)],
            [[0], [1], [2], [3, 4]],
        ),
        # Chinese: "我想退货" as jieba tokens 我 / 想 / 退货, pieces 我想 / 退 / 货
        ([(0, 2), (2, 3), (3, 4)], [(0, 1), (1, 2), (2, 4)], [[0], [0], [1, 2]]),
        # Mixed: "iPhone 的保修期", pieces iPh / one / 的 / 保修 / 期, tokens iPhone / 的 / 保修期
        (
            [(0, 3), (3, 6), (7, 8), (8, 10), (10, 11)],
            [(0, 6), (7, 8), (8, 11)],
            [[0, 1], [2], [3, 4]],
        ),
        # Emoji: "ok 😀👍" -> one unknown piece covering both emoji, two emoji tokens
        ([(0, 2), (3, 5)], [(0, 2), (3, 4), (4, 5)], [[0], [1], [1]]),
        # Empty text: no pieces, no tokens
        ([], [], []),
        # Tokens but no pieces (everything truncated away)
        ([], [(0, 3)], [[]]),
        # A piece spanning a token boundary belongs to both tokens
        ([(0, 6)], [(0, 3), (3, 6)], [[0], [0]]),
        # Token with no piece (text after truncation), special tokens (0, 0) never align
        ([(0, 0), (0, 5), (0, 0)], [(0, 5), (6, 11)], [[1], []]),
        # A bare SentencePiece "▁" trimmed to an empty span stays out of every token
        ([(2, 2), (2, 4)], [(0, 1), (2, 4)], [[], [1]]),
    ],
    ids=[
        "english",
        "chinese",
        "mixed",
        "emoji",
        "empty",
        "no-pieces",
        "piece-spans-tokens",
        "token-without-piece",
        "bare-metaspace",
    ],
)
def test_align_pieces_to_tokens(piece_offsets, token_spans, expected):
    assert align_pieces_to_tokens(piece_offsets, token_spans) == expected


def test_pool_means_each_tokens_pieces_and_zeroes_tokens_without_pieces():
    vectors = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]], dtype=np.float32)
    pooled = pool_pieces_to_tokens(vectors, [(0, 2), (2, 4), (5, 7)], [(0, 4), (5, 7), (8, 9)])

    np.testing.assert_allclose(pooled, [[2.0, 1.0], [5.0, 4.0], [0.0, 0.0]])
    assert pooled.dtype == np.float32


def test_pool_keeps_shape_for_no_tokens():
    pooled = pool_pieces_to_tokens(np.ones((3, 4), np.float32), [(0, 1), (1, 2), (2, 3)], [])

    assert pooled.shape == (0, 4)
