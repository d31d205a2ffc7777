"""Returns, exchanges and refund status against the seeded database."""

from __future__ import annotations

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import create_engine, text

from actions.identity import ValidateRefundForm
from actions.returns import (
    ActionOpenExchange,
    ActionOpenReturn,
    ActionShowRefundStatus,
    ValidateExchangeForm,
    ValidateReturnForm,
)
from tests.helpers.actions import (
    domain_for,
    kwargs_of,
    make_tracker,
    responses,
    survey_asked,
    verified,
    without_refresh,
)

ALICE, BOB, CAROL, WANG = 1.0, 2.0, 3.0, 11.0
RETURN_DOMAIN = domain_for(
    "return_form", ["order_number", "verify_contact", "verify_code", "return_reason"]
)
EXCHANGE_DOMAIN = domain_for(
    "exchange_form", ["order_number", "verify_contact", "verify_code", "exchange_size"]
)
REFUND_DOMAIN = domain_for("refund_form", ["order_number", "verify_contact"])


def count_returns(url: str, number: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(
            text(
                "SELECT count(*) FROM returns r JOIN orders o ON r.order_id = o.id "
                "WHERE o.number = :n"
            ),
            {"n": number},
        ).scalar_one()
    engine.dispose()
    return n


def slots_of(events) -> dict:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


async def test_eligible_order_says_until_when_then_asks_the_reason(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-100006", **verified(ALICE, second_factor=True)},
        active_loop="return_form",
    )
    events = await ValidateReturnForm().run(dispatcher, tracker, RETURN_DOMAIN)
    assert responses(dispatcher) == ["utter_return_eligible"]
    assert "deadline" in kwargs_of(dispatcher, "utter_return_eligible")
    assert slots_of(events)["requested_slot"] == "return_reason"


async def test_china_store_order_mentions_the_no_reason_return(database, dispatcher):
    tracker = make_tracker(
        {"language": "zh", "order_number": "KF-200003", **verified(WANG, second_factor=True)},
        active_loop="return_form",
    )
    await ValidateReturnForm().run(dispatcher, tracker, RETURN_DOMAIN)
    assert responses(dispatcher) == ["utter_return_eligible_no_reason"]


@pytest.mark.parametrize(
    "number, customer, reason",
    [
        ("KF-100004", ALICE, "not_delivered"),
        ("KF-100007", ALICE, "window_expired"),
        ("KF-100009", ALICE, "already_returned"),
        ("KF-100010", BOB, "final_sale"),
        ("KF-100008", ALICE, "order_cancelled"),
    ],
)
async def test_ineligible_orders_say_why_and_stop(database, dispatcher, number, customer, reason):
    tracker = make_tracker(
        {"order_number": number, **verified(customer, second_factor=True)},
        active_loop="return_form",
    )
    events = await ValidateReturnForm().run(dispatcher, tracker, RETURN_DOMAIN)
    assert responses(dispatcher) == [f"utter_return_not_eligible_{reason}"]
    assert slots_of(events)["requested_slot"] is None


async def test_a_reason_too_short_is_re_asked(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-100006", **verified(ALICE, second_factor=True), "return_reason": " "},
        active_loop="return_form",
    )
    events = await ValidateReturnForm().run(dispatcher, tracker, RETURN_DOMAIN)
    assert "utter_invalid_return_reason" in responses(dispatcher)
    assert slots_of(events)["return_reason"] is None


async def test_open_return_gives_the_rma_and_next_steps(database, dispatcher):
    tracker = make_tracker(
        {
            "order_number": "KF-100006",
            **verified(ALICE, second_factor=True),
            "return_reason": "too small",
        }
    )
    events = await ActionOpenReturn().run(dispatcher, tracker, {})
    assert without_refresh(events) == [
        *survey_asked("return:KF-100006"),
        SlotSet("return_reason", None),
        SlotSet("verify_contact", None),
    ]
    assert responses(dispatcher) == ["utter_return_opened", "utter_ask_rating"]
    opened = kwargs_of(dispatcher, "utter_return_opened")
    assert opened["rma_number"].startswith("RMA-") and opened["order_number"] == "KF-100006"
    assert count_returns(database, "KF-100006") == 1


async def test_a_retried_return_action_opens_one_rma(database, dispatcher):
    slots = {
        "order_number": "KF-200003",
        **verified(WANG, second_factor=True),
        "return_reason": "不喜欢",
    }
    tracker = make_tracker({"language": "zh", **slots})
    await ActionOpenReturn().run(dispatcher, tracker, {})
    await ActionOpenReturn().run(dispatcher, tracker, {})  # Rasa retrying the same call
    rmas = {m["rma_number"] for m in dispatcher.messages if "rma_number" in m}
    assert len(rmas) == 1
    assert count_returns(database, "KF-200003") == 1


async def test_return_of_someone_elses_order(database, dispatcher):
    tracker = make_tracker(
        {
            "order_number": "KF-100006",
            **verified(BOB, second_factor=True),
            "return_reason": "too small",
        }
    )
    await ActionOpenReturn().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_error_order_not_found"]
    assert count_returns(database, "KF-100006") == 0


async def test_return_when_the_database_is_down(database_down, dispatcher):
    tracker = make_tracker(
        {
            "order_number": "KF-100006",
            **verified(ALICE, second_factor=True),
            "return_reason": "too small",
        }
    )
    events = await ActionOpenReturn().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_try_again_later"]
    assert without_refresh(events) == [
        SlotSet("return_reason", None),
        SlotSet("verify_contact", None),
    ]


async def test_exchange_for_another_size(database, dispatcher):
    tracker = make_tracker(
        {
            "order_number": "KF-100006",
            **verified(ALICE, second_factor=True),
            "exchange_size": "43",
            "product": "Trail Runner 2",
        }
    )
    await ActionOpenExchange().run(dispatcher, tracker, {})
    assert responses(dispatcher)[0] in ("utter_exchange_opened", "utter_exchange_unavailable")
    if responses(dispatcher)[0] == "utter_exchange_opened":
        assert kwargs_of(dispatcher, "utter_exchange_opened")["rma_number"].startswith("RMA-")


async def test_exchange_form_refuses_an_undelivered_order(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-100004", **verified(ALICE, second_factor=True)},
        active_loop="exchange_form",
    )
    await ValidateExchangeForm().run(dispatcher, tracker, EXCHANGE_DOMAIN)
    assert responses(dispatcher) == ["utter_return_not_eligible_not_delivered"]


@pytest.mark.parametrize(
    "number, customer, response",
    [
        ("KF-100013", CAROL, "utter_refund_status_processing"),
        ("KF-100014", CAROL, "utter_refund_status_failed"),
        ("KF-100008", ALICE, "utter_refund_status_completed"),
        ("KF-100006", ALICE, "utter_no_refund"),
    ],
)
async def test_refund_status(database, dispatcher, number, customer, response):
    tracker = make_tracker({"order_number": number, **verified(customer)})
    events = await ActionShowRefundStatus().run(dispatcher, tracker, {})
    if response == "utter_no_refund":
        assert without_refresh(events) == [SlotSet("verify_contact", None)]
        assert responses(dispatcher) == [response]
    else:  # the status is an answered task: rated once
        asked = survey_asked(f"refund:{number}")
        assert without_refresh(events) == [*asked, SlotSet("verify_contact", None)]
        assert responses(dispatcher) == [response, "utter_ask_rating"]


async def test_refund_form_checks_ownership(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-100013", **verified(ALICE)},
        active_loop="refund_form",
    )
    events = await ValidateRefundForm().run(dispatcher, tracker, REFUND_DOMAIN)
    assert responses(dispatcher) == ["utter_error_order_not_found"]
    assert SlotSet("order_number", None) in events


async def test_return_form_asks_for_the_code_after_an_email_check(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-100006", **verified(ALICE)}, active_loop="return_form"
    )
    events = await ValidateReturnForm().run(dispatcher, tracker, RETURN_DOMAIN)
    assert responses(dispatcher) == ["utter_return_eligible"]
    assert slots_of(events)["requested_slot"] == "verify_code"


async def test_refund_status_needs_no_code(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-100013", **verified(CAROL)}, active_loop="refund_form"
    )
    events = await ValidateRefundForm().run(dispatcher, tracker, REFUND_DOMAIN)
    assert slots_of(events)["requested_slot"] is None


@pytest.mark.parametrize("action", [ActionOpenReturn, ActionOpenExchange])
async def test_return_or_exchange_without_a_second_factor_is_refused(database, dispatcher, action):
    slots = {"order_number": "KF-100006", **verified(ALICE)}
    slots.update(return_reason="too small", exchange_size="43")
    await action().run(dispatcher, make_tracker(slots), {})
    assert responses(dispatcher) == ["utter_second_factor_required"]
    assert count_returns(database, "KF-100006") == 0
