"""Runs the action server and Rasa (scripts/serve.py) on a seeded commerce database and completes
order-status, cancel and return conversations over REST in English and Chinese, then checks
the database.

Needs a trained model (``make train``); the accounts are those of docs/SEED.md.
"""

from __future__ import annotations

import sqlite3

import pytest

from tests.integration.test_chat_over_rest import HAN, running_kefu

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kefu(tmp_path_factory, commerce_db):
    with running_kefu(
        tmp_path_factory.mktemp("kefu-flows"), KEFU_DATABASE_URL=f"sqlite:///{commerce_db}"
    ) as server:
        yield server


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


@pytest.mark.parametrize("language", ["en", "zh"])
def test_order_status(kefu, commerce_db, language):
    sender, turns, number = ORDER_STATUS[language]
    replies = chat(kefu, sender, turns)
    assert "KF-" in replies[0] and number in replies[-1], replies
    assert bool(HAN.search(replies[-1])) == (language == "zh"), replies
    assert query(
        commerce_db,
        "SELECT success FROM verification_attempts WHERE conversation_id = ?",
        sender,
    ) == [(1,)]


CANCEL = {
    "en": ("en-cancel", ["cancel my order", "KF-100002", "alice@example.com", "yes"], "KF-100002"),
    "zh": ("zh-cancel", ["取消订单", "KF-200001", "wang.fang@example.cn", "是的"], "KF-200001"),
}


@pytest.mark.parametrize("language", ["en", "zh"])
def test_cancel(kefu, commerce_db, language):
    sender, turns, number = CANCEL[language]
    replies = chat(kefu, sender, turns)
    assert number in replies[2], replies  # the confirmation question names the order
    assert number in replies[3] and "RF-" in replies[3], replies
    assert bool(HAN.search(replies[3])) == (language == "zh"), replies
    assert query(commerce_db, "SELECT status FROM orders WHERE number = ?", number) == [
        ("cancelled",)
    ]
    assert query(
        commerce_db,
        "SELECT count(*) FROM refunds r JOIN orders o ON o.id = r.order_id "
        "WHERE o.number = ? AND r.return_id IS NULL",
        number,
    ) == [(1,)]


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
def test_return(kefu, commerce_db, language):
    sender, turns, number = RETURN[language]
    replies = chat(kefu, sender, turns)
    assert "RMA-" in replies[3], replies
    assert bool(HAN.search(replies[3])) == (language == "zh"), replies
    [(rma, reason)] = query(
        commerce_db,
        "SELECT r.rma_number, r.reason FROM returns r JOIN orders o ON o.id = r.order_id "
        "WHERE o.number = ?",
        number,
    )
    assert rma in replies[3] and reason == turns[3]
