"""The RabbitMQ path against the local RabbitMQ (skipped with the reason when it is absent).

The recording is published as Rasa's pika broker publishes (a durable queue, JSON bodies) and
consumed by ``python -m analytics consume --from-rabbitmq`` with an endpoints file shaped like
deploy/endpoints.production.yml; then everything is delivered a second time.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from analytics import db
from analytics.__main__ import main
from tests.analytics.conftest import ORDER_SECRET, broker_items, snapshot
from tests.helpers.network import require_service

pytestmark = pytest.mark.services

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


async def _publish(queue: str, bodies: list[bytes]) -> None:
    import aio_pika

    connection = await aio_pika.connect_robust(AMQP)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=True)
        for body in bodies:
            await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue,
            )


async def _delete(queue: str) -> None:
    import aio_pika

    connection = await aio_pika.connect_robust(AMQP)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)


def test_events_from_rabbitmq_give_the_broker_facts_and_redelivery_changes_nothing(
    tmp_path, facts_store, analytics_engine, recorded_lines, monkeypatch, capsys
):
    require_service("RabbitMQ", "127.0.0.1", 5672)
    facts_store.ingest("expected", broker_items(recorded_lines))
    expected = snapshot(analytics_engine)

    queue = f"kefu_events_test_{uuid.uuid4().hex[:8]}"
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(
        "event_broker:\n  type: pika\n  url: ${KEFU_RABBITMQ_HOST}\n"
        "  username: ${KEFU_RABBITMQ_USER}\n  password: ${KEFU_RABBITMQ_PASSWORD}\n"
        f"  queues:\n    - {queue}\n",
        encoding="utf-8",
    )
    for name, value in [("HOST", "127.0.0.1"), ("USER", "guest"), ("PASSWORD", "guest")]:
        monkeypatch.setenv(f"KEFU_RABBITMQ_{name}", value)
    monkeypatch.setenv("KEFU_HASH_SECRET", ORDER_SECRET)  # the order keys' key, as expected
    url = f"sqlite:///{tmp_path / 'from_rabbitmq.db'}"
    db.upgrade(url)
    consume = ["consume", "--from-rabbitmq", "--endpoints", str(endpoints), "--max-seconds", "3"]
    bodies = [line.encode() for line in recorded_lines]
    try:
        asyncio.run(_publish(queue, [*bodies, b"{broken"]))
        assert main([*consume, "--database-url", url]) == 0
        first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert (first["accepted"], first["skipped"]) == (262, 1)
        engine = db.engine(url)
        assert snapshot(engine) == expected

        asyncio.run(_publish(queue, bodies))  # redelivered
        assert main([*consume, "--database-url", url]) == 0
        second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert (second["accepted"], second["duplicates"]) == (0, 262)
        assert snapshot(engine) == expected
        engine.dispose()
    finally:
        asyncio.run(_delete(queue))
