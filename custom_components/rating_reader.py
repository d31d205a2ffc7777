"""Reads a typed survey answer ("5", "five stars", "4/5", "五星", "打4分") as a rating.

The survey's buttons send ``/inform{"rating": "5"}``, which skips the NLU pipeline. A customer
who types the answer instead sends a message the intent classifier has rarely seen: a bare "5"
or "五星" is often classified as something else or falls to ``nlu_fallback``, and the rule
``survey answer`` (intent ``inform`` with a ``rating`` entity) never fires.

``RatingReader`` runs last in the pipeline. When a message's *whole* text is a rating
(:func:`contract.rating_of` is not None) it

* adds an entity ``{"entity": "rating", "value": "5", "start": 0, "end": len(text),
  "confidence": 1.0, "extractor": "RatingReader"}`` (the value is the digit, as the buttons
  send it), unless another extractor already found a ``rating`` entity;
* sets the intent to ``inform`` with confidence 1.0, first in ``intent_ranking``, the rest of
  the ranking (``nlu_fallback`` included) kept below it in order.

Other messages ("5 pairs", "order 5", "is size 4 in stock") are left as they are. The
component learns nothing; it has no config keys (any key is rejected).
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_TYPE,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from contract import RATING_SLOT, rating_of
from custom_components.component import KefuComponent, add_entities, whole_text_entity

# The intent and entity the rule `survey answer` waits for; the slot is filled from the
# entity of the same name (domain/support.yml).
INFORM = "inform"
RATING = RATING_SLOT


@DefaultV1Recipe.register(
    [
        DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER,
        DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR,
    ],
    is_trainable=False,
)
class RatingReader(KefuComponent, GraphComponent, IntentClassifier, EntityExtractorMixin):
    """Makes a whole-message rating an ``inform`` with a ``rating`` entity."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Returns the component's default config (it has no settings)."""
        return {}

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage | None = None,
        resource: Resource | None = None,
    ) -> None:
        """Creates the reader.

        Args:
            config: The component config (empty; unknown keys are rejected).
            model_storage: Unused (the reader learns nothing); passed by `create`.
            resource: Unused, as `model_storage`.
        """
        self._config = self.merged_config(config)

    def process(self, messages: list[Message]) -> list[Message]:
        """Marks each message whose whole text is a rating as ``inform`` + ``rating``.

        Args:
            messages: The incoming messages.

        Returns:
            The same messages.
        """
        for message in messages:
            text = message.get(TEXT) or ""
            rating = rating_of(text)
            if rating is None:
                continue
            if not any(e.get(ENTITY_ATTRIBUTE_TYPE) == RATING for e in message.get(ENTITIES, [])):
                add_entities(
                    message, [whole_text_entity(RATING, str(rating), text, 1.0, self.name)]
                )
            self._set_inform(message)
        return messages

    @staticmethod
    def _set_inform(message: Message) -> None:
        """Puts ``inform`` (confidence 1.0) first, the rest of the ranking below it in order."""
        inform = {INTENT_NAME_KEY: INFORM, PREDICTED_CONFIDENCE_KEY: 1.0}
        others = [
            ranked
            for ranked in message.get(INTENT_RANKING_KEY) or []
            if ranked.get(INTENT_NAME_KEY) != INFORM
        ]
        message.set(INTENT, inform, add_to_output=True)
        message.set(INTENT_RANKING_KEY, [dict(inform), *others], add_to_output=True)
