"""The scope benchmark's reading of parses and its scoring (the model runs in `bench.scope_bench`)."""

from pathlib import Path

import pytest

from bench.scope_bench import (
    Row,
    evenly_spaced,
    is_handled,
    load_clinc,
    load_near_misses,
    main,
    normalise,
    predicted_label,
    render,
    score,
)


def _parse(intent, confidence=0.9, selector_key=None, response_key=None, full=None):
    """A `parse_message` result shaped like rasa 3.6's, with one ResponseSelector."""
    parse = {"text": "x", "intent": {"name": intent, "confidence": confidence}, "entities": []}
    if full:
        parse["intent"]["full_retrieval_intent_name"] = full
    if response_key:
        parse["response_selector"] = {
            "all_retrieval_intents": ["faq", "chitchat", "decline"],
            selector_key: {
                "response": {
                    "responses": [{"text": "..."}],
                    "confidence": 0.8,
                    "intent_response_key": response_key,
                    "utter_action": f"utter_{response_key}",
                },
                "ranking": [],
            },
        }
    return parse


def test_a_retrieval_intent_is_read_with_its_response_key():
    parse = _parse("faq", 0.7, "default", "faq/shipping_cost")
    assert predicted_label(parse) == ("faq/shipping_cost", 0.7)
    # A selector trained for one retrieval intent answers under that intent's name.
    assert predicted_label(_parse("decline", 0.6, "decline", "decline/password"))[0] == (
        "decline/password"
    )
    assert predicted_label(_parse("chitchat", full="chitchat/joke"))[0] == "chitchat/joke"


def test_a_response_key_of_another_intent_is_not_borrowed():
    # Top intent faq, but the selector picked a joke: no faq answer is right.
    assert predicted_label(_parse("faq", 0.7, "default", "chitchat/joke"))[0] == "faq"
    # A plain intent ignores whatever the selector picked on the side.
    assert predicted_label(_parse("greet", 0.9, "default", "faq/contact"))[0] == "greet"
    assert predicted_label({"intent": None}) == ("None", None)


def test_what_counts_as_handling_an_out_of_scope_request():
    for handled in ("out_of_scope", "nlu_fallback", "decline/account", "human_handoff"):
        assert is_handled(handled)
    assert is_handled("payment_problem")
    for answered in ("order_status", "faq/membership", "chitchat/joke", "decline", "greet"):
        assert not is_handled(answered)


def _row(group, expected, predicted, text="msg", origin="", seconds=0.01):
    source, language = group.split("/")
    expected = (expected,) if isinstance(expected, str) else tuple(expected)
    return Row(source, language, text, expected, origin, predicted, 0.9, seconds)


def test_score_splits_in_scope_accuracy_from_out_of_scope_handling():
    rows = [
        _row("clinc/en", "order_status", "order_status"),
        _row("clinc/en", "order_status", "nlu_fallback", "where is it"),  # rejected
        _row("clinc/en", ["greet", "chitchat/how_are_you"], "chitchat/how_are_you"),
        _row("clinc/en", "out_of_scope", "out_of_scope", origin="translate"),
        _row("clinc/en", "out_of_scope", "decline/account", origin="pin_change"),  # handled
        _row("clinc/en", "out_of_scope", "order_status", "where is my bag", "lost_luggage"),
        _row("clinc/en", "decline/place_order", "decline/place_order", origin="order"),
        _row("clinc/en", "decline/place_order", "recommend", "buy me one", "order"),
        _row("near_miss/zh", "faq/cancellation_fee", "faq/return_policy", "取消要钱吗"),
        _row("near_miss/zh", "decline/password", "decline/account", "密码忘了"),
    ]
    scores = score(rows)
    clinc = scores["groups"]["clinc/en"]
    assert clinc["rows"] == 8
    assert (clinc["in_scope_rows"], clinc["in_scope_accuracy"]) == (3, pytest.approx(2 / 3))
    assert clinc["in_scope_rejected"] == pytest.approx(1 / 3)
    assert clinc["out_of_scope_rows"] == 5
    assert clinc["out_of_scope_handled"] == pytest.approx(3 / 5)
    assert (clinc["decline_rows"], clinc["decline_exact"]) == (2, pytest.approx(1 / 2))
    zh = scores["groups"]["near_miss/zh"]
    assert zh["in_scope_accuracy"] == 0.0
    # The wrong redirect still tells the customer no: handled, but not exact.
    assert (zh["out_of_scope_handled"], zh["decline_exact"]) == (1.0, 0.0)
    assert scores["all"]["rows"] == 10
    assert scores["all"]["out_of_scope_handled"] == pytest.approx(4 / 6)
    assert scores["all"]["parse_p50_ms"] == pytest.approx(10.0)

    assert scores["per_intent"]["order_status"]["clinc/en"] == {
        "correct": 1,
        "rows": 2,
        "accuracy": 0.5,
    }
    assert scores["per_intent"]["decline/password"]["near_miss/zh"]["accuracy"] == 0.0
    assert "out_of_scope" not in scores["per_intent"]  # reported as the handled rate

    confusions = {(c["expected"], c["predicted"]): c for c in scores["top_confusions"]}
    assert set(confusions) == {
        ("order_status", "nlu_fallback"),
        ("out_of_scope", "order_status"),
        ("decline/place_order", "recommend"),
        ("faq/cancellation_fee", "faq/return_policy"),
        ("decline/password", "decline/account"),
    }
    assert confusions[("out_of_scope", "order_status")]["example"] == "where is my bag"
    assert confusions[("decline/password", "decline/account")]["groups"] == {"near_miss/zh": 1}
    assert scores["clinc_out_of_scope_leaks"] == {"lost_luggage": 1}

    table = render(scores)
    assert "| clinc/en" in table and "66.7%" in table
    assert "out_of_scope → order_status" in table
    assert "lost_luggage 1" in table


def test_top_confusions_are_counted_and_ordered():
    rows = [_row("near_miss/en", "out_of_scope", "check_stock") for _ in range(3)]
    rows += [_row("near_miss/en", "out_of_scope", "recommend")]
    rows += [_row("near_miss/en", "thank", "goodbye") for _ in range(2)]
    top = score(rows, top_confusions=2)["top_confusions"]
    assert [(c["expected"], c["predicted"], c["count"]) for c in top] == [
        ("out_of_scope", "check_stock", 3),
        ("thank", "goodbye", 2),
    ]


def test_unparsed_rows_are_refused():
    with pytest.raises(ValueError, match="not parsed"):
        score([Row("clinc", "en", "hello", ("greet",))])


def test_normalise_ignores_case_punctuation_and_spaces_in_both_scripts():
    assert normalise("Where's my  ORDER?!") == normalise("wheres my order")
    assert normalise("亲，在吗？") == normalise("亲在吗")
    assert normalise("我的Order 到哪了。") == "我的order到哪了"


def test_limit_keeps_evenly_spaced_rows_of_each_group():
    rows = [_row("clinc/en", "out_of_scope", "x", text=str(i)) for i in range(10)]
    rows += [_row("near_miss/zh", "thank", "thank", text=f"z{i}") for i in range(3)]
    kept = evenly_spaced(rows, 5)
    assert [r.text for r in kept] == ["0", "2", "4", "6", "8", "z0", "z1", "z2"]
    assert evenly_spaced(rows, None) == rows


def test_clinc_rows_expect_the_mapped_intent_or_out_of_scope(tmp_path: Path):
    val = tmp_path / "val.jsonl"
    val.write_text(
        '{"text": "was my order delivered", "intent": "order_status"}\n'
        '{"text": "how ya been", "intent": "greeting"}\n'
        '{"text": "what is my credit score", "intent": "credit_score"}\n'
        '{"text": "a show on broadway", "intent": "oos"}\n',
        encoding="utf-8",
    )
    rows = load_clinc(val)
    assert [r.expected for r in rows] == [
        ("order_status",),
        ("greet", "chitchat/how_are_you"),
        ("out_of_scope",),
        ("out_of_scope",),
    ]
    assert rows[2].origin == "credit_score" and rows[2].group == "clinc/en"


def test_a_near_miss_with_an_unknown_or_mixed_expectation_is_refused(tmp_path: Path):
    bad = tmp_path / "near.yml"
    bad.write_text('en:\n  - {text: "hi", expected: gret}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="not Kefu intents"):
        load_near_misses(bad)
    bad.write_text('en:\n  - {text: "x", expected: [thank, out_of_scope]}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="mixes in-scope"):
        load_near_misses(bad)


def test_a_missing_model_is_refused_before_anything_loads(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--model", str(tmp_path / "none.tar.gz")])
    assert exit_.value.code == 2
    assert "no trained model" in capsys.readouterr().err
