"""Tests for the calibration maths shared by the intent classifier and the CLINC benchmark."""

from __future__ import annotations

import numpy as np
import pytest

from custom_components.encoder.calibration import (
    background_logit,
    calibrated_confidences,
    expected_calibration_error,
    fit_temperature,
    log_softmax,
    logsumexp,
    softmax,
)


def test_logsumexp_is_stable_for_large_logits():
    logits = np.array([[1000.0, 1000.0], [-1000.0, -1000.0]])

    np.testing.assert_allclose(logsumexp(logits)[:, 0], [1000.0 + np.log(2), -1000.0 + np.log(2)])


def test_softmax_rows_sum_to_one_and_match_log_softmax():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])

    probs = softmax(logits)

    np.testing.assert_allclose(probs.sum(axis=1), [1.0, 1.0])
    np.testing.assert_allclose(np.log(probs), log_softmax(logits))


def test_calibrated_confidences_without_background_are_the_tempered_softmax():
    logits = np.array([4.0, 2.0, 0.0])

    np.testing.assert_allclose(calibrated_confidences(logits, 2.0, None), softmax(logits / 2.0))


def test_background_logit_takes_mass_from_messages_with_little_evidence():
    confident, unsure = np.array([8.0, 0.0]), np.array([0.5, 0.0])

    high = calibrated_confidences(confident, 1.0, background=2.0)
    low = calibrated_confidences(unsure, 1.0, background=2.0)

    assert high.sum() < 1.0 and low.sum() < 1.0
    assert low.max() < 0.5 < high.max()
    # The ranking itself does not change.
    assert np.argmax(low) == np.argmax(unsure)


def test_background_logit_at_the_evidence_leaves_half_the_confidence():
    logits = np.array([[1.0, 1.0]])
    evidence = float(logsumexp(logits)[0, 0])

    assert calibrated_confidences(logits, 1.0, evidence).sum() == pytest.approx(0.5)
    assert background_logit(logits, 0.5) == pytest.approx(evidence)


def test_fit_temperature_undoes_overconfident_logits():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=400)
    # Calibrated logits: the true label gets +1; then made 4x too sharp.
    logits = rng.normal(size=(400, 3))
    logits[np.arange(400), labels] += 1.0

    temperature = fit_temperature(logits * 4.0, labels)

    assert 3.0 < temperature < 5.5
    assert fit_temperature(logits[:0], labels[:0]) == 1.0


def test_expected_calibration_error_is_the_confidence_accuracy_gap():
    labels = np.array([0, 0, 0, 0])
    always_right = np.array([[0.9, 0.1]] * 4)
    half_right = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])

    assert expected_calibration_error(always_right, labels) == pytest.approx(0.1)
    # One bin: 0.9 confident, half right.
    assert expected_calibration_error(half_right, labels) == pytest.approx(0.4)
    assert expected_calibration_error(always_right[:0], labels[:0]) == 0.0
