"""Order status, verification, cancelling and address changes against the seeded database."""

from __future__ import annotations

import time

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import create_engine, text

from actions.identity import ValidateOrderStatusForm
from actions.orders import (
    ActionCancelOrder,
    ActionChangeAddress,
    ActionShowOrderStatus,
    ValidateAddressForm,
    ValidateCancelForm,
    parse_address,
)
from commerce.errors import InvalidInput
from commerce.privacy import is_sealed, seal, unseal
from commerce.services.identity import sign_identity_claim
from tests.helpers.actions import (
    cards,
    domain_for,
    kwargs_of,
    make_tracker,
    responses,
    slot_events,
    survey_asked,
    verified,
    without_refresh,
)

ALICE, BOB = 1.0, 2.0
STATUS_DOMAIN = domain_for("order_status_form", ["order_number", "verify_contact"])
CANCEL_DOMAIN = domain_for(
    "cancel_form", ["order_number", "verify_contact", "verify_code", "cancel_confirmed"]
)
ADDRESS_DOMAIN = domain_for(
    "address_form", ["order_number", "verify_contact", "verify_code", "new_address"]
)


def order_status(url: str, number: str) -> str:
    engine = create_engine(url)
    with engine.connect() as conn:
        status = conn.execute(
            text("SELECT status FROM orders WHERE number = :n"), {"n": number}
        ).scalar_one()
    engine.dispose()
    return status


async def test_verification_with_order_number_and_email(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "kf-100004", "verify_contact": "Alice@Example.com"},
        active_loop="order_status_form",
    )
    events = await ValidateOrderStatusForm().run(dispatcher, tracker, STATUS_DOMAIN)
    slots = slot_events(events)
    assert slots["order_number"] == "KF-100004"
    assert slots["verify_contact"] is None  # used, not kept
    assert slots["verified_customer_id"] == ALICE and slots["verified_method"] == "email"
    assert slots["verified_order"] == "KF-100004"
    assert slots["second_factor"] is False  # enough to read an order, not to change one
    assert slots["verified_at"] < slots["verified_until"] <= slots["verified_at"] + 900
    assert slots["requested_slot"] is None  # identity was all this form needed
    assert responses(dispatcher) == ["utter_verified"]


async def test_verification_with_phone_in_chinese(database, dispatcher):
    tracker = make_tracker(
        {"language": "zh", "order_number": "KF-200002", "verify_contact": "138 0013 8001"},
        active_loop="order_status_form",
    )
    events = await ValidateOrderStatusForm().run(dispatcher, tracker, STATUS_DOMAIN)
    assert slot_events(events)["verified_customer_id"] == 11.0
    assert slot_events(events)["verified_method"] == "phone"


async def test_wrong_contact_is_refused_without_disclosure(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-100004", "verify_contact": "bob@example.com"},
        active_loop="order_status_form",
    )
    events = await ValidateOrderStatusForm().run(dispatcher, tracker, STATUS_DOMAIN)
    slots = slot_events(events)
    assert slots["verify_contact"] is None and "verified_customer_id" not in slots
    assert slots["failed_validations"] == {"verify_contact": 1}
    assert responses(dispatcher) == ["utter_verification_failed"]


async def test_unknown_order_gets_the_same_answer_as_a_wrong_contact(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-999999", "verify_contact": "alice@example.com"},
        active_loop="order_status_form",
    )
    await ValidateOrderStatusForm().run(dispatcher, tracker, STATUS_DOMAIN)
    assert responses(dispatcher) == ["utter_verification_failed"]


@pytest.mark.parametrize("bad", ["KF-12", "' OR 1=1 --", "my order", "KF-1000000000000000"])
async def test_malformed_order_number_is_re_asked(database, dispatcher, bad):
    tracker = make_tracker({"order_number": bad}, active_loop="order_status_form")
    events = await ValidateOrderStatusForm().run(dispatcher, tracker, STATUS_DOMAIN)
    assert SlotSet("order_number", None) in events
    assert responses(dispatcher) == ["utter_invalid_order_number"]


@pytest.mark.parametrize("bad", ["anna@", "not an email", "12"])
async def test_malformed_contact_is_re_asked(database, dispatcher, bad):
    tracker = make_tracker(
        {"order_number": "KF-100004", "verify_contact": bad}, active_loop="order_status_form"
    )
    events = await ValidateOrderStatusForm().run(dispatcher, tracker, STATUS_DOMAIN)
    assert SlotSet("verify_contact", None) in events
    assert responses(dispatcher) == ["utter_invalid_contact"]


async def test_third_failure_offers_a_human_and_stops_the_form(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-1", "failed_validations": {"order_number": 2}},
        active_loop="order_status_form",
    )
    events = await ValidateOrderStatusForm().run(dispatcher, tracker, STATUS_DOMAIN)
    assert responses(dispatcher) == ["utter_offer_human"]
    slots = slot_events(events)
    assert slots["human_offered"] is True
    assert slots["requested_slot"] is None  # ends the form
    assert slots["form_stopped"] is True  # early: the rules wait instead of showing a status
    assert slots["verify_contact"] is None and slots["failed_validations"] is None


async def test_signed_claim_skips_the_contact_question(database, dispatcher, token_secret):
    claim = sign_identity_claim("test-user", 1, int(time.time()) + 600)
    tracker = make_tracker(
        {"order_number": "KF-100004"},
        metadata={"kefu_identity": claim},
        active_loop="order_status_form",
    )
    events = await ValidateOrderStatusForm().run(dispatcher, tracker, STATUS_DOMAIN)
    slots = slot_events(events)
    assert slots["verified_customer_id"] == ALICE and slots["verified_method"] == "token"
    assert slots["verified_until"] == claim["exp"] and slots["second_factor"] is True
    assert slots["requested_slot"] is None  # nothing left to ask


async def test_forged_claim_falls_back_to_asking(database, dispatcher, token_secret):
    forged = sign_identity_claim("test-user", 1, int(time.time()) + 600, secret="other-secret")
    tracker = make_tracker(
        {"order_number": "KF-100004"},
        metadata={"kefu_identity": forged},
        active_loop="order_status_form",
    )
    events = await ValidateOrderStatusForm().run(dispatcher, tracker, STATUS_DOMAIN)
    assert "verified_customer_id" not in slot_events(events)
    # Rasa's form then asks for verify_contact as usual.
    assert slot_events(events) == {"order_number": "KF-100004", "failed_validations": None}


async def test_claim_made_for_another_conversation_is_ignored(database, dispatcher, token_secret):
    claim = sign_identity_claim("someone-else", 1, int(time.time()) + 600)
    tracker = make_tracker(
        {"order_number": "KF-100004"},
        metadata={"kefu_identity": claim},
        active_loop="order_status_form",
    )
    events = await ValidateOrderStatusForm().run(dispatcher, tracker, STATUS_DOMAIN)
    assert "verified_customer_id" not in slot_events(events)


async def test_verified_customer_asking_for_someone_elses_order(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-100010", **verified(ALICE)},
        active_loop="order_status_form",
    )
    events = await ValidateOrderStatusForm().run(dispatcher, tracker, STATUS_DOMAIN)
    assert SlotSet("order_number", None) in events
    assert responses(dispatcher) == ["utter_error_order_not_found"]


async def test_order_status_with_tracking(database, dispatcher):
    tracker = make_tracker({"order_number": "KF-100004", **verified(ALICE)})
    events = await ActionShowOrderStatus().run(dispatcher, tracker, {})
    assert without_refresh(events) == [
        *survey_asked("track:KF-100004"),
        SlotSet("verify_contact", None),
    ]
    assert responses(dispatcher)[0] == "utter_order_status_shipped"
    assert kwargs_of(dispatcher, "utter_order_status_shipped")["order_number"] == "KF-100004"
    tracking = kwargs_of(dispatcher, "utter_order_tracking")
    assert tracking["carrier"] and tracking["tracking_number"] and tracking["last_event"]
    assert responses(dispatcher)[-1] == "utter_ask_rating"
    [card] = cards(dispatcher)
    assert card["type"] == "order_card" and card["order_number"] == "KF-100004"
    assert card["status"] == "shipped" and card["carrier"] == tracking["carrier"]
    assert card["tracking_number"] == tracking["tracking_number"]
    assert card["last_event"] == tracking["last_event"]


async def test_order_status_in_chinese_uses_chinese_tracking_text(database, dispatcher):
    tracker = make_tracker({"language": "zh", "order_number": "KF-200002", **verified(11.0)})
    await ActionShowOrderStatus().run(dispatcher, tracker, {})
    last_event = kwargs_of(dispatcher, "utter_order_tracking")["last_event"]
    assert any("\u4e00" <= c <= "\u9fff" for c in last_event)


async def test_order_status_refuses_another_customers_order(database, dispatcher):
    tracker = make_tracker({"order_number": "KF-100004", **verified(BOB)})
    await ActionShowOrderStatus().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_error_order_not_found"]


async def test_order_status_when_the_database_is_down(database_down, dispatcher):
    tracker = make_tracker({"order_number": "KF-100004", **verified(ALICE)})
    events = await ActionShowOrderStatus().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_try_again_later"]
    assert without_refresh(events) == [SlotSet("verify_contact", None)]


async def test_verification_when_the_database_is_down(database_down, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-100004", "verify_contact": "alice@example.com"},
        active_loop="order_status_form",
    )
    events = await ValidateOrderStatusForm().run(dispatcher, tracker, STATUS_DOMAIN)
    assert responses(dispatcher) == ["utter_try_again_later"]
    assert slot_events(events)["requested_slot"] is None


async def test_cancel_asks_for_the_code_after_an_email_check(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-100002", **verified(ALICE)}, active_loop="cancel_form"
    )
    events = await ValidateCancelForm().run(dispatcher, tracker, CANCEL_DOMAIN)
    assert slot_events(events)["requested_slot"] == "verify_code"
    assert responses(dispatcher) == []


async def test_cancel_asks_for_confirmation_once_the_code_is_confirmed(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-100002", **verified(ALICE, second_factor=True)},
        active_loop="cancel_form",
    )
    events = await ValidateCancelForm().run(dispatcher, tracker, CANCEL_DOMAIN)
    assert slot_events(events)["requested_slot"] == "cancel_confirmed"
    assert responses(dispatcher) == []


async def test_cancel_of_a_shipped_order_explains_and_suggests_a_return(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-100004", **verified(ALICE)}, active_loop="cancel_form"
    )
    events = await ValidateCancelForm().run(dispatcher, tracker, CANCEL_DOMAIN)
    assert responses(dispatcher) == ["utter_error_order_not_cancellable"]
    assert kwargs_of(dispatcher, "utter_error_order_not_cancellable")["order_number"] == (
        "KF-100004"
    )
    assert slot_events(events)["requested_slot"] is None
    assert slot_events(events)["form_stopped"] is True
    assert order_status(database, "KF-100004") == "shipped"


async def test_cancel_denied_keeps_the_order(database, dispatcher):
    tracker = make_tracker(
        {
            "order_number": "KF-100002",
            **verified(ALICE, second_factor=True),
            "cancel_confirmed": False,
        },
        intent="deny",
        active_loop="cancel_form",
    )
    events = await ValidateCancelForm().run(dispatcher, tracker, CANCEL_DOMAIN)
    assert responses(dispatcher) == ["utter_cancel_kept"]
    assert slot_events(events)["requested_slot"] is None
    assert slot_events(events)["form_stopped"] is True
    events = await ActionCancelOrder().run(dispatcher, tracker_after(events, tracker), {})
    assert order_status(database, "KF-100002") == "paid"


def tracker_after(events, tracker):
    for event in events:
        if event.get("event") == "slot":
            tracker.slots[event["name"]] = event["value"]
    return tracker


async def test_cancel_confirmed_opens_a_refund(database, dispatcher):
    tracker = make_tracker(
        {
            "order_number": "KF-100002",
            **verified(ALICE, second_factor=True),
            "cancel_confirmed": True,
        }
    )
    events = await ActionCancelOrder().run(dispatcher, tracker, {})
    assert without_refresh(events) == [
        *survey_asked("cancel:KF-100002"),
        SlotSet("cancel_confirmed", None),
        SlotSet("verify_contact", None),
    ]
    assert responses(dispatcher) == ["utter_order_cancelled_refund", "utter_ask_rating"]
    refund = kwargs_of(dispatcher, "utter_order_cancelled_refund")
    assert refund["order_number"] == "KF-100002" and refund["refund_number"].startswith("RF-")
    assert order_status(database, "KF-100002") == "cancelled"


async def test_cancel_of_an_unpaid_order_has_no_refund(database, dispatcher):
    tracker = make_tracker(
        {
            "order_number": "KF-100001",
            **verified(ALICE, second_factor=True),
            "cancel_confirmed": True,
        }
    )
    await ActionCancelOrder().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_order_cancelled", "utter_ask_rating"]


async def test_cancel_without_a_second_factor_is_refused(database, dispatcher):
    # Order number + email are enough to read an order, never to cancel it, whatever the form did.
    tracker = make_tracker(
        {"order_number": "KF-100002", **verified(ALICE), "cancel_confirmed": True}
    )
    events = await ActionCancelOrder().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_second_factor_required"]
    assert slot_events(events)["cancel_confirmed"] is None
    assert order_status(database, "KF-100002") == "paid"


async def test_cancel_with_nobody_verified_is_refused(database, dispatcher):
    tracker = make_tracker({"order_number": "KF-100002", "cancel_confirmed": True})
    await ActionCancelOrder().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_second_factor_required"]
    assert order_status(database, "KF-100002") == "paid"


async def test_cancel_without_confirmation_does_nothing(database, dispatcher):
    tracker = make_tracker({"order_number": "KF-100002", **verified(ALICE)})
    await ActionCancelOrder().run(dispatcher, tracker, {})
    assert dispatcher.messages == []
    assert order_status(database, "KF-100002") == "paid"


async def test_cancel_someone_elses_order_changes_nothing(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-100002", **verified(BOB, second_factor=True), "cancel_confirmed": True}
    )
    events = await ActionCancelOrder().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_error_order_not_found"]
    assert without_refresh(events) == [
        SlotSet("cancel_confirmed", None),
        SlotSet("verify_contact", None),
    ]
    assert order_status(database, "KF-100002") == "paid"


async def test_cancel_when_the_database_is_down(database_down, dispatcher):
    tracker = make_tracker(
        {
            "order_number": "KF-100002",
            **verified(ALICE, second_factor=True),
            "cancel_confirmed": True,
        }
    )
    await ActionCancelOrder().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_try_again_later"]


@pytest.mark.parametrize(
    "raw, fields",
    [
        ("88 Park Ave, New York", {"line1": "88 Park Ave", "city": "New York"}),
        (
            "88 Park Ave, Apt 5, New York, 10016",
            {"line1": "88 Park Ave", "line2": "Apt 5", "city": "New York", "postcode": "10016"},
        ),
        (
            "世纪大道100号，上海，200120",
            {"line1": "世纪大道100号", "city": "上海", "postcode": "200120"},
        ),
    ],
)
def test_parse_address(raw, fields):
    assert parse_address(raw) == fields


@pytest.mark.parametrize("raw", ["", "Shanghai", "a, b", None])
def test_parse_address_rejects_incomplete_input(raw):
    with pytest.raises(InvalidInput):
        parse_address(raw)


async def test_address_change_before_packing(database, dispatcher):
    tracker = make_tracker(
        {
            "order_number": "KF-100001",
            **verified(ALICE, second_factor=True),
            "new_address": seal("1 Market St, San Francisco, 94105"),
        }
    )
    events = await ActionChangeAddress().run(dispatcher, tracker, {})
    assert without_refresh(events) == [
        *survey_asked("address:KF-100001"),
        SlotSet("new_address", None),
        SlotSet("verify_contact", None),
    ]
    changed = kwargs_of(dispatcher, "utter_address_changed")
    assert changed["address"] == "1 Market St, San Francisco, 94105"
    engine = create_engine(database)
    with engine.connect() as conn:
        line1 = conn.execute(
            text(
                "SELECT a.line1 FROM shipping_addresses a JOIN orders o ON a.order_id = o.id "
                "WHERE o.number = 'KF-100001'"
            )
        ).scalar()
    engine.dispose()
    assert line1 == "1 Market St"


async def test_address_change_after_packing_is_refused_up_front(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-100003", **verified(ALICE)}, active_loop="address_form"
    )
    events = await ValidateAddressForm().run(dispatcher, tracker, ADDRESS_DOMAIN)
    assert responses(dispatcher) == ["utter_error_address_change_not_allowed"]
    assert slot_events(events)["requested_slot"] is None


async def test_malformed_address_is_re_asked(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-100001", **verified(ALICE), "new_address": "nowhere"},
        active_loop="address_form",
    )
    events = await ValidateAddressForm().run(dispatcher, tracker, ADDRESS_DOMAIN)
    assert responses(dispatcher) == ["utter_invalid_address"]
    assert slot_events(events)["new_address"] is None


async def test_new_address_is_kept_sealed(database, dispatcher):
    tracker = make_tracker(
        {
            "order_number": "KF-100001",
            **verified(ALICE, second_factor=True),
            "new_address": "1 Market St, San Francisco",
        },
        active_loop="address_form",
    )
    events = await ValidateAddressForm().run(dispatcher, tracker, ADDRESS_DOMAIN)
    stored = slot_events(events)["new_address"]
    assert is_sealed(stored) and unseal(stored) == "1 Market St, San Francisco"
    assert slot_events(events)["requested_slot"] is None


async def test_address_change_without_a_second_factor_is_refused(database, dispatcher):
    tracker = make_tracker(
        {"order_number": "KF-100001", **verified(ALICE), "new_address": "1 Market St, Oakland"}
    )
    await ActionChangeAddress().run(dispatcher, tracker, {})
    assert responses(dispatcher) == ["utter_second_factor_required"]
