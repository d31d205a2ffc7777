"""commerce.privacy: the one masking function, sealed values and log masking."""

from __future__ import annotations

import logging

import pytest

from commerce import privacy
from commerce.privacy import (
    PII_SLOTS,
    install_pii_masking,
    is_sealed,
    mask_email,
    mask_phone,
    mask_pii,
    mask_value,
    pii_values,
    seal,
    unseal,
)


@pytest.mark.parametrize(
    "text, masked",
    [
        ("verify anna.lee@example.com", "verify a***@example.com"),
        ("phone +86 138 0013 8000 given", "phone ***8000 given"),
        ("call 415-555-0101 or (415) 555 0101", "call ***0101 or ***0101"),
        ("我的电话13800138000，邮箱wang@example.cn", "我的电话***8000，邮箱w***@example.cn"),
        (
            "{'new_address': '1 Main St', 'order_number': 'KF-100023'}",
            "{'new_address': '***', 'order_number': 'KF-100023'}",
        ),
        ('"line1": "Flat 3, Rose Court"', '"line1": "***"'),
        (
            "{'line1': \"12 O'Connell St\", 'city': 'Dublin'}",
            "{'line1': \"***\", 'city': 'Dublin'}",
        ),
        ("address=12 High Road, Leeds", "address=***, Leeds"),
        ("send it to 12 Baker Street, London NW1", "send it to ***, London NW1"),
        ("1600 Pennsylvania Ave NW please", "*** NW please"),
        ("寄到南京西路1266号5楼", "***"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxNCJ9.c2lnbmF0dXJl", "token ***"),
        # What the conversation needs stays readable.
        (
            "order KF-100023, 2 Blue Shirts size M, $19.99",
            "order KF-100023, 2 Blue Shirts size M, $19.99",
        ),
        ("delivered 2026-01-02 10:30", "delivered 2026-01-02 10:30"),
        ("你好，我的订单 KF-200001 到哪了", "你好，我的订单 KF-200001 到哪了"),
        ("", ""),
    ],
)
def test_mask_pii(text, masked):
    assert mask_pii(text) == masked


def test_known_values_are_masked_wherever_they_appear_whatever_their_shape():
    address = "Flat 3, rose court, Leeds"
    text = "please use FLAT 3, ROSE COURT, LEEDS — yes flat 3, rose court, leeds"
    assert mask_pii(text, known=[address]) == "please use *** — yes ***"
    # A known email or phone keeps the usual masked shape.
    assert (
        mask_pii("it is Anna@Example.com", known=["anna@example.com"]) == "it is a***@example.com"
    )
    # Values too short to be personal are not searched for.
    assert mask_pii("size M", known=["M"]) == "size M"


def test_mask_value_walks_dicts_and_lists_and_keeps_other_types():
    value = {
        "text": "mail bob@example.com",
        "entities": [{"entity": "email", "value": "bob@example.com", "start": 5}],
        "confidence": 0.9,
        "flags": (True, None),
    }
    assert mask_value(value) == {
        "text": "mail b***@example.com",
        "entities": [{"entity": "email", "value": "b***@example.com", "start": 5}],
        "confidence": 0.9,
        "flags": (True, None),
    }


@pytest.mark.parametrize(
    "email, masked",
    [
        ("anna.lee@example.com", "a***@example.com"),
        ("x@y.cn", "x***@y.cn"),
        ("nope", "***"),
        (None, "***"),
    ],
)
def test_mask_email(email, masked):
    assert mask_email(email) == masked


@pytest.mark.parametrize(
    "phone, masked", [("+1 415 555 0101", "***0101"), ("8613800138000", "***8000"), ("12", "***")]
)
def test_mask_phone(phone, masked):
    assert mask_phone(phone) == masked


def test_sealed_values_round_trip_and_masking_leaves_them_alone(monkeypatch):
    monkeypatch.setenv("KEFU_DATA_KEY", "one key")
    sealed = seal("+14155550101")
    assert sealed.startswith("sealed:v1:") and is_sealed(sealed)
    assert "4155550101" not in sealed
    assert unseal(sealed) == "+14155550101"
    assert seal(sealed) == sealed
    assert mask_pii(f"slot {sealed} and a@b.com") == f"slot {sealed} and a***@b.com"
    assert mask_value({"v": sealed}) == {"v": sealed}


@pytest.mark.parametrize("value", ["plain", None, 42, "sealed:v1:garbage", "sealed:v1:"])
def test_unseal_answers_none_for_what_it_cannot_read(monkeypatch, value):
    monkeypatch.setenv("KEFU_DATA_KEY", "k")
    assert unseal(value) is None


def test_a_value_sealed_under_another_key_does_not_unseal(monkeypatch):
    monkeypatch.setenv("KEFU_DATA_KEY", "first")
    sealed = seal("12 Baker Street")
    monkeypatch.setenv("KEFU_DATA_KEY", "second")
    assert unseal(sealed) is None
    # Rotation: the new key first, the old one still reads.
    monkeypatch.setenv("KEFU_DATA_KEY", "second,first")
    assert unseal(sealed) == "12 Baker Street"


def test_the_key_falls_back_to_the_action_token_then_to_the_process(monkeypatch):
    monkeypatch.delenv("KEFU_DATA_KEY", raising=False)
    monkeypatch.setenv("KEFU_ACTION_TOKEN", "shared-token")
    sealed = seal("secret")
    # Another process with the same token (Rasa and the action server) reads it.
    privacy._cached = None
    assert unseal(sealed) == "secret"
    monkeypatch.setenv("KEFU_ACTION_TOKEN", "other-token")
    assert unseal(sealed) is None
    monkeypatch.delenv("KEFU_ACTION_TOKEN")
    assert unseal(seal("dev")) == "dev"


def test_a_fernet_key_in_kefu_data_key_is_used_as_is(monkeypatch):
    from cryptography.fernet import Fernet

    key = Fernet.generate_key()
    monkeypatch.setenv("KEFU_DATA_KEY", key.decode())
    sealed = seal("hello")
    assert Fernet(key).decrypt(sealed.removeprefix("sealed:v1:").encode()) == b"hello"


def test_pii_slots():
    assert PII_SLOTS == ("verify_contact", "new_address", "verify_code", "restock_email")


def test_log_records_are_masked(caplog):
    install_pii_masking()
    install_pii_masking()  # once is enough; twice changes nothing
    with caplog.at_level(logging.INFO):
        logging.getLogger("commerce.test").info(
            "contact %s at %s", "bob@example.com", "+1 415 555 0101"
        )
    assert "bob@example.com" not in caplog.text and "b***@example.com" in caplog.text
    assert "***0101" in caplog.text


def test_pii_values_come_from_slot_events_and_slots_sealed_or_not(monkeypatch):
    monkeypatch.setenv("KEFU_DATA_KEY", "k")
    events = [
        {"event": "user", "text": "12 Baker Street"},
        {"event": "slot", "name": "new_address", "value": "12 Baker Street"},
        {"event": "slot", "name": "new_address", "value": seal("12 Baker Street, London")},
        {"event": "slot", "name": "verify_contact", "value": "***"},
        {"event": "slot", "name": "order_number", "value": "KF-100001"},
    ]
    assert pii_values(events, {"verify_code": seal("123456")}) == [
        "12 Baker Street",
        "12 Baker Street, London",
        "123456",
    ]
    text = "send to 12 Baker Street, London; code 123456"
    assert mask_pii(text, pii_values(events, {"verify_code": "123456"})) == "send to ***; code ***"


def test_tickets_keep_their_transcript_masked(session_factory):
    from sqlalchemy import select

    from commerce.models import SupportTicket
    from commerce.services.support import conversation_handoff, open_ticket

    transcript = "customer: I'm anna.lee@example.com, +1 415 555 0101, 12 Baker Street"
    masked = "customer: I'm a***@example.com, ***0101, ***"
    open_ticket(session_factory, "help", transcript=transcript)
    conversation_handoff(session_factory, "conv-1", "human", transcript=transcript)
    conversation_handoff(session_factory, "conv-1", "human", transcript=transcript + " again")
    with session_factory() as s:
        stored = s.execute(select(SupportTicket.transcript).order_by(SupportTicket.id)).scalars()
        assert list(stored) == [masked, masked + " again"]
