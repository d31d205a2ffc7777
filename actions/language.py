"""Switching the conversation's language when the customer asks (or uses the web chat toggle)."""

from __future__ import annotations

import re

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import lang
from contract import LANGUAGE_EN, LANGUAGE_SLOT, LANGUAGE_ZH, LANGUAGES

TARGET = "target_language"
# When the extractor missed the entity, the words themselves say which language is wanted.
_ASKS_FOR = (
    (LANGUAGE_ZH, re.compile(r"chinese|mandarin|中文|汉语|漢語|普通话|华语", re.IGNORECASE)),
    (LANGUAGE_EN, re.compile(r"english|英文|英语|英語", re.IGNORECASE)),
)


def requested_language(tracker: Tracker) -> str:
    """The language asked for: the ``target_language`` entity, else the language named last
    ("I can't read English, Chinese please"), else the other one than now (someone who asks to
    switch wants a change)."""
    for value in tracker.get_latest_entity_values(TARGET):
        if value in LANGUAGES:
            return value
    text = (tracker.latest_message or {}).get("text") or ""
    last_mention = {
        code: max(m.start() for m in pattern.finditer(text))
        for code, pattern in _ASKS_FOR
        if pattern.search(text)
    }
    if last_mention:
        return max(last_mention, key=last_mention.get)
    return LANGUAGE_EN if lang(tracker) == LANGUAGE_ZH else LANGUAGE_ZH


class ActionSwitchLanguage(Action):
    """Sets the ``language`` slot; the rule then confirms in the new language."""

    def name(self) -> str:
        return "action_switch_language"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        return [SlotSet(LANGUAGE_SLOT, requested_language(tracker))]
