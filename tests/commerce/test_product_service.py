"""Product questions answered from the seeded catalog: facts, attributes, prices, comparisons,
finding the product a shopper names, and open questions over the passage index.

Most tests read the shared seeded SQLite catalog (docs/SEED.md); one runs on PostgreSQL too. The
passage index is built with a tiny random BERT through the real encoder code (scores mean
nothing, the mechanics are real); `--slow` adds the real multilingual-e5-small.
"""

from __future__ import annotations

import numpy as np
import pytest

from commerce.db import make_session_factory
from commerce.errors import ConfigurationError, InvalidInput, ProductNotFound
from commerce.seed import seed
from commerce.services.catalog import (
    Passage,
    PassageEncoder,
    PassageIndex,
    passage_index,
    product_passages,
)
from commerce.services.products import (
    ANSWER_MIN_SCORE,
    answer_attribute,
    answer_product_question,
    answer_question,
    compare_products,
    lookup_product,
    price_answer,
    product_facts,
    store_for,
)

FAQ = Passage(
    "", "faq/shipping_time", "We dispatch within 1-2 business days.", "付款后48小时内发货。"
)


@pytest.fixture(scope="module")
def shop(seeded_db_file):
    """The seeded catalog, read-only."""
    return make_session_factory(f"sqlite:///{seeded_db_file}")


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    """The tiny random BERT of the component tests, built by the real asset builder."""
    pytest.importorskip("transformers")
    from custom_components.encoder.assets import build
    from tests.custom_components.conftest import _build_tiny_bert_source

    source = _build_tiny_bert_source(tmp_path_factory.mktemp("tiny-src") / "tiny-bert")
    folder, _manifest, _built = build(
        str(source), out=tmp_path_factory.mktemp("tiny-assets") / "tiny-bert"
    )
    return PassageEncoder(folder)


@pytest.fixture(scope="module")
def index(shop, tiny_encoder):
    return PassageIndex.build([*product_passages(shop), FAQ], tiny_encoder)


# ---- the store a shopper sees ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "language", "store"),
    [("CN", "en", "CN"), ("US", "zh", "INTL"), ("INTL", "zh", "INTL"), (None, "zh", "CN"),
     (None, "en", "INTL")],
)  # fmt: skip
def test_the_verified_region_decides_the_store_else_the_language(region, language, store):
    assert store_for(region, language) == store


def test_an_unknown_region_is_refused():
    with pytest.raises(InvalidInput):
        store_for("MARS", "en")


# ---- facts and prices ------------------------------------------------------------------------


def test_facts_are_priced_in_the_stores_currency(shop):
    intl = product_facts(shop, "TRAIL-RUNNER-2", "INTL")
    cn = product_facts(shop, "trail-runner-2", "CN")
    assert (intl.price_min.amount_cents, intl.price_min.currency) == (12900, "USD")
    assert (cn.price_min.amount_cents, cn.price_min.currency) == (90300, "CNY")
    assert intl.sizes == ("39", "40", "41", "42", "43", "44")
    assert intl.colours == ("black", "blue") and intl.in_stock
    assert intl.rating == 4.6 and intl.review_count > 0 and intl.sales_count > 0
    assert [key for key, _en, _zh in intl.attributes][:3] == ["material", "fit", "waterproof"]
    assert intl.description_zh.count("\n\n") == intl.description_en.count("\n\n") == 2


def test_an_unknown_product_or_store_is_a_typed_error(shop):
    with pytest.raises(ProductNotFound):
        product_facts(shop, "KAYAK-9", "INTL")
    with pytest.raises(InvalidInput):
        product_facts(shop, "TRAIL-RUNNER-2", "EU")


def test_a_price_names_the_variants_that_cost_more(shop):
    jacket = price_answer(shop, "RAIN-JACKET", "CN")
    assert jacket.source == "price" and jacket.ref == "price"
    assert "¥623" in jacket.text_zh and "XL码：¥658" in jacket.text_zh
    assert "from ¥623" in jacket.text_en and "size XL: ¥658" in jacket.text_en
    tee = price_answer(shop, "BASIC-TEE", "INTL")
    assert tee.text_en == "Basic cotton tee: $19.00 in our international store."


# ---- attributes ------------------------------------------------------------------------------


def test_an_attribute_is_read_from_the_catalog_in_both_languages(shop):
    answer = answer_attribute(shop, "HIKING-BOOT", "waterproof", "INTL")
    assert answer.source == "attribute" and answer.score == 1.0 and answer.ref == "waterproof"
    assert "waterproof breathable membrane" in answer.text_en
    assert "防水透气内膜" in answer.text_zh


def test_a_surface_word_names_the_attribute(shop):
    assert answer_attribute(shop, "TRAIL-RUNNER-2", "偏小", "CN").ref == "fit"
    assert answer_attribute(shop, "TRAIL-RUNNER-2", "runs small", "CN").ref == "fit"


def test_an_attribute_the_catalog_does_not_list_is_not_guessed(shop):
    answer = answer_attribute(shop, "CAP", "hood", "INTL")
    assert answer.score == 0.0 and answer.ref == "hood"
    assert "doesn't state" in answer.text_en and "没有写明" in answer.text_zh


def test_the_size_guide_covers_the_products_sizes(shop):
    answer = answer_attribute(shop, "RUN-SOCKS", "size_guide", "INTL")
    assert answer.score == 0.0  # accessories have no category guide: said, not invented
    boots = answer_attribute(shop, "HIKING-BOOT", "size chart", "INTL")
    assert "42: foot length 26.5 cm" in boots.text_en


def test_an_unknown_attribute_is_refused(shop):
    with pytest.raises(InvalidInput):
        answer_attribute(shop, "CAP", "horsepower", "INTL")


# ---- comparisons -----------------------------------------------------------------------------


def test_a_comparison_lists_only_the_differences(shop):
    answer = compare_products(shop, "TRAIL-RUNNER-2", "TRAIL-RUNNER-1", "INTL", "en")
    lines = answer.text_en.splitlines()
    assert lines[1] == "- price: $129.00 vs $89.00"
    assert any(line.startswith("- fit: runs small") for line in lines)
    assert not any(line.startswith("- waterproof") for line in lines)  # neither is
    assert "care" in answer.text_en and "not listed" in answer.text_en
    assert "对比" in answer.text_zh


def test_a_product_is_not_compared_with_itself(shop):
    with pytest.raises(InvalidInput):
        compare_products(shop, "CAP", "cap", "INTL", "en")


# ---- finding the product ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("does the trail runner 1 run small?", "TRAIL-RUNNER-1"),
        ("Trail Runner 2 还有货吗", "TRAIL-RUNNER-2"),
        ("越野跑鞋多少钱", "TRAIL-RUNNER-2"),
        ("EARBUDS-PRO", "EARBUDS-PRO"),
        ("is the daypack any good", "DAY-BACKPACK"),
    ],
)
def test_a_product_is_found_by_code_name_or_synonym(shop, text, code):
    found = lookup_product(shop, text, "en", "INTL")
    assert found.found is not None and found.found.code == code and found.candidates == ()


def test_a_phrase_naming_two_products_asks_which(shop):
    found = lookup_product(shop, "I want a hat", "en", "INTL")
    assert found.found is None
    assert {c.code for c in found.candidates} == {"WOOL-BEANIE", "CAP"}


def test_a_product_we_do_not_carry_gets_the_nearest_names(shop):
    found = lookup_product(shop, "trail runer 3", "en", "INTL")
    assert found.found is None
    assert found.candidates and found.candidates[0].code.startswith("TRAIL-RUNNER")
    # Latin names match whole words only: "capacity" is not the cap.
    assert lookup_product(shop, "what is the capacity?", "en", "INTL").found is None


# ---- open questions over the passage index ---------------------------------------------------


def test_every_product_passage_pairs_english_with_chinese(shop):
    passages = product_passages(shop)
    assert {p.code for p in passages} >= {"TRAIL-RUNNER-2", "GIFT-CARD-50"}
    assert all(p.text_en and p.text_zh and p.title_en and p.title_zh for p in passages)
    assert [p.key for p in passages if p.code == "RAIN-JACKET"] == [
        "description/0", "description/1", "description/2"
    ]  # fmt: skip


def test_the_index_round_trips_and_knows_its_encoder(index, tiny_encoder, tmp_path):
    index.save(tmp_path / "idx")
    loaded = PassageIndex.load(tmp_path / "idx", tiny_encoder)
    assert loaded.passages == index.passages
    np.testing.assert_array_equal(loaded.vectors, index.vectors)
    assert passage_index(tmp_path / "idx").passages == index.passages  # default encoder path


def test_an_index_from_another_encoder_or_none_at_all_is_a_clear_error(index, tmp_path):
    with pytest.raises(ConfigurationError, match="make catalog"):
        PassageIndex.load(tmp_path / "nothing-here")
    index.save(tmp_path / "idx")
    meta = tmp_path / "idx" / "passages.json"
    meta.write_text(meta.read_text().replace(index.encoder.fingerprint, "f" * 64))
    with pytest.raises(ConfigurationError, match="another encoder"):
        PassageIndex.load(tmp_path / "idx", index.encoder)


def test_a_product_in_context_limits_the_search_to_it_and_the_faq(index):
    hits = index.search("does it keep the rain out?", code="RAIN-JACKET", top=10)
    assert {h.passage.code for h in hits} == {"RAIN-JACKET", ""}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_below_the_bar_the_answer_is_none_not_a_guess(shop, index):
    question = "can I wear it in a storm?"
    assert answer_question(shop, question, "en", "INTL", index=index, min_score=1.01) is None
    answer = answer_question(shop, question, "en", "INTL", "RAIN-JACKET", index=index, min_score=-1)
    assert answer.source == "passage" and answer.code in {"RAIN-JACKET", ""}
    if answer.code:
        assert answer.name_en == "Storm rain jacket"
        assert answer.ref.startswith("description/")


def test_an_unknown_product_in_context_is_an_error_not_an_answer(shop, index):
    with pytest.raises(ProductNotFound):
        answer_question(shop, "is it warm?", "en", "INTL", "KAYAK-9", index=index)


def test_a_free_question_is_routed_to_attribute_price_or_passage(shop, index):
    ask = lambda text, **kw: answer_product_question(shop, text, "zh", "CN", index=index, **kw)  # noqa: E731
    assert ask("登山靴防水吗").ref == "waterproof"
    assert ask("登山靴多少钱").text_zh.startswith("登山靴在中国站售价¥1,113")
    # The product's own name is no question word: 充电宝 does not ask about charging.
    assert ask("充电宝能带上飞机吗", min_score=1.01) is None
    assert ask("这个多少钱", code="SPORT-WATCH").source == "price"


def test_the_bars_are_calibrated_per_language():
    assert set(ANSWER_MIN_SCORE) == {"en", "zh"}
    assert all(0 < bar < 1 for bar in ANSWER_MIN_SCORE.values())


def test_facts_read_the_same_on_postgresql_and_sqlite(session_factory):
    seed(session_factory.kw["bind"])
    facts = product_facts(session_factory, "RAIN-JACKET", "CN")
    assert (facts.price_min.amount_cents, facts.price_max.amount_cents) == (62300, 65800)
    assert dict((k, en) for k, en, _ in facts.attributes)["hood"].startswith("yes")


@pytest.mark.slow
def test_the_real_encoder_answers_open_questions_and_refuses_others(shop, tmp_path):
    from custom_components.encoder.assets import resolve_model_path

    real = PassageIndex.build(product_passages(shop), PassageEncoder(resolve_model_path("e5")))
    rain = answer_question(shop, "is the down jacket fine in heavy rain?", "en", "INTL", index=real)
    assert rain is not None and (rain.code, rain.ref) == ("DOWN-JACKET", "description/1")
    assert (
        answer_question(shop, "who is the president of France?", "en", "INTL", index=real) is None
    )
