from commerce.dto import CatalogProduct, CatalogTerms
from scripts.export_catalog import build_catalog, jieba_phrases


def terms() -> CatalogTerms:
    return CatalogTerms(
        products=(
            CatalogProduct(
                "WOOL-BEANIE", "accessories", "Wool beanie", "羊毛针织帽", ("hat", "毛线帽")
            ),
            CatalogProduct("CAP", "accessories", "Baseball cap", "棒球帽", ("hat", "cap")),
        ),
        sizes=("M", "42"),
        colours=(("black", "黑色"), ("navy", "藏青色")),
        categories=(("accessories", "配饰"),),
    )


def test_catalog_keeps_names_and_designer_synonyms_and_drops_ambiguous_phrases():
    catalog = build_catalog(terms(), {"M": ["medium", "中号"], "black": ["黑", "Black"]})
    products = {entry["value"]: entry["synonyms"] for entry in catalog["entities"]["product"]}
    assert products == {
        "WOOL-BEANIE": ["Wool beanie", "羊毛针织帽", "毛线帽"],
        "CAP": ["Baseball cap", "棒球帽"],  # "cap" is the value itself, matched anyway
    }
    assert catalog["entities"]["size"] == [
        {"value": "M", "synonyms": ["medium", "中号"]},
        {"value": "42", "synonyms": []},
    ]
    assert catalog["entities"]["colour"][0] == {"value": "black", "synonyms": ["黑色", "黑"]}


def test_jieba_dictionary_holds_chinese_phrases_longest_first():
    lines = jieba_phrases(build_catalog(terms(), {"M": ["中号"]}))
    assert lines[0] == "羊毛针织帽 1000 n"
    assert {"棒球帽 1000 n", "毛线帽 1000 n", "中号 1000 n", "藏青色 1000 n"} <= set(lines)
    assert not any("cap" in line.lower() for line in lines)
