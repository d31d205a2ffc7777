"""Switching language on request: the entity, the words, or simply the other language."""

from __future__ import annotations

import pytest
from rasa_sdk.events import SlotSet

from actions.language import ActionSwitchLanguage
from tests.helpers.actions import make_tracker


@pytest.mark.parametrize(
    "language, text, entities, expected",
    [
        # The web chat toggle sends /switch_language{"target_language": "zh"}.
        ("en", "/switch_language", [{"entity": "target_language", "value": "zh"}], "zh"),
        ("zh", "/switch_language", [{"entity": "target_language", "value": "en"}], "en"),
        ("en", "can you speak chinese?", None, "zh"),
        ("zh", "请用英文回复", None, "en"),
        # Both named: the one named last is wanted.
        ("zh", "我看不懂英文，用中文吧", None, "zh"),
        ("en", "no english please, mandarin", None, "zh"),
        # Neither named: the other one.
        ("en", "other language please", None, "zh"),
        ("zh", "换个语言", None, "en"),
        # A junk entity value is ignored.
        ("en", "chinese", [{"entity": "target_language", "value": "fr"}], "zh"),
    ],
)
async def test_switch_language(dispatcher, language, text, entities, expected):
    tracker = make_tracker(
        {"language": language}, text=text, intent="switch_language", entities=entities
    )
    events = await ActionSwitchLanguage().run(dispatcher, tracker, {})
    assert events == [SlotSet("language", expected)]
    assert dispatcher.messages == []  # the rule's utter_language_switched confirms
