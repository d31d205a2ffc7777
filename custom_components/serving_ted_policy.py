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
"""

from __future__ import annotations

from typing import Any

from rasa.core.policies.ted_policy import TED, TEDPolicy
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.utils.tensorflow.model_data import RasaModelData


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

    @staticmethod
    def model_class() -> type[TED]:
        """The TED architecture with the serving `load`."""
        return ServingTED
