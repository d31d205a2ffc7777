"""Out of scope by distance: how far a message's sentence vector is from every intent's examples.

Confidence cannot catch a message that the intent head maps onto a shop intent with high
confidence ("set a timer for ten minutes" read as `track_order`): the softmax only compares the
intents with each other, never with "none of them". Distance to the training data can. Following
Podolskiy et al. (2021, "Revisiting Mahalanobis distance for transformer-based out-of-domain
detection"), after fine-tuning `fit_intent_gaussians` fits one mean per intent and one shared
(tied) covariance on the training examples' sentence vectors (the intent head's own input), and a
message scores its smallest Mahalanobis distance to the means.

The covariance is Ledoit-Wolf shrunk (scikit-learn): a few thousand examples in 384 dimensions,
some intents with a dozen, give a badly conditioned sample covariance whose inverse would blow up
the directions the data barely spans. The threshold is a quantile of the distances of held-out
in-scope examples, which the encoder was not trained on, as a real message is not (training
examples sit closer to their means): with 0.98, 2% of real in-scope messages are farther.

    gaussians = fit_intent_gaussians(fit_vectors, fit_intents, held_vectors, quantile=0.98)
    distance, nearest = gaussians.nearest(vectors)   # [n], [n] (index into gaussians.intents)
    far = distance > gaussians.threshold
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class IntentGaussians:
    """One mean per intent and a shared precision matrix (the inverse tied covariance).

    Attributes:
        intents: the intent of each row of `means`.
        means: `[num_intents, dim]` float32 mean sentence vector of each intent.
        precision: `[dim, dim]` float32 inverse of the shrunk within-intent covariance.
        threshold: the distance above which a message is out of scope.
    """

    intents: tuple[str, ...]
    means: np.ndarray
    precision: np.ndarray
    threshold: float

    def distances(self, vectors: np.ndarray) -> np.ndarray:
        """`[n, num_intents]` Mahalanobis distances of `[n, dim]` (or `[dim]`) vectors."""
        return _distances(vectors, *self._terms)

    @cached_property
    def _terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Computed once: per message only `x P x` and `x (P m)` remain, no `k * dim^2` work.
        return _precomputed(self.means, self.precision)

    def nearest(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`[n]` smallest distance of each vector and `[n]` the index of its nearest intent."""
        distances = self.distances(vectors)
        nearest = distances.argmin(axis=1)
        return distances[np.arange(len(distances)), nearest], nearest


def mahalanobis(vectors: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """`[n, k]` distances `sqrt((x - m)^T P (x - m))` of each vector to each mean (float64).

    Expanded as `x P x - 2 x (P m) + m P m`, so `n * k` differences of `dim` floats are never
    materialised (the fit scores thousands of examples against dozens of intents).
    """
    return _distances(vectors, *_precomputed(means, precision))


def _precomputed(
    means: np.ndarray, precision: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(P, P m, m P m)` in float64: what the distances need of the means and precision."""
    m = np.asarray(means, dtype=np.float64)
    p = np.asarray(precision, dtype=np.float64)
    pm = m @ p  # row i is (P m_i)^T: P is symmetric
    return p, pm, (pm * m).sum(axis=1)


def _distances(vectors: np.ndarray, p: np.ndarray, pm: np.ndarray, mpm: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    squared = ((x @ p) * x).sum(axis=1)[:, None] - 2.0 * (x @ pm.T) + mpm[None, :]
    return np.sqrt(np.maximum(squared, 0.0))


def fit_intent_gaussians(
    vectors: np.ndarray,
    intents: Sequence[str],
    held_vectors: np.ndarray,
    quantile: float,
) -> IntentGaussians:
    """Per-intent means and a Ledoit-Wolf tied precision, thresholded on held-out examples.

    Args:
        vectors: `[n, dim]` sentence vectors of the training examples of in-scope intents.
        intents: the intent of each row of `vectors`.
        held_vectors: `[m, dim]` sentence vectors of held-out in-scope examples (m >= 1).
        quantile: in (0, 1); the threshold is this quantile of the held-out examples' smallest
            distances, so `1 - quantile` of real in-scope messages are flagged.

    Returns:
        The fitted means, precision and threshold, stored in float32 (as persisted), the
        threshold computed from the stored arrays so that a loaded model decides alike.
    """
    from sklearn.covariance import LedoitWolf

    x = np.asarray(vectors, dtype=np.float64)
    labels = np.asarray(intents)
    names = tuple(sorted(set(intents)))
    means = np.stack([x[labels == name].mean(axis=0) for name in names])
    # Each example about its own intent's mean: the within-intent spread all intents share.
    residuals = x - means[np.searchsorted(names, labels)]
    shrunk = LedoitWolf(assume_centered=True).fit(residuals)
    means32 = means.astype(np.float32)
    precision32 = shrunk.precision_.astype(np.float32)
    held = mahalanobis(held_vectors, means32, precision32).min(axis=1)
    return IntentGaussians(names, means32, precision32, float(np.quantile(held, quantile)))


def out_of_scope_confidences(
    confidences: np.ndarray, out_of_scope_index: int, quantile: float
) -> np.ndarray:
    """Confidences for a message farther from every intent than the threshold.

    Only `1 - quantile` of real in-scope messages are that far, so every other intent keeps
    that share of its confidence (their order is unchanged) and the out-of-scope intent takes
    the rest: with 0.98 it has at least 0.98, the runner-up at most 0.02, so Rasa's
    `FallbackClassifier` (threshold and ambiguity gap) lets the out-of-scope answer through.
    """
    scaled = np.asarray(confidences, dtype=np.float64) * (1.0 - quantile)
    scaled[out_of_scope_index] = 0.0
    scaled[out_of_scope_index] = 1.0 - scaled.sum()
    return scaled
