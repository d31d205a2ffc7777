"""deploy/endpoints.production.yml against the real PostgreSQL, Redis and RabbitMQ.

Each store is built by Rasa's own factories from that file, exactly as `rasa run` builds it,
so a typo in the file or a driver missing from the pins fails here and not in production.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from tests.helpers import ROOT
from tests.helpers.network import require_service
from tests.postgres import ensure_database

pytestmark = [pytest.mark.services, pytest.mark.integration]

PRODUCTION_ENDPOINTS = ROOT / "deploy" / "endpoints.production.yml"
TRACKER_DB = "kefu_test_tracker"


@pytest.fixture(scope="module")
def production_env():
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    require_service("RabbitMQ", "127.0.0.1", 5672)
    ensure_database(TRACKER_DB)
    env = {
        "KEFU_ACTION_URL": "http://127.0.0.1:5055/webhook",
        "KEFU_ACTION_TOKEN": "test-token",
        "KEFU_TRACKER_DB_URL": f"postgresql://postgres@127.0.0.1:5432/{TRACKER_DB}",
        "KEFU_REDIS_HOST": "127.0.0.1",
        "KEFU_REDIS_PORT": "6379",
        "KEFU_RABBITMQ_HOST": "127.0.0.1",
        "KEFU_RABBITMQ_USER": "guest",
        "KEFU_RABBITMQ_PASSWORD": "guest",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env


@pytest.fixture(scope="module")
def endpoints(production_env):
    from rasa.core.utils import AvailableEndpoints

    return AvailableEndpoints.read_endpoints(str(PRODUCTION_ENDPOINTS))


@pytest.fixture(scope="module")
def domain():
    from rasa.shared.core.domain import Domain

    return Domain.load(str(ROOT / "domain"))


def test_action_endpoint_sends_the_token(endpoints):
    assert endpoints.action.url == "http://127.0.0.1:5055/webhook"
    assert endpoints.action.token == "test-token"


async def test_tracker_survives_in_postgres_and_events_reach_rabbitmq(endpoints, domain):
    import aio_pika
    from rasa.core.brokers.broker import EventBroker
    from rasa.core.tracker_store import TrackerStore
    from rasa.shared.core.events import SlotSet, UserUttered

    sender = f"prod-{uuid.uuid4().hex[:10]}"
    broker = await EventBroker.create(endpoints.event_broker)
    assert type(broker).__name__ == "OutboxPikaEventBroker"
    connection = await aio_pika.connect_robust("amqp://guest:guest@127.0.0.1:5672/")
    try:
        channel = await connection.channel()
        # A private queue on the broker's fanout exchange: it sees only what is published from
        # now on, not the backlog other runs left in the shared `kefu_events` queue.
        exchange = await channel.declare_exchange(
            broker.exchange_name, aio_pika.ExchangeType.FANOUT
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, "")

        store = TrackerStore.create(endpoints.tracker_store, domain, broker)
        assert type(store).__name__ == "MaskingSQLTrackerStore"
        tracker = await store.get_or_create_tracker(sender)
        tracker.update(UserUttered("你好", {"name": "greet", "confidence": 1.0}))
        tracker.update(SlotSet("language", "zh"))
        await store.save(tracker)

        # A new store instance (a restarted server) sees the same conversation.
        fresh = TrackerStore.create(endpoints.tracker_store, domain)
        restored = await fresh.retrieve(sender)
        assert restored is not None
        assert restored.get_slot("language") == "zh"
        assert restored.latest_message.text == "你好"

        published = []
        # Rows other runs left in the outbox table are delivered first (delivery is in order).
        deadline = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < deadline and "slot" not in published:
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.2)
                continue
            event = json.loads(message.body)
            if event.get("sender_id") == sender:
                published.append(event["event"])
        # Every saved event is published in order (the new tracker's action_listen first).
        assert published[-2:] == ["user", "slot"]
    finally:
        await connection.close()
        await broker.close()


async def test_redis_lock_store_serialises_one_conversation(endpoints):
    from rasa.core.lock_store import LockStore

    store = LockStore.create(endpoints.lock_store)
    assert type(store).__name__ == "RefusingRedisLockStore"
    conversation = f"lock-{uuid.uuid4().hex[:10]}"
    order: list[str] = []

    async def handle(name: str, hold: float) -> None:
        async with store.lock(conversation, lock_lifetime=10, wait_time_in_seconds=0.05):
            order.append(f"{name}-start")
            await asyncio.sleep(hold)
            order.append(f"{name}-end")

    first = asyncio.create_task(handle("first", 0.5))
    await asyncio.sleep(0.1)
    await asyncio.gather(first, handle("second", 0))
    assert order == ["first-start", "first-end", "second-start", "second-end"]


def leased_store(endpoints, lease_s: float):
    from channels.faults import RefusingRedisLockStore

    config = endpoints.lock_store
    return RefusingRedisLockStore(config, lease_s=lease_s)


async def test_a_lock_left_by_a_killed_replica_frees_within_its_lease(endpoints):
    store = leased_store(endpoints, lease_s=0.5)
    conversation = f"lock-{uuid.uuid4().hex[:10]}"
    # A replica took the conversation's ticket and was killed: nobody renews or returns it.
    store.issue_ticket(conversation, store.lease_s)

    async def next_turn() -> None:
        async with store.lock(conversation, wait_time_in_seconds=0.05):
            pass

    # Rasa's own ticket would hold the conversation for TICKET_LOCK_LIFETIME (60 s).
    await asyncio.wait_for(next_turn(), timeout=10)
    assert store.get_lock(conversation) is None  # returned, and nobody waits


async def test_a_live_turn_keeps_its_lock_past_the_lease(endpoints):
    store = leased_store(endpoints, lease_s=0.3)
    conversation = f"lock-{uuid.uuid4().hex[:10]}"
    order: list[str] = []

    async def handle(name: str, hold: float) -> None:
        async with store.lock(conversation, wait_time_in_seconds=0.05):
            order.append(f"{name}-start")
            await asyncio.sleep(hold)
            order.append(f"{name}-end")

    slow = asyncio.create_task(handle("slow", 1.2))  # four leases long
    await asyncio.sleep(0.1)
    await asyncio.gather(slow, handle("next", 0))
    assert order == ["slow-start", "slow-end", "next-start", "next-end"]


def test_replicas_taking_tickets_at_once_never_share_a_conversation(endpoints):
    import threading

    # Four replicas, each a thread with its own event loop and Redis connections, so their
    # reads and writes of the lock interleave as separate processes' would.
    conversation = f"lock-{uuid.uuid4().hex[:10]}"
    guard = threading.Lock()
    inside = 0
    most = 0
    served = 0
    failed: list[BaseException] = []

    async def turns(store) -> None:
        nonlocal inside, most, served
        for _ in range(15):
            async with store.lock(conversation, wait_time_in_seconds=0.002):
                with guard:
                    inside += 1
                    most = max(most, inside)
                await asyncio.sleep(0.002)
                with guard:
                    inside -= 1
                    served += 1

    def replica() -> None:
        try:
            asyncio.run(turns(leased_store(endpoints, lease_s=5)))
        except BaseException as e:  # a lost ticket ends in Rasa's LockError
            failed.append(e)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failed, failed
    assert (served, most) == (60, 1)
