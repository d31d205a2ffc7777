"""The cross-validation report's arithmetic (the training itself runs in `make cross-validate`)."""

import pytest

from bench.cross_validate import entity_set, f1, language_of, macro_f1, score


@pytest.mark.parametrize(
    "text, language",
    [
        ("where is my order", "en"),
        ("我的订单到哪了", "zh"),
        ("我的order到哪了", "zh"),
        ("KF-100023", "en"),
    ],
)
def test_language_of(text, language):
    assert language_of(text) == language


def test_f1_and_macro_f1():
    assert f1(0, 0, 0) == (0.0, 0.0, 0.0)
    assert f1(2, 0, 2) == (1.0, 0.5, pytest.approx(2 / 3))
    macro, per = macro_f1([("a", "a"), ("a", "b"), ("b", "b")])
    assert per == {"a": pytest.approx(2 / 3), "b": pytest.approx(2 / 3)}
    assert macro == pytest.approx(2 / 3)


def test_entity_set_ignores_language_and_sentiment():
    entities = [
        {"entity": "order_number", "value": "KF-100001", "start": 3, "end": 12},
        {"entity": "language", "value": "en", "start": 0, "end": 12},
        {"entity": "sentiment", "value": "neutral", "start": 0, "end": 12},
    ]
    assert entity_set(entities) == {("order_number", "KF-100001", 3, 12)}


def test_score_per_language_records():
    records = [
        {
            "intent": "faq",
            "predicted_intent": "faq",
            "response_key": "faq/invoice",
            "predicted_response_key": "faq/invoice",
            "entities": [],
            "predicted_entities": [],
        },
        {
            "intent": "check_stock",
            "predicted_intent": "faq",
            "response_key": None,
            "predicted_response_key": None,
            "entities": [("colour", "black", 0, 2)],
            "predicted_entities": [("colour", "black", 0, 2), ("size", "42", 3, 5)],
        },
    ]
    metrics = score(records)
    assert metrics["intent_accuracy"] == 0.5
    assert metrics["response_selection_accuracy"] == 1.0
    assert (metrics["entity_precision"], metrics["entity_recall"]) == (0.5, 1.0)
    assert metrics["per_entity_f1"] == {"colour": 1.0, "size": 0.0}
