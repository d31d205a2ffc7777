"""Rasa's TEDPolicy, loaded without a training step.

Rasa 3.6 loads a TED model by compiling it and fitting it on one example, only so that Keras
creates its variables, then overwrites them with the saved weights (`RasaModel.load`). On the
shop's model that step is most of `Agent.load` (about 10 of 13 s for TED) and leaves the
training graph, the gradients and the optimiser's slots in the serving process. A
TensorFlow checkpoint can restore variables as they are created instead: here the weights are
read first, one eager prediction creates every variable the prediction path uses (each is
restored from the checkpoint the moment it exists), and a second prediction traces the graph
that serves, as Rasa's own load does. Training, fine-tuning (`rasa train --finetune`) and the
saved files are Rasa's, unchanged: a model trained with `TEDPolicy` is read the same way.

A served TED also remembers its recent predictions. Unless the model reads the user's text (end
to end), its input is a function of the tracker's last `max_history` states alone, and a shop's
conversations run through the same few states again and again (greeted, asked for the order
number, answered, listening). The states are cheap to compute and the TensorFlow call is not:
TED was the largest part of a replica's CPU per turn (docs/BENCHMARKS.md, "Load on the replica
topology"). The prediction for the same states is the same, so a bounded LRU map from the
states to the prediction returns it without running the model.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import numpy as np
from rasa.core.policies.policy import PolicyPrediction
from rasa.core.policies.ted_policy import TED, TEDPolicy
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import ACTION_TEXT, TEXT
from rasa.utils.tensorflow.model_data import RasaModelData

#: Predictions remembered per policy: each about 3 KB for the shop's 234 actions, so about 12 MiB
#: when full.
PREDICTION_CACHE_SIZE = 4096


class ServingTED(TED):
    """TED whose `load` builds the prediction path only."""

    @classmethod
    def load(
        cls,
        model_file_name: str,
        model_data_example: RasaModelData,
        predict_data_example: RasaModelData | None = None,
        finetune_mode: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> TED:
        """Restores the weights as the prediction path creates them (see the module doc).

        Fine-tuning needs the training graph and the optimiser: it takes Rasa's path.
        """
        if finetune_mode or predict_data_example is None:
            return super().load(
                model_file_name,
                model_data_example,
                predict_data_example,
                finetune_mode,
                *args,
                **kwargs,
            )
        model = cls(*args, **kwargs)
        status = model.load_weights(model_file_name)
        model.run_eagerly = True
        model.run_inference(predict_data_example)
        # Every variable the prediction made has its saved value (raises otherwise); the
        # checkpoint's training-only objects (the optimiser) are expected to stay unread.
        status.assert_existing_objects_matched().expect_partial()
        model.run_eagerly = False
        model.run_inference(predict_data_example)
        return model


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.POLICY_WITH_END_TO_END_SUPPORT, is_trainable=True
)
class ServingTEDPolicy(TEDPolicy):
    """`TEDPolicy` (same configuration, training and files) that loads in a fraction of the time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._prediction_cache: OrderedDict[str, PolicyPrediction] = OrderedDict()

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """TED's defaults and the size of the prediction cache (0 turns it off)."""
        return {**TEDPolicy.get_default_config(), "prediction_cache_size": PREDICTION_CACHE_SIZE}

    @staticmethod
    def model_class() -> type[TED]:
        """The TED architecture with the serving `load`."""
        return ServingTED

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        """TED's prediction, from the cache when these states were predicted before."""
        if not self._predictions_follow_states():
            return super().predict_action_probabilities(tracker, domain, rule_only_data, **kwargs)
        states = self._prediction_states(tracker, domain, rule_only_data=rule_only_data)
        key = json.dumps(states, sort_keys=True, default=list)
        cached = self._prediction_cache.get(key)
        if cached is not None:
            self._prediction_cache.move_to_end(key)
            return _with_probabilities(cached, cached.probabilities.tolist())
        prediction = super().predict_action_probabilities(tracker, domain, rule_only_data, **kwargs)
        # An array takes a quarter of a list of floats' memory, and gives the same floats back.
        probabilities = np.asarray(prediction.probabilities, dtype=np.float64)
        self._prediction_cache[key] = _with_probabilities(prediction, probabilities)
        if len(self._prediction_cache) > self.config["prediction_cache_size"]:
            self._prediction_cache.popitem(last=False)
        return prediction

    def _predictions_follow_states(self) -> bool:
        """Whether the model's input is the states alone: a trained model that reads no text."""
        return (
            self.config.get("prediction_cache_size", 0) > 0
            and self.model is not None
            and not self.only_e2e
            and TEXT not in self.fake_features
            and ACTION_TEXT not in self.fake_features
        )


def _with_probabilities(prediction: PolicyPrediction, probabilities: Any) -> PolicyPrediction:
    """`prediction` with `probabilities` of its own: the ensemble may change a caller's."""
    return PolicyPrediction(
        probabilities,
        prediction.policy_name,
        prediction.policy_priority,
        prediction.events,
        prediction.optional_events,
        prediction.is_end_to_end_prediction,
        prediction.is_no_user_prediction,
        prediction.diagnostic_data,
        prediction.hide_rule_turn,
        prediction.action_metadata,
    )
