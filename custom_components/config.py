"""Config checks shared by Kefu's components: a key Kefu does not know is an error, not a no-op."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rasa.shared.exceptions import InvalidConfigException

from custom_components.messages import Errors


def reject_unknown_keys(component: str, config: Mapping[str, Any], valid: Iterable[str]) -> None:
    """Raises `InvalidConfigException` naming unknown keys and listing the valid ones.

    Args:
        component: The component's class name, for the message.
        config: The config to check (defaults merged with the user's values).
        valid: The keys the component understands.
    """
    valid = set(valid)
    unknown = sorted(set(config) - valid)
    if unknown:
        raise InvalidConfigException(
            Errors.E100.format(component=component, unknown=unknown, valid=", ".join(sorted(valid)))
        )
