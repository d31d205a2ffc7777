"""Tokenizer for shop messages that mix Chinese and Latin script.

``MixedScriptTokenizer`` splits a message into *spans* first and only then into words:

* Chinese (Han) runs are segmented by jieba (one tokenizer per process, built lazily,
  optionally extended by a user dictionary of shop words);
* everything else follows rules close to Rasa's ``WhitespaceTokenizer``, except that
  the identifiers a shop conversation turns on survive as one token.

Decisions (each has a test in ``tests/custom_components/test_mixed_script_tokenizer.py``):

* One token each: URLs (``https://…``, ``www.…``), emails, order numbers and SKUs made of
  letters/digits joined by ``-``, ``_``, ``.`` or ``/`` with an optional ``#`` or ``+``
  prefix (``KF-100023``, ``#A-10023``, ``TR2-BLK-42``, ``+86-13800138000``), plain and
  decimal numbers (``12345``, ``49.99``, ``10,000``).
* Phone numbers written with spaces (``+86 138 0013 8000``) stay several tokens: a token
  never contains whitespace, and a regex extractor can still match across the tokens.
* Prices keep a leading currency sign (``$49.99``, ``¥299``, ``￥299``, ``€5``); Chinese
  units after a number are their own token (``299元`` → ``299`` ``元``, ``42码`` → ``42``
  ``码``), because they are words and the bare number is what an extractor wants.
* Sizes are ordinary words (``XL``, ``42``); see the catalog extractor for matching.
* Apostrophes split words as in ``WhitespaceTokenizer`` (``how're`` → ``how`` ``re``).
* Punctuation of both scripts (``，。！？、「」…`` and ASCII) is dropped.
* Emoji are kept, one token per emoji (skin tones, ZWJ families and flags included),
  because they carry sentiment (😡, 👍) that later components use.
* If nothing is left (``":)"``), the stripped text is one token; ``""`` and whitespace-only
  text give one token holding the text, exactly as ``WhitespaceTokenizer`` does.

Offsets are taken from the regex and jieba spans, so ``text[t.start:t.end] == t.text``
always holds; entity annotations can rely on it.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import regex
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from custom_components.component import KefuComponent, files_in
from custom_components.config import Rule
from custom_components.errors import ComponentStorageError
from custom_components.messages import Errors

logger = logging.getLogger(__name__)

# Closing punctuation that ends a sentence rather than a URL ("see https://x.com/a.").
_URL_TRAILING = ".,;:!?'\")]}>"

# Alternatives in priority order: the first one that matches at a position wins.
_SPAN_PATTERN = regex.compile(
    r"""
    (?P<url>(?:https?://|www\.)[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+)
  | (?P<email>[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,})
  | (?P<price>[$¥￥€£]\d+(?:[.,]\d+)*)
  | (?P<code>[#+]?[A-Za-z0-9]+(?:[\-_./][A-Za-z0-9]+)+|[#+][A-Za-z0-9]+)
  | (?P<number>\d+(?:[.,]\d+)+)
  | (?P<han>\p{Han}+)
  | (?P<emoji>(?=[\p{Extended_Pictographic}\p{Regional_Indicator}])\X)
  | (?P<word>[\w--[\p{Han}_]]+)
    """,
    regex.VERBOSE | regex.V1,
)

_jieba_lock = threading.Lock()
_jieba_tokenizer: Any = None
_loaded_dictionaries: set = set()


def _jieba() -> Any:
    """Returns the process-wide jieba tokenizer, building it on first use.

    Building reads jieba's 5 MB dictionary (about a second), so it happens once per
    process and only when Chinese text is actually seen.
    """
    global _jieba_tokenizer
    if _jieba_tokenizer is None:
        with _jieba_lock:
            if _jieba_tokenizer is None:
                import jieba

                # jieba prints "Building prefix dict..." at INFO level otherwise.
                jieba.setLogLevel(logging.WARNING)
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                _jieba_tokenizer = tokenizer
    return _jieba_tokenizer


def load_jieba_dictionary(path: str) -> None:
    """Adds a jieba user dictionary (a file, or every file in a folder) to the tokenizer.

    Loading the same file twice is a no-op, so components can call this freely.

    Args:
        path: A jieba user dictionary file or a folder of them.
    """
    files = files_in(path)
    tokenizer = _jieba()
    with _jieba_lock:
        for file in files:
            key = os.path.abspath(file)
            if key in _loaded_dictionaries:
                continue
            logger.debug("Loading jieba user dictionary %s", file)
            tokenizer.load_userdict(file)
            _loaded_dictionaries.add(key)


def split_words(text: str) -> list[tuple[str, int]]:
    """Splits text into ``(word, start)`` pairs with the rules described in the module.

    Args:
        text: The text to split.

    Returns:
        The words in order with their character offsets; punctuation is dropped.
    """
    return list(_iter_words(text))


def _iter_words(text: str) -> Iterator[tuple[str, int]]:
    for match in _SPAN_PATTERN.finditer(text):
        kind = match.lastgroup
        start = match.start()
        word = match.group()
        if kind == "url":
            word = word.rstrip(_URL_TRAILING)
        if kind == "han":
            for piece, offset, _ in _jieba().tokenize(word):
                yield piece, start + offset
        else:
            yield word, start


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=True)
class MixedScriptTokenizer(KefuComponent, Tokenizer):
    """Tokenizes Chinese spans with jieba and Latin spans with whitespace rules."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        """Returns the component's default config."""
        return {
            # A jieba user dictionary file or folder of them (shop words, product names),
            # copied into the model at training time; None means jieba's own dictionary.
            "dictionary_path": None,
            # Split intent names into tokens (for multi-intents like "greet+ask_order").
            "intent_tokenization_flag": False,
            # The symbol intent names are split on when the flag above is set.
            "intent_split_symbol": "_",
            # Regular expression that further splits each token (None: no splitting).
            "token_pattern": None,
            # Symbol on which a prefix is split off intent names (None: no prefix).
            "prefix_separator_symbol": None,
        }

    @classmethod
    def config_rules(cls) -> dict[str, Rule]:
        """Value checks (unknown keys are rejected too, so a typo can't fall back silently)."""
        return {
            "dictionary_path": (
                lambda v: v is None or (isinstance(v, str) and v),
                "expected null or the path of a jieba dictionary file or folder",
            ),
        }

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage | None = None,
        resource: Resource | None = None,
    ) -> None:
        """Creates the tokenizer.

        Args:
            config: The component config.
            model_storage: Where the jieba dictionary is persisted (needed for training).
            resource: This component's resource in the model storage.
        """
        super().__init__(self.merged_config(config))
        self._model_storage = model_storage
        self._resource = resource

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> MixedScriptTokenizer:
        """Creates a new component, loading the configured jieba dictionary.

        Raises:
            InvalidConfigException: If ``dictionary_path`` does not exist.
        """
        tokenizer = cls(config, model_storage, resource)
        path = tokenizer._config["dictionary_path"]
        if path is not None:
            if not os.path.exists(path):
                raise InvalidConfigException(Errors.E110.format(path=path))
            load_jieba_dictionary(path)
        return tokenizer

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> MixedScriptTokenizer:
        """Loads the tokenizer and the jieba dictionary persisted in the model.

        Raises:
            ComponentStorageError: If a dictionary is configured but not in the model.
        """
        tokenizer = cls(config, model_storage, resource)
        if tokenizer._config["dictionary_path"] is not None:
            try:
                with model_storage.read_from(resource) as directory:
                    load_jieba_dictionary(str(directory))
            except ValueError as e:
                raise ComponentStorageError(Errors.E111.format(resource=resource.name)) from e
        return tokenizer

    @classmethod
    def fingerprint_addon(cls, config: dict[str, Any]) -> str | None:
        """Retrains when the dictionary files change, not only when the config does."""
        path = config.get("dictionary_path")
        if not path or not os.path.exists(path):
            return None
        files = files_in(path)
        return "|".join(f"{f}:{os.path.getmtime(f)}:{os.path.getsize(f)}" for f in files)

    @staticmethod
    def required_packages() -> list[str]:
        """Python packages this component needs besides Rasa."""
        return ["jieba", "regex"]

    def train(self, training_data: TrainingData) -> Resource:
        """Copies the jieba dictionary into the model so a deployed model doesn't need it.

        Args:
            training_data: Unused; the tokenizer learns nothing from examples.

        Returns:
            This component's resource.
        """
        path = self._config["dictionary_path"]
        if path is not None and self._model_storage is not None:
            files = files_in(path)
            with self._model_storage.write_to(self._resource) as directory:
                for file in files:
                    shutil.copy2(file, Path(directory) / Path(file).name)
        return self._resource

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        """Tokenizes the text of one attribute of a message.

        Args:
            message: The message.
            attribute: The attribute holding the text (``text``, ``response``, ...).

        Returns:
            The tokens, with exact character offsets into the text.
        """
        text = message.get(attribute)
        tokens = [Token(word, start) for word, start in _iter_words(text)]
        if not tokens:
            # Like WhitespaceTokenizer: a message of only symbols (":)") is one token,
            # so featurizers always see at least one.
            stripped = text.strip()
            tokens = [Token(stripped, text.index(stripped))] if stripped else [Token(text, 0)]
        return self._apply_token_pattern(tokens)
