"""scripts/clinc_training_data.py: public examples relabelled with Kefu's intents."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

from bench.scope_bench import CLINC_VAL, normalise
from scripts.clinc_training_data import (
    CLINC_TRAIN,
    OOS_ROWS,
    OUT,
    PER_MAPPED_INTENT,
    PER_UNHANDLED_INTENT,
    choose,
    main,
    render,
)

ROWS = {
    "goodbye": [f"see you later number {i}" for i in range(30)],
    "greeting": ["hiya pal"],  # two acceptable Kefu answers: not trained
    "order": ["order me some dog food", "buy me batteries"],
    "pay_bill": ["pay my water bill", "settle the gas bill", "i need to pay my phone bill"],
    "oos": [f"how tall is mountain {i}" for i in range(60)],
}


def test_rows_are_labelled_by_the_mapping_and_known_texts_left_out():
    chosen = choose(ROWS, taken={normalise("See you later, number 0!")})
    assert len(chosen["goodbye"]) == PER_MAPPED_INTENT
    assert "see you later number 0" not in chosen["goodbye"]
    assert sorted(chosen["decline/place_order"]) == ["buy me batteries", "order me some dog food"]
    out_of_scope = chosen["out_of_scope"]
    assert len(out_of_scope) == OOS_ROWS + PER_UNHANDLED_INTENT
    assert sum(text.endswith("bill") for text in out_of_scope) == PER_UNHANDLED_INTENT
    assert not any("hiya" in text for texts in chosen.values() for text in texts)
    assert choose(ROWS, taken={normalise("See you later, number 0!")}) == chosen  # seeded


def test_the_file_reads_as_rasa_training_data():
    data = RasaYAMLReader().reads(render(choose(ROWS, taken=set())))
    labels = {m.get("intent_response_key") or m.get("intent") for m in data.intent_examples}
    assert labels == {"goodbye", "decline/place_order", "out_of_scope"}
    assert len(data.intent_examples) == PER_MAPPED_INTENT + 2 + OOS_ROWS + PER_UNHANDLED_INTENT


def test_the_committed_file_is_what_the_script_writes(tmp_path):
    if not (CLINC_TRAIN.is_file() and CLINC_VAL.is_file()):
        pytest.skip(f"CLINC150's train and val splits are not in {CLINC_TRAIN.parent}")
    written = tmp_path / "clinc150.yml"
    assert main(["--out", str(written)]) == 0
    assert written.read_text(encoding="utf-8") == OUT.read_text(encoding="utf-8"), (
        "data/nlu_public/clinc150.yml is stale: run scripts/clinc_training_data.py"
    )
