"""Writes the shop's catalog vocabulary for the NLU pipeline (what `make catalog` calls).

Reads product names and synonyms from the commerce database (`commerce.services.catalog`) and
the designers' colour/size synonyms from data/nlu/synonyms.yml, and writes:

- data/lookups/catalog.yml      — the CatalogEntityExtractor's lookup (products, sizes, colours)
- data/lookups/jieba_userdict.txt — Chinese catalog phrases, so the MixedScriptTokenizer keeps
  "越野跑鞋" or "藏青色" as one token and entity annotations align with token boundaries.
- var/catalog/passages.{npz,json} — the product passage index (`--index-dir`): every description
  passage of the catalog and every FAQ answer of domain/*.yml (``utter_faq/*``), encoded with
  Kefu's encoder (`--encoder`, built by `make model`); open product questions search it
  (``commerce.services.products.answer_question``). `--no-index` skips it.

The lookup files are committed (training never needs the database); the index is rebuilt here.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from commerce.services.catalog import Passage
from commerce.vocabulary import PRODUCT_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
HAN = re.compile(r"[\u3400-\u9fff]")


def _designer_synonyms(path: Path) -> dict[str, list[str]]:
    """`{canonical value: [synonyms]}` from a Rasa NLU synonyms file."""
    if not path.exists():
        return {}
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    synonyms: dict[str, list[str]] = {}
    for block in document.get("nlu", []):
        if "synonym" in block:
            examples = [
                line.strip()[2:].strip()
                for line in block.get("examples", "").splitlines()
                if line.strip().startswith("- ")
            ]
            synonyms.setdefault(str(block["synonym"]), []).extend(examples)
    return synonyms


def _unique(values: list[str], value: str = "") -> list[str]:
    """Phrases without repeats (case-insensitive) and without the entry's own value."""
    seen: set[str] = {value.casefold()}
    kept = []
    for value in values:
        key = value.casefold()
        if value and key not in seen:
            seen.add(key)
            kept.append(value)
    return kept


def _drop_ambiguous(entries: list[dict]) -> tuple[list[dict], list[str]]:
    """Removes phrases that name two entries ("hat": beanie and cap); a phrase must name one."""
    owners: dict[str, set[str]] = {}
    for entry in entries:
        for phrase in [entry["value"], *entry["synonyms"]]:
            owners.setdefault(phrase.casefold(), set()).add(entry["value"])
    ambiguous = {phrase for phrase, values in owners.items() if len(values) > 1}
    kept = [
        {**entry, "synonyms": [s for s in entry["synonyms"] if s.casefold() not in ambiguous]}
        for entry in entries
    ]
    return kept, sorted(ambiguous)


def build_catalog(terms, designer: dict[str, list[str]]) -> dict:
    """The lookup document for `CatalogEntityExtractor` (format version 1)."""
    products, ambiguous = _drop_ambiguous(
        [
            {
                "value": product.code,
                "synonyms": _unique(
                    [product.name_en, product.name_zh, *product.synonyms], product.code
                ),
            }
            for product in terms.products
        ]
    )
    if ambiguous:
        print(f"note: left out phrases that name several products: {', '.join(ambiguous)}")
    sizes = [
        {"value": size, "synonyms": _unique(designer.get(size, []), size)} for size in terms.sizes
    ]
    colours = [
        {"value": english, "synonyms": _unique([chinese, *designer.get(english, [])], english)}
        for english, chinese in terms.colours
    ]
    attributes = [
        {"value": key, "synonyms": _unique(list(term.words), key)}
        for key, term in PRODUCT_ATTRIBUTES.items()
    ]
    return {
        "version": 1,
        "entities": {
            "product": products,
            "size": sizes,
            "colour": colours,
            "attribute": attributes,
        },
    }


def faq_passages(domain_dir: Path) -> list[Passage]:
    """One passage per ``utter_faq/<name>`` response of the domain files: its en and zh text."""
    passages = []
    for path in sorted(domain_dir.glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for name, variations in (document.get("responses") or {}).items():
            if not name.startswith("utter_faq/"):
                continue
            texts = {}
            for variation in variations or []:
                for condition in variation.get("condition") or []:
                    if condition.get("name") == "language":
                        texts[condition.get("value")] = variation.get("text", "")
            if texts.get("en") and texts.get("zh"):
                key = name.removeprefix("utter_")
                passages.append(Passage("", key, texts["en"], texts["zh"]))
    return passages


def build_index(session_factory, encoder_dir: Path, domain_dir: Path, out: Path) -> int:
    """Encodes the catalog's passages and the FAQ answers into ``out``; returns the count."""
    from commerce.services.catalog import PassageEncoder, PassageIndex, product_passages

    passages = product_passages(session_factory) + faq_passages(domain_dir)
    PassageIndex.build(passages, PassageEncoder(encoder_dir)).save(out)
    return len(passages)


def jieba_phrases(catalog: dict) -> list[str]:
    """Every Chinese phrase of the catalog, longest first (jieba user-dictionary lines)."""
    phrases = {
        phrase.replace(" ", "")
        for entries in catalog["entities"].values()
        for entry in entries
        for phrase in [entry["value"], *entry["synonyms"]]
        if HAN.search(phrase)
    }
    return [f"{phrase} 1000 n" for phrase in sorted(phrases, key=lambda p: (-len(p), p))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out-dir", default=str(ROOT / "data" / "lookups"))
    parser.add_argument("--synonyms", default=str(ROOT / "data" / "nlu" / "synonyms.yml"))
    parser.add_argument("--domain", default=str(ROOT / "domain"), help="FAQ answers from here")
    parser.add_argument(
        "--index-dir", default=None, help="default: $KEFU_CATALOG_INDEX or var/catalog"
    )
    parser.add_argument("--encoder", default="multilingual-e5-small", help="name or folder")
    parser.add_argument("--no-index", action="store_true", help="write the lookups only")
    args = parser.parse_args(argv)

    from commerce.config import database_url
    from commerce.db import make_session_factory
    from commerce.services.catalog import default_index_dir, list_catalog_terms

    session_factory = make_session_factory(database_url())
    terms = list_catalog_terms(session_factory)
    if not terms.products:
        print("error: the catalog is empty; run `make db` first", file=sys.stderr)
        return 1
    catalog = build_catalog(terms, _designer_synonyms(Path(args.synonyms)))
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = (
        "# Generated by `make catalog` (scripts/export_catalog.py) from the commerce catalog.\n"
    )
    (out / "catalog.yml").write_text(
        header + yaml.safe_dump(catalog, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    (out / "jieba_userdict.txt").write_text(
        "\n".join(jieba_phrases(catalog)) + "\n", encoding="utf-8"
    )
    print(
        f"==> wrote {out / 'catalog.yml'} ({len(terms.products)} products) and jieba_userdict.txt"
    )
    if args.no_index:
        return 0
    from custom_components.encoder.assets import resolve_model_path
    from custom_components.errors import EncoderAssetsMissing

    index_dir = Path(args.index_dir) if args.index_dir else default_index_dir()
    try:
        count = build_index(
            session_factory, resolve_model_path(args.encoder), Path(args.domain), index_dir
        )
    except EncoderAssetsMissing as e:
        print(f"error: {e} (build the encoder with `make model`)", file=sys.stderr)
        return 1
    print(f"==> wrote the passage index {index_dir} ({count} passages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
