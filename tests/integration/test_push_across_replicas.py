"""Pushes across replicas, end to end: two Kefu servers (scripts/serve.py, the trained model)
sharing a PostgreSQL tracker store, a Redis lock store and the Redis socket.io message queue.

A customer's web chat tab is connected to replica A; an agent works in replica B's console. The
agent's claim and reply reach the tab on A live, exactly once, and a reload shows the reply once
(from the tracker). A REST caller talking to A polls the agent's reply written through B.

Each Rasa server holds ~4 GB: the test runs only with 10 GB of memory available, starts at most
these two, and always stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import socketio

from channels.rest import sender_signature
from commerce.config import DATABASE_URL_ENV, TOKEN_SECRET_ENV
from tests.helpers.kefu_server import MODEL, KefuProcess
from tests.helpers.network import require_service
from tests.helpers.webchat_client import ChatClient
from tests.postgres import ensure_database

pytestmark = [pytest.mark.integration, pytest.mark.services]

TRACKER_DB = "kefu_test_push_replicas"
REDIS_URL = "redis://127.0.0.1:6379/2"  # deploy/cluster.yml: the socket.io message queue db
SECRET = "push-across-replicas-test-secret-long-enough"
REST_SECRET = "push-across-replicas-rest-secret"
MIN_AVAILABLE_GB = 10


def available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, commerce_db):
    """Replicas A and B of one deployment, started together and always stopped."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    if not MODEL.exists():
        pytest.skip(f"no trained model at {MODEL}: run `make train` first")
    if available_gb() < MIN_AVAILABLE_GB:
        pytest.skip(f"two Rasa servers need {MIN_AVAILABLE_GB} GB free; {available_gb():.1f} GB")
    tracker_url = ensure_database(TRACKER_DB)
    _create_tracker_tables(tracker_url)
    stores = f"""
tracker_store:
  type: channels.tracker_store.MaskingSQLTrackerStore
  url: {tracker_url}
lock_store:
  type: redis
  url: 127.0.0.1
  port: 6379
  db: 1
  key_prefix: kefu_test_push_{uuid.uuid4().hex[:8]}
"""
    env = {
        DATABASE_URL_ENV: f"sqlite:///{commerce_db}",  # one commerce database: the handoffs
        TOKEN_SECRET_ENV: SECRET,  # one secret: a tab's resume key works on every replica
        "KEFU_REST_SECRET": REST_SECRET,
        "KEFU_SOCKETIO_REDIS_URL": REDIS_URL,
        # A channel of this run's own: nothing else on this Redis server sees its pushes.
        "KEFU_SOCKETIO_CHANNEL": f"kefu-test-{uuid.uuid4().hex}",
        "KEFU_ANALYTICS": "0",
        "KEFU_DEMO_LINKS": "0",
    }
    started: list[KefuProcess] = []
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)  # KefuProcess hands its environment to its servers
        try:
            for name in ("a", "b"):
                replica = KefuProcess(tmp_path_factory.mktemp(f"replica-{name}"), stores=stores)
                replica.launch()
                started.append(replica)
            for replica in started:
                replica.wait_started(timeout=420)
            yield started
        finally:
            for replica in started:
                if replica.process is not None and replica.process.poll() is None:
                    replica.stop()


def _create_tracker_tables(url: str) -> None:
    """The tracker store's tables, made once here rather than by two servers at once."""
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain

    SQLTrackerStore(Domain.empty(), host=url).engine.dispose()


@pytest.fixture(scope="module")
def anna(commerce_db) -> str:
    """The console token of the agent Anna (an operator makes it with `commerce agent add`)."""
    from commerce.db import make_session_factory
    from commerce.services import agents

    factory = make_session_factory(f"sqlite:///{commerce_db}")
    try:
        return agents.create_agent(factory, "Anna")[1]
    finally:
        factory.kw["bind"].dispose()


def call(url: str, method: str, path: str, body=None, headers=None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **(headers or {})},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:  # noqa: S310 - loopback
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def console(replica: KefuProcess, token: str, method: str, path: str, body=None):
    headers = {"Authorization": f"Bearer {token}"}
    return call(replica.url, method, f"/webhooks/agent/api{path}", body, headers)


def queued_handoff(replica: KefuProcess, token: str, conversation_id: str) -> int:
    status, queue = console(replica, token, "GET", "/queue")
    assert status == 200, queue
    [entry] = [e for e in queue["waiting"] if e["conversation_id"] == conversation_id]
    return entry["handoff_id"]


def texts(replies: list[dict]) -> str:
    return " ".join(r.get("text", "") for r in replies if r["event"] == "bot_uttered")


async def close(client: ChatClient) -> None:
    """Disconnect without waiting for the pending long-poll (it ends with the ping, 25 s)."""
    sio = client.sio
    with contextlib.suppress(Exception):
        for namespace in sio.namespaces:
            await sio._send_packet(
                sio.packet_class(socketio.packet.DISCONNECT, namespace=namespace)
            )
        await sio.eio.disconnect(abort=True)


def test_both_replicas_push_through_redis(replicas):
    for replica in replicas:
        status, health = call(replica.url, "GET", "/webhooks/webchat/health")
        assert (status, health) == (200, {"status": "ok", "pushes": "all_replicas"})


async def test_an_agent_on_replica_b_reaches_a_tab_on_replica_a_once(replicas, anna):
    a, b = replicas
    customer = ChatClient(a.url)
    try:
        session_id = (await customer.open())["session_confirm"]
        conversation = f"web-{session_id}"
        await customer.say("my parcel arrived damaged, this is unacceptable")
        assert "queue" in texts(await customer.say("I want to talk to a human")).lower()
        handoff = queued_handoff(b, anna, conversation)  # B sees A's conversation: shared stores

        assert console(b, anna, "POST", f"/handoffs/{handoff}/claim")[0] == 200
        assert "Anna" in texts(await customer.collect())  # "Anna has joined", said on B
        status, sent = console(
            b,
            anna,
            "POST",
            f"/handoffs/{handoff}/reply",
            {"text": "So sorry, a new one ships today."},
        )
        assert status == 200 and sent["delivered_live"] is True
        assert await customer.collect() == [
            {"event": "bot_uttered", "text": "So sorry, a new one ships today.", "agent": "Anna"}
        ]
    finally:
        await close(customer)

    reloaded = ChatClient(b.url)  # the reload lands on the other replica: same history
    try:
        history = (await reloaded.open(session_id))["history"]["messages"]
    finally:
        await close(reloaded)
    from_agent = [(m["agent"], m["text"]) for m in history if m["role"] == "agent"]
    assert from_agent == [("Anna", "So sorry, a new one ships today.")]


async def test_a_rest_caller_on_replica_a_polls_the_reply_written_on_replica_b(replicas, anna):
    a, b = replicas
    sender = f"shop-{uuid.uuid4().hex[:12]}"
    signed = {"X-Kefu-Signature": sender_signature(REST_SECRET, sender)}

    def say(text: str) -> list[dict]:
        status, reply = call(
            a.url, "POST", "/webhooks/rest/webhook", {"sender": sender, "message": text}, signed
        )
        assert status == 200, reply
        return reply

    def poll(replica: KefuProcess, after: str = "0", signature=signed) -> tuple[int, dict]:
        query = urllib.parse.urlencode({"sender": sender, "after": after})
        return call(replica.url, "GET", f"/webhooks/rest/messages?{query}", headers=signature)

    await asyncio.to_thread(say, "my parcel arrived damaged, this is unacceptable")
    await asyncio.to_thread(say, "I want to talk to a human")
    status, before = poll(a)
    assert status == 200 and before["messages"]
    assert all(m["role"] == "bot" for m in before["messages"])

    handoff = queued_handoff(b, anna, sender)
    assert console(b, anna, "POST", f"/handoffs/{handoff}/claim")[0] == 200
    status, sent = console(
        b, anna, "POST", f"/handoffs/{handoff}/reply", {"text": "Anna here: refund started."}
    )
    assert status == 200 and sent["delivered_live"] is False  # no web chat tab to push to

    status, after = poll(a, before["cursor"])
    assert status == 200
    assert after["messages"][-1]["role"] == "agent"
    assert (after["messages"][-1]["agent"], after["messages"][-1]["text"]) == (
        "Anna",
        "Anna here: refund started.",
    )
    assert poll(a, after["cursor"])[1]["messages"] == []
    # Another caller's signature reads nothing of this conversation.
    forged = {"X-Kefu-Signature": sender_signature(REST_SECRET, "shop-someone-else")}
    status, refused = poll(a, signature=forged)
    assert (status, refused["error"]) == (401, "invalid_signature")
