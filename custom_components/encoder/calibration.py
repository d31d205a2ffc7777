"""Calibrated intent confidences: temperature scaling and an out-of-scope ("none of these") logit.

`TransformerIntentClassifier` fits both on a held-out slice of its training data; the CLINC150
benchmark variants (`bench/clinc_variants.py`) use the same functions, so the scores they report
are the ones the component gives.

Confidences are a softmax over the intents plus one constant logit `b` for "none of these":
`p_i = exp(z_i / T) / (exp(b) + sum_j exp(z_j / T))`. A message with little evidence (a low
log-sum-exp of its scaled logits) loses most of its mass to `b`, so its top confidence is low
and Rasa's `FallbackClassifier` sets `nlu_fallback`. Without `b` this is a plain softmax.
"""

from __future__ import annotations

import math

import numpy as np


def logsumexp(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-sum-exp (kept dims), numerically stable."""
    top = logits.max(axis=-1, keepdims=True)
    return top + np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax, numerically stable."""
    return logits - logsumexp(logits)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    return np.exp(log_softmax(logits))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The softmax temperature minimising the negative log-likelihood on held-out data."""
    if len(labels) == 0:
        return 1.0
    best_t, best_nll = 1.0, math.inf
    for t in np.exp(np.linspace(np.log(0.2), np.log(10.0), 121)):
        nll = float(-log_softmax(logits / t)[np.arange(len(labels)), labels].mean())
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def background_logit(scaled_logits: np.ndarray, quantile: float) -> float | None:
    """The out-of-scope logit: `quantile` of the held-out messages' log-sum-exp evidence.

    A message with less evidence than all but `quantile` of the real in-scope messages then
    keeps at most half of its confidence.

    Args:
        scaled_logits: `[n, num_labels]` held-out in-scope logits, divided by the temperature.
        quantile: in (0, 1); 0 (or no held-out rows) = no out-of-scope logit.
    """
    if quantile <= 0 or len(scaled_logits) == 0:
        return None
    return float(np.quantile(logsumexp(scaled_logits), quantile))


def calibrated_confidences(
    logits: np.ndarray, temperature: float, background: float | None
) -> np.ndarray:
    """Softmax of `logits / temperature` beside the out-of-scope logit `background` (None = none).

    With a background logit the confidences add up to less than 1; the rest is out-of-scope.
    """
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    if background is None:
        return softmax(scaled)
    return np.exp(scaled - np.logaddexp(background, logsumexp(scaled)))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-1 confidence: bin-weighted |accuracy - confidence| gap."""
    if len(labels) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)
