"""Runs the action server and Rasa (scripts/serve.py) on a seeded commerce database and completes
order-status, cancel, address-change and return conversations over REST in English and Chinese,
then checks the database.

Reading an order takes the order number and the email; changing one also takes the one-time code,
which the test reads where the customer would: the outbox's LogSender writes each message to
``$KEFU_OUTBOX_LOG`` (no SMTP server configured), as the README demo does with var/log/outbox.log.

Needs a trained model (``make train``); the accounts are those of docs/SEED.md.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import time
from pathlib import Path

import pytest

from commerce.services.identity import issue_customer_token
from tests.helpers import HAN
from tests.helpers.kefu_server import code_sent_to, running_kefu

pytestmark = pytest.mark.integration
TOKEN_SECRET = "flows-token-secret"


@pytest.fixture(scope="module")
def outbox(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outbox") / "outbox.log"


@pytest.fixture(scope="module")
def kefu(tmp_path_factory, commerce_db, outbox):
    with running_kefu(
        tmp_path_factory.mktemp("kefu-flows"),
        KEFU_DATABASE_URL=f"sqlite:///{commerce_db}",
        KEFU_OUTBOX_LOG=str(outbox),
        KEFU_SMTP_HOST="",
        KEFU_CUSTOMER_TOKEN_SECRET=TOKEN_SECRET,
        # Every conversation here comes from 127.0.0.1: the per-client message limit is not
        # what this module tests.
        KEFU_RATE_PER_CLIENT="1000",
    ) as server:
        yield server


def chat_with_code(kefu, outbox: Path, sender: str, turns: list[str], email: str) -> list[str]:
    """Sends ``turns``; after the email, types the code that arrived for it, as a customer
    would. Returns every reply, one joined string per turn (the code's turn included)."""
    replies = []
    for text in turns:
        replies.append(" ".join(kefu.say(sender, text)))
        if text == email:
            assert "6" in replies[-1] and ("***" in replies[-1]), replies
            replies.append(" ".join(kefu.say(sender, code_sent_to(outbox, email))))
    return replies


def query(db, sql: str, *params):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def chat(kefu, sender: str, turns: list[str]) -> list[str]:
    """Sends each message and returns every reply, one joined string per turn."""
    return [" ".join(kefu.say(sender, text)) for text in turns]


ORDER_STATUS = {
    "en": ("en-status", ["where is my order?", "KF-100004", "alice@example.com"], "KF-100004"),
    "zh": ("zh-status", ["我的订单到哪了", "KF-200002", "wang.fang@example.cn"], "KF-200002"),
}


#: The survey question and the thanks for a typed rating, per language.
SURVEY = {"en": "How satisfied are you", "zh": "您对本次服务满意吗"}
TYPED_RATING = {"en": ("five stars", "Thanks for your feedback"), "zh": ("五星", "感谢您的评价")}


@pytest.mark.parametrize("language", ["en", "zh"])
def test_order_status(kefu, commerce_db, language):
    sender, turns, number = ORDER_STATUS[language]
    replies = chat(kefu, sender, turns)
    assert "KF-" in replies[0] and number in replies[-1], replies
    assert bool(HAN.search(replies[-1])) == (language == "zh"), replies
    # The task is done: one survey, answered by typing (no button).
    assert SURVEY[language] in replies[-1], replies
    typed, thanks = TYPED_RATING[language]
    assert thanks in chat(kefu, sender, [typed])[0]
    assert query(
        commerce_db,
        "SELECT success FROM verification_attempts WHERE conversation_id = ?",
        sender,
    ) == [(1,)]


#: The phone formats docs/SEED.md documents, typed by a US and a China-store customer.
PHONES = [
    ("KF-100010", "+1 415 555 0102"),
    ("KF-100010", "4155550102"),
    ("KF-100010", "415-555-0102"),
    ("KF-100010", "(415) 555-0102"),
    ("KF-200005", "+86 138 0013 8002"),
    ("KF-200005", "13800138002"),
    ("KF-200005", "138 0013 8002"),
]


@pytest.mark.parametrize("number, phone", PHONES)
def test_order_status_with_the_phone_in_every_documented_format(kefu, number, phone):
    sender = "phone-" + re.sub(r"\W", "_", phone)
    replies = chat(kefu, sender, ["where is my order?", number, phone])
    assert number in replies[-1] and "couldn't match" not in replies[-1], replies


CANCEL = {
    "en": ("en-cancel", ["cancel my order", "KF-100002", "alice@example.com", "yes"], "KF-100002"),
    "zh": ("zh-cancel", ["取消订单", "KF-200001", "wang.fang@example.cn", "是的"], "KF-200001"),
}


@pytest.mark.parametrize("language", ["en", "zh"])
def test_cancel(kefu, commerce_db, outbox, language):
    sender, turns, number = CANCEL[language]
    replies = chat_with_code(kefu, outbox, sender, turns, turns[2])
    # order number, email → "code sent to a***@…", code → confirmation question, yes → done
    assert "@" in replies[2] and turns[2] not in replies[2], replies  # masked destination
    assert number in replies[3], replies  # the confirmation question names the order
    assert number in replies[4] and "RF-" in replies[4], replies
    assert bool(HAN.search(replies[4])) == (language == "zh"), replies
    assert query(commerce_db, "SELECT status FROM orders WHERE number = ?", number) == [
        ("cancelled",)
    ]
    assert query(
        commerce_db,
        "SELECT count(*) FROM refunds r JOIN orders o ON o.id = r.order_id "
        "WHERE o.number = ? AND r.return_id IS NULL",
        number,
    ) == [(1,)]
    assert query(
        commerce_db,
        "SELECT method FROM conversation_identities WHERE conversation_id = ? ORDER BY id",
        sender,
    )[-1] == ("code",)


def test_a_wrong_code_changes_nothing(kefu, commerce_db, outbox):
    sender = "en-wrong-code"
    for text in ["cancel my order", "KF-100003", "alice@example.com"]:
        kefu.say(sender, text)
    right = code_sent_to(outbox, "alice@example.com")
    wrong = "000000" if right != "000000" else "111111"
    reply = " ".join(kefu.say(sender, wrong))
    assert "KF-100003" not in reply and "code" in reply.lower(), reply
    assert query(commerce_db, "SELECT status FROM orders WHERE number = ?", "KF-100003") == [
        ("packed",)
    ]
    assert kefu.say(sender, "never mind")  # leaves the form


ADDRESS = {
    "en": (
        "en-address",
        ["i need to change my delivery address", "KF-100001", "alice@example.com",
         "1 Market St, San Francisco, 94105"],
        "KF-100001",
        "1 Market St",
    ),
    "zh": (
        "zh-address",
        ["我想修改收货地址", "KF-200010", "zhang.wei@example.cn", "世纪大道100号，上海，200120"],
        "KF-200010",
        "世纪大道100号",
    ),
}  # fmt: skip


@pytest.mark.parametrize("language", ["en", "zh"])
def test_change_address(kefu, commerce_db, outbox, language):
    sender, turns, number, line1 = ADDRESS[language]
    replies = chat_with_code(kefu, outbox, sender, turns, turns[2])
    assert number in replies[-1] and line1 in replies[-1], replies
    assert bool(HAN.search(replies[-1])) == (language == "zh"), replies
    assert query(
        commerce_db,
        "SELECT a.line1 FROM shipping_addresses a JOIN orders o ON a.order_id = o.id "
        "WHERE o.number = ?",
        number,
    ) == [(line1,)]


RETURN = {
    "en": (
        "en-return",
        ["i want to return an item", "KF-100006", "alice@example.com", "they're too small"],
        "KF-100006",
    ),
    "zh": (
        "zh-return",
        ["我要退货", "KF-200003", "wang.fang@example.cn", "尺码太小了"],
        "KF-200003",
    ),
}


@pytest.mark.parametrize("language", ["en", "zh"])
def test_return(kefu, commerce_db, outbox, language):
    sender, turns, number = RETURN[language]
    replies = chat_with_code(kefu, outbox, sender, turns, turns[2])
    assert "RMA-" in replies[-1], replies
    assert bool(HAN.search(replies[-1])) == (language == "zh"), replies
    [(rma, reason)] = query(
        commerce_db,
        "SELECT r.rma_number, r.reason FROM returns r JOIN orders o ON o.id = r.order_id "
        "WHERE o.number = ?",
        number,
    )
    assert rma in replies[-1] and reason == turns[3]


def say_signed_in(kefu, sender: str, text: str, token: str) -> str:
    """A message from a shop that signed its customer in (the JWT rides in the metadata)."""
    body = {"sender": sender, "message": text, "metadata": {"customer_token": token}}
    status, reply = kefu.post(json.dumps(body).encode())
    assert status == 200, reply
    return " ".join(message.get("text", "") for message in reply)


def test_signed_in_customer_cancels_without_email_or_code(kefu, commerce_db, outbox):
    token = issue_customer_token(1, secret=TOKEN_SECRET)
    sender = "en-signed-in"
    before = outbox.read_text(encoding="utf-8") if outbox.exists() else ""
    question = say_signed_in(kefu, sender, "cancel order KF-100003", token)
    assert "KF-100003" in question and "email" not in question.lower(), question
    done = say_signed_in(kefu, sender, "yes", token)
    assert "KF-100003" in done, done
    assert query(commerce_db, "SELECT status FROM orders WHERE number = ?", "KF-100003") == [
        ("cancelled",)
    ]
    assert (outbox.read_text(encoding="utf-8") if outbox.exists() else "") == before  # no code
    assert query(
        commerce_db,
        "SELECT method FROM conversation_identities WHERE conversation_id = ?",
        sender,
    ) == [("token",)]


def test_a_new_session_acts_for_nobody(kefu, commerce_db):
    sender = "en-new-session"
    replies = chat(kefu, sender, ["where is my order?", "KF-100004", "alice@example.com"])
    assert "KF-100004" in replies[-1], replies
    kefu.say(sender, "/session_start")  # what an expired session does on the next message
    reply = " ".join(kefu.say(sender, "cancel order KF-100001"))
    assert "email" in reply.lower(), reply  # asked who they are again
    assert query(commerce_db, "SELECT status FROM orders WHERE number = ?", "KF-100001")[0] != (
        "cancelled",
    )


def analytics_conversations(kefu, senders: set[str], timeout: float = 60.0) -> set[str]:
    """The ``senders`` the analytics consumer serve.py runs has stored, waiting up to
    ``timeout`` seconds for all of them (it follows the tracker store every few seconds)."""
    db = kefu.log_dir.parent / "analytics.db"
    deadline, found = time.monotonic() + timeout, set()
    while time.monotonic() < deadline:
        if db.exists():
            with contextlib.suppress(sqlite3.OperationalError):  # tables not created yet
                found = {
                    row[0] for row in query(db, "SELECT sender_id FROM analytics_conversations")
                }
        if senders <= found:
            break
        time.sleep(1.0)
    return found & senders


def test_a_late_order_asked_about_before_gets_a_person_offered_before_the_customer_asks(
    kefu, commerce_db
):
    # KF-100004 (Alice's, shipped) is nine days past its promised date ...
    nine_days_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 9 * 86_400))
    with sqlite3.connect(commerce_db) as conn:
        conn.execute(
            "UPDATE shipments SET estimated_delivery = ?, delivered_at = NULL "
            "WHERE order_id = (SELECT id FROM orders WHERE number = 'KF-100004')",
            (nine_days_ago,),
        )
    # ... and Alice already asked about it twice (calmly).
    earlier = {"late-1", "late-2"}
    for sender in sorted(earlier):
        chat(kefu, sender, ["where is my order?", "KF-100004", "alice@example.com"])
    assert analytics_conversations(kefu, earlier) == earlier
    replies = chat(
        kefu,
        "late-3",
        [
            "where is my order? it's late and I already asked about it twice",
            "KF-100004",
            "alice@example.com",
        ],
    )
    assert "KF-100004" in replies[-1], replies
    assert "connect you with a person" in replies[-1], replies  # offered, not asked to rate
    assert SURVEY["en"] not in replies[-1], replies
    assert "ticket" in chat(kefu, "late-3", ["yes please"])[0].lower()
    [(risk, priority)] = query(
        commerce_db,
        "SELECT risk, priority FROM handoff_queue WHERE conversation_id = 'late-3'",
    )
    assert risk >= 0.5 and priority <= 1  # flagged and ahead of routine handoffs
