"""Starts Kefu as a user would (scripts/serve.py: action server + Rasa), chats over REST in
English and Chinese, checks malformed requests, and checks that a conversation survives a
restart because trackers live in the SQL tracker store."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.helpers import HAN
from tests.helpers.kefu_server import running_kefu

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kefu(tmp_path_factory):
    with running_kefu(tmp_path_factory.mktemp("kefu")) as server:
        yield server


def test_english_conversation(kefu):
    greeting = kefu.say("en-user", "hello")
    assert greeting and "Kefu" in greeting[0] and not HAN.search(greeting[0])
    help_reply = " ".join(kefu.say("en-user", "what can you do?"))
    assert "order" in help_reply.lower()
    assert kefu.say("en-user", "thanks a lot")[0].startswith("You're welcome")
    assert "outside what I can help" in " ".join(kefu.say("en-user", "book me a flight to Tokyo"))


def test_chinese_conversation(kefu):
    greeting = kefu.say("zh-user", "你好")
    assert greeting and HAN.search(greeting[0]) and "Kefu" in greeting[0]
    assert "订单" in " ".join(kefu.say("zh-user", "你能帮我做什么"))
    assert kefu.say("zh-user", "谢谢")[0].startswith("不客气")
    assert kefu.say("zh-user", "再见")[0].startswith("再见")


def test_language_follows_the_customer(kefu):
    assert HAN.search(kefu.say("switcher", "你好")[0])
    assert not HAN.search(kefu.say("switcher", "hello")[0])


@pytest.mark.parametrize(
    "message, asked",
    [
        ("track order KF-100004", "email address or phone number on the order"),
        ("track order 100004", "email address or phone number on the order"),
        ("cancel order 100016", "email address or phone number on the order"),
        ("查订单KF-200002", "邮箱或手机号"),
        ("取消订单200003", "邮箱或手机号"),
    ],
)
def test_a_terse_command_is_read_by_its_verb_with_its_order_number(kefu, message, asked):
    # Not `inform` and not a fallback: the form starts with the number taken, so the next
    # question is who the customer is, not which order.
    reply = " ".join(kefu.say(f"terse-{message}".replace(" ", "-"), message))
    assert asked in reply


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b"{not json", 400, "invalid_json"),
        (b"\xff\xfe\xfd", 400, "invalid_encoding"),
        (json.dumps({"sender": "a", "message": ""}).encode(), 400, "empty_message"),
        (json.dumps({"sender": "a", "message": "x" * 5000}).encode(), 413, "message_too_long"),
        (json.dumps({"message": "hi"}).encode(), 400, "invalid_sender"),
    ],
)
def test_malformed_requests_get_clear_errors_and_server_keeps_running(kefu, body, status, code):
    got_status, reply = kefu.post(body)
    assert (got_status, reply["error"]) == (status, code)
    assert kefu.say("still-alive", "hi")


def test_conversation_survives_restart(kefu):
    kefu.say("restart-user", "你好")
    assert kefu.stop() == 0
    kefu.start()
    reply = kefu.say("restart-user", "谢谢")
    assert reply and reply[0].startswith("不客气")
    with sqlite3.connect(kefu.tracker_db) as db:
        rows = db.execute(
            "SELECT type_name, data FROM events WHERE sender_id = ? ORDER BY id",
            ("restart-user",),
        ).fetchall()
    texts = [json.loads(data).get("text") for kind, data in rows if kind == "user"]
    assert texts == ["你好", "谢谢"]
    # The tracker was loaded, not recreated: still one session.
    starts = [data for kind, data in rows if kind == "session_started"]
    assert len(starts) == 1
