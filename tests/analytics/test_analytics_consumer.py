"""The consumer: idempotent under redelivery, resumable after a crash, skipping bad events.

The recorded conversations are fed as broker bodies, as rows of a real Kefu tracker store
(``MaskingSQLTrackerStore``) and through the RabbitMQ batching with stand-in messages; every
way ends with the same facts.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import sqlalchemy as sa

from analytics import db
from analytics.models import Conversation, Source
from analytics.sources import amqp_url, consume_tracker_store, drain
from analytics.store import FactsStore
from tests.analytics.conftest import NOW, ORDER_SECRET, broker_items, snapshot


def test_replaying_the_recording_twice_gives_the_same_facts(
    facts_store, analytics_engine, recorded_lines
):
    first = facts_store.ingest("broker", broker_items(recorded_lines))
    after_first = snapshot(analytics_engine)
    second = facts_store.ingest("broker", broker_items(recorded_lines))
    assert (first.accepted, first.duplicates, first.skipped) == (len(recorded_lines), 0, 0)
    assert (second.accepted, second.duplicates, second.conversations) == (
        0,
        len(recorded_lines),
        0,
    )
    assert snapshot(analytics_engine) == after_first
    assert len(after_first["analytics_conversations"]) == 9
    # No order number, email, phone or message text is copied into the analytics tables.
    stored = json.dumps(after_first, ensure_ascii=False)
    for clear in ("KF-100", "example.com", "13800138000", "where is my", "快递太慢"):
        assert clear not in stored


def test_redelivered_batches_in_any_split_give_the_same_facts(
    tmp_path, facts_store, analytics_engine, recorded_lines
):
    facts_store.ingest("broker", broker_items(recorded_lines))
    expected = snapshot(analytics_engine)

    url = f"sqlite:///{tmp_path / 'redelivered.db'}"
    db.upgrade(url)
    engine = db.engine(url)
    store = FactsStore(engine, order_secret=ORDER_SECRET, clock=lambda: NOW)
    # Overlapping batches of 50 moving by 30: every event is delivered once or twice.
    for start in range(0, len(recorded_lines), 30):
        store.ingest("broker", broker_items(recorded_lines[start : start + 50]))
    assert snapshot(engine) == expected
    engine.dispose()


def test_a_crash_mid_batch_leaves_nothing_and_the_rerun_completes(
    tmp_path, facts_store, analytics_engine, recorded_lines, monkeypatch
):
    facts_store.ingest("broker", broker_items(recorded_lines))
    expected = snapshot(analytics_engine)

    url = f"sqlite:///{tmp_path / 'crash.db'}"
    db.upgrade(url)
    engine = db.engine(url)
    store = FactsStore(engine, order_secret=ORDER_SECRET, clock=lambda: NOW)
    original, calls = FactsStore._recompute, []

    def crash_on_the_third_conversation(self, session, sender_id):
        calls.append(sender_id)
        if len(calls) == 3:
            raise RuntimeError("power cut")
        return original(self, session, sender_id)

    monkeypatch.setattr(FactsStore, "_recompute", crash_on_the_third_conversation)
    with pytest.raises(RuntimeError, match="power cut"):
        store.ingest("broker", broker_items(recorded_lines))
    # Events, facts and the mark are one transaction: nothing of the batch was kept.
    assert all(rows == [] for rows in snapshot(engine).values())
    monkeypatch.setattr(FactsStore, "_recompute", original)
    store.ingest("broker", broker_items(recorded_lines))
    assert snapshot(engine) == expected
    engine.dispose()


def test_the_tracker_store_path_gives_the_broker_path_facts(
    tmp_path, facts_store, analytics_engine, recorded_lines, tracker_store_engine
):
    facts_store.ingest("broker", broker_items(recorded_lines))
    expected = snapshot(analytics_engine)

    url = f"sqlite:///{tmp_path / 'from_store.db'}"
    db.upgrade(url)
    engine = db.engine(url)
    store = FactsStore(engine, order_secret=ORDER_SECRET, clock=lambda: NOW)
    stats = consume_tracker_store(store, tracker_store_engine, batch_size=40, settle_s=0)
    assert (stats.accepted, stats.skipped, stats.high_water) == (len(recorded_lines), 0, 262)
    assert stats.batches == 7  # 262 rows in batches of 40
    assert snapshot(engine) == expected
    # Read again: nothing after the mark.
    again = consume_tracker_store(store, tracker_store_engine, batch_size=40, settle_s=0)
    assert (again.batches, again.accepted) == (0, 0)
    # The same events from the broker as well: all duplicates.
    assert store.ingest("broker", broker_items(recorded_lines)).accepted == 0
    engine.dispose()


def test_after_a_crash_the_tracker_store_read_resumes_at_the_mark(
    tmp_path, facts_store, analytics_engine, recorded_lines, tracker_store_engine, monkeypatch
):
    facts_store.ingest("broker", broker_items(recorded_lines))
    expected = snapshot(analytics_engine)

    url = f"sqlite:///{tmp_path / 'resume.db'}"
    db.upgrade(url)
    engine = db.engine(url)
    store = FactsStore(engine, order_secret=ORDER_SECRET, clock=lambda: NOW)
    original, batches = FactsStore.ingest, []

    def crash_in_the_third_batch(self, source, items, **kwargs):
        batches.append(kwargs.get("high_water"))
        if len(batches) == 3:
            raise RuntimeError("killed")
        return original(self, source, items, **kwargs)

    monkeypatch.setattr(FactsStore, "ingest", crash_in_the_third_batch)
    with pytest.raises(RuntimeError, match="killed"):
        consume_tracker_store(store, tracker_store_engine, batch_size=50, settle_s=0)
    monkeypatch.setattr(FactsStore, "ingest", original)
    source = next(iter(_sources(engine)))
    assert store.high_water(source) == 100  # two batches of 50 committed
    resumed = consume_tracker_store(store, tracker_store_engine, batch_size=50, settle_s=0)
    assert (resumed.accepted, resumed.duplicates) == (len(recorded_lines) - 100, 0)
    assert snapshot(engine) == expected
    engine.dispose()


def _sources(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(Source.name)).scalars())


def test_young_tracker_store_rows_wait_for_the_next_read(facts_store, tracker_store_engine):
    # "Now" is 4 s after the 101st row's event; with 5 s to settle, the read stops at the
    # first row younger than that and leaves the rest for the next read.
    with tracker_store_engine.connect() as conn:
        ts = conn.execute(sa.text("select timestamp from events where id = 101")).scalar_one()
        first_young = conn.execute(
            sa.text("select min(id) from events where timestamp > :t"), {"t": ts - 1}
        ).scalar_one()
    stats = consume_tracker_store(
        facts_store, tracker_store_engine, settle_s=5, clock=lambda: ts + 4
    )
    assert 0 < stats.high_water == first_young - 1 < 262


def test_malformed_and_out_of_order_events_are_skipped_and_logged(
    facts_store, analytics_engine, recorded_lines, caplog
):
    good = [json.loads(line) for line in recorded_lines if '"rest-en-faq"' in line]
    late = dict(good[3], timestamp=good[0]["timestamp"] - 60)  # a minute before the start
    items = [
        ("{truncated", None),
        (json.dumps(good[0]), None),
        (json.dumps({"event": "user", "timestamp": NOW}), None),  # no conversation
        *[(json.dumps(body), None) for body in good[1:]],
        (json.dumps(late), None),
    ]
    with caplog.at_level(logging.WARNING, logger="analytics.store"):
        result = facts_store.ingest("broker", items)
    assert (result.accepted, result.skipped) == (len(good), 3)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "malformed" in messages and "not JSON" in messages and "out-of-order" in messages
    with analytics_engine.connect() as conn:
        row = conn.execute(
            sa.select(Conversation.user_messages, Conversation.resolved).where(
                Conversation.sender_id == "rest-en-faq"
            )
        ).one()
        source = conn.execute(sa.select(Source.skipped).where(Source.name == "broker")).one()
    assert tuple(row) == (4, True)
    assert source.skipped == 3


class FakeMessage:
    """What the RabbitMQ batching needs of an aio-pika message."""

    def __init__(self, body: bytes, log: list) -> None:
        self.body, self.log = body, log

    async def ack(self) -> None:
        self.log.append(("ack", self.body))

    async def nack(self, requeue: bool = True) -> None:
        self.log.append(("nack", self.body))


async def _messages(bodies, log):
    for body in bodies:
        yield FakeMessage(body, log)


def test_rabbitmq_batches_are_acked_after_they_committed(
    facts_store, analytics_engine, recorded_lines
):
    log: list = []
    bodies = [line.encode() for line in recorded_lines] + [b"\x00 not json"]
    stats = asyncio.run(
        drain(
            facts_store,
            "rabbitmq:kefu_events",
            _messages(bodies, log),
            batch_size=100,
            max_seconds=30,
        )
    )
    assert (stats.batches, stats.accepted, stats.skipped) == (3, len(recorded_lines), 1)
    # Every message, the malformed one included, is acknowledged: none comes back.
    assert [kind for kind, _ in log] == ["ack"] * len(bodies)


class IdleQueue:
    """Messages in bursts; between them the queue is idle (``asyncio.TimeoutError``, as an
    aio-pika iterator made with ``timeout=`` raises)."""

    def __init__(self, bursts, log) -> None:
        self.script = [m for burst in bursts for m in [*burst, None]]
        self.log = log

    def __aiter__(self):
        return self

    async def __anext__(self):
        if not self.script:
            await asyncio.sleep(0.01)
            raise asyncio.TimeoutError
        body = self.script.pop(0)
        if body is None:
            raise asyncio.TimeoutError
        return FakeMessage(body, self.log)


def test_an_idle_queue_writes_the_partial_batch_and_the_run_ends_on_time(
    facts_store, recorded_lines
):
    log: list = []
    bodies = [line.encode() for line in recorded_lines]
    queue = IdleQueue([bodies[:30], bodies[30:45]], log)
    stats = asyncio.run(drain(facts_store, "rabbitmq:q", queue, batch_size=100, max_seconds=0.5))
    assert (stats.batches, stats.accepted) == (2, 45)  # two partial batches, then idle
    assert len(log) == 45


def test_a_failed_rabbitmq_batch_goes_back_to_the_queue(facts_store, recorded_lines, monkeypatch):
    log: list = []

    def broken(*args, **kwargs):
        raise sa.exc.OperationalError("insert", {}, Exception("database is locked"))

    monkeypatch.setattr(facts_store, "ingest", broken)
    bodies = [line.encode() for line in recorded_lines[:10]]
    with pytest.raises(sa.exc.OperationalError):
        asyncio.run(
            drain(facts_store, "rabbitmq:q", _messages(bodies, log), batch_size=5, max_seconds=30)
        )
    assert [kind for kind, _ in log] == ["nack"] * 5


@pytest.mark.parametrize(
    "host, user, password, port, url",
    [
        ("rabbitmq", "kefu", "s3cr:t", None, "amqp://kefu:s3cr%3At@rabbitmq:5672/"),
        ("localhost", None, None, 5673, "amqp://localhost:5673/"),
        ("amqp://u:p@h:1/vh", "x", "y", None, "amqp://u:p@h:1/vh"),
    ],
)
def test_amqp_url_from_the_pika_broker_settings(host, user, password, port, url):
    assert amqp_url(host, user, password, port) == url
