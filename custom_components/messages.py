"""Coded error and warning messages of Kefu's custom NLU components.

One message per code, in one file (the pattern of spaCy's ``errors.py``), so a user
can search for ``[E131]`` and land on the explanation. Each message says what was
found, what was expected and how to fix it. Format them with ``str.format``::

    raise InvalidConfigException(
        Errors.E100.format(component="MixedScriptTokenizer", unknown="foo", valid="...")
    )

Code ranges (leave gaps so related messages stay together):
    E001-E099  encoder: assets, runtime, featurizer, intent classifier
    E100-E109  config shared by all components
    E110-E119  MixedScriptTokenizer
    E120-E129  LanguageDetector
    E130-E139  SentimentAnalyzer
    E140-E149  CatalogEntityExtractor
    E150-E199  free for further components
    W001-W199  warnings, in the same ranges as the errors
"""

from __future__ import annotations


class ErrorsWithCodes(type):
    """Metaclass that prefixes every message with its code, e.g. ``[E001] ...``."""

    def __getattribute__(cls, code: str) -> str:
        msg = super().__getattribute__(code)
        # Python's own attributes (__name__, __doc__, ...) come back untouched.
        if code.startswith("__"):
            return msg
        return f"[{code}] {msg}"


__all__ = ["BUILD_HINT", "Errors", "Warnings"]

# How to (re)build the encoder assets; quoted by every asset error.
BUILD_HINT = "Run `make model` (or `.venv/bin/python -m custom_components.encoder.assets build`)."


class Errors(metaclass=ErrorsWithCodes):
    """Error messages; raise them with a typed exception."""

    # Encoder assets, runtime and the components built on it
    E001 = (
        "Encoder assets for '{model}' were not found at '{path}'. Expected a local Hugging "
        "Face BERT folder with config.json, model.safetensors, tokenizer.json and "
        "kefu_manifest.json. " + BUILD_HINT
    )
    E002 = (
        "Encoder assets at '{path}' do not match their manifest: {problems}. The folder "
        "was modified or only partly written. Delete it and rebuild. " + BUILD_HINT
    )
    E003 = (
        "This model was trained with encoder '{expected}' (file hashes {expected_hash}), "
        "but the assets at '{path}' are '{found}' ({found_hash}). Rebuild the same assets or "
        "retrain the Rasa model. " + BUILD_HINT
    )
    E004 = (
        "Source file '{path}' has sha256 {found}, expected {expected}. The installed "
        "package is not the pinned version ({package}); reinstall it with pip."
    )
    E005 = (
        "The converted encoder does not reproduce the source embeddings: {detail}. "
        "Not writing the asset folder."
    )
    E006 = (
        "Unknown encoder source '{source}'. Expected one of {choices} or a path to a "
        "local Hugging Face BERT folder."
    )
    E007 = (
        "`device: gpu` was requested but TensorFlow sees no GPU. Use `device: auto` or "
        "`device: cpu`."
    )
    E008 = (
        "The encoder model storage entry for '{component}' is missing or unreadable "
        "({detail}). Retrain the Rasa model (`rasa train`)."
    )
    E009 = (
        "TransformerIntentClassifier's distance check ('out_of_scope_distance_quantile') "
        "reports messages far from every intent as '{intent}', which is not one of the trained "
        "intents {labels}. Set 'out_of_scope_intent' to the intent that answers out-of-scope "
        "requests, add examples of '{intent}' to the NLU data, or set "
        "'out_of_scope_distance_quantile: 0'."
    )

    # Config shared by all components
    E100 = (
        "Unknown config key(s) {unknown} for component '{component}'. "
        "Valid keys are: {valid}. Check the spelling in config.yml."
    )
    E101 = (
        "Config key '{key}' of component '{component}' has the invalid value {value!r}: "
        "{expected}. Fix it in config.yml."
    )

    # MixedScriptTokenizer
    E110 = (
        "The jieba user dictionary path '{path}' configured as 'dictionary_path' of "
        "MixedScriptTokenizer does not exist. Point it at a jieba dictionary file or a "
        "folder of them (one 'word [freq] [tag]' per line), or set it to null."
    )
    E111 = (
        "MixedScriptTokenizer is configured with 'dictionary_path', but the trained "
        "model holds no jieba dictionary (resource '{resource}'). Retrain with "
        "`rasa train` so the dictionary is copied into the model."
    )

    # SentimentAnalyzer
    E130 = (
        "No sentiment training data found at '{path}' (configured as "
        "'training_data_path' of SentimentAnalyzer). Expected a folder with "
        "'<language>.yml' files such as data/sentiment/en.yml; run `rasa train` from "
        "the project root or fix the path."
    )
    E131 = (
        "The sentiment file '{path}' is not valid: {problem}. Expected a mapping with "
        "'labels:', a list of items '{{label: <one of {labels}>, examples: |-list}}'."
    )
    E132 = (
        "SentimentAnalyzer needs examples of every label to train, but found only "
        "{found} in '{path}'. Add examples for the missing label(s): {missing}."
    )
    E133 = (
        "The trained model holds no SentimentAnalyzer weights (resource '{resource}', "
        "missing file '{file}'). The model was trained without this component or is "
        "damaged; retrain it with `rasa train`."
    )

    # CatalogEntityExtractor
    E140 = (
        "Catalog lookup file '{path}' (configured as 'catalog_path' of "
        "CatalogEntityExtractor) does not exist. Export it from the commerce backend "
        "(see the module docstring of custom_components/catalog_entity_extractor.py for "
        "the format) or fix the path."
    )
    E141 = (
        "Catalog lookup file '{path}' is not valid: {problem}. Expected "
        "'version: 1' and 'entities: {{<entity type>: [{{value: ..., synonyms: [...]}}]}}'."
    )
    E142 = (
        "Catalog lookup file '{path}' maps the phrase '{phrase}' to two different "
        "values of entity '{entity}': '{first}' and '{second}'. A phrase must name one "
        "thing; remove it from one of the two entries."
    )
    E143 = (
        "The trained model holds no CatalogEntityExtractor lookup (resource "
        "'{resource}', missing file '{file}'). The model was trained without this "
        "component or is damaged; retrain it with `rasa train`."
    )


class Warnings(metaclass=ErrorsWithCodes):
    """Warning messages; emit them with ``rasa.shared.utils.io.raise_warning`` (or log them)."""

    # Encoder components
    W001 = (
        "{component} found {count} intent(s) in the training data, so it has nothing to "
        "classify and only provides features. Add examples of at least two intents to the "
        "NLU data, or use TransformerFeaturizer if you only need features."
    )
    W002 = (
        "TransformerIntentClassifier: 'inference: {inference}' needs onnxruntime and onnx "
        "(`make install`) and a CPU device; running the encoder in TensorFlow instead, which "
        "takes more memory and time per message."
    )
    W003 = (
        "TransformerIntentClassifier: 'out_of_scope_distance_quantile' is set, but no in-scope "
        "example was held out to set the distance threshold (validation_fraction: "
        "{fraction}; an intent needs at least 1 / validation_fraction examples to lend one). "
        "This model has no distance check; raise 'validation_fraction' to get one."
    )

    W140 = (
        "Catalog lookup file '{path}' has no entries for the configured entity "
        "type(s) {missing}; CatalogEntityExtractor will never emit them. Either "
        "export them from the catalog or drop them from 'entity_types'."
    )
