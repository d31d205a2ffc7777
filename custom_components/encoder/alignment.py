"""Pool sub-word pieces back onto the tokens of a Rasa tokenizer, by character overlap."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Span = tuple[int, int]


def overlap_matrix(piece_offsets: Sequence[Span], token_spans: Sequence[Span]) -> np.ndarray:
    """Returns a `[n_tokens, n_pieces]` boolean matrix: piece j overlaps token i's characters.

    Spans are half-open `[start, end)` character offsets into the same text. Empty pieces
    (`start >= end`: special tokens, a bare SentencePiece `▁`) never overlap anything.
    """
    pieces = np.asarray(piece_offsets, dtype=np.int64).reshape(-1, 2)
    tokens = np.asarray(token_spans, dtype=np.int64).reshape(-1, 2)
    p_start, p_end = pieces[:, 0][None, :], pieces[:, 1][None, :]
    t_start, t_end = tokens[:, 0][:, None], tokens[:, 1][:, None]
    return (p_start < t_end) & (p_end > t_start) & (p_end > p_start)


def align_pieces_to_tokens(
    piece_offsets: Sequence[Span], token_spans: Sequence[Span]
) -> list[list[int]]:
    """For each token, the indices of the pieces that cover any of its characters.

    A piece spanning a token boundary belongs to both tokens; a token no piece covers (text
    cut off by truncation, characters the tokenizer's normaliser deleted) gets an empty list.

    Args:
        piece_offsets: `(start, end)` of each sub-word piece, in model input order.
        token_spans: `(start, end)` of each Rasa token.

    Returns:
        One list of piece indices per token, in piece order.
    """
    matrix = overlap_matrix(piece_offsets, token_spans)
    return [np.flatnonzero(row).tolist() for row in matrix]


def pool_pieces_to_tokens(
    piece_vectors: np.ndarray, piece_offsets: Sequence[Span], token_spans: Sequence[Span]
) -> np.ndarray:
    """Mean of each token's piece vectors: `[n_pieces, dim]` -> `[n_tokens, dim]`.

    Tokens without pieces get a zero vector, which Rasa's featurizers treat as "no feature".
    """
    weights = overlap_matrix(piece_offsets, token_spans).astype(piece_vectors.dtype)
    counts = weights.sum(axis=1, keepdims=True)
    return (weights @ piece_vectors) / np.maximum(counts, 1.0)
