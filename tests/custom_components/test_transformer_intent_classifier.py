"""TransformerIntentClassifier: training, ranking, persistence, thresholds, features, config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.classifiers.fallback_classifier import FallbackClassifier
from rasa.nlu.constants import TOKENS_NAMES
from rasa.shared.constants import DEFAULT_NLU_FALLBACK_INTENT_NAME
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import (
    ENTITIES,
    INTENT,
    INTENT_RANKING_KEY,
    INTENT_RESPONSE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from contract import selected_response
from custom_components.encoder.assets import MANIFEST_FILE, _write_manifest
from custom_components.encoder.finetune import FineTunedEncoder
from custom_components.errors import ComponentStorageError, EncoderAssetsMismatch
from custom_components.transformer_intent_classifier import (
    TransformerIntentClassifier,
    decode_bio,
    entity_tag_names,
    stratified_split,
    word_tags,
)

DIM = 32  # hidden size of the tiny test encoder
EXAMPLES = {
    "track_order": ["where is my order", "track order number A-10023", "我的订单在哪里"],
    "return_item": ["i want to return these shoes", "我想退货", "what is the refund policy"],
    "cancel_order": ["cancel my order please", "请帮我取消订单", "please cancel order A-10023"],
}
# Tiny random encoder + tiny data: a high rate and many epochs make it fit in ~1 s.
FAST = {
    "epochs": 30,
    "learning_rate": 1e-2,
    "head_learning_rate": 1e-2,
    "min_steps": 0,
    "batch_size": 4,
    "validation_fraction": 0.0,
    # The training graph at inference too (the ONNX paths have tests of their own below).
    "inference": "tensorflow",
}


def make_config(model_dir: Path, **overrides: Any) -> dict[str, Any]:
    return {
        **TransformerIntentClassifier.get_default_config(),
        "model_path": str(model_dir),
        "device": "cpu",
        **FAST,
        **overrides,
    }


@pytest.fixture()
def training_data(whitespace_tokenize) -> TrainingData:
    messages = []
    for intent, texts in EXAMPLES.items():
        for message in whitespace_tokenize(texts):
            message.set(INTENT, intent)
            messages.append(message)
    return TrainingData(training_examples=messages)


@pytest.fixture()
def train_classifier(tiny_encoder_dir, model_storage, resource, execution_context, training_data):
    def train(**overrides: Any) -> TransformerIntentClassifier:
        classifier = TransformerIntentClassifier.create(
            make_config(tiny_encoder_dir, **overrides), model_storage, resource, execution_context
        )
        assert classifier.train(training_data) == resource
        return classifier

    return train


@pytest.fixture(scope="module")
def trained(tiny_encoder_dir, tmp_path_factory, whitespace_tokenize):
    """One trained classifier (and its storage) shared by the read-only tests."""
    from rasa.engine.graph import ExecutionContext, GraphSchema

    messages = []
    for intent, texts in EXAMPLES.items():
        for message in whitespace_tokenize(texts):
            message.set(INTENT, intent)
            messages.append(message)
    storage = LocalModelStorage(tmp_path_factory.mktemp("intent-storage"))
    context = ExecutionContext(GraphSchema({}), node_name="intent_classifier")
    classifier = TransformerIntentClassifier.create(
        make_config(tiny_encoder_dir), storage, Resource("intent_classifier"), context
    )
    classifier.train(TrainingData(training_examples=messages))
    return classifier, storage, context


def parse(classifier, whitespace_tokenize, texts: list[str]) -> list[Message]:
    return classifier.process(whitespace_tokenize(texts))


def test_training_learns_the_intents(trained, whitespace_tokenize):
    classifier, _, _ = trained
    texts = [text for texts in EXAMPLES.values() for text in texts]
    expected = [intent for intent, texts in EXAMPLES.items() for _ in texts]

    messages = parse(classifier, whitespace_tokenize, texts)

    assert [m.get(INTENT)["name"] for m in messages] == expected
    assert classifier.labels == sorted(EXAMPLES)


def test_prediction_has_diet_shape_and_sorted_ranking(trained, whitespace_tokenize):
    classifier, _, _ = trained
    (message,) = parse(classifier, whitespace_tokenize, ["where is my parcel"])

    intent, ranking = message.get(INTENT), message.get(INTENT_RANKING_KEY)
    assert set(intent) == {"name", "confidence"}
    assert intent == ranking[0]
    assert {r["name"] for r in ranking} == set(EXAMPLES)
    confidences = [r["confidence"] for r in ranking]
    assert confidences == sorted(confidences, reverse=True)
    assert all(0.0 <= c <= 1.0 for c in confidences) and sum(confidences) <= 1.0 + 1e-6
    assert {"intent", "intent_ranking"} <= set(message.as_dict_nlu())


def test_ranking_length_truncates_without_renormalising(train_classifier, whitespace_tokenize):
    classifier = train_classifier(ranking_length=2, epochs=2)
    (message,) = parse(classifier, whitespace_tokenize, ["where is my order"])

    ranking = message.get(INTENT_RANKING_KEY)
    assert len(ranking) == 2
    assert sum(r["confidence"] for r in ranking) < 1.0


def test_persistence_round_trip_gives_identical_predictions(
    trained, tiny_encoder_dir, whitespace_tokenize
):
    classifier, storage, context = trained
    texts = ["where is my order", "我想退货", "zzz qqq"]
    before = parse(classifier, whitespace_tokenize, texts)

    loaded = TransformerIntentClassifier.load(
        make_config(tiny_encoder_dir), storage, Resource("intent_classifier"), context
    )
    after = parse(loaded, whitespace_tokenize, texts)

    assert loaded.labels == classifier.labels and loaded.temperature == classifier.temperature
    assert loaded.background_logit == classifier.background_logit
    for a, b in zip(before, after, strict=True):
        assert a.get(INTENT_RANKING_KEY) == b.get(INTENT_RANKING_KEY)
        np.testing.assert_array_equal(
            a.get_dense_features(TEXT, [])[1].features, b.get_dense_features(TEXT, [])[1].features
        )


def test_only_the_fine_tuned_part_is_persisted(trained):
    classifier, storage, _ = trained
    with storage.read_from(Resource("intent_classifier")) as directory:
        meta = json.loads((directory / "transformer_intent_classifier.json").read_text())
        with np.load(directory / "finetuned_weights.npz") as npz:
            names = set(npz.files)

    assert meta["labels"] == sorted(EXAMPLES) and meta["fingerprint"]
    # The tiny encoder has 2 layers; the default fine-tunes up to 4, so both are stored ...
    assert {n.split("/")[0] for n in names} == {"layer_0", "layer_1", "head"}
    # ... but never the embedding matrix, which stays shared with the base encoder.
    assert not any("embedding" in n for n in names)


def test_training_leaves_the_shared_encoder_unchanged(
    tiny_encoder_dir, train_classifier, whitespace_tokenize
):
    from custom_components.encoder.runtime import get_runtime

    runtime = get_runtime(tiny_encoder_dir, device="cpu")
    before = [w.copy() for w in runtime.model.get_weights()]

    train_classifier(epochs=3)

    for a, b in zip(before, runtime.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_small_data_gets_at_least_min_steps(train_classifier):
    # 9 examples in batches of 4 = 3 steps per epoch; 6 steps need 2 epochs.
    classifier = train_classifier(epochs=1, min_steps=6)

    assert [e["epoch"] for e in classifier.metrics["epochs"]] == [1, 2]


def test_top_layers_only_are_trained_when_asked(train_classifier, training_data):
    classifier = train_classifier(trainable_layers=1, epochs=1)

    assert classifier.encoder.split == 1 and len(classifier.encoder.top) == 1
    assert {n.split("/")[0] for n in classifier.encoder.get_weights()} == {"layer_1", "head"}


@pytest.mark.parametrize("margin, fires", [(0.01, True), (-0.01, False)])
def test_fallback_classifier_fires_below_its_threshold(trained, whitespace_tokenize, margin, fires):
    classifier, _, _ = trained
    (message,) = parse(classifier, whitespace_tokenize, ["where is my parcel"])
    confidence = message.get(INTENT)["confidence"]
    # Only the threshold (the tiny model's top two intents may be close).
    fallback = FallbackClassifier(
        {**FallbackClassifier.get_default_config(), "threshold": 0, "ambiguity_threshold": 0}
    )
    fallback.component_config["threshold"] = confidence + margin

    (result,) = fallback.process([message])

    assert (result.get(INTENT)["name"] == DEFAULT_NLU_FALLBACK_INTENT_NAME) is fires


def test_calibration_fits_a_temperature_on_held_out_examples(
    train_classifier, whitespace_tokenize, training_data
):
    extra = {
        "my order please": "track_order",
        "return it": "return_item",
        "cancel it": "cancel_order",
    }
    for message in whitespace_tokenize(list(extra)):
        message.set(INTENT, extra[message.get(TEXT)])
        training_data.training_examples.append(message)
    classifier = train_classifier(validation_fraction=0.34)

    assert classifier.temperature > 0
    assert classifier.metrics["held_out_examples"] == 3
    assert 0.0 <= classifier.metrics["ece_after"] <= 1.0
    assert classifier.background_logit is not None
    assert classifier.metrics["background_logit"] == classifier.background_logit


def test_out_of_scope_logit_takes_mass_from_weak_evidence(trained):
    classifier, _, _ = trained
    strong = np.array([9.0, 1.0, 0.0]) * classifier.temperature
    weak = np.array([0.2, 0.1, 0.0]) * classifier.temperature
    plain = [classifier.confidences(x) for x in (strong, weak)]
    classifier.background_logit = 3.0
    try:
        with_oos = [classifier.confidences(x) for x in (strong, weak)]
    finally:
        classifier.background_logit = None

    # Plain softmax: a flat but one-sided distribution still sums to 1.
    assert all(abs(p.sum() - 1) < 1e-9 for p in plain)
    # With the out-of-scope logit, strong evidence keeps nearly all of its confidence and
    # weak evidence loses most of it; the order of the intents never changes.
    assert with_oos[0].max() > 0.99 * plain[0].max()
    assert with_oos[1].max() < 0.2
    assert all(
        list(np.argsort(a)) == list(np.argsort(b)) for a, b in zip(plain, with_oos, strict=True)
    )


def test_background_logit_is_the_held_out_evidence_quantile():
    from custom_components.encoder.calibration import background_logit

    logits = np.log(np.array([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0], [8.0, 8.0], [16.0, 16.0]]))
    evidence = np.log([2.0, 4.0, 8.0, 16.0, 32.0])

    assert background_logit(logits, 0.5) == pytest.approx(evidence[2])
    assert background_logit(logits, 0.0) is None
    assert background_logit(logits[:0], 0.1) is None


def test_features_are_provided_with_token_and_sentence_shapes(trained, whitespace_tokenize):
    classifier, _, _ = trained
    (message,) = parse(classifier, whitespace_tokenize, ["track order A-10023 please"])

    sequence, sentence = message.get_dense_features(TEXT, [])
    assert sequence.features.shape == (len(message.get(TOKENS_NAMES[TEXT])), DIM)
    assert sentence.features.shape == (1, DIM)


def test_training_data_gets_features_but_keeps_its_labels(trained, training_data):
    classifier, _, _ = trained
    classifier.process_training_data(training_data)

    for message in training_data.training_examples:
        assert isinstance(message.get(INTENT), str)
        sequence, sentence = message.get_dense_features(TEXT, [])
        assert sequence.features.shape == (len(message.get(TOKENS_NAMES[TEXT])), DIM)


def test_no_features_when_provide_features_is_off(train_classifier, whitespace_tokenize):
    classifier = train_classifier(provide_features=False, epochs=1)
    (message,) = parse(classifier, whitespace_tokenize, ["where is my order"])

    assert message.features == []
    assert message.get(INTENT)["name"] in EXAMPLES


def test_registered_as_intent_classifier_entity_extractor_and_featurizer():
    registered = DefaultV1Recipe._from_registry(TransformerIntentClassifier.__name__)

    assert registered.is_trainable
    assert {
        DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER,
        DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR,
        DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER,
    } <= registered.types


def test_load_without_a_trained_entry_fails_clearly(tiny_encoder_dir, tmp_path, execution_context):
    (tmp_path / "empty").mkdir()

    with pytest.raises(ComponentStorageError, match="rasa train"):
        TransformerIntentClassifier.load(
            make_config(tiny_encoder_dir),
            LocalModelStorage(tmp_path / "empty"),
            Resource("never-trained"),
            execution_context,
        )


def test_load_fails_when_assets_differ_from_training(
    tiny_encoder_dir, tmp_path, model_storage, resource, execution_context, training_data
):
    folder = Path(shutil.copytree(tiny_encoder_dir, tmp_path / "assets"))
    config = make_config(folder, epochs=1)
    TransformerIntentClassifier.create(config, model_storage, resource, execution_context).train(
        training_data
    )
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    config_json = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config_json, "note": "rebuilt"}))
    _write_manifest(folder, {k: manifest[k] for k in ("name", "prefix", "source")})

    with pytest.raises(EncoderAssetsMismatch, match=r"\[E003\]"):
        TransformerIntentClassifier.load(config, model_storage, resource, execution_context)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epoch": 3}, r"Unknown config key.*epochs"),
        ({"device": "tpu"}, r"\['auto', 'cpu', 'gpu'\]"),
        ({"trainable_layers": -1}, "trainable_layers"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"validation_fraction": 0.9}, "validation_fraction"),
        ({"out_of_scope_quantile": 1.0}, "out_of_scope_quantile"),
        ({"out_of_scope_distance_quantile": 1.0}, "out_of_scope_distance_quantile"),
        ({"out_of_scope_intent": ""}, "out_of_scope_intent"),
        ({"ranking_length": 1.5}, "ranking_length"),
        ({"buckets": []}, "buckets"),
        ({"provide_features": "yes"}, "provide_features"),
    ],
)
def test_invalid_config_is_rejected_with_the_choices(tiny_encoder_dir, overrides, message):
    with pytest.raises(InvalidConfigException, match=message):
        TransformerIntentClassifier.validate_config(make_config(tiny_encoder_dir, **overrides))


def test_stratified_split_holds_out_a_share_of_each_intent():
    targets = np.array([0] * 10 + [1] * 10 + [2] * 2)

    fit, held = stratified_split(targets, 0.2, seed=0)

    assert sorted(np.bincount(targets[held], minlength=3)) == [0, 2, 2]
    assert len(set(fit) | set(held)) == len(targets) and not set(fit) & set(held)


@pytest.mark.slow
def test_rasa_train_feeds_fine_tuned_features_to_downstream_components(tiny_encoder_dir, tmp_path):
    """`rasa train` wiring: DIET (entities only) trains on our features; the model parses."""
    import asyncio

    from rasa.core.agent import Agent
    from rasa.model_training import train_nlu

    from custom_components.encoder.runtime import clear_runtimes

    nlu = ['version: "3.1"', "nlu:"]
    for intent, texts in EXAMPLES.items():
        nlu += [
            f"- intent: {intent}",
            "  examples: |",
            *(f"    - {t.replace('A-10023', '[A-10023](order)')}" for t in texts),
        ]
    (tmp_path / "nlu.yml").write_text("\n".join(nlu) + "\n")
    classifier = "custom_components.transformer_intent_classifier.TransformerIntentClassifier"
    (tmp_path / "config.yml").write_text(
        "recipe: default.v1\nlanguage: en\nassistant_id: test\npipeline:\n"
        "  - name: WhitespaceTokenizer\n"
        f"  - name: {classifier}\n    model_path: {tiny_encoder_dir}\n    device: cpu\n"
        "    epochs: 30\n    learning_rate: 0.01\n    head_learning_rate: 0.01\n"
        "    batch_size: 4\n    validation_fraction: 0.0\n    min_steps: 0\n"
        "  - name: DIETClassifier\n    intent_classification: false\n    epochs: 1\n"
        "  - name: FallbackClassifier\n    threshold: 0.3\npolicies: []\n"
    )

    model = train_nlu(
        str(tmp_path / "config.yml"), str(tmp_path / "nlu.yml"), str(tmp_path / "models")
    )
    clear_runtimes()
    parse = asyncio.run(Agent.load(model).parse_message("where is my order"))

    assert parse["intent"]["name"] in set(EXAMPLES) | {"nlu_fallback"}
    assert len(parse["intent_ranking"]) >= 3


def test_patience_stops_training_and_keeps_the_best_epoch(
    train_classifier, whitespace_tokenize, training_data
):
    extra = {
        "my order please": "track_order",
        "return it": "return_item",
        "cancel it": "cancel_order",
    }
    for message in whitespace_tokenize(list(extra)):
        message.set(INTENT, extra[message.get(TEXT)])
        training_data.training_examples.append(message)

    classifier = train_classifier(validation_fraction=0.34, epochs=30, patience=1)

    epochs = classifier.metrics["epochs"]
    # Three held-out examples allow at most four strictly better accuracies (0, 1/3, 2/3, 1):
    # with a patience of one epoch, training stops by the fifth of the thirty.
    assert len(epochs) <= 5
    best = max(e["val_accuracy"] for e in epochs)
    assert classifier.metrics["held_out_accuracy"] == pytest.approx(best)


def test_patience_must_be_a_count(tiny_encoder_dir, model_storage, resource, execution_context):
    with pytest.raises(InvalidConfigException, match="patience"):
        TransformerIntentClassifier.create(
            make_config(tiny_encoder_dir, patience=-1), model_storage, resource, execution_context
        )


# ---------------------------------------------------------------- entities and answer keys

# (text, intent, answer key, entities as (type, text)): one run learns all three.
MULTI_TASK = [
    ("track order 100234 please", "track_order", None, [("order_number", "100234")]),
    ("where is order 558120", "track_order", None, [("order_number", "558120")]),
    ("status of 731004 please", "track_order", None, [("order_number", "731004")]),
    ("do you have size 42 in red", "check_stock", None, [("size", "42"), ("colour", "red")]),
    ("size 38 in blue please", "check_stock", None, [("size", "38"), ("colour", "blue")]),
    ("is there a black one in size 40", "check_stock", None, [("colour", "black"), ("size", "40")]),
    ("how long does shipping take", "faq", "faq/shipping", []),
    ("when will my parcel ship", "faq", "faq/shipping", []),
    ("how do returns work", "faq", "faq/returns", []),
    ("can i send it back", "faq", "faq/returns", []),
    ("are you a robot", "chitchat", "chitchat/bot", []),
    ("am i talking to a bot", "chitchat", "chitchat/bot", []),
]
RESPONSES = {
    "utter_faq/shipping": [{"text": "Orders ship within 2 days."}],
    "utter_faq/returns": [{"text": "Returns are free for 30 days."}],
    "utter_chitchat/bot": [{"text": "I'm Kefu, a bot."}],
}


def multi_task_data(whitespace_tokenize) -> TrainingData:
    messages = whitespace_tokenize([text for text, *_ in MULTI_TASK])
    for message, (text, intent, key, entities) in zip(messages, MULTI_TASK, strict=True):
        message.set(INTENT, intent)
        if key:
            message.set(INTENT_RESPONSE_KEY, key)
        message.set(
            ENTITIES,
            [
                {
                    "entity": kind,
                    "value": value,
                    "start": (i := text.index(value)),
                    "end": i + len(value),
                }
                for kind, value in entities
            ],
        )
    return TrainingData(training_examples=messages, responses=RESPONSES)


@pytest.fixture(scope="module")
def multi_task(tiny_encoder_dir, tmp_path_factory, whitespace_tokenize):
    """A classifier trained on intents, entities and answer keys together."""
    from rasa.engine.graph import ExecutionContext, GraphSchema

    storage = LocalModelStorage(tmp_path_factory.mktemp("multi-task-storage"))
    context = ExecutionContext(GraphSchema({}), node_name="multi_task")
    classifier = TransformerIntentClassifier.create(
        make_config(tiny_encoder_dir, epochs=60), storage, Resource("multi_task"), context
    )
    classifier.train(multi_task_data(whitespace_tokenize))
    return classifier, storage, context


def entities_of(message: Message) -> list[tuple[str, str, int, int]]:
    return [(e["entity"], e["value"], e["start"], e["end"]) for e in message.get(ENTITIES, [])]


def test_one_run_learns_the_annotated_entities(multi_task, whitespace_tokenize):
    classifier, _, _ = multi_task
    texts = [text for text, *_ in MULTI_TASK]

    messages = parse(classifier, whitespace_tokenize, texts)

    for message, (text, _, _, entities) in zip(messages, MULTI_TASK, strict=True):
        expected = [(k, v, text.index(v), text.index(v) + len(v)) for k, v in entities]
        assert sorted(entities_of(message)) == sorted(expected), text
        assert all(
            e["extractor"] == "TransformerIntentClassifier" and 0 < e["confidence"] <= 1
            for e in message.get(ENTITIES, [])
        )
    assert classifier.entity_tags == entity_tag_names(
        multi_task_data(whitespace_tokenize).intent_examples
    )


def test_answer_keys_are_reported_as_the_response_selector_reports_them(
    multi_task, whitespace_tokenize
):
    classifier, _, _ = multi_task
    rows = [row for row in MULTI_TASK if row[2]]

    messages = parse(classifier, whitespace_tokenize, [text for text, *_ in rows])

    for message, (text, intent, key, _) in zip(messages, rows, strict=True):
        selectors = message.get("response_selector")
        assert selectors["all_retrieval_intents"] == ["chitchat", "faq"]
        picked = selectors["default"]["response"]
        assert picked["intent_response_key"] == key, text
        assert picked["utter_action"] == f"utter_{key}"
        assert picked["responses"] == RESPONSES[f"utter_{key}"]
        ranking = selectors["default"]["ranking"]
        assert ranking[0]["intent_response_key"] == key and len(ranking) == 3
        assert ranking[0]["confidence"] == picked["confidence"]
        # What Kefu's actions and AnswerKeyFallback read.
        assert selected_response(selectors, intent) == picked
        assert "response_selector" in message.as_dict_nlu()


def test_heads_survive_persistence(multi_task, tiny_encoder_dir, whitespace_tokenize):
    classifier, storage, context = multi_task
    texts = ["track order 100234 please", "how do returns work", "size 40 in red"]
    before = parse(classifier, whitespace_tokenize, texts)

    loaded = TransformerIntentClassifier.load(
        make_config(tiny_encoder_dir), storage, Resource("multi_task"), context
    )
    after = parse(loaded, whitespace_tokenize, texts)

    assert loaded.entity_tags == classifier.entity_tags
    assert (
        loaded.response_keys
        == classifier.response_keys
        == ["chitchat/bot", "faq/returns", "faq/shipping"]
    )
    assert loaded.response_temperature == classifier.response_temperature
    for a, b in zip(before, after, strict=True):
        assert a.get(ENTITIES) == b.get(ENTITIES)
        assert a.get("response_selector") == b.get("response_selector")


def test_heads_are_switched_off_by_config(train_classifier, whitespace_tokenize, training_data):
    training_data.training_examples[:] = multi_task_data(whitespace_tokenize).training_examples
    classifier = train_classifier(entity_recognition=False, response_selection=False, epochs=1)
    (message,) = parse(classifier, whitespace_tokenize, ["track order 100234 please"])

    assert classifier.entity_tags == [] and classifier.response_keys == []
    assert set(classifier.encoder.get_weights()) == {
        n for n in classifier.encoder.get_weights() if not n.startswith(("tags/", "responses/"))
    }
    assert message.get(ENTITIES) is None and message.get("response_selector") is None


def test_data_without_entities_or_answer_keys_builds_no_heads(trained):
    classifier, _, _ = trained

    assert classifier.entity_tags == [] and classifier.response_keys == []
    assert classifier.encoder.num_tags == 0 and classifier.encoder.num_responses == 0


def test_word_tags_mark_the_first_token_of_an_entity_b_and_the_rest_i(whitespace_tokenize):
    (message,) = whitespace_tokenize(["a size 10 navy blue jacket"])
    message.set(
        ENTITIES,
        [
            {"entity": "size", "value": "10", "start": 7, "end": 9},
            {"entity": "colour", "value": "navy blue", "start": 10, "end": 19},
        ],
    )
    names = entity_tag_names([message])

    tags = [names[i] for i in word_tags(message, names)]

    assert names == ["O", "B-colour", "I-colour", "B-size", "I-size"]
    assert tags == ["O", "O", "B-size", "B-colour", "I-colour", "O"]


@pytest.mark.parametrize(
    "tags, expected",
    [
        (["O", "B-size", "O"], [("size", 1, 1)]),
        (["B-colour", "I-colour", "B-size"], [("colour", 0, 1), ("size", 2, 2)]),
        # A stray I- starts an entity; an I- of another type starts a new one.
        (["O", "I-size", "I-colour"], [("size", 1, 1), ("colour", 2, 2)]),
        (["B-size", "B-size"], [("size", 0, 0), ("size", 1, 1)]),
        (["O", "O"], []),
    ],
)
def test_decode_bio(tags, expected):
    confidences = np.linspace(0.9, 0.5, len(tags))

    found = decode_bio(tags, confidences)

    assert [(kind, first, last) for kind, first, last, _ in found] == expected
    for _, first, last, confidence in found:
        assert confidence == pytest.approx(confidences[first : last + 1].min())


# ---------------------------------------------------------------- ONNX Runtime at inference


@pytest.mark.parametrize("inference", ["onnx-float32", "onnx-int8"])
def test_a_loaded_model_runs_the_exported_graph(
    tiny_encoder_dir, tmp_path, whitespace_tokenize, inference
):
    pytest.importorskip("onnxruntime")
    from rasa.engine.graph import ExecutionContext, GraphSchema

    from custom_components.encoder.onnx_encoder import OnnxEncoder

    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), node_name="multi_task")
    config = make_config(tiny_encoder_dir, epochs=60, inference=inference)
    trained = TransformerIntentClassifier.create(config, storage, Resource("onnx"), context)
    trained.train(multi_task_data(whitespace_tokenize))
    texts = [text for text, *_ in MULTI_TASK]
    before = parse(trained, whitespace_tokenize, texts)

    loaded = TransformerIntentClassifier.load(config, storage, Resource("onnx"), context)
    after = parse(loaded, whitespace_tokenize, texts)

    assert isinstance(trained.encoder, FineTunedEncoder)
    assert isinstance(loaded.encoder, OnnxEncoder)
    assert loaded.encoder.quantized is (inference == "onnx-int8")
    assert "onnx_export" in trained.metrics
    for a, b in zip(before, after, strict=True):
        assert a.get(INTENT)["name"] == b.get(INTENT)["name"]
        assert entities_of(a) == entities_of(b)
        picked = [
            m.get("response_selector", {}).get("default", {}).get("response", {}) for m in (a, b)
        ]
        assert picked[0].get("intent_response_key") == picked[1].get("intent_response_key")
        if inference == "onnx-float32":
            assert a.get(INTENT)["confidence"] == pytest.approx(
                b.get(INTENT)["confidence"], abs=1e-4
            )


def test_tensorflow_inference_exports_nothing(multi_task):
    classifier, storage, _ = multi_task
    with storage.read_from(Resource("multi_task")) as directory:
        assert not (directory / "encoder.onnx").exists()
    assert isinstance(classifier.encoder, FineTunedEncoder)


def test_without_onnxruntime_the_encoder_runs_in_tensorflow(
    train_classifier, whitespace_tokenize, monkeypatch, caplog
):
    import custom_components.transformer_intent_classifier as module

    monkeypatch.setattr(module, "onnx_available", lambda: False)
    classifier = train_classifier(inference="onnx-int8", epochs=1)

    assert isinstance(classifier.encoder, FineTunedEncoder)
    assert "needs onnxruntime" in caplog.text


def test_word_shapes_tell_apart_words_one_piece_may_cover():
    from custom_components.encoder.finetune import SHAPE_FEATURES, word_shapes

    text = "M码 2件 KF-100004 ，"
    spans = [(0, 1), (1, 2), (3, 4), (4, 5), (6, 15), (16, 17)]

    shapes = word_shapes(text, spans)

    assert shapes.shape == (len(spans), SHAPE_FEATURES) and shapes.dtype == np.float32
    # "M" and "码", "2" and "件": never the same row, whatever the encoder's pieces.
    assert tuple(shapes[0]) != tuple(shapes[1]) and tuple(shapes[2]) != tuple(shapes[3])
    digits, has_digit, capitals, latin, han, symbol, single, long_ = shapes.T
    assert list(digits[:4]) == [0, 0, 1, 0] and has_digit[4] == 1
    assert list(han[:4]) == [0, 1, 0, 1] and capitals[0] == 1 and latin[4] == 1
    assert symbol[5] == 1 and single[0] == 1 and long_[4] == 1


# ---------------------------------------------------------------- out of scope by distance

# Four examples per intent, so validation_fraction 0.34 holds one of each out for the threshold.
SCOPE_EXAMPLES = {
    **{
        intent: [*texts, extra]
        for (intent, texts), extra in zip(
            EXAMPLES.items(), ["my order please", "return it", "cancel it"], strict=True
        )
    },
    "out_of_scope": [
        "set a timer for ten minutes",
        "translate hello into french",
        "move money to my savings",
        "what is the weather tomorrow",
    ],
}
DISTANCE = {"validation_fraction": 0.34, "out_of_scope_distance_quantile": 0.9}


def scope_data(whitespace_tokenize, examples=SCOPE_EXAMPLES) -> TrainingData:
    messages = []
    for intent, texts in examples.items():
        for message in whitespace_tokenize(texts):
            message.set(INTENT, intent)
            messages.append(message)
    return TrainingData(training_examples=messages)


@pytest.fixture(scope="module")
def with_distance(tiny_encoder_dir, tmp_path_factory, whitespace_tokenize):
    """A classifier trained with the distance check on, and its storage."""
    from rasa.engine.graph import ExecutionContext, GraphSchema

    storage = LocalModelStorage(tmp_path_factory.mktemp("distance-storage"))
    context = ExecutionContext(GraphSchema({}), node_name="distance")
    classifier = TransformerIntentClassifier.create(
        make_config(tiny_encoder_dir, **DISTANCE), storage, Resource("distance"), context
    )
    classifier.train(scope_data(whitespace_tokenize))
    return classifier, storage, context


def test_distance_check_is_fitted_on_in_scope_intents_and_persisted(with_distance):
    classifier, storage, _ = with_distance
    with storage.read_from(Resource("distance")) as directory:
        meta = json.loads((directory / "transformer_intent_classifier.json").read_text())
        with np.load(directory / "out_of_scope_distance.npz") as npz:
            means, precision = npz["means"], npz["precision"]

    in_scope = sorted(EXAMPLES)
    assert meta["out_of_scope_distance"] == {
        "intents": in_scope,
        "threshold": classifier.gaussians.threshold,
        "quantile": 0.9,
        "out_of_scope_intent": "out_of_scope",
    }
    assert means.shape == (len(in_scope), DIM) and precision.shape == (DIM, DIM)
    assert means.dtype == precision.dtype == np.float32
    report = classifier.metrics["out_of_scope_distance"]
    assert report["fit_examples"] == 9 and report["held_out_in_scope"] == 3
    assert report["held_out_out_of_scope"] == 1 and report["fitted_on"] == "tensorflow"


def test_every_parse_reports_its_distance_and_the_trained_threshold(
    with_distance, tiny_encoder_dir, whitespace_tokenize
):
    classifier, storage, context = with_distance
    texts = ["where is my order", "set an alarm for seven", "我想退货"]
    loaded = TransformerIntentClassifier.load(
        make_config(tiny_encoder_dir), storage, Resource("distance"), context
    )

    before = parse(classifier, whitespace_tokenize, texts)
    after = parse(loaded, whitespace_tokenize, texts)

    # The trained check wins over a load-time config that leaves it off.
    assert loaded._config["out_of_scope_distance_quantile"] == 0.9
    for a, b in zip(before, after, strict=True):
        report = b.as_dict_nlu()["out_of_scope_distance"]
        assert set(report) == {"distance", "threshold", "nearest_intent"}
        assert report["threshold"] == classifier.gaussians.threshold > 0
        assert report["nearest_intent"] in EXAMPLES and report["distance"] >= 0
        assert a.get("out_of_scope_distance") == report
        assert a.get(INTENT_RANKING_KEY) == b.get(INTENT_RANKING_KEY)


def test_a_message_over_the_threshold_becomes_the_out_of_scope_intent(
    with_distance, whitespace_tokenize
):
    import dataclasses

    classifier, _, _ = with_distance
    (plain,) = parse(classifier, whitespace_tokenize, ["where is my order"])
    trained = classifier.gaussians
    classifier.gaussians = dataclasses.replace(trained, threshold=0.0)
    try:
        (far,) = parse(classifier, whitespace_tokenize, ["where is my order"])
    finally:
        classifier.gaussians = trained
    fallback = FallbackClassifier(
        {**FallbackClassifier.get_default_config(), "threshold": 0.5, "ambiguity_threshold": 0.1}
    )

    ranking = far.get(INTENT_RANKING_KEY)
    assert plain.get(INTENT)["name"] == "track_order"
    assert far.get(INTENT) == ranking[0] and ranking[0]["name"] == "out_of_scope"
    assert ranking[0]["confidence"] >= 0.9 and sum(r["confidence"] for r in ranking) <= 1 + 1e-9
    # The other intents keep their order, each with a tenth (1 - quantile) of its confidence.
    others = [r for r in plain.get(INTENT_RANKING_KEY) if r["name"] != "out_of_scope"]
    assert [r["name"] for r in ranking[1:]] == [r["name"] for r in others]
    for flagged, kept in zip(ranking[1:], others, strict=True):
        assert flagged["confidence"] == pytest.approx(kept["confidence"] * 0.1)
    (answered,) = fallback.process([far])
    assert answered.get(INTENT)["name"] == "out_of_scope"


def test_without_the_distance_check_no_distance_is_reported(trained, whitespace_tokenize):
    classifier, _, _ = trained
    (message,) = parse(classifier, whitespace_tokenize, ["where is my order"])

    assert classifier.gaussians is None
    assert "out_of_scope_distance" not in message.as_dict_nlu()


def test_the_distance_check_needs_the_out_of_scope_intent_in_the_data(
    train_classifier, training_data
):
    with pytest.raises(InvalidConfigException, match=r"\[E009\].*'out_of_scope'"):
        train_classifier(**DISTANCE)


def test_without_held_out_examples_the_model_says_it_has_no_distance_check(
    tiny_encoder_dir, model_storage, resource, execution_context, whitespace_tokenize, caplog
):
    config = make_config(tiny_encoder_dir, out_of_scope_distance_quantile=0.9)
    classifier = TransformerIntentClassifier.create(
        config, model_storage, resource, execution_context
    )
    classifier.train(scope_data(whitespace_tokenize))

    assert classifier.gaussians is None and "[W003]" in caplog.text
    loaded = TransformerIntentClassifier.load(config, model_storage, resource, execution_context)
    assert loaded.gaussians is None and loaded._config["out_of_scope_distance_quantile"] == 0.0


@pytest.mark.parametrize("inference", ["onnx-float32", "onnx-int8"])
def test_the_distance_check_is_fitted_on_the_graph_that_parses(
    tiny_encoder_dir, tmp_path, whitespace_tokenize, inference
):
    pytest.importorskip("onnxruntime")
    from rasa.engine.graph import ExecutionContext, GraphSchema

    storage = LocalModelStorage(tmp_path)
    context = ExecutionContext(GraphSchema({}), node_name="distance")
    config = make_config(tiny_encoder_dir, inference=inference, **DISTANCE)
    trained = TransformerIntentClassifier.create(config, storage, Resource("d"), context)
    trained.train(scope_data(whitespace_tokenize))
    texts = [text for texts in SCOPE_EXAMPLES.values() for text in texts]

    loaded = TransformerIntentClassifier.load(config, storage, Resource("d"), context)
    tensorflow = parse(trained, whitespace_tokenize, texts)  # the training graph
    onnx = parse(loaded, whitespace_tokenize, texts)

    assert trained.metrics["out_of_scope_distance"]["fitted_on"] == "onnx"
    assert trained.metrics["onnx_export"]["path"] == "encoder.onnx"
    assert loaded.gaussians.threshold == trained.gaussians.threshold
    # Parsed alone, as a server parses, the held-out in-scope examples give back the threshold:
    # the fit read them the same way (int8 vectors move with their batch-mates).
    labels = sorted(SCOPE_EXAMPLES)
    targets = np.array([labels.index(i) for i, ts in SCOPE_EXAMPLES.items() for _ in ts])
    _, held = stratified_split(targets, DISTANCE["validation_fraction"], seed=42)
    held_in_scope = [texts[i] for i in held if labels[targets[i]] != "out_of_scope"]
    alone = [parse(loaded, whitespace_tokenize, [text])[0] for text in held_in_scope]
    distances = [m.get("out_of_scope_distance")["distance"] for m in alone]
    assert len(distances) == 3
    assert np.quantile(distances, 0.9) == pytest.approx(loaded.gaussians.threshold, rel=1e-5)
    if inference == "onnx-float32":
        # Same vectors to round-off, so both paths report the same distance and decision.
        for a, b in zip(tensorflow, onnx, strict=True):
            reports = [m.get("out_of_scope_distance") for m in (a, b)]
            assert reports[0]["distance"] == pytest.approx(reports[1]["distance"], rel=1e-3)
            assert a.get(INTENT)["name"] == b.get(INTENT)["name"]
