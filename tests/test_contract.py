"""contract.py: the names and cut-offs every part of Kefu reads from one place."""

from __future__ import annotations

import pytest

from contract import (
    DEFAULT_LANGUAGE,
    FRUSTRATION_WINDOW,
    LANGUAGES,
    MILD_FRUSTRATION,
    REPEATED_FRUSTRATION,
    STRONG_FRUSTRATION,
    URGENT_FRUSTRATION,
    frustration_label,
    frustration_of,
    is_strongly_negative,
    language_or_default,
)


@pytest.mark.parametrize(
    "parse_data, score",
    [
        ({"sentiment": {"label": "negative", "frustration": 0.83}}, 0.83),
        ({"sentiment": {"frustration": "0.5"}}, 0.5),
        ({"sentiment": {"frustration": "very"}}, 0.0),
        ({"sentiment": {"frustration": None}}, 0.0),
        ({"sentiment": None}, 0.0),
        ({"sentiment": "angry"}, 0.0),
        ({"text": "hi"}, 0.0),
        ({}, 0.0),
        (None, 0.0),
    ],
)
def test_frustration_of_a_message(parse_data, score):
    assert frustration_of(parse_data) == score


@pytest.mark.parametrize(
    "score, label",
    [
        (0.0, "calm"),
        (MILD_FRUSTRATION - 0.01, "calm"),
        (MILD_FRUSTRATION, "frustrated"),
        (STRONG_FRUSTRATION - 0.01, "frustrated"),
        (STRONG_FRUSTRATION, "angry"),
        (1.0, "angry"),
    ],
)
def test_one_label_at_the_same_cut_offs(score, label):
    assert frustration_label(score) == label
    assert is_strongly_negative(score) is (label == "angry")


def test_the_cut_offs_are_ordered():
    assert 0 < MILD_FRUSTRATION < STRONG_FRUSTRATION < URGENT_FRUSTRATION <= 1
    assert 1 <= REPEATED_FRUSTRATION <= FRUSTRATION_WINDOW


def test_languages():
    assert LANGUAGES == ("en", "zh") and DEFAULT_LANGUAGE in LANGUAGES
    assert language_or_default("zh") == "zh"
    assert language_or_default("fr") == language_or_default(None) == DEFAULT_LANGUAGE


def test_the_policy_defaults_are_the_contracts():
    from custom_components.frustration_policy import FrustrationPolicy

    defaults = FrustrationPolicy.get_default_config()
    assert defaults["threshold"] == STRONG_FRUSTRATION
    assert defaults["min_strong_messages"] == REPEATED_FRUSTRATION
    assert defaults["window"] == FRUSTRATION_WINDOW


def test_config_yml_does_not_repeat_the_policys_cut_offs():
    import yaml

    from tests.helpers import ROOT

    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    [policy] = [p for p in config["policies"] if p["name"].endswith("FrustrationPolicy")]
    assert set(policy) == {"name"}
