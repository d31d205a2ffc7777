"""The scope benchmark's data: valid labels, and never trained on.

The near-miss set measures how Kefu reads messages it has not seen; once one of its texts is
copied into data/nlu, that figure silently stops measuring anything. These tests keep it out.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bench.scope_bench import (
    CLINC_VAL,
    KEFU_INTENTS,
    is_out_of_scope_label,
    load_mapping,
    load_near_misses,
    normalise,
)

ROOT = Path(__file__).resolve().parents[2]


def training_texts() -> dict[str, str]:
    """Normalised text -> intent of every training example (the shop's data/nlu and the public
    data/nlu_public), read by Rasa itself (so entity markup such as
    `[KF-100004](order_number)` is stripped as in training)."""
    from rasa.shared.nlu.training_data.loading import load_data

    texts = {}
    for folder in ("nlu", "nlu_public"):
        data = load_data(str(ROOT / "data" / folder))
        texts.update(
            (normalise(m.get("text")), m.get("intent_response_key") or m.get("intent"))
            for m in data.training_examples
            if m.get("text")
        )
    return texts


def test_no_near_miss_is_a_training_example():
    trained = training_texts()
    assert len(trained) > 500  # the reader found the shop's data
    leaked = [
        f"{row.language}: {row.text!r} (trained as {trained[normalise(row.text)]})"
        for row in load_near_misses()
        if normalise(row.text) in trained
    ]
    assert not leaked, "near misses found in data/nlu — remove them from the training data:\n" + (
        "\n".join(leaked)
    )


def test_near_misses_are_bilingual_distinct_and_cover_both_sides():
    rows = load_near_misses()
    per_language = Counter(row.language for row in rows)
    assert set(per_language) == {"en", "zh"}
    assert all(n >= 50 for n in per_language.values()), per_language
    repeated = [t for t, n in Counter(normalise(r.text) for r in rows).items() if n > 1]
    assert not repeated, f"the same message twice: {repeated}"
    for language in ("en", "zh"):
        mains = [r.main for r in rows if r.language == language]
        assert sum(m == "out_of_scope" for m in mains) >= 10
        assert {m.split("/")[1] for m in mains if m.startswith("decline/")} == {
            "account",
            "password",
            "newsletter",
            "place_order",
            "review",
            "modify_order",
        }
        assert sum(not is_out_of_scope_label(m) for m in mains) >= 30


def test_clinc_mapping_names_real_clinc_intents_and_kefu_intents():
    mapping = load_mapping()  # raises on anything but Kefu intents
    assert all(label in KEFU_INTENTS for labels in mapping.values() for label in labels)
    assert mapping["order_status"] == ("order_status",)
    assert "oos" not in mapping and "card_declined" not in mapping
    if not CLINC_VAL.is_file():
        pytest.skip(f"CLINC150 validation split not here: {CLINC_VAL}")
    with open(CLINC_VAL, encoding="utf-8") as f:
        clinc_intents = {json.loads(line)["intent"] for line in f if line.strip()}
    assert len(clinc_intents) == 151
    assert not set(mapping) - clinc_intents, "mapped intents CLINC150 does not have"


def test_no_clinc_validation_row_is_in_the_public_training_data():
    if not CLINC_VAL.is_file():
        pytest.skip(f"CLINC150 validation split not here: {CLINC_VAL}")
    from rasa.shared.nlu.training_data.loading import load_data

    public = load_data(str(ROOT / "data" / "nlu_public")).training_examples
    assert len(public) > 300  # the reader found scripts/clinc_training_data.py's file
    with open(CLINC_VAL, encoding="utf-8") as f:
        validation = {normalise(json.loads(line)["text"]) for line in f if line.strip()}
    leaked = [m.get("text") for m in public if normalise(m.get("text")) in validation]
    assert not leaked, f"CLINC150 validation rows in data/nlu_public: {leaked}"
