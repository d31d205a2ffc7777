"""What Kefu's NLU components share: checked config, `create`, `load` from Rasa's model storage.

`KefuComponent` is a mixin put before Rasa's base classes::

    class SentimentAnalyzer(TrainedComponent, GraphComponent, EntityExtractorMixin):
        @classmethod
        def config_rules(cls):
            return {"C": (lambda c: float(c) > 0, "expected a positive number")}

It rejects unknown config keys (`E100`) and values its rules reject (`E101`), and creates the
component as `cls(config, model_storage, resource)`. `TrainedComponent` adds a `load` that reads
the files `train` wrote, turns a missing or unreadable entry into `ComponentStorageError` with
the component's own coded message, and rebuilds the component from them.
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Any

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_CONFIDENCE,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    ENTITY_ATTRIBUTE_VALUE,
    EXTRACTOR,
)
from rasa.shared.nlu.training_data.message import Message

from custom_components.config import Rule, check_values, reject_unknown_keys
from custom_components.errors import ComponentStorageError

# What a trained component is rebuilt from: (config, constructor keywords).
State = tuple[dict[str, Any], dict[str, Any]]


class KefuComponent:
    """Config validation with coded messages and the plain `create` of Kefu's components.

    The class it is mixed into lists every key it understands in `get_default_config`.
    """

    @classmethod
    def config_rules(cls) -> dict[str, Rule]:
        """Value checks `{key: (valid, expected)}`, in order; unknown keys are always rejected."""
        return {}

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        """Rejects unknown keys and invalid values, saying what was expected.

        Args:
            config: The component config (missing keys take their defaults).

        Raises:
            InvalidConfigException: On the first problem found (`E100` / `E101`).
        """
        defaults = cls.get_default_config()
        reject_unknown_keys(cls.__name__, config, defaults)
        check_values(cls.__name__, {**defaults, **config}, cls.config_rules())

    @classmethod
    def merged_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """The defaults overridden by `config`, validated."""
        merged = {**cls.get_default_config(), **config}
        cls.validate_config(merged)
        return merged

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> GraphComponent:
        """Creates an untrained component: `cls(config, model_storage, resource, **state)`."""
        return cls(config, model_storage, resource, **cls._created_state(config, execution_context))

    @classmethod
    def _created_state(
        cls, config: dict[str, Any], execution_context: ExecutionContext
    ) -> dict[str, Any]:
        """Constructor keywords beyond config, storage and resource for `create` (none)."""
        return {}


class TrainedComponent(KefuComponent):
    """A component whose `train` writes files that `load` reads back from the model storage.

    Subclasses implement `_read_stored` (read the files in the resource's directory),
    `_storage_error` (the coded message when they are missing) and `_stored_state` (the config
    and constructor keywords they give).
    """

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> GraphComponent:
        """Loads the trained component from Rasa's model storage.

        Raises:
            InvalidConfigException: The config is invalid.
            ComponentStorageError: The model storage entry is missing, unreadable, or does not
                fit the component as configured.
        """
        cls.validate_config(config)
        try:
            with model_storage.read_from(resource) as directory:
                stored = cls._read_stored(Path(directory))
        except (ValueError, OSError, KeyError) as e:
            raise ComponentStorageError(cls._storage_error(resource, e)) from e
        config, state = cls._stored_state(config, stored, execution_context)
        try:
            component = cls(config, model_storage, resource, **state)
        except (ValueError, KeyError) as e:
            raise ComponentStorageError(cls._storage_error(resource, e)) from e
        component._loaded()
        return component

    @classmethod
    def _read_stored(cls, directory: Path) -> Any:
        """Reads what `train` wrote; raising ValueError / OSError / KeyError means missing."""
        raise NotImplementedError

    @classmethod
    def _storage_error(cls, resource: Resource, error: Exception) -> str:
        """The coded message for a missing, unreadable or unfitting model storage entry."""
        raise NotImplementedError

    @classmethod
    def _stored_state(
        cls, config: dict[str, Any], stored: Any, execution_context: ExecutionContext
    ) -> State:
        """The config and constructor keywords (beyond storage and resource) from `stored`."""
        raise NotImplementedError

    def _loaded(self) -> None:
        """Called on the component `load` built, before it serves (nothing by default)."""


def add_entities(message: Message, entities: list[dict[str, Any]]) -> None:
    """Appends entities to a message's `entities` (an output property)."""
    message.set(ENTITIES, message.get(ENTITIES, []) + entities, add_to_output=True)


def entity_at(
    entity: str, value: str, start: int, end: int, confidence: float, extractor: str
) -> dict[str, Any]:
    """An entity in Rasa's format: `text[start:end]` is `value` of type `entity`."""
    return {
        ENTITY_ATTRIBUTE_TYPE: entity,
        ENTITY_ATTRIBUTE_VALUE: value,
        ENTITY_ATTRIBUTE_START: start,
        ENTITY_ATTRIBUTE_END: end,
        ENTITY_ATTRIBUTE_CONFIDENCE: confidence,
        EXTRACTOR: extractor,
    }


def whole_text_entity(
    entity: str, value: str, text: str, confidence: float, extractor: str
) -> dict[str, Any]:
    """An entity spanning the whole message text (language, sentiment)."""
    return entity_at(entity, value, 0, len(text), confidence, extractor)


def read_json(path: Path) -> Any:
    """A JSON file a component wrote into its model storage directory."""
    return json.loads(path.read_text(encoding="utf-8"))


def files_in(path: str, pattern: str = "*") -> list[str]:
    """`path` itself, or the files in folder `path` that match `pattern`, sorted."""
    return sorted(glob.glob(os.path.join(path, pattern))) if os.path.isdir(path) else [path]
