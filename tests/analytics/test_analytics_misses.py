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

from analytics.__main__ import main
from analytics.metrics import Window
from analytics.misses import Draft, Miss, export_misses, render_yaml
from tests.analytics.conftest import NOW, broker_items

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
    from analytics.misses import group

    draft = group(misses)
    assert isinstance(draft, Draft) and draft.without_text == 1
    text = render_yaml(draft)
    assert examples_by_intent(text) == {"faq": ["how much is shipping"]}
    assert "# 1. handoff, rephrased" in text


def test_the_command_line_writes_the_draft(tmp_path, tracker_store_engine, capsys):
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(
        "tracker_store:\n  type: channels.tracker_store.MaskingSQLTrackerStore\n"
        f"  dialect: sqlite\n  db: {tracker_store_engine.url.database}\n",
        encoding="utf-8",
    )
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
