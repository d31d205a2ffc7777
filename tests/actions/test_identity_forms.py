"""Identity bound to its proof, and the one-time code that must come before an order changes.

Everything runs against the seeded SQLite database; codes go through the real outbox, whose
LogSender writes them to a file the test reads as the customer reads their inbox.
"""

from __future__ import annotations

import re
import time

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import create_engine, text

from actions.identity import (
    ActionAskVerifyCode,
    ValidateOrderStatusForm,
    code_from_text,
    contact_from_text,
    wants_new_code,
)
from actions.orders import ActionCancelOrder, ValidateCancelForm
from actions.session import (
    IDENTITY_SLOTS,
    ActionSessionStart,
    current_identity,
    resolve_identity,
)
from commerce.errors import InvalidInput
from commerce.privacy import is_sealed, unseal
from commerce.services.identity import sign_identity_claim
from tests.helpers.actions import (
    domain_for,
    latest_code,
    make_tracker,
    responses,
    slot_events,
    verified,
)

ALICE, BOB, WANG = 1.0, 2.0, 11.0
HAN = re.compile(r"[\u4e00-\u9fff]")
STATUS_DOMAIN = domain_for("order_status_form", ["order_number", "verify_contact"])
CANCEL_DOMAIN = domain_for(
    "cancel_form", ["order_number", "verify_contact", "verify_code", "cancel_confirmed"]
)


def rows(url: str, sql: str, **params):
    engine = create_engine(url)
    with engine.connect() as conn:
        result = conn.execute(text(sql), params).all()
    engine.dispose()
    return result


def apply(tracker, events):
    """The tracker as Rasa keeps it after the action returned ``events``."""
    for event in events:
        if event.get("event") == "slot":
            tracker.slots[event["name"]] = event["value"]
    return tracker


def claim_for(customer_id: int, sender: str = "test-user", ttl: int = 600) -> dict:
    return sign_identity_claim(sender, customer_id, int(time.time()) + ttl)


def answering_code(slots: dict, answer: str, **kwargs):
    """The tracker when the customer answers the code question with ``answer``."""
    return make_tracker(
        {**slots, "verify_code": answer},
        active_loop="cancel_form",
        requested_slot="verify_code",
        **kwargs,
    )


# --- the one-time code -------------------------------------------------------------------------


async def test_code_is_sent_once_then_confirms_the_cancel(database, dispatcher, outbox_log):
    slots = {"order_number": "KF-100002", **verified(ALICE, order="KF-100002")}
    asking = make_tracker(slots, active_loop="cancel_form", requested_slot="verify_code")
    events = await ActionAskVerifyCode().run(dispatcher, asking, {})
    assert responses(dispatcher) == ["utter_code_sent_email"]
    sent = dispatcher.messages[0]
    assert sent["destination"] == "a***@example.com" and sent["minutes"] == 10
    pending = slot_events(events)["verify_code_sent"]
    assert pending["customer_id"] == 1 and pending["destination"] == "a***@example.com"
    code = latest_code(outbox_log)

    # Asked again (after a digression, a wrong code ...): the same code, nothing new sent.
    dispatcher.messages.clear()
    await ActionAskVerifyCode().run(dispatcher, apply(asking, events), {})
    assert responses(dispatcher) == ["utter_ask_verify_code_again"]
    assert outbox_log.read_text().count("\n--- ") + 1 == 1

    dispatcher.messages.clear()
    answer = answering_code({**slots, "verify_code_sent": pending}, f"it's {code}")
    events = await ValidateCancelForm().run(dispatcher, answer, CANCEL_DOMAIN)
    result = slot_events(events)
    assert responses(dispatcher) == ["utter_verify_code_accepted"]
    assert result["second_factor"] is True and result["verified_method"] == "code"
    assert result["verify_code"] is None and result["verify_code_sent"] is None  # not kept
    assert result["requested_slot"] == "cancel_confirmed"

    dispatcher.messages.clear()
    confirmed = apply(make_tracker({**slots, "cancel_confirmed": True}), events)
    await ActionCancelOrder().run(dispatcher, confirmed, {})
    assert responses(dispatcher)[0] == "utter_order_cancelled_refund"
    assert rows(database, "SELECT status FROM orders WHERE number = 'KF-100002'") == [
        ("cancelled",)
    ]


async def test_code_in_chinese(database, dispatcher, outbox_log):
    slots = {"language": "zh", "order_number": "KF-200001", **verified(WANG)}
    asking = make_tracker(slots, active_loop="cancel_form", requested_slot="verify_code")
    events = await ActionAskVerifyCode().run(dispatcher, asking, {})
    assert responses(dispatcher) == ["utter_code_sent_email"]
    assert dispatcher.messages[0]["destination"].endswith("@example.cn")
    assert HAN.search(outbox_log.read_text())  # the message itself is in Chinese
    pending = slot_events(events)["verify_code_sent"]
    dispatcher.messages.clear()
    code = latest_code(outbox_log)
    spaced = f"验证码 {code[:3]} {code[3:]}"
    answer = answering_code({**slots, "verify_code_sent": pending}, spaced)
    events = await ValidateCancelForm().run(dispatcher, answer, CANCEL_DOMAIN)
    assert slot_events(events)["second_factor"] is True


async def test_code_for_a_phone_check_goes_by_sms(database, dispatcher, outbox_log):
    slots = {"order_number": "KF-100001", **verified(ALICE, "phone")}
    asking = make_tracker(slots, active_loop="cancel_form", requested_slot="verify_code")
    await ActionAskVerifyCode().run(dispatcher, asking, {})
    assert responses(dispatcher) == ["utter_code_sent_sms"]
    assert dispatcher.messages[0]["destination"].endswith("0101")


async def test_wrong_code_is_re_asked_then_a_person_is_offered(database, dispatcher, outbox_log):
    slots = {"order_number": "KF-100002", **verified(ALICE)}
    asking = make_tracker(slots, active_loop="cancel_form", requested_slot="verify_code")
    events = await ActionAskVerifyCode().run(dispatcher, asking, {})
    slots["verify_code_sent"] = slot_events(events)["verify_code_sent"]
    wrong = "000000" if latest_code(outbox_log) != "000000" else "111111"
    failures = None
    for attempt in range(1, 4):
        dispatcher.messages.clear()
        answer = answering_code({**slots, "failed_validations": failures}, wrong)
        events = await ValidateCancelForm().run(dispatcher, answer, CANCEL_DOMAIN)
        result = slot_events(events)
        assert "second_factor" not in result or result["second_factor"] is not True
        if attempt < 3:
            assert responses(dispatcher) == ["utter_verify_code_wrong"]
            assert result["failed_validations"] == {"verify_code": attempt}
            failures = result["failed_validations"]
    assert responses(dispatcher) == ["utter_offer_human"]
    assert result["human_offered"] is True and result["requested_slot"] is None
    assert result["form_stopped"] is True


async def test_no_live_code_says_so_and_sends_a_new_one(database, dispatcher, outbox_log):
    # The code expired (or was never sent): the form asks again and a fresh code goes out.
    slots = {"order_number": "KF-100002", **verified(ALICE)}
    events = await ValidateCancelForm().run(
        dispatcher, answering_code(slots, "123456"), CANCEL_DOMAIN
    )
    assert responses(dispatcher) == ["utter_verify_code_expired"]
    result = slot_events(events)
    assert result["verify_code_sent"] is None and result["requested_slot"] == "verify_code"


async def test_asking_for_a_new_code_is_no_failure(database, dispatcher):
    slots = {"order_number": "KF-100002", **verified(ALICE)}
    events = await ValidateCancelForm().run(
        dispatcher, answering_code(slots, "I didn't get it, can you resend?"), CANCEL_DOMAIN
    )
    result = slot_events(events)
    assert responses(dispatcher) == []
    assert result["verify_code_sent"] is None and result["requested_slot"] == "verify_code"
    assert not result.get("failed_validations")


async def test_text_that_is_no_code_gets_a_hint(database, dispatcher):
    slots = {"order_number": "KF-100002", **verified(ALICE)}
    await ValidateCancelForm().run(dispatcher, answering_code(slots, "hmm"), CANCEL_DOMAIN)
    assert responses(dispatcher) == ["utter_invalid_verify_code"]


async def test_too_many_codes_end_the_form_politely(database, dispatcher, outbox_log):
    slots = {"order_number": "KF-100002", **verified(ALICE)}
    for _ in range(10):
        dispatcher.messages.clear()
        asking = make_tracker(slots, active_loop="cancel_form", requested_slot="verify_code")
        events = await ActionAskVerifyCode().run(dispatcher, asking, {})
        if "utter_error_too_many_attempts" in responses(dispatcher):
            break
    assert responses(dispatcher) == ["utter_error_too_many_attempts", "utter_offer_human"]
    result = slot_events(events)
    assert result["requested_slot"] is None and result["human_offered"] is True
    assert result["form_stopped"] is True


async def test_digits_of_a_code_do_not_replace_the_order_number(database, dispatcher):
    earlier = [{"event": "slot", "name": "order_number", "value": "KF-100002"}]
    tracker = make_tracker(
        {**verified(ALICE), "order_number": "KF-482913"},
        active_loop="cancel_form",
        requested_slot="verify_code",
        events=earlier,
    )
    events = await ValidateCancelForm().run(dispatcher, tracker, CANCEL_DOMAIN)
    assert slot_events(events)["order_number"] == "KF-100002"
    assert responses(dispatcher) == []


async def test_token_verified_cancel_needs_no_code(database, dispatcher, token_secret):
    tracker = make_tracker(
        {"order_number": "KF-100002"},
        metadata={"kefu_identity": claim_for(1)},
        active_loop="cancel_form",
    )
    events = await ValidateCancelForm().run(dispatcher, tracker, CANCEL_DOMAIN)
    result = slot_events(events)
    assert result["second_factor"] is True and result["requested_slot"] == "cancel_confirmed"
    [(method,)] = rows(
        database,
        "SELECT method FROM conversation_identities WHERE conversation_id = 'test-user'",
    )
    assert method == "token"


@pytest.mark.parametrize(
    "answer, code",
    [
        ("123456", "123456"),
        ("code: 123 456", "123456"),
        ("１２３４５６", "123456"),
        ("12345", None),
    ],
)
def test_code_from_text(answer, code):
    assert code_from_text(answer) == code


@pytest.mark.parametrize(
    "answer, wanted",
    [("resend", True), ("I didn't get it", True), ("没收到", True), ("123456", False)],
)
def test_wants_new_code(answer, wanted):
    assert wants_new_code(answer) is wanted


# --- identity re-checked every turn ------------------------------------------------------------


def test_expired_identity_is_dropped():
    tracker = make_tracker(verified(ALICE, until=time.time() - 1))
    resolved = resolve_identity(tracker)
    assert resolved.identity is None
    assert {e["name"] for e in resolved.events} >= set(IDENTITY_SLOTS)
    assert all(e["value"] is None for e in resolved.events)


def test_identity_in_use_is_refreshed(monkeypatch):
    monkeypatch.setenv("KEFU_IDENTITY_IDLE_S", "120")
    tracker = make_tracker(verified(ALICE, until=time.time() + 5))
    resolved = resolve_identity(tracker)
    assert resolved.identity.customer_id == 1
    [refresh] = resolved.events
    assert refresh["name"] == "verified_until" and refresh["value"] > time.time() + 100


def test_identity_without_its_expiry_counts_as_expired():
    # A conversation stored before identities were bound to their proof.
    tracker = make_tracker({"verified_customer_id": ALICE, "verified_method": "email"})
    assert current_identity(tracker) is None


def test_token_identity_needs_the_claim_in_every_message(token_secret):
    tracker = make_tracker(verified(ALICE, "token", second_factor=True))
    resolved = resolve_identity(tracker)  # the customer signed out: no claim any more
    assert resolved.identity is None and SlotSet("verified_customer_id", None) in resolved.events


def test_expired_claim_drops_the_token_identity(token_secret):
    stale = sign_identity_claim("test-user", 1, int(time.time()) - 1)
    tracker = make_tracker(
        verified(ALICE, "token", second_factor=True), metadata={"kefu_identity": stale}
    )
    assert current_identity(tracker) is None


def test_claim_for_another_customer_replaces_the_identity(token_secret):
    tracker = make_tracker(
        {**verified(ALICE, order="KF-100002"), "verify_code_sent": {"customer_id": 1}},
        metadata={"kefu_identity": claim_for(2)},
    )
    resolved = resolve_identity(tracker)
    assert resolved.identity.customer_id == 2 and resolved.identity.method == "token"
    assert resolved.identity.order_number is None  # Alice's order is not Bob's proof
    result = slot_events(resolved.events)
    assert result["verified_customer_id"] == BOB and result["verified_order"] is None
    assert result["verify_code_sent"] is None and resolved.bind


def test_claim_for_the_same_customer_upgrades_an_email_check(token_secret):
    tracker = make_tracker(
        verified(ALICE, order="KF-100002"), metadata={"kefu_identity": claim_for(1)}
    )
    identity = current_identity(tracker)
    assert identity.second_factor and identity.order_number == "KF-100002"


async def test_new_session_forgets_who_the_customer_was(dispatcher):
    tracker = make_tracker(
        {
            "language": "zh",
            "product": "Trail Runner 2",
            **verified(ALICE, second_factor=True, order="KF-100002"),
            "verify_contact": "sealed:v1:abc",
            "verify_code": "123456",
            "verify_code_sent": {"customer_id": 1},
            "new_address": "sealed:v1:def",
            "form_stopped": True,
        }
    )
    domain = {"session_config": {"carry_over_slots_to_new_session": True}}
    events = await ActionSessionStart().run(dispatcher, tracker, domain)
    assert events[0]["event"] == "session_started"
    assert events[-1]["event"] == "action" and events[-1]["name"] == "action_listen"
    carried = slot_events(events)
    assert carried == {"language": "zh", "product": "Trail Runner 2"}


# --- the contact: phones in every documented format ----------------------------------------------


def phone_formats(digits: str) -> list[str]:
    """The ways a customer types the number docs/SEED.md lists as ``digits``."""
    if digits.startswith("86"):
        n = digits[2:]
        return [f"+86 {n[:3]} {n[3:7]} {n[7:]}", n, f"{n[:3]} {n[3:7]} {n[7:]}", f"0086{n}"]
    n = digits[1:]
    return [
        f"+1 {n[:3]} {n[3:6]} {n[6:]}",
        n,
        f"{n[:3]}-{n[3:6]}-{n[6:]}",
        f"({n[:3]}) {n[3:6]}-{n[6:]}",
        f"1 {n[:3]} {n[3:6]} {n[6:]}",
        f"+{digits}",
    ]


async def test_every_seeded_phone_verifies_in_every_documented_format(database):
    customers = rows(
        database,
        "SELECT c.id, c.phone, min(o.number) FROM customers c "
        "JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.phone ORDER BY c.id",
    )
    assert len(customers) >= 10
    tried = 0
    for customer_id, phone, number in customers:
        for typed in phone_formats(phone):
            tracker = make_tracker(
                {"order_number": number, "verify_contact": typed},
                active_loop="order_status_form",
                sender_id=f"phone-{customer_id}-{tried}",
            )
            events = await ValidateOrderStatusForm().run(
                CollectingDispatcher(), tracker, STATUS_DOMAIN
            )
            got = slot_events(events).get("verified_customer_id")
            assert got == float(customer_id), (typed, number, slot_events(events))
            tried += 1
    assert tried >= 40


@pytest.mark.parametrize(
    "typed, contact",
    [
        ("my email is Alice@Example.com", ("email", "alice@example.com")),
        ("+1 415 555 0101", ("phone", "+14155550101")),
        ("415-555-0101", ("phone", "4155550101")),
        ("it's 138 0013 8001", ("phone", "13800138001")),
    ],
)
def test_contact_from_text(typed, contact):
    assert contact_from_text(typed) == contact


@pytest.mark.parametrize("typed", ["anna@", "not an email", "12", ""])
def test_contact_from_text_rejects(typed):
    with pytest.raises(InvalidInput):
        contact_from_text(typed)


async def test_contact_given_first_is_kept_sealed_then_verifies(database, dispatcher):
    tracker = make_tracker(
        {"verify_contact": "alice@example.com"},
        active_loop="order_status_form",
        requested_slot="order_number",
    )
    events = await ValidateOrderStatusForm().run(dispatcher, tracker, STATUS_DOMAIN)
    stored = slot_events(events)["verify_contact"]
    assert is_sealed(stored) and unseal(stored) == "alice@example.com"

    earlier = [{"event": "slot", "name": "verify_contact", "value": stored}]
    tracker = make_tracker(
        {"order_number": "KF-100004"}, active_loop="order_status_form", events=earlier
    )
    tracker.slots["verify_contact"] = stored
    events = await ValidateOrderStatusForm().run(dispatcher, tracker, STATUS_DOMAIN)
    result = slot_events(events)
    assert result["verified_customer_id"] == ALICE and result["verify_contact"] is None


async def test_an_email_after_verification_is_no_new_claim(database, dispatcher):
    before = rows(database, "SELECT count(*) FROM verification_attempts")
    tracker = make_tracker(
        {"order_number": "KF-100004", **verified(ALICE), "verify_contact": "bob@example.com"},
        active_loop="order_status_form",
    )
    events = await ValidateOrderStatusForm().run(dispatcher, tracker, STATUS_DOMAIN)
    result = slot_events(events)
    assert result["verify_contact"] is None and "verified_customer_id" not in result
    assert rows(database, "SELECT count(*) FROM verification_attempts") == before
