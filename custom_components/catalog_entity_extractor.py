"""Finds the shop's products, sizes and colours in a message, in English and Chinese.

``CatalogEntityExtractor`` matches phrases from a lookup file exported by the commerce
backend and emits entities whose ``value`` is already canonical, so no
``EntitySynonymMapper`` is needed.

Lookup file format (YAML, or the same structure as JSON; default
``data/lookups/catalog.yml``)::

    version: 1
    entities:
      product:                       # entity type, as used in the domain
        - value: trail-runner-2      # canonical value the slot receives (SKU stem, id)
          synonyms:                  # every way a customer names it, both languages
            - Trail Runner 2
            - TR2
            - 越野跑鞋二代
      size:
        - value: "42"                # quote numbers so they stay strings
          synonyms: ["42码", "EU 42"]
      colour:
        - value: black
          synonyms: [黑色, 黑]

``value`` itself is matched too. Matching rules:

* Phrases match whole tokens only (longest match first, left to right), so ``red`` does
  not match in ``reduce`` and ``白`` does not match inside jieba's word ``明白``.
* Latin is case-insensitive, except one-letter terms (sizes ``S``/``M``/``L``), which must
  be written as in the catalog, so the ``m`` of "I'm" is not size M.
* Chinese is exact; spaces between tokens don't count next to Han characters, and ``-``/``_``
  count as spaces, so "42码", "42 码", "trail-runner 2" and "Trail Runner 2" all match.
* Token boundaries come from the tokenizer, so jieba must not glue a catalog phrase to
  its neighbour ("加大码有" → "加大" "码有" hides "加大码"). Give the tokenizer the
  catalog's Chinese phrases as a jieba user dictionary (``MixedScriptTokenizer``'s
  ``dictionary_path``, one ``phrase 1000 n`` per line), exported with the catalog.
* If one phrase names two entity types, the type listed first in ``entity_types`` wins;
  one phrase naming two values of the same type is an error at training time.

The compiled lookup is stored in the model at training time: a deployed model doesn't
need the file, and retraining is triggered when the file changes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import rasa.shared.utils.io
import regex
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.nlu.tokenizers.tokenizer import Tokenizer
from rasa.shared.exceptions import InvalidConfigException, YamlException
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from custom_components.component import (
    State,
    TrainedComponent,
    add_entities,
    entity_at,
    read_json,
)
from custom_components.config import Rule, a_path
from custom_components.errors import KefuComponentError
from custom_components.messages import Errors, Warnings
from custom_components.mixed_script_tokenizer import split_words

LOOKUP_FILE = "catalog_lookup.json"

_SEPARATORS = regex.compile(r"[\s\-_]+")
_SPACE_BY_HAN = regex.compile(r" (?=\p{Han})|(?<=\p{Han}) ")
_SINGLE_LATIN = regex.compile(r"\p{Latin}")


def phrase_key(words: list[str]) -> str:
    """Joins words into the key a phrase is looked up by (case kept; see ``_fold``).

    Args:
        words: Token texts in order.

    Returns:
        The words joined by single spaces, ``-``/``_`` read as spaces, no space next to Han.
    """
    joined = _SEPARATORS.sub(" ", " ".join(words)).strip()
    return _SPACE_BY_HAN.sub("", joined)


def compile_catalog(path: str, entity_types: list[str]) -> dict[str, Any]:
    """Reads a lookup file and compiles it into phrase tables.

    Args:
        path: The lookup file (format in the module docstring).
        entity_types: The entity types to keep, in priority order.

    Returns:
        ``{"exact": {key: [type, value]}, "folded": {...}, "max_chars": n}``.

    Raises:
        InvalidConfigException: If the file does not exist.
        KefuComponentError: If the file is malformed or a phrase is ambiguous.
    """
    if not os.path.isfile(path):
        raise InvalidConfigException(Errors.E140.format(path=path))

    def invalid(problem: str) -> KefuComponentError:
        return KefuComponentError(Errors.E141.format(path=path, problem=problem))

    try:
        content = rasa.shared.utils.io.read_yaml_file(path)
    except YamlException as e:
        raise invalid(f"it is neither YAML nor JSON ({e})") from e
    if not isinstance(content, dict) or not isinstance(content.get("entities"), dict):
        raise invalid("no 'entities:' mapping")
    if str(content.get("version", "")) != "1":
        raise invalid(f"unsupported version {content.get('version')!r}")

    exact: dict[str, list[str]] = {}
    folded: dict[str, list[str]] = {}
    max_chars = 1
    missing = [t for t in entity_types if not content["entities"].get(t)]
    if missing:
        rasa.shared.utils.io.raise_warning(Warnings.W140.format(path=path, missing=missing))
    for entity in entity_types:
        for entry in content["entities"].get(entity) or []:
            if not isinstance(entry, dict) or entry.get("value") in (None, ""):
                raise invalid(f"an entry of '{entity}' has no 'value': {entry!r}"[:200])
            value = str(entry["value"])
            synonyms = entry.get("synonyms") or []
            if not isinstance(synonyms, list):
                raise invalid(f"'synonyms' of '{value}' is not a list")
            for phrase in [value, *synonyms]:
                words = [word for word, _ in split_words(str(phrase))]
                if not words:
                    continue
                key = phrase_key(words)
                # One-letter Latin sizes (S, M, L) are matched as written.
                is_exact = len(key) == 1 and _SINGLE_LATIN.match(key)
                table, key = (exact, key) if is_exact else (folded, key.lower())
                known = table.get(key)
                if known is None:
                    table[key] = [entity, value]
                    max_chars = max(max_chars, len(key))
                elif known[0] == entity and known[1] != value:
                    raise KefuComponentError(
                        Errors.E142.format(
                            path=path, phrase=phrase, entity=entity, first=known[1], second=value
                        )
                    )
                # else: an earlier (higher-priority) type already owns the phrase.
    return {"exact": exact, "folded": folded, "max_chars": max_chars}


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
class CatalogEntityExtractor(TrainedComponent, GraphComponent, EntityExtractorMixin):
    """Extracts ``product``, ``size`` and ``colour`` entities from the shop's catalog."""

    @classmethod
    def required_components(cls) -> list[type]:
        """Matching works on tokens, so a tokenizer must run first."""
        return [Tokenizer]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Returns the component's default config."""
        return {
            # Lookup file exported by the commerce backend, read at training time only.
            "catalog_path": "data/lookups/catalog.yml",
            # Entity types to extract, in priority order when a phrase names several.
            "entity_types": ["product", "size", "colour"],
        }

    @classmethod
    def config_rules(cls) -> dict[str, Rule]:
        """Value checks, in order (unknown keys are rejected too)."""
        return {
            "catalog_path": a_path("expected the path of the lookup file"),
            "entity_types": (
                lambda v: isinstance(v, list) and v and all(isinstance(t, str) and t for t in v),
                "expected a non-empty list of entity names",
            ),
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        lookup: dict[str, Any] | None = None,
    ) -> None:
        """Creates the extractor.

        Args:
            config: The component config.
            model_storage: Where the compiled lookup is persisted.
            resource: This component's resource in the model storage.
            lookup: A compiled lookup (None: untrained).
        """
        self._config = self.merged_config(config)
        self._model_storage = model_storage
        self._resource = resource
        self._lookup = lookup

    @classmethod
    def _read_stored(cls, directory: Path) -> dict[str, Any]:
        return read_json(directory / LOOKUP_FILE)

    @classmethod
    def _storage_error(cls, resource: Resource, error: Exception) -> str:
        return Errors.E143.format(resource=resource.name, file=LOOKUP_FILE)

    @classmethod
    def _stored_state(
        cls, config: dict[str, Any], stored: dict[str, Any], execution_context: ExecutionContext
    ) -> State:
        return config, {"lookup": stored}

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """Retrains when the lookup file changes, not only when the config does."""
        path = config.get("catalog_path") or cls.get_default_config()["catalog_path"]
        if not os.path.isfile(path):
            return None
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    def train(self, training_data: TrainingData) -> Resource:
        """Compiles the lookup file and stores it in the model.

        Args:
            training_data: Unused; the catalog is the source of truth.

        Returns:
            This component's resource.
        """
        self._lookup = compile_catalog(self._config["catalog_path"], self._config["entity_types"])
        with self._model_storage.write_to(self._resource) as directory:
            (Path(directory) / LOOKUP_FILE).write_text(
                json.dumps(self._lookup, ensure_ascii=False), encoding="utf-8"
            )
        return self._resource

    def extract(self, message: Message) -> list[dict[str, Any]]:
        """Returns the catalog entities of one message (longest match, left to right).

        Args:
            message: A tokenized message.

        Raises:
            KefuComponentError: If the component was never trained.
        """
        if self._lookup is None:
            raise KefuComponentError(
                Errors.E143.format(resource=self._resource.name, file=LOOKUP_FILE)
            )
        text = message.get(TEXT) or ""
        tokens = message.get(TOKENS_NAMES[TEXT])
        # (text, start, end) per token; fall back to our own split if no tokenizer ran.
        spans = (
            [(t.text, t.start, t.end) for t in tokens]
            if tokens
            else [(w, s, s + len(w)) for w, s in split_words(text)]
        )
        exact, folded = self._lookup["exact"], self._lookup["folded"]
        entities = []
        i = 0
        while i < len(spans):
            best = None
            for j in range(i, len(spans)):
                key = phrase_key([span[0] for span in spans[i : j + 1]])
                # Keys only grow with j; jieba may split a phrase differently in context,
                # so bound by characters, not by the phrase's own token count.
                if len(key) > self._lookup["max_chars"]:
                    break
                found = exact.get(key) or folded.get(key.lower())
                if found:
                    best = (j, found)
            if best is None:
                i += 1
                continue
            j, (entity, value) = best
            entities.append(
                self.add_processor_name(
                    entity_at(entity, value, spans[i][1], spans[j][2], 1.0, self.name)
                )
            )
            i = j + 1
        return entities

    def process(self, messages: list[Message]) -> list[Message]:
        """Adds catalog entities to each message.

        Args:
            messages: Tokenized messages.

        Returns:
            The same messages.
        """
        for message in messages:
            entities = self.extract(message)
            if entities:
                add_entities(message, entities)
        return messages
