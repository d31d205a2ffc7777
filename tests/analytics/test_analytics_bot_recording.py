"""Conversations recorded from the real Kefu (tests/analytics/record_from_bot.py, the trained
model of 2026-12-05): the broker bodies Rasa published, replayed into the consumer.

What the transcript shows (``python -m tests.analytics.record_from_bot`` prints it), counted by
hand:

- bot-en-status (en, 5 messages): hi; order status, number, email → verified, shipped, rating
  question; the 5 button → tracking completed, CSAT 5, order KF-****04.
- bot-zh-cancel (zh, 6): cancel, number, email, one-time code, 是的 → cancelled and refunded;
  the 4 button → cancel completed, CSAT 4, order KF-****01.
- bot-zh-stock (zh, 2): a stock question answered, thanks → stock completed.
- bot-en-faq (en, 3): two FAQs answered (return policy, shipping time), bye.
- bot-en-fallback (en, 4): "blorp snazzle wibble" was read as a *complaint* (the model's
  mistake: a ticket was logged and a person offered), "No" (out_of_scope), order status asked,
  "never mind" → complaint completed, tracking abandoned; no message fell to a fallback.
- bot-en-handoff (en, 2): "i want to talk to a human" → queued; anna claimed and replied 3.291 s
  after the handoff; the customer wrote once more while paused; anna handed back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analytics.metrics import Window, report_data
from analytics.store import FactsStore
from tests.analytics.conftest import ORDER_SECRET, broker_items, snapshot

RECORDING = Path(__file__).with_name("bot_conversations.jsonl")


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return RECORDING.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def window(lines) -> Window:
    stamps = [json.loads(line)["timestamp"] for line in lines]
    return Window(min(stamps) - 1, max(stamps) + 1)


@pytest.fixture
def store(analytics_engine, window) -> FactsStore:
    return FactsStore(analytics_engine, order_secret=ORDER_SECRET, clock=lambda: window.until)


def test_the_real_recording_replayed_twice_gives_the_same_facts(store, analytics_engine, lines):
    first = store.ingest("broker", broker_items(lines))
    facts = snapshot(analytics_engine)
    second = store.ingest("broker", broker_items(lines))
    assert (first.accepted, first.skipped, second.accepted) == (len(lines), 0, 0)
    assert snapshot(analytics_engine) == facts
    assert "alice@example.com" not in json.dumps(facts) and "KF-100004" not in json.dumps(facts)


def test_the_real_conversations_facts_match_the_transcript(store, analytics_engine, lines):
    store.ingest("broker", broker_items(lines))
    with analytics_engine.connect() as conn:
        rows = {
            r.sender_id: r
            for r in conn.exec_driver_sql(
                "select sender_id, language, user_messages, fallbacks, flows, handoff,"
                " handoff_reason, agent, agent_wait_s, csat, order_numbers, contained, resolved"
                " from analytics_conversations"
            )
        }
        tasks = sorted(
            conn.exec_driver_sql(
                "select sender_id, flow, outcome from analytics_tasks order by sender_id, position"
            )
        )
    assert {s: (r.language, r.user_messages, r.csat) for s, r in rows.items()} == {
        "bot-en-status": ("en", 5, 5),
        "bot-zh-cancel": ("zh", 6, 4),
        "bot-zh-stock": ("zh", 2, None),
        "bot-en-faq": ("en", 3, None),
        "bot-en-fallback": ("en", 4, None),
        "bot-en-handoff": ("en", 2, None),
    }
    assert rows["bot-en-status"].order_numbers == "KF-****04"
    assert rows["bot-zh-cancel"].order_numbers == "KF-****01"
    handoff = rows["bot-en-handoff"]
    assert (handoff.handoff, handoff.handoff_reason, handoff.agent, handoff.agent_wait_s) == (
        True,
        "asked",
        "anna",
        3.291,
    )
    assert [s for s, r in rows.items() if not r.contained] == ["bot-en-handoff"]
    assert sum(r.fallbacks for r in rows.values()) == 0
    assert [tuple(t) for t in tasks] == [
        ("bot-en-fallback", "complaint", "completed"),
        ("bot-en-fallback", "tracking", "abandoned"),
        ("bot-en-faq", "faq", "completed"),
        ("bot-en-faq", "faq", "completed"),
        ("bot-en-status", "tracking", "completed"),
        ("bot-zh-cancel", "cancel", "completed"),
        ("bot-zh-stock", "stock", "completed"),
    ]


def test_the_real_recordings_report(store, analytics_engine, lines, window):
    store.ingest("broker", broker_items(lines))
    with analytics_engine.connect() as conn:
        data = report_data(conn, window)
    assert data["containment"]["contained"] == 5 and data["containment"]["conversations"] == 6
    assert data["handoffs"]["reasons"]["asked"] == 1
    assert data["fallbacks"] == {"user_messages": 22, "fallbacks": 0, "rate": 0.0}
    assert data["csat"]["mean"] == 4.5
    assert data["agent_wait"]["median_s"] == 3.291
    assert (data["tasks"]["tracking"]["started"], data["tasks"]["tracking"]["completed"]) == (2, 1)
    assert data["languages"]["zh"]["containment"]["conversations"] == 2
