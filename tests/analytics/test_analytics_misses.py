"""``export-misses``: the recording's badly served messages as a Rasa NLU YAML draft.

In the 7-day window (test_analytics_report.py's table) three customer messages were served
badly (the same three ``intents_needing_data`` counts): "my thingy never came??" fell to
``nlu_fallback`` (runner-up ``order_status``) and was rephrased; the return request and the
complaint were followed by a handoff. Their texts come from the tracker store.
"""

from __future__ import annotations

import json

import pytest
import yaml
from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader
from rasa.shared.nlu.training_data.loading import load_data

from analytics.__main__ import main
from analytics.metrics import Window
from analytics.misses import (
    COVERED_COMMENT,
    Draft,
    Miss,
    Reading,
    export_misses,
    group,
    model_parser,
    reading_of,
    render_yaml,
    rerank,
)
from tests.analytics.conftest import NOW, broker_items, tracker_store_endpoints
from tests.helpers.kefu_server import MODEL

WEEK = Window(NOW - 7 * 86_400, NOW)

EXPECTED = {
    "complaint": ["你们的快递太慢了，我要投诉！"],
    "order_status": ["my thingy never came??"],
    "return_item": ["I want to return the boots from order KF-100045"],
}


@pytest.fixture
def loaded(facts_store, analytics_engine, recorded_lines):
    facts_store.ingest("broker", broker_items(recorded_lines))
    return analytics_engine


def examples_by_intent(text: str) -> dict[str, list[str]]:
    data = RasaYAMLReader().reads(text)
    grouped: dict[str, list[str]] = {}
    for message in data.intent_examples:
        grouped.setdefault(message.get("intent"), []).append(message.get("text"))
    return grouped


def test_the_draft_groups_the_missed_messages_by_nearest_intent(loaded, tracker_store_engine):
    text, stats = export_misses(loaded, tracker_store_engine, WEEK)
    assert examples_by_intent(text) == EXPECTED
    assert stats == {"selected": 3, "examples": 3, "intents": 3, "without_text": 0}
    assert yaml.safe_load(text)["version"] == "3.1"
    # One comment per example says why it is there.
    assert "# 1. fallback, rephrased; classified nlu_fallback" in text
    assert "conversation rest-en-fallback" in text
    assert text.count("# 1. handoff") == 2


def test_a_window_without_misses_is_an_empty_valid_draft(loaded, tracker_store_engine):
    text, stats = export_misses(loaded, tracker_store_engine, Window(NOW, NOW + 60))
    assert stats["examples"] == 0
    assert RasaYAMLReader().reads(text).intent_examples == []


def test_texts_are_one_line_and_payloads_are_left_out():
    misses = [
        Miss("a", 1, 1.0, "faq", 0.4, "faq", ["rephrased"], "how much\nis shipping"),
        Miss("a", 5, 2.0, "faq", 0.5, "faq", ["handoff"], "how much is shipping"),
        Miss("b", 2, 3.0, "inform", 1.0, "inform", ["handoff"], '/inform{"rating": "1"}'),
    ]
    draft = group(misses)
    assert isinstance(draft, Draft) and draft.without_text == 1
    text = render_yaml(draft)
    assert examples_by_intent(text) == {"faq": ["how much is shipping"]}
    assert "# 1. handoff, rephrased" in text


def test_the_command_line_writes_the_draft(tmp_path, tracker_store_engine, capsys):
    endpoints = tracker_store_endpoints(tmp_path, tracker_store_engine)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["upgrade", "--database-url", url]) == 0
    consume = ["consume", "--from-tracker-store", "--endpoints", str(endpoints), "--once"]
    assert main([*consume, "--settle-seconds", "0", "--database-url", url]) == 0
    out = tmp_path / "misses.yml"
    export = ["export-misses", "--since", "7d", "--until", "2026-01-02", "--out", str(out)]
    assert main([*export, "--endpoints", str(endpoints), "--database-url", url]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["examples"] == 3
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Draft NLU examples from production")
    assert examples_by_intent(text) == EXPECTED


# Re-ranking with the current model (``--model``). The unit tests parse with a tiny keyword
# NLU that answers as Rasa does (``intent``, ``intent_ranking``, ``nlu_fallback`` on doubt).


def keyword_nlu(texts):
    """Parses by keywords: orders are understood now, returns as logged, the complaint is a
    fallback whose runner-up is ``out_of_scope``."""
    parsed = []
    for text in texts:
        if "return" in text:
            ranking = [("return_item", 0.97), ("exchange_item", 0.02)]
        elif "order" in text or "came" in text:
            ranking = [("order_status", 0.95), ("complaint", 0.03)]
        else:
            ranking = [("nlu_fallback", 0.5), ("out_of_scope", 0.41), ("complaint", 0.38)]
        parsed.append(
            {
                "text": text,
                "intent": {"name": ranking[0][0], "confidence": ranking[0][1]},
                "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking],
            }
        )
    return parsed


def loads_as_nlu_data(text: str, tmp_path) -> dict[str, list[str]]:
    """The draft read the way ``rasa train`` reads data/nlu (a file, by its format)."""
    path = tmp_path / "draft.yml"
    path.write_text(text, encoding="utf-8")
    grouped: dict[str, list[str]] = {}
    for message in load_data(str(path)).intent_examples:
        grouped.setdefault(message.get("intent"), []).append(message.get("text"))
    return grouped


def test_the_current_model_regroups_and_flags_what_it_covers_since(
    loaded, tracker_store_engine, tmp_path
):
    text, stats = export_misses(loaded, tracker_store_engine, WEEK, parse=keyword_nlu)
    assert stats == {
        "selected": 3,
        "examples": 3,
        "intents": 3,
        "without_text": 0,
        "probably_covered": 1,
    }
    assert loads_as_nlu_data(text, tmp_path) == {
        "out_of_scope": ["你们的快递太慢了，我要投诉！"],
        "order_status": ["my thingy never came??"],
        "return_item": ["I want to return the boots from order KF-100045"],
    }
    reviewed, covered = text.split(f"# {COVERED_COMMENT}")
    # The fallback (logged nlu_fallback) is read as order_status now: covered since, last.
    assert "my thingy never came??" in covered and "my thingy" not in reviewed
    assert "logged: nlu_fallback 0.50 (nearest order_status) → now: order_status 0.95" in covered
    assert "0.90 or more" in covered
    # Read as logged: still to review, the reason it was exported kept.
    assert "# 1. handoff; logged: return_item" in reviewed
    assert "→ now: return_item 0.97; conversation" in reviewed
    # A fallback now is never "covered"; its runner-up out_of_scope is a group.
    assert "logged: complaint" in reviewed and "→ now: out_of_scope 0.41 (nlu_fallback)" in reviewed


def test_the_covered_confidence_is_a_threshold(loaded, tracker_store_engine):
    text, stats = export_misses(
        loaded, tracker_store_engine, WEEK, parse=keyword_nlu, covered_confidence=0.96
    )
    assert stats["probably_covered"] == 0 and COVERED_COMMENT not in text
    assert examples_by_intent(text)["order_status"] == ["my thingy never came??"]


def test_an_intent_in_both_sections_is_valid_nlu_data(tmp_path):
    misses = [
        Miss("a", 1, 1.0, "complaint", 0.8, "complaint", ["rephrased"], "where is order KF-100004"),
        Miss("b", 3, 2.0, "order_status", 0.6, "order_status", ["handoff"], "order late?"),
        Miss("c", 3, 3.0, "faq", 0.7, "faq", ["handoff"], "/faq"),
    ]
    rerank(misses, keyword_nlu)
    assert [m.covered for m in misses] == [True, False, False]
    draft = group(misses)
    assert draft.without_text == 1 and draft.probably_covered == 1
    text = render_yaml(draft)
    assert text.count('- intent: "order_status"') == 2
    assert loads_as_nlu_data(text, tmp_path) == {
        "order_status": ["order late?", "where is order KF-100004"]
    }


def test_a_retrieval_intent_is_read_as_the_response_it_selected():
    parse_data = {
        "intent": {"name": "faq", "confidence": 0.99, "full_retrieval_intent_name": None},
        "intent_ranking": [{"name": "faq", "confidence": 0.99}],
        "response_selector": {
            "all_retrieval_intents": ["chitchat", "faq"],
            "default": {"response": {"intent_response_key": "faq/shipping_cost"}},
        },
    }
    assert reading_of(parse_data) == Reading("faq/shipping_cost", 0.99, fallback=False)
    # A chitchat pick does not name an faq message.
    parse_data["response_selector"]["default"]["response"]["intent_response_key"] = "chitchat/joke"
    assert reading_of(parse_data) == Reading("faq", 0.99, fallback=False)
    # Nothing trainable in the ranking: no reading, the logged intent stays.
    assert reading_of({"intent": {"name": "nlu_fallback", "confidence": 0.5}}) is None


def test_the_command_line_refuses_a_missing_model(tmp_path, tracker_store_engine, capsys):
    endpoints = tracker_store_endpoints(tmp_path, tracker_store_engine)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["upgrade", "--database-url", url]) == 0
    out = tmp_path / "misses.yml"
    export = ["export-misses", "--out", str(out), "--endpoints", str(endpoints)]
    missing = tmp_path / "models" / "kefu.tar.gz"
    assert main([*export, "--database-url", url, "--model", str(missing)]) == 1
    assert f"{missing}: no trained model" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture(scope="module")
def current_model():
    if not MODEL.is_file():
        pytest.skip(f"{MODEL} is absent (make train; it may be training right now)")
    return model_parser(MODEL)


@pytest.mark.integration
def test_the_trained_model_regroups_a_misread_message(current_model, tmp_path):
    misread = Miss(
        "web-1",
        4,
        1.0,
        "complaint",
        0.71,
        "complaint",
        ["rephrased"],
        "where is my order KF-100004",
    )
    rerank([misread], current_model)
    assert misread.group == "order_status", misread.now
    text = render_yaml(group([misread]))
    assert loads_as_nlu_data(text, tmp_path) == {"order_status": ["where is my order KF-100004"]}
    assert "logged: complaint 0.71 → now: order_status" in text


@pytest.mark.integration
def test_the_trained_model_reads_the_recorded_misses(
    current_model, loaded, tracker_store_engine, tmp_path
):
    text, stats = export_misses(loaded, tracker_store_engine, WEEK, parse=current_model)
    # Each message is filed under what the current model reads it as (retraining may move a
    # vague one such as "my thingy never came??" between order_status and complaint, or to a
    # fallback, which is filed under the runner-up the model would have picked).
    messages = [m for examples in EXPECTED.values() for m in examples]
    now = {m: reading_of(r).intent for m, r in zip(messages, current_model(messages), strict=True)}
    drafted = loads_as_nlu_data(text, tmp_path)
    assert sorted(m for examples in drafted.values() for m in examples) == sorted(messages)
    assert all(now[m] == intent for intent, examples in drafted.items() for m in examples)
    assert stats["examples"] == 3 and text.count("→ now: ") == 3
