"""Decides whether a message is English or Chinese, so the bot answers in kind.

``LanguageDetector`` sets, on every message that has letters:

* ``message.get("language")`` → ``"en"`` or ``"zh"`` (also in the parse data, so an action
  can read ``tracker.latest_message["language"]``);
* an entity ``{"entity": "language", "value": "en"|"zh", "start": 0, "end": len(text),
  "confidence": c, "extractor": "LanguageDetector"}`` so a ``language`` slot can be
  filled ``from_entity`` (declare ``language`` under ``entities:`` in the domain).

Rule: count Han characters and Latin letters, ignoring identifiers (URLs, emails, order
numbers, SKUs: their letters are not the customer's language). One Han character carries
about as much as ``han_weight`` Latin letters (an English word is ~4.5 letters, a Chinese
word ~1.5 characters), so the *weighted Chinese share* is
``han_weight * han / (han_weight * han + latin)``. The message is ``zh`` when the share
is at least ``zh_threshold`` (ties go to Chinese), else ``en``.

With the defaults (weight 3, threshold 0.25) a customer who wrote Chinese words gets
Chinese: "我的order到哪了" → zh, "where is my 订单" → zh (share 0.4), while one Chinese
word in a long English sentence does not flip it ("I ordered two pairs last week but the
尺码 is wrong, can you exchange them" → en). A message with no letters at all (emoji,
numbers, an order number) gets nothing, so the slot keeps the previous language.
"""

from __future__ import annotations

from typing import Any

import regex
from rasa.engine.graph import GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from custom_components.component import KefuComponent, add_entities, whole_text_entity
from custom_components.config import Rule

LANGUAGE = "language"

# Identifiers whose letters say nothing about the customer's language.
_IDENTIFIER = regex.compile(
    r"(?:https?://|www\.)\S+"
    r"|[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"
    r"|[#+]?[A-Za-z0-9]+(?:[\-_./][A-Za-z0-9]+)+"
    r"|\b[A-Za-z]*\d[A-Za-z0-9]*\b"
)
_HAN = regex.compile(r"\p{Han}")
_LATIN = regex.compile(r"\p{Latin}")


def chinese_share(text: str, han_weight: float = 3.0) -> float | None:
    """Returns the weighted share of Chinese in a text, or None if it has no letters.

    Args:
        text: The message text.
        han_weight: How many Latin letters one Han character counts as.

    Returns:
        A number in [0, 1], or None when the text holds neither Han nor Latin letters.
    """
    words = _IDENTIFIER.sub(" ", text)
    han = len(_HAN.findall(words)) * han_weight
    latin = len(_LATIN.findall(words))
    if han + latin == 0:
        return None
    return han / (han + latin)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class LanguageDetector(KefuComponent, GraphComponent, EntityExtractorMixin):
    """Sets ``language`` (en | zh) on each message as a message key and an entity."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Returns the component's default config."""
        return {
            # How many Latin letters one Han character is worth (word-length ratio).
            "han_weight": 3.0,
            # Weighted Chinese share at or above which a message is "zh".
            "zh_threshold": 0.25,
        }

    @classmethod
    def config_rules(cls) -> dict[str, Rule]:
        """Value checks, in order (unknown keys are rejected too)."""
        return {
            "zh_threshold": (
                lambda v: 0.0 < float(v) < 1.0,
                "expected a number between 0 and 1 (exclusive)",
            ),
            "han_weight": (lambda v: float(v) > 0.0, "expected a positive number"),
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage | None = None,
        resource: Resource | None = None,
    ) -> None:
        """Creates the detector.

        Args:
            config: The component config.
            model_storage: Unused (the detector learns nothing); passed by `create`.
            resource: Unused, as `model_storage`.
        """
        self._config = self.merged_config(config)
        self._han_weight = float(self._config["han_weight"])
        self._threshold = float(self._config["zh_threshold"])

    def detect(self, text: str) -> tuple[str, float] | None:
        """Returns ``(language, confidence)`` for a text, or None if it has no letters.

        Confidence is 0.5 at the threshold and grows to 1.0 for pure text of one script.

        Args:
            text: The message text.
        """
        share = chinese_share(text, self._han_weight)
        if share is None:
            return None
        if share >= self._threshold:
            return "zh", 0.5 + 0.5 * (share - self._threshold) / (1.0 - self._threshold)
        return "en", 0.5 + 0.5 * (self._threshold - share) / self._threshold

    def process(self, messages: list[Message]) -> list[Message]:
        """Adds the language key and entity to each message that has letters.

        Args:
            messages: The incoming messages.

        Returns:
            The same messages.
        """
        for message in messages:
            text = message.get(TEXT) or ""
            detected = self.detect(text)
            if detected is None:
                continue
            language, confidence = detected
            message.set(LANGUAGE, language, add_to_output=True)
            entity = whole_text_entity(LANGUAGE, language, text, round(confidence, 4), self.name)
            add_entities(message, [entity])
        return messages
