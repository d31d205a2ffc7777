"""Falls back when the answer picked for a retrieval intent is a guess.

The intent decides *that* a message is an FAQ (or chitchat, or a declined request); the answer
key (``response_selector``: the TransformerIntentClassifier's response head, or a Rasa
ResponseSelector) decides *which* answer. A message unlike anything the shop answers ("move
my money to savings", "set a timer for 10 minutes") is often classified ``faq`` with high
confidence, ``faq`` being the broadest intent, but the answer key then spreads its confidence
thin over the answers. On never-trained data (``bench.scope_bench``, README "Understanding"),
the correct FAQ answers had a median selector confidence of 0.995 and the out-of-scope messages
answered as an FAQ a median of 0.30 (measured with the ResponseSelector).

``AnswerKeyFallback`` runs after the answer key is picked and after the FallbackClassifier.
When the predicted intent is a retrieval intent and the confidence in the answer picked for it
is below ``threshold``, the intent becomes ``nlu_fallback`` with confidence ``threshold``,
exactly as the FallbackClassifier would have made it, so the dialogue asks the customer to
rephrase instead of answering a question nobody asked. The default threshold, 0.5, is the
FallbackClassifier's in ``config.yml``: one bar for "which intent" and "which answer", chosen
before measuring, not tuned on the benchmark.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.graph import GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.constants import RESPONSE_SELECTOR_PROPERTY_NAME
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
)
from rasa.shared.nlu.training_data.message import Message

from contract import selected_response
from custom_components.component import KefuComponent
from custom_components.config import Rule


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class AnswerKeyFallback(KefuComponent, GraphComponent, IntentClassifier):
    """Turns a retrieval intent whose answer key is uncertain into ``nlu_fallback``."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Returns the component's default config."""
        return {
            # Below this selector confidence in the picked answer, the message falls back.
            "threshold": 0.5,
        }

    @classmethod
    def config_rules(cls) -> dict[str, Rule]:
        """Value checks (unknown keys are rejected too)."""
        return {
            "threshold": (
                lambda v: 0.0 <= float(v) <= 1.0,
                "expected a number between 0 and 1",
            ),
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage | None = None,
        resource: Resource | None = None,
    ) -> None:
        """Creates the fallback.

        Args:
            config: The component config (`threshold`).
            model_storage: Unused (nothing is learnt); passed by `create`.
            resource: Unused, as `model_storage`.
        """
        self._config = self.merged_config(config)
        self._threshold = float(self._config["threshold"])

    def process(self, messages: list[Message]) -> list[Message]:
        """Falls back on each message whose retrieval answer is below the threshold.

        Args:
            messages: The incoming messages, after the answer key is picked.

        Returns:
            The same messages.
        """
        for message in messages:
            confidence = self.answer_confidence(message)
            if confidence is not None and confidence < self._threshold:
                fallback = {
                    INTENT_NAME_KEY: DEFAULT_NLU_FALLBACK_INTENT_NAME,
                    PREDICTED_CONFIDENCE_KEY: self._threshold,
                }
                ranking = [dict(fallback), *(message.get(INTENT_RANKING_KEY) or [])]
                message.set(INTENT, fallback, add_to_output=True)
                message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages

    @staticmethod
    def answer_confidence(message: Message) -> float | None:
        """The selector's confidence in the answer it picked for the message's intent.

        None when the intent is no retrieval intent (or already the fallback), or the
        selector picked nothing for it.
        """
        intent = (message.get(INTENT) or {}).get(INTENT_NAME_KEY)
        if not intent or intent == DEFAULT_NLU_FALLBACK_INTENT_NAME:
            return None
        response = selected_response(message.get(RESPONSE_SELECTOR_PROPERTY_NAME), intent)
        confidence = (response or {}).get(PREDICTED_CONFIDENCE_KEY)
        return float(confidence) if confidence is not None else None
