"""A dialogue policy that notices an angry customer and offers a person.

Rules cannot say "after the second furious message, whatever the intent": they match intents.
`FrustrationPolicy` reads the `SentimentAnalyzer`'s frustration score of recent customer
messages and, when enough of them are strongly negative, predicts the apology-and-offer action
(`action_offer_human_frustrated`) with full confidence and a priority above `RulePolicy`. It
abstains otherwise, so every other turn is decided by rules, memoization and TED as before.
It stays quiet inside a form (the form's own "human" path is always there) and once a person
has been offered in the session, so an angry customer is asked once, not on every message.

The score and the default cut-offs come from :mod:`contract`, which the actions and the agent
console read too; ``config.yml`` overrides them only to experiment.
"""

from __future__ import annotations

from typing import Any

from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SessionStarted, UserUttered
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from contract import (
    FRUSTRATION_WINDOW,
    REPEATED_FRUSTRATION,
    STRONG_FRUSTRATION,
    frustration_of,
)
from custom_components.config import check_values, int_at_least, is_int, reject_unknown_keys


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=False
)
class FrustrationPolicy(Policy):
    """Predicts an offer of a human agent after repeated strongly negative messages."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            # Above RulePolicy (6): a rule for "complaint" must not swallow the offer.
            "priority": 7,
            # Frustration score (0-1) at or above which a message counts as strongly negative.
            "threshold": STRONG_FRUSTRATION,
            # How many such messages, among the last `window` customer messages, trigger it.
            "min_strong_messages": REPEATED_FRUSTRATION,
            "window": FRUSTRATION_WINDOW,
            # What to run: apologise, offer a person, set `human_offered`.
            "action": "action_offer_human_frustrated",
            # Actions after which the customer was already offered (or given) a person.
            "offer_actions": [
                "action_offer_human_frustrated",
                "action_open_complaint",
                "action_handoff",
            ],
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        featurizer: Any = None,
    ) -> None:
        config = {**self.get_default_config(), **config}
        self.validate_config(config)
        super().__init__(config, model_storage, resource, execution_context, featurizer)

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        reject_unknown_keys(cls.__name__, config, cls.get_default_config())
        window = config["window"]
        rules = {
            "threshold": ((lambda v: 0.0 < float(v) <= 1.0), "expected a number in (0, 1]"),
            "window": int_at_least(1),
            "min_strong_messages": (
                (lambda v: is_int(v) and 1 <= v <= int(window)),
                "expected an int in [1, window]",
            ),
        }
        check_values(cls.__name__, config, rules)

    def train(
        self,
        training_trackers: list[TrackerWithCachedStates],
        domain: Domain,
        **kwargs: Any,
    ) -> Resource:
        """Nothing to learn: the behaviour is set by config (kept for the Policy interface)."""
        return self._resource

    def should_offer(self, tracker: DialogueStateTracker) -> bool:
        """Whether this turn is the one to apologise and offer a person."""
        if tracker.active_loop_name or tracker.latest_action_name != ACTION_LISTEN_NAME:
            return False
        latest = tracker.latest_message
        if latest is None or frustration_of(latest.parse_data) < self.config["threshold"]:
            return False
        scores: list[float] = []
        offer_actions = set(self.config["offer_actions"])
        for event in reversed(tracker.events):
            if isinstance(event, SessionStarted):
                break
            if isinstance(event, ActionExecuted) and event.action_name in offer_actions:
                return False  # already offered in this session
            if isinstance(event, UserUttered) and len(scores) < self.config["window"]:
                scores.append(frustration_of(event.parse_data))
        strong = sum(score >= self.config["threshold"] for score in scores)
        return strong >= self.config["min_strong_messages"]

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        probabilities = self._default_predictions(domain)
        if self.should_offer(tracker):
            probabilities[domain.index_for_action(self.config["action"])] = 1.0
        return self._prediction(probabilities)
