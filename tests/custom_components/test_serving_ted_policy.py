"""ServingTEDPolicy: Rasa's TEDPolicy, loaded without the one-example training step."""

from __future__ import annotations

import numpy as np
import pytest
from rasa.core.policies.ted_policy import TEDPolicy
from rasa.core.training import load_data
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.core.domain import Domain

from custom_components.serving_ted_policy import ServingTED, ServingTEDPolicy

DOMAIN = """
version: "3.1"
intents: [greet, order_status, thank_you, goodbye]
entities: [order_number]
slots:
  order_number:
    type: text
    mappings: [{type: from_entity, entity: order_number}]
responses:
  utter_greet: [{text: "Hi!"}]
  utter_ask_order: [{text: "Which order?"}]
  utter_order: [{text: "It is on its way."}]
  utter_welcome: [{text: "You're welcome."}]
  utter_goodbye: [{text: "Bye."}]
"""

STORIES = """
version: "3.1"
stories:
- story: track with the number
  steps:
  - intent: greet
  - action: utter_greet
  - intent: order_status
    entities: [{order_number: "KF-100004"}]
  - slot_was_set: [{order_number: "KF-100004"}]
  - action: utter_order
  - intent: thank_you
  - action: utter_welcome
- story: track without the number
  steps:
  - intent: order_status
  - action: utter_ask_order
  - intent: goodbye
  - action: utter_goodbye
"""

CONFIG = {"epochs": 3, "max_history": 3, "random_seed": 7}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Domain, list, LocalModelStorage, Resource]:
    folder = tmp_path_factory.mktemp("ted")
    (folder / "stories.yml").write_text(STORIES, encoding="utf-8")
    domain = Domain.from_yaml(DOMAIN)
    trackers = load_data(str(folder / "stories.yml"), domain, augmentation_factor=0)
    (folder / "storage").mkdir()
    storage, resource = LocalModelStorage(folder / "storage"), Resource("ted")
    policy = ServingTEDPolicy.create(
        {**ServingTEDPolicy.get_default_config(), **CONFIG},
        storage,
        resource,
        ExecutionContext(GraphSchema({}), "test"),
    )
    policy.train(trackers, domain)
    return domain, trackers, storage, resource


def load(policy_class, trained, finetuning: bool = False):
    _domain, _trackers, storage, resource = trained
    return policy_class.load(
        {**policy_class.get_default_config(), **CONFIG},
        storage,
        resource,
        ExecutionContext(GraphSchema({}), "test", is_finetuning=finetuning),
    )


def test_serving_load_predicts_exactly_what_rasas_load_does(trained):
    domain, trackers, _storage, _resource = trained
    stock, serving = load(TEDPolicy, trained), load(ServingTEDPolicy, trained)

    assert isinstance(serving.model, ServingTED)
    for tracker in trackers:
        expected = stock.predict_action_probabilities(tracker, domain).probabilities
        got = serving.predict_action_probabilities(tracker, domain).probabilities
        np.testing.assert_allclose(got, expected, atol=1e-6)
        assert max(got) > 0  # a real prediction, not an untrained default


def test_serving_load_builds_no_optimiser(trained):
    serving = load(ServingTEDPolicy, trained)

    assert serving.model.optimizer is None


def test_fine_tuning_takes_rasas_load_with_the_training_graph(trained):
    policy = load(ServingTEDPolicy, trained, finetuning=True)

    assert policy.model.optimizer is not None


def _prior_trackers(trackers):
    for tracker in trackers:
        for prior, _hidden in tracker.generate_all_prior_trackers():
            yield prior.copy()  # Rasa yields one tracker, updated in place


def test_remembered_predictions_are_the_models_own(trained):
    domain, trackers, _storage, _resource = trained
    serving = load(ServingTEDPolicy, trained)
    uncached = load(ServingTEDPolicy, trained)
    uncached.config["prediction_cache_size"] = 0

    for tracker in list(_prior_trackers(trackers)) * 2:  # the second round from the cache
        expected = uncached.predict_action_probabilities(tracker, domain)
        got = serving.predict_action_probabilities(tracker, domain)
        assert got.probabilities == expected.probabilities
        assert got.policy_name == expected.policy_name
        assert got.is_end_to_end_prediction == expected.is_end_to_end_prediction
    assert not uncached._prediction_cache


def test_the_same_states_do_not_run_the_model_again(trained, monkeypatch):
    domain, trackers, _storage, _resource = trained
    serving = load(ServingTEDPolicy, trained)
    runs = []
    run_inference = serving.model.run_inference
    monkeypatch.setattr(
        serving.model, "run_inference", lambda data: runs.append(1) or run_inference(data)
    )

    first = serving.predict_action_probabilities(trackers[0], domain)
    first.probabilities[0] = 99.0  # the caller's copy: the remembered one stays as it was
    again = serving.predict_action_probabilities(trackers[0], domain)

    assert len(runs) == 1
    assert again.probabilities[0] != 99.0


def test_the_cache_keeps_the_most_recent_states_only(trained):
    domain, trackers, _storage, _resource = trained
    serving = load(ServingTEDPolicy, trained)
    serving.config["prediction_cache_size"] = 2
    priors = list(_prior_trackers(trackers))

    for tracker in priors:
        serving.predict_action_probabilities(tracker, domain)

    assert len(serving._prediction_cache) == 2
