"""One event dict: checked, identified, reduced (analytics.events)."""

from __future__ import annotations

import json

import pytest

from analytics.events import (
    MalformedEvent,
    check_event,
    event_key,
    mask_order_number,
    order_key,
    reduce_event,
)
from tests.analytics.conftest import NOW

USER = {
    "sender_id": "rest-1",
    "event": "user",
    "timestamp": NOW - 60,
    "text": "where is KF-100023? mail a***@example.com",
    "parse_data": {
        "intent": {"name": "order_status", "confidence": 0.9},
        "entities": [
            {"entity": "order_number", "value": "KF-100023", "start": 9, "end": 18},
            {"entity": "language", "value": "en"},
        ],
        "text": "where is KF-100023? mail a***@example.com",
        "intent_ranking": [{"name": n, "confidence": 0.1} for n in "abcde"],
        "language": "en",
        "sentiment": {"label": "neutral", "frustration": 0.1},
    },
    "input_channel": "rest",
    "message_id": "m1",
    "metadata": {"kefu_identity": {"customer_id": 3}},
}


def test_a_broker_body_and_a_tracker_store_row_of_one_event_have_one_key():
    row_data = json.dumps({k: v for k, v in USER.items() if k != "sender_id"})
    from_row = check_event(row_data, "rest-1", now=NOW)
    from_broker = check_event(json.dumps(USER), now=NOW)
    assert from_row.key == from_broker.key == event_key("rest-1", USER)
    assert from_row.sender_id == from_broker.sender_id == "rest-1"


def test_the_same_content_in_another_conversation_is_another_event():
    assert event_key("rest-1", USER) != event_key("rest-2", USER)


def test_the_reduced_event_keeps_no_text_no_channel_metadata_and_no_order_number():
    reduced = reduce_event(USER, "secret")
    dumped = json.dumps(reduced)
    assert "where is" not in dumped and "example.com" not in dumped
    assert "kefu_identity" not in dumped and "100023" not in dumped
    assert reduced["parse_data"]["intent"] == {"name": "order_status", "confidence": 0.9}
    refs = [{"masked": "KF-****23", "key": order_key("KF-100023", "secret")}]
    assert reduced["parse_data"]["entities"] == [{"entity": "order_number", "value": refs}]
    assert len(reduced["parse_data"]["intent_ranking"]) == 3


@pytest.mark.parametrize(
    "name, value, kept",
    [
        ("verify_contact", "sealed:v1:x", "***"),
        ("verified_customer_id", 3, "***"),
        ("product", "Classic Tee", "***"),
        ("verify_contact", None, None),
        ("rating", "5", "5"),
        ("form_stopped", True, True),
        ("language", "zh", "zh"),
        (
            "order_number",
            "KF-100023",
            [{"masked": "KF-****23", "key": order_key("KF-100023", "s")}],
        ),
    ],
)
def test_only_the_slot_values_analytics_reads_are_kept(name, value, kept):
    slot = {"event": "slot", "timestamp": NOW, "name": name, "value": value}
    assert reduce_event(slot, "s")["value"] == kept


def test_order_keys_join_one_order_and_depend_on_the_secret():
    assert order_key("KF-100023", "a") == order_key("kf100023", "a") != order_key("KF-100023", "b")
    assert order_key("KF-100024", "a") != order_key("KF-100023", "a")
    assert mask_order_number("KF-100023") == "KF-****23"


@pytest.mark.parametrize(
    "raw, why",
    [
        ("{not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        ("[1, 2]", "JSON object"),
        ({"event": "user", "timestamp": NOW}, "sender_id"),
        ({"sender_id": "s", "timestamp": NOW}, "event type"),
        ({"sender_id": "s", "event": "user"}, "timestamp"),
        ({"sender_id": "s", "event": "user", "timestamp": "yesterday"}, "timestamp"),
        ({"sender_id": "s", "event": "user", "timestamp": float("nan")}, "timestamp"),
        ({"sender_id": "s", "event": "user", "timestamp": True}, "timestamp"),
        ({"sender_id": "s", "event": "user", "timestamp": NOW + 3 * 86_400}, "future"),
        ({"sender_id": "s", "event": "user", "timestamp": NOW, "parse_data": "x"}, "parse_data"),
        (
            {"sender_id": "s", "event": "user", "timestamp": NOW, "parse_data": {"intent": "x"}},
            "intent",
        ),
        ({"sender_id": "s", "event": "action", "timestamp": NOW}, "without a name"),
        ({"sender_id": "s", "event": "slot", "timestamp": NOW, "name": ""}, "without a name"),
        ({"sender_id": "s", "event": "bot", "timestamp": NOW, "metadata": []}, "metadata"),
    ],
)
def test_malformed_events_are_refused_with_the_reason(raw, why):
    with pytest.raises(MalformedEvent, match=why):
        check_event(raw, now=NOW)


def test_an_unknown_event_type_is_accepted_as_it_is():
    event = check_event({"sender_id": "s", "event": "stack", "timestamp": NOW}, now=NOW)
    assert event.data == {"event": "stack", "timestamp": NOW}
