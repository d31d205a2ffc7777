"""Which responses `make validate` counts as used although no story or rule names them."""

from __future__ import annotations

import pytest

from scripts.validate_data import is_uttered_elsewhere

NAMES = {"utter_error_order_not_found", "utter_decline/account"}


@pytest.mark.parametrize(
    "response, used",
    [
        ("utter_error_order_not_found", True),  # an action utters it by name
        ("utter_error_timeout", True),  # f"utter_error_{code}"
        ("utter_ask_order_number", True),  # a form asks for its slot
        ("utter_decline", True),  # a retrieval intent whose sub-responses an action utters
        ("utter_default", True),  # Rasa's own fallback says it
        ("utter_declined_nowhere", False),
        ("utter_forgotten", False),
    ],
)
def test_responses_uttered_by_code_count_as_used(response, used):
    assert is_uttered_elsewhere(response, NAMES, ("utter_error_",), {"order_number"}) is used
