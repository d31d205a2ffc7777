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
    rating_of,
    selected_response,
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


@pytest.mark.parametrize(
    "value, rating",
    [
        # Slot values: the buttons' "5", ints, full-width digits, lists (first item).
        (5, 5),
        (1, 1),
        ("5", 5),
        ("５", 5),
        (["3"], 3),
        ([4, 2], 4),
        # Typed English answers.
        ("five", 5),
        ("Five!", 5),
        ("  two  ", 2),
        ("5 stars", 5),
        ("1 star", 1),
        ("five stars", 5),
        ("4/5", 4),
        ("５／５", 5),
        ("4 out of 5", 4),
        ("3 points", 3),
        ("I'd give you a 4", 4),
        ("I\u2019d rate it 4 out of 5 stars", 4),
        ("give it 5 stars", 5),
        ("rate 4", 4),
        ("my rating: 5", 5),
        ("5 - great", 5),
        ("2 stars, bad", 2),
        ("⭐⭐⭐⭐⭐", 5),
        ("★★★☆☆", 3),
        # Typed Chinese answers.
        ("五", 5),
        ("五星", 5),
        ("5星", 5),
        ("五颗星", 5),
        ("4分", 4),
        ("给五分", 5),
        ("打4分", 4),
        ("五星好评", 5),
        ("给你们打五星，谢谢", 5),
        ("满分", 5),
        ("两星", 2),
        ("二星", 2),
        ("一星差评", 1),
        ("三星。", 3),
    ],
)
def test_a_rating_is_read_from_a_slot_value_or_a_whole_message(value, rating):
    assert rating_of(value) == rating


@pytest.mark.parametrize(
    "value",
    [
        # Outside 1-5, or not a whole number.
        0,
        6,
        "0",
        "6",
        "10",
        "4.5",
        "5/10",
        "10/10",
        "6 stars",
        "五十",
        # A number that belongs to something else.
        "5 pairs",
        "5 of them",
        "order 5",
        "KF-100005",
        "I have 3 questions",
        "3 days late",
        "is size 4 in stock",
        "两个",
        "五双",
        "3天",
        # Not a rating at all, or not a value a slot holds.
        "great",
        "give it",
        '/inform{"rating": "5"}',
        "",
        "   ",
        [],
        None,
        True,
        5.0,
    ],
)
def test_anything_not_clearly_a_rating_is_none(value):
    assert rating_of(value) is None


def test_the_selected_response_is_the_pick_for_the_retrieval_intent_asked_about():
    pick = {"intent_response_key": "faq/shipping_time", "confidence": 0.97}
    selectors = {"all_retrieval_intents": ["faq", "chitchat"], "default": {"response": pick}}
    assert selected_response(selectors, "faq") is pick
    assert selected_response(selectors, "chitchat") is None  # the pick is an FAQ answer
    assert selected_response(None, "faq") is None and selected_response({}, "faq") is None
