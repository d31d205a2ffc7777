"""Config checks shared by Kefu's components: a key Kefu does not know is an error, not a no-op.

A component lists its value checks as rules, `{key: (valid, expected)}`; `check_values` raises
the coded `E101` message for the first value a rule rejects::

    rules = {"device": one_of(VALID_DEVICES), "max_length": int_in(2, 512)}
    check_values("TransformerFeaturizer", config, rules)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from rasa.shared.exceptions import InvalidConfigException

from custom_components.messages import Errors

# (valid(value) -> bool, what was expected); a `valid` that raises TypeError / ValueError
# (e.g. `float("fast")`) rejects the value too.
Rule = tuple[Callable[[Any], bool], str]


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


def check_values(component: str, config: Mapping[str, Any], rules: Mapping[str, Rule]) -> None:
    """Raises `InvalidConfigException` (`E101`) for the first value its rule rejects.

    Args:
        component: The component's class name, for the message.
        config: The config (defaults merged with the user's values).
        rules: `{key: (valid, expected)}`, checked in order.
    """
    for key, (valid, expected) in rules.items():
        value = config[key]
        try:
            ok = bool(valid(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InvalidConfigException(
                Errors.E101.format(key=key, component=component, value=value, expected=expected)
            )


def is_int(value: Any) -> bool:
    """An int that is not a bool (YAML `true` is not a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def one_of(choices: Collection[Any]) -> Rule:
    """The value is one of `choices` (listed in the message)."""
    return (lambda value: value in choices), f"choose one of {list(choices)}"


def int_in(low: int, high: int) -> Rule:
    """An int (not a bool) in `[low, high]`."""
    return (lambda value: is_int(value) and low <= value <= high), (
        f"expected an int in [{low}, {high}]"
    )


def int_at_least(low: int) -> Rule:
    """An int (not a bool) of at least `low`."""
    return (lambda value: is_int(value) and value >= low), f"expected an int >= {low}"


def number_in(low: float, high: float) -> Rule:
    """An int or float (not a bool) in `[low, high)`."""
    return (
        lambda value: (
            isinstance(value, int | float) and not isinstance(value, bool) and low <= value < high
        )
    ), f"expected a number in [{low}, {high})"


def a_path(expected: str) -> Rule:
    """A non-empty string (a path; whether it exists is checked where it is read)."""
    return (lambda value: isinstance(value, str) and bool(value)), expected


# A non-empty list of positive ints (padding buckets).
POSITIVE_INTS: Rule = (
    lambda value: bool(value) and all(is_int(v) and v > 0 for v in value),
    "expected a list of positive ints",
)
