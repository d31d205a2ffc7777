"""Stock by size / colour across warehouses, alternatives, back-in-stock subscriptions."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from commerce.errors import InvalidInput, ProductNotFound, VariantNotFound
from commerce.services.catalog import list_catalog_terms
from commerce.services.stock import check_stock, product_options, subscribe_back_in_stock


def test_in_stock_variant(session_factory, world):
    r = check_stock(session_factory, "Trail Runner 2", size="41", colour="black")
    assert r.in_stock and r.total_available == 3 and r.alternatives == ()
    (v,) = r.variants
    assert v.sku == "TR2-41-BLA" and v.colour_zh == "黑色"
    assert [(w.warehouse_code, w.available) for w in v.warehouses] == [("SHA", 3)]


def test_out_of_stock_gives_restock_date_and_alternatives(session_factory, world):
    r = check_stock(session_factory, "越野跑鞋", size="42", colour="黑色")
    assert not r.in_stock and r.total_available == 0
    assert r.next_restock_date == date.today() + timedelta(days=12)
    kinds = [(a.kind, a.sku) for a in r.alternatives]
    assert kinds[0] == ("other_colour", "TR2-42-WHI")
    assert ("similar_product", "RR-42-BLA") in kinds


def test_lookup_by_sku_code_and_synonym(session_factory, world):
    assert check_stock(session_factory, "tr2-42-whi").product_code == "TRAIL-RUNNER-2"
    assert check_stock(session_factory, "trail-runner-2").product_code == "TRAIL-RUNNER-2"
    assert check_stock(session_factory, "trail runner").product_code == "TRAIL-RUNNER-2"


def test_size_words_are_normalised(session_factory, world):
    assert check_stock(session_factory, "Basic tee", size="medium").size == "M"
    assert check_stock(session_factory, "基础T恤", size="中号").variants[0].sku == "TEE-M-WHI"


def test_quantity_above_availability_is_not_in_stock(session_factory, world):
    r = check_stock(session_factory, "Basic tee", size="L", quantity=5)
    assert not r.in_stock and r.total_available == 4


@pytest.mark.parametrize("query", ["no such thing", "%", "_", "' OR 1=1 --"])
def test_unknown_product(session_factory, world, query):
    with pytest.raises(ProductNotFound) as e:
        check_stock(session_factory, query)
    assert e.value.code == "product_not_found"


@pytest.mark.parametrize("size, colour", [("50", None), (None, "purple"), ("41", "red")])
def test_variant_not_offered(session_factory, world, size, colour):
    with pytest.raises(VariantNotFound) as e:
        check_stock(session_factory, "Trail Runner 2", size=size, colour=colour)
    assert e.value.code == "variant_not_found"


@pytest.mark.parametrize("quantity", [0, -1, 101, 10**9, "2", 1.5])
def test_absurd_quantities(session_factory, world, quantity):
    with pytest.raises(InvalidInput):
        check_stock(session_factory, "Basic tee", quantity=quantity)


def test_subscribe_back_in_stock_is_idempotent(session_factory, world):
    first = subscribe_back_in_stock(
        session_factory, "Trail Runner 2", "A@B.com", size="42", colour="black"
    )
    again = subscribe_back_in_stock(session_factory, "TR2-42-BLA", "a@b.com")
    assert first.created and not again.created and first.sku == again.sku == "TR2-42-BLA"


def test_subscribe_needs_one_variant(session_factory, world, count_statements):
    with pytest.raises(InvalidInput):
        subscribe_back_in_stock(session_factory, "Trail Runner 2", "a@b.com", size="42")
    with pytest.raises(InvalidInput):
        subscribe_back_in_stock(session_factory, "TR2-42-BLA", "not-an-email")
    assert count_statements == []


def test_catalog_terms_are_bilingual(session_factory, world):
    terms = list_catalog_terms(session_factory)
    runner = next(p for p in terms.products if p.code == "TRAIL-RUNNER-2")
    assert runner.name_zh == "越野跑鞋 2代" and "越野跑鞋" in runner.synonyms
    assert ("black", "黑色") in terms.colours and ("shoes", "鞋") in terms.categories
    assert "42" in terms.sizes and "M" in terms.sizes


def test_product_options_name_what_tells_variants_apart(session_factory, world):
    runner = product_options(session_factory, "trail runner")
    assert runner.product_code == "TRAIL-RUNNER-2"
    assert set(runner.sizes) == {"41", "42"} and set(runner.colours) == {"black", "white"}
    earbuds = product_options(session_factory, "Earbuds")
    assert (earbuds.sizes, earbuds.colours) == ((None,), ("black",))
    one = product_options(session_factory, "TR2-41-BLA")  # a SKU is one variant
    assert (one.sizes, one.colours) == (("41",), ("black",))
    with pytest.raises(ProductNotFound):
        product_options(session_factory, "flux capacitor")
