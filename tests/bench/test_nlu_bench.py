"""The NLU benchmark's split and scoring (the pipelines themselves run in `bench.nlu_bench`)."""

import pytest

from bench.nlu_bench import evaluate, main, pick_threshold, split_train, top


def _rows():
    rows = [{"text": f"{intent} {i}", "intent": intent} for intent in "abc" for i in range(10)]
    return rows + [{"text": f"elsewhere {i}", "intent": "oos"} for i in range(10)]


def test_split_trains_a_share_of_out_of_scope_and_tunes_the_rest():
    fit, tune = split_train(_rows(), "oos", 0.2, seed=13, train_oos_fraction=0.5)
    texts = lambda rows: {r["text"] for r in rows}  # noqa: E731
    assert not texts(fit) & texts(tune)
    assert texts(fit) | texts(tune) == texts(_rows())
    for intent in "abc":
        assert sum(r["intent"] == intent for r in tune) == 2
    assert sum(r["intent"] == "oos" for r in fit) == 5
    assert sum(r["intent"] == "oos" for r in tune) == 5


def test_out_of_scope_share_leaves_the_in_scope_split_alone():
    in_scope = lambda rows: [r for r in rows if r["intent"] != "oos"]  # noqa: E731
    oos = lambda rows: [r for r in rows if r["intent"] == "oos"]  # noqa: E731
    fit_none, tune_none = split_train(_rows(), "oos", 0.2, seed=13)
    fit_half, tune_half = split_train(_rows(), "oos", 0.2, seed=13, train_oos_fraction=0.5)
    assert in_scope(tune_half) == in_scope(tune_none)
    assert in_scope(fit_half) == in_scope(fit_none)
    assert not oos(fit_none) and len(oos(tune_none)) == 10
    fit_all, tune_all = split_train(_rows(), "oos", 0.2, seed=13, train_oos_fraction=1.0)
    assert len(oos(fit_all)) == 10 and not oos(tune_all)


def test_a_trained_out_of_scope_intent_is_rejected_at_any_threshold():
    assert top({"intent": {"name": "oos", "confidence": 0.9}}, "oos") == ("oos", 0.0)
    assert top({"intent": {"name": "a", "confidence": 0.9}}, "oos") == ("a", 0.9)
    assert top({"intent": None}, "oos") == ("None", 0.0)


def test_threshold_counts_messages_already_predicted_out_of_scope():
    # Two of four out-of-scope tuning rows were predicted as the trained out-of-scope intent.
    tune = [
        ("oos", "oos", 0.0),
        ("oos", "oos", 0.0),
        ("oos", "a", 0.3),
        ("oos", "b", 0.8),
        ("a", "a", 0.9),
    ]
    threshold, rule = pick_threshold(tune, "oos", target_oos_recall=0.75, keep_in_scope=0.97)
    assert threshold == pytest.approx(0.3, abs=1e-6) and threshold > 0.3
    assert "0.75" in rule
    # Half the recall needs no threshold at all: the trained intent already rejects those.
    assert pick_threshold(tune, "oos", 0.5, 0.97)[0] == pytest.approx(0.0, abs=1e-6)

    test = [
        ("a", "a", 0.9),
        ("a", "b", 0.95),  # wrong intent: closed-set and in-scope miss
        ("b", "b", 0.2),  # right intent, rejected by the threshold
        ("b", "oos", 0.0),  # trained out-of-scope intent on an in-scope message
        ("oos", "oos", 0.0),
        ("oos", "a", 0.6),
    ]
    metrics = evaluate(test, "oos", threshold)
    assert metrics["in_scope_accuracy"] == pytest.approx(1 / 4)
    assert metrics["closed_set_accuracy"] == pytest.approx(2 / 4)
    assert metrics["oos_recall"] == pytest.approx(1 / 2)
    # Predicted out of scope: ("b", 0.2), ("b", "oos") and ("oos", "oos").
    assert metrics["oos_precision"] == pytest.approx(1 / 3)


def test_out_of_range_out_of_scope_share_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--train-oos-fraction", "1.5"])
    assert exit_.value.code == 2
    assert "--train-oos-fraction must be in [0, 1]" in capsys.readouterr().err
