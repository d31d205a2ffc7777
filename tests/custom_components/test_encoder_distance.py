"""Tests for the out-of-scope distance check: intent Gaussians with a tied, shrunk covariance."""

from __future__ import annotations

import numpy as np
import pytest

from custom_components.encoder.distance import (
    fit_intent_gaussians,
    mahalanobis,
    out_of_scope_confidences,
)

DIM = 8
# Three intents, one shared elongated spread: wide along the first axis, narrow along the rest.
CENTRES = {"track_order": 0.0, "return_item": 20.0, "cancel_order": 40.0}
SCALES = np.array([3.0, *([0.5] * (DIM - 1))])


def sample(rng: np.random.Generator, per_intent: int) -> tuple[np.ndarray, list[str]]:
    vectors, intents = [], []
    for intent, centre in CENTRES.items():
        mean = np.zeros(DIM)
        mean[1] = centre
        vectors.append(mean + rng.normal(size=(per_intent, DIM)) * SCALES)
        intents += [intent] * per_intent
    return np.concatenate(vectors), intents


@pytest.fixture(scope="module")
def gaussians():
    rng = np.random.default_rng(0)
    vectors, intents = sample(rng, 2000)
    held, _ = sample(rng, 300)
    return fit_intent_gaussians(vectors, intents, held, quantile=0.95)


def test_fresh_in_scope_messages_are_flagged_at_about_one_minus_the_quantile(gaussians):
    fresh, intents = sample(np.random.default_rng(1), 1000)

    distance, nearest = gaussians.nearest(fresh)

    assert (distance > gaussians.threshold).mean() == pytest.approx(0.05, abs=0.015)
    assert [gaussians.intents[i] for i in nearest] == intents


def test_a_point_far_from_every_intent_is_over_the_threshold(gaussians):
    far = np.zeros(DIM)
    far[1], far[2] = 10.0, 4.0  # between two intents and off their narrow axis

    distance, _ = gaussians.nearest(far)

    assert distance[0] > 2 * gaussians.threshold


def test_the_shared_covariance_shapes_the_distance(gaussians):
    along_the_wide_axis = np.zeros(DIM)
    along_the_wide_axis[0] = 6.0  # 2 standard deviations of the wide axis
    across_a_narrow_one = np.zeros(DIM)
    across_a_narrow_one[2] = 2.0  # 4 standard deviations of a narrow axis

    wide, narrow = gaussians.nearest(np.stack([along_the_wide_axis, across_a_narrow_one]))[0]

    # Euclidean distance would rank them the other way round (6 > 2).
    assert wide == pytest.approx(2.0, rel=0.1) and narrow == pytest.approx(4.0, rel=0.1)


def test_mahalanobis_matches_the_definition():
    rng = np.random.default_rng(2)
    root = rng.normal(size=(DIM, DIM))
    precision = root @ root.T + np.eye(DIM)
    means, vectors = rng.normal(size=(3, DIM)), rng.normal(size=(5, DIM))

    expected = [[np.sqrt((x - m) @ precision @ (x - m)) for m in means] for x in vectors]

    np.testing.assert_allclose(mahalanobis(vectors, means, precision), expected, rtol=1e-9)


def test_fewer_examples_than_dimensions_still_give_finite_distances():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(10, 64))
    intents = ["a"] * 5 + ["b"] * 5

    fitted = fit_intent_gaussians(vectors, intents, rng.normal(size=(4, 64)), quantile=0.5)

    assert np.isfinite(fitted.threshold) and fitted.threshold > 0
    assert np.isfinite(fitted.distances(rng.normal(size=(3, 64)))).all()
    assert fitted.means.dtype == fitted.precision.dtype == np.float32
    assert fitted.means.shape == (2, 64) and fitted.precision.shape == (64, 64)


def test_the_threshold_is_the_held_out_quantile_of_the_stored_arrays(gaussians):
    held, _ = sample(np.random.default_rng(4), 50)
    vectors, intents = sample(np.random.default_rng(5), 200)

    fitted = fit_intent_gaussians(vectors, intents, held, quantile=0.8)

    smallest = mahalanobis(held, fitted.means, fitted.precision).min(axis=1)
    assert fitted.threshold == pytest.approx(np.quantile(smallest, 0.8), rel=1e-12)
    assert fitted.intents == tuple(sorted(CENTRES))


def test_far_messages_give_the_out_of_scope_intent_the_confidence_the_others_lose():
    confidences = np.array([0.05, 0.9, 0.04, 0.01])  # out_of_scope is index 3

    flagged = out_of_scope_confidences(confidences, 3, quantile=0.98)

    np.testing.assert_allclose(flagged[:3], confidences[:3] * 0.02)
    assert flagged[3] == pytest.approx(1 - 0.02 * 0.99) and flagged.sum() == pytest.approx(1.0)
    assert list(np.argsort(flagged[:3])) == list(np.argsort(confidences[:3]))
