"""The outbox event broker (channels/broker.py) against the local RabbitMQ (127.0.0.1:5672,
guest/guest), reached through a loopback proxy the tests open and close to make an outage.

Counted at a real consumer of the test's own queue and exchange: every event arrives, in the
order it was published, each once, with its message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

import aio_pika
import pytest
import sqlalchemy as sa
from rasa.core.brokers.broker import EventBroker
from rasa.utils.endpoints import EndpointConfig

import channels.broker as broker_module
from channels.broker import MESSAGE_ID_HEADER, EventOutbox, OutboxPikaEventBroker, outbox_table
from tests.helpers import ROOT
from tests.helpers.network import free_port, require_service
from tests.postgres import ensure_database

RABBITMQ = ("127.0.0.1", 5672)
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


class LoopbackProxy:
    """A TCP proxy from a loopback port to RabbitMQ; closing it is an outage."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):  # cut the connections that are open, too
            writer.close()
        self._writers.clear()

    async def _serve(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*RABBITMQ)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src, dst):
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
def rabbitmq():
    require_service("RabbitMQ", *RABBITMQ)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def outbox_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'outbox.db'}"
    url = ensure_database("kefu_test_faults")
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # this test's database: rows of an earlier failed run go
        if sa.inspect(conn).has_table(outbox_table.name):
            conn.execute(outbox_table.delete())
    engine.dispose()
    return url


def outbox_rows(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            stmt = sa.select(outbox_table.c.message_id).order_by(outbox_table.c.id)
            return [row[0] for row in conn.execute(stmt)]
    finally:
        engine.dispose()


async def wait_for(predicate, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.1)


class Consumer:
    """Reads the test's own queue, bound to the test's own exchange."""

    def __init__(self, exchange: str, queue: str) -> None:
        self.exchange_name, self.queue_name = exchange, queue
        self.received: list[tuple[str, str]] = []  # (message id, text)

    async def __aenter__(self) -> Consumer:
        self.connection = await aio_pika.connect_robust(AMQP_URL)
        channel = await self.connection.channel()
        exchange = await channel.declare_exchange(
            self.exchange_name, type=aio_pika.ExchangeType.FANOUT
        )
        self.queue = await channel.declare_queue(self.queue_name, durable=True)
        await self.queue.bind(exchange, "")
        self.channel = channel
        return self

    async def take(self, count: int, timeout: float = 20.0) -> list[tuple[str, str]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.received) < count and loop.time() < deadline:
            message = await self.queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.1)
                continue
            assert message.headers[MESSAGE_ID_HEADER] == message.message_id
            self.received.append((message.message_id, json.loads(message.body)["text"]))
        return self.received

    async def __aexit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            await self.channel.queue_delete(self.queue_name)
            await self.channel.exchange_delete(self.exchange_name)
        await self.connection.close()


async def started_broker(port: int, outbox_url: str, exchange: str, queue: str):
    return await EventBroker.create(
        EndpointConfig(
            url="127.0.0.1",
            port=port,
            username="guest",
            password="guest",
            queues=[queue],
            exchange_name=exchange,
            outbox_url=outbox_url,
            retry_interval_s=0.2,
            publish_timeout_s=2,
            connect_timeout_s=2,
            type="channels.broker.OutboxPikaEventBroker",
        )
    )


def event(i: int) -> dict:
    return {"event": "user", "sender_id": "outbox-test", "text": f"m{i}", "timestamp": i}


async def test_events_survive_rabbitmq_being_away_and_arrive_in_order_once(rabbitmq, outbox_url):
    tag = uuid.uuid4().hex[:8]
    exchange, queue = f"kefu-test-outbox-{tag}", f"kefu_test_outbox_{tag}"
    proxy = LoopbackProxy()  # not open yet: RabbitMQ is unreachable at start
    loop = asyncio.get_running_loop()
    started = loop.time()
    broker = await started_broker(proxy.port, outbox_url, exchange, queue)
    try:
        assert isinstance(broker, OutboxPikaEventBroker)
        assert loop.time() - started < 10  # Rasa's own broker would refuse to start
        assert broker.is_ready()
        for i in range(5):
            broker.publish(event(i))  # turns go on while RabbitMQ is away
        await wait_for(lambda: len(outbox_rows(outbox_url)) == 5)
        kept_ids = outbox_rows(outbox_url)

        async with Consumer(exchange, queue) as consumer:
            await proxy.open()  # RabbitMQ is back
            received = await consumer.take(5)
            assert [text for _, text in received] == [f"m{i}" for i in range(5)]
            assert [mid for mid, _ in received] == kept_ids  # the outbox's ids, in its order
            await wait_for(lambda: outbox_rows(outbox_url) == [])

            for i in range(5, 8):
                broker.publish(event(i))
            await consumer.take(8)

            await proxy.close()  # an outage in the middle of the run
            for i in range(8, 10):
                broker.publish(event(i))
            await wait_for(lambda: len(outbox_rows(outbox_url)) == 2)
            await proxy.open()
            received = await consumer.take(10)
            await asyncio.sleep(1)  # a duplicate would arrive now
            received = await consumer.take(11, timeout=1)
    finally:
        await broker.close()
        await proxy.close()
    assert [text for _, text in received] == [f"m{i}" for i in range(10)]
    assert len({mid for mid, _ in received}) == 10
    assert outbox_rows(outbox_url) == []


async def test_events_queued_at_close_are_kept_in_the_outbox(rabbitmq, tmp_path):
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    broker = await started_broker(free_port(), url, "kefu-test-unused", "kefu_test_unused")
    for i in range(3):
        broker.publish(event(i))
    await broker.close()
    assert len(outbox_rows(url)) == 3


def test_the_production_endpoints_use_the_outbox_broker():
    import yaml

    config = yaml.safe_load((ROOT / "deploy" / "endpoints.production.yml").read_text())
    broker = config["event_broker"]
    assert broker["type"] == "channels.broker.OutboxPikaEventBroker"
    assert broker["outbox_url"] == "${KEFU_TRACKER_DB_URL}"


def _created_meanwhile(*_args, **_kwargs):
    """What PostgreSQL answers the replica that checked for the table just before another one
    created it."""
    raise sa.exc.ProgrammingError("CREATE TABLE kefu_event_outbox", {}, Exception("exists"))


def test_replicas_starting_together_share_the_outbox_one_of_them_created(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    EventOutbox(url).dispose()  # the replica that won
    monkeypatch.setattr(broker_module._metadata, "create_all", _created_meanwhile)

    outbox = EventOutbox(url)  # the one that lost the race

    outbox.add("m-1", json.dumps(event(1)), None)
    assert outbox.count() == 1


def test_an_outbox_that_cannot_be_created_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(broker_module._metadata, "create_all", _created_meanwhile)

    with pytest.raises(sa.exc.ProgrammingError):
        EventOutbox(f"sqlite:///{tmp_path / 'outbox.db'}")
