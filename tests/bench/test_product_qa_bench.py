"""The product-question benchmark: its questions are valid, never trained on, and judged right.

The scoring runs end to end on the seeded catalog with a tiny random BERT: attribute and price
answers do not depend on the encoder, so they must be judged correct; passage scores from a
random encoder mean nothing, so the tests only check how they are judged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.product_qa_bench import (
    Question,
    answer_key,
    calibrate,
    evaluate,
    judge,
    load_questions,
    prepare,
)
from bench.scope_bench import normalise
from commerce.dto import ProductAnswer
from commerce.seed import CATALOG_DETAILS, PRODUCTS
from commerce.vocabulary import PRODUCT_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]


def test_there_are_enough_questions_in_both_languages_and_kinds():
    test = load_questions(split="test")
    assert len(test) >= 100
    assert {q.lang for q in test} == {"en", "zh"}
    assert {q.kind for q in test} == {"attr", "passage", "faq", "price", "refuse"}
    assert len(load_questions(split="calibration")) >= 30
    texts = [
        normalise(q.q) for split in ("test", "calibration") for q in load_questions(split=split)
    ]
    assert len(texts) == len(set(texts)), "a question appears twice"


def test_every_accepted_answer_exists_in_the_seed():
    codes = {row[0] for row in PRODUCTS}
    faqs = set((ROOT / "domain" / "faq.yml").read_text(encoding="utf-8").split())
    for split in ("test", "calibration"):
        for q in load_questions(split=split):
            assert q.context is None or q.context in codes, q.q
            for accepted in q.accept:
                kind, _, rest = accepted.partition(":")
                if kind == "attr":
                    code, key = rest.split(":")
                    assert code in codes and key in PRODUCT_ATTRIBUTES, accepted
                elif kind == "passage":
                    code, number = rest.split(":")
                    assert int(number) < len(CATALOG_DETAILS[code].passages_en), accepted
                elif kind == "price":
                    assert rest in codes, accepted
                elif kind == "faq":
                    assert f"utter_{rest}:" in faqs, accepted
                else:
                    assert accepted == "refuse", accepted


def test_no_question_is_a_training_example():
    from rasa.shared.nlu.training_data.loading import load_data

    trained = {
        normalise(m.get("text"))
        for m in load_data(str(ROOT / "data" / "nlu")).training_examples
        if m.get("text")
    }
    assert len(trained) > 500
    leaked = [
        q.q
        for split in ("test", "calibration")
        for q in load_questions(split=split)
        if normalise(q.q) in trained
    ]
    assert not leaked, f"benchmark questions found in data/nlu — remove them there: {leaked}"


def _answer(source: str, code: str, ref: str, score: float = 1.0) -> ProductAnswer:
    return ProductAnswer(code, "", "", "", "", source, score, ref)


@pytest.mark.parametrize(
    ("answer", "key"),
    [
        (None, "refuse"),
        (_answer("attribute", "CAP", "hood", score=0.0), "refuse"),
        (_answer("attribute", "CAP", "material"), "attr:CAP:material"),
        (_answer("price", "CAP", "price"), "price:CAP"),
        (_answer("passage", "CAP", "description/0", 0.9), "passage:CAP:0"),
        (_answer("passage", "", "faq/invoice", 0.9), "faq:faq/invoice"),
    ],
)
def test_an_answer_is_judged_by_what_answered(answer, key):
    assert answer_key(answer) == key
    assert judge(Question("en", "?", (key,)), answer)
    assert not judge(Question("en", "?", ("price:SCARF",)), answer)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    pytest.importorskip("transformers")
    from custom_components.encoder.assets import build
    from tests.custom_components.conftest import _build_tiny_bert_source

    source = _build_tiny_bert_source(tmp_path_factory.mktemp("tiny-src") / "tiny-bert")
    folder, _manifest, _built = build(str(source), out=tmp_path_factory.mktemp("tiny") / "bert")
    return prepare(folder, tmp_path_factory.mktemp("qa"))


def test_attribute_and_price_questions_are_answered_whatever_the_encoder(small_run):
    session_factory, index = small_run
    # Questions a passage could also answer depend on the encoder's routing: left out here.
    questions = [
        q
        for q in load_questions(split="test")
        if q.kind in ("attr", "price") and not any(a.startswith("passage") for a in q.accept)
    ]
    result = evaluate(session_factory, index, questions)
    assert result["accuracy"]["all"] == 1.0, result["misses"]
    assert result["latency"]["n"] == len(questions)


def test_calibration_picks_a_bar_per_language_between_the_scores(small_run):
    session_factory, index = small_run
    questions = load_questions(split="calibration")
    bars = calibrate(session_factory, index, questions)
    assert set(bars) == {"en", "zh"}
    for lang, found in bars.items():
        n = sum(q.lang == lang for q in questions)
        assert found["n"] == n and 0 < found["correct"] <= n
        assert -1.0 <= found["bar"] <= 1.01
