"""Live pushes: the socket.io message queue the web chat uses (Redis across replicas, or this
process), pushes from one replica reaching the tabs of another (two real web chat servers in
the test's event loop sharing the local Redis), pushes of REST conversations to the operator's
callback URL (a real HTTP server on loopback), and the paging of bot and agent messages the
REST channel's polling endpoint serves."""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from types import SimpleNamespace

import pytest
import socketio
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from sanic import Sanic
from socketio import AsyncManager, AsyncRedisManager

from channels.limits import MessageLimits
from channels.live import (
    AGENT_KEY,
    LiveChat,
    append_bot_message,
    crosses_replicas,
    message_queue,
    messages_after,
    redacted,
)
from channels.rest import sender_signature
from channels.webchat import WebChatInput
from tests.channels.conftest import server_stores, start_app, stop_server
from tests.helpers.network import free_port, service_reachable

REDIS_URL = "redis://127.0.0.1:6379/2"  # deploy/cluster.yml: the socket.io message queue db
DOMAIN = Domain.empty()
_apps = itertools.count()


def requires_redis() -> None:
    if not service_reachable("127.0.0.1", 6379):
        pytest.skip("Redis is not reachable at 127.0.0.1:6379; start it to run this test")


# ---- the message queue ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, shown",
    [
        ("redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
        ("redis://:s3cret@10.0.0.5:6380/2", "redis://:***@10.0.0.5:6380/2"),
        ("rediss://kefu:s3cret@redis.internal/2", "rediss://kefu:***@redis.internal/2"),
    ],
)
def test_logged_urls_hide_the_password(url, shown):
    assert redacted(url) == shown


def test_without_a_url_pushes_stay_in_this_process(monkeypatch):
    monkeypatch.delenv("KEFU_SOCKETIO_REDIS_URL", raising=False)
    manager = message_queue()
    assert type(manager) is AsyncManager
    assert not crosses_replicas(SimpleNamespace(manager=manager))


def test_redis_down_at_start_is_logged_and_pushes_stay_in_this_process(caplog):
    url = f"redis://:pw@127.0.0.1:{free_port()}/2"  # nothing listens there
    with caplog.at_level(logging.ERROR, logger="channels.live"):
        manager = message_queue(url)
    assert type(manager) is AsyncManager
    [record] = caplog.records
    assert "KEFU_SOCKETIO_REDIS_URL" in record.message and "only the tabs" in record.message
    assert "pw" not in record.message


def test_the_environment_names_the_redis_message_queue_and_its_channel(monkeypatch):
    requires_redis()
    monkeypatch.setenv("KEFU_SOCKETIO_REDIS_URL", REDIS_URL)
    monkeypatch.delenv("KEFU_SOCKETIO_CHANNEL", raising=False)
    manager = message_queue()
    assert isinstance(manager, AsyncRedisManager)
    assert (manager.redis_url, manager.channel) == (REDIS_URL, "kefu-webchat")
    monkeypatch.setenv("KEFU_SOCKETIO_CHANNEL", "kefu-staging")
    assert message_queue().channel == "kefu-staging"
    assert message_queue(channel="kefu-test").channel == "kefu-test"


# ---- pushes across replicas ----------------------------------------------------------------


class Replica:
    """One Rasa server's web chat: its socket.io server and the stores all replicas share."""

    def __init__(self, agent, queue_url: str, queue_channel: str) -> None:
        channel = WebChatInput(
            limits=MessageLimits(per_conversation=0, per_client=0),
            proxies=(),
            message_queue_url=queue_url,
            message_queue_channel=queue_channel,
        )
        self.blueprint = channel.blueprint(self._no_messages)
        self.live = LiveChat()
        self.live.attach(self.blueprint.ctx.sio)  # this replica's console pushes through it
        self.agent = agent
        self.server = None
        self.url = ""

    async def _no_messages(self, message) -> None:
        raise AssertionError("these tests send no customer messages")

    async def start(self) -> Replica:
        app = Sanic(f"kefu_live_test_{next(_apps)}", configure_logging=False)
        app.blueprint(self.blueprint, url_prefix="/webhooks/webchat")
        app.ctx.agent = self.agent
        self.server, self.url = await start_app(app)
        return self

    async def stop(self) -> None:
        await stop_server(self.server)


@pytest.fixture
def shared_stores():
    """The tracker store and lock store every replica uses (SQL and Redis in production)."""
    return server_stores(DOMAIN)


@pytest.fixture
async def replicas(shared_stores):
    """``start(queue_url)`` → two started web chat replicas on one (fresh) pub/sub channel."""
    started: list[Replica] = []

    async def start(queue_url: str) -> tuple[Replica, Replica]:
        queue_channel = f"kefu-test-{uuid.uuid4().hex}"  # no crosstalk with other runs
        for _ in range(2):
            started.append(await Replica(shared_stores, queue_url, queue_channel).start())
        await asyncio.sleep(0.3)  # the subscribers start with the servers
        return started[-2], started[-1]

    yield start
    for replica in started:
        await replica.stop()


class Tab:
    """A browser tab of the web chat, connected to one replica."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.inbox: asyncio.Queue = asyncio.Queue()
        for event in ("session_confirm", "identity", "history", "bot_uttered"):
            self.sio.on(event, self._collector(event))

    def _collector(self, event: str):
        async def collect(data=None):
            await self.inbox.put((event, data))

        return collect

    async def open(self, session_id: str | None = None) -> dict:
        await self.sio.connect(self.url, socketio_path="/socket.io", transports=["polling"])
        await self.sio.emit("session_request", {"session_id": session_id})
        got = {}
        while len(got) < 3:
            event, data = await asyncio.wait_for(self.inbox.get(), 10)
            got[event] = data
        return got

    async def pushed(self, timeout: float = 5.0) -> list[dict]:
        """The bot_uttered messages that arrive until none came for ``timeout`` seconds."""
        messages = []
        while True:
            try:
                event, data = await asyncio.wait_for(self.inbox.get(), timeout)
            except asyncio.TimeoutError:
                return messages
            if event == "bot_uttered":
                messages.append(data)
                timeout = 1.0

    async def close(self) -> None:
        # Without waiting for the pending long-poll (it ends with the server's ping, 25 s).
        for namespace in self.sio.namespaces:
            await self.sio._send_packet(
                self.sio.packet_class(socketio.packet.DISCONNECT, namespace=namespace)
            )
        await self.sio.eio.disconnect(abort=True)


async def test_an_agent_reply_on_replica_b_reaches_the_tab_on_replica_a(replicas, shared_stores):
    requires_redis()
    a, b = await replicas(REDIS_URL)
    tab = Tab(a.url)
    session_id = (await tab.open())["session_confirm"]
    sender_id = f"web-{session_id}"
    # What B's console does: the reply goes into the shared tracker, then live to the tabs.
    await append_bot_message(b.agent, sender_id, "Hi, Anna here", metadata={AGENT_KEY: "Anna"})
    assert await b.live.push(sender_id, {"text": "Hi, Anna here", "agent": "Anna"})
    assert await tab.pushed() == [{"text": "Hi, Anna here", "agent": "Anna"}]
    await tab.close()
    reloaded = Tab(a.url)  # a reload shows it once: from the tracker
    history = (await reloaded.open(session_id))["history"]["messages"]
    assert [(m["role"], m["text"]) for m in history] == [("agent", "Hi, Anna here")]
    assert await reloaded.pushed(timeout=1.0) == []
    await reloaded.close()


async def test_a_push_reaches_only_its_own_conversation_on_every_replica(replicas):
    requires_redis()
    a, b = await replicas(REDIS_URL)
    mine, other_on_a, other_on_b = Tab(a.url), Tab(a.url), Tab(b.url)
    sender_id = f"web-{(await mine.open())['session_confirm']}"
    await other_on_a.open()
    await other_on_b.open()
    assert await b.live.push(sender_id, {"text": "your refund is on its way"})
    assert await mine.pushed() == [{"text": "your refund is on its way"}]
    assert await other_on_a.pushed(timeout=1.0) == []
    assert await other_on_b.pushed(timeout=1.0) == []
    for tab in (mine, other_on_a, other_on_b):
        await tab.close()


async def test_answers_to_one_socket_stay_off_redis_and_pushes_go_through_it(replicas):
    requires_redis()
    from redis import asyncio as aioredis

    a, _ = await replicas(REDIS_URL)
    listener = aioredis.Redis.from_url(REDIS_URL)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(a.blueprint.ctx.sio.manager.channel)
    try:
        tab = Tab(a.url)
        session_id = (await tab.open())["session_confirm"]
        assert await a.live.push(f"web-{session_id}", {"text": "pushed"})
        await tab.pushed(timeout=1.0)
        await tab.close()
        published = []
        deadline = asyncio.get_running_loop().time() + 1.0
        while asyncio.get_running_loop().time() < deadline:  # None: nothing, or a subscribe reply
            message = await pubsub.get_message(timeout=0.2)
            if message is not None:
                published.append(message["data"].decode())
    finally:
        await pubsub.close()
        await listener.close()
    # Only the push: no resume key, session id confirmation or history crossed Redis.
    assert len(published) == 1 and '"pushed"' in published[0]
    assert "resume_key" not in published[0] and "history" not in published[0]


async def test_without_redis_a_push_reaches_only_the_tabs_of_its_own_replica(replicas):
    down = f"redis://127.0.0.1:{free_port()}/2"  # Redis down at start: the in-process manager
    a, b = await replicas(down)
    tab = Tab(a.url)
    sender_id = f"web-{(await tab.open())['session_confirm']}"
    assert await b.live.push(sender_id, {"text": "from b"})
    assert await a.live.push(sender_id, {"text": "from a"})
    assert await tab.pushed(timeout=2.0) == [{"text": "from a"}]
    await tab.close()


async def test_health_says_how_far_pushes_reach(replicas):
    requires_redis()
    a, _ = await replicas(REDIS_URL)
    down, _ = await replicas("")
    for replica, reach in ((a, "all_replicas"), (down, "this_process")):
        _, reply = await asyncio.to_thread(_get_health, replica.url)
        assert reply == {"status": "ok", "pushes": reach}


def _get_health(url: str):
    import json
    import urllib.request

    with urllib.request.urlopen(url + "/webhooks/webchat/health", timeout=5) as reply:  # noqa: S310
        return reply.status, json.loads(reply.read())


async def test_without_a_web_chat_or_a_callback_url_nothing_is_pushed():
    live = LiveChat(callback_url="")
    assert not await live.push("web-" + "0" * 32, {"text": "no web chat runs"})
    live.attach(SimpleNamespace(emit=None))
    assert not await live.push("shop-customer-7", {"text": "a REST conversation"})


# ---- REST conversations: the operator's callback URL ---------------------------------------


@pytest.fixture
async def callback_server():
    """A shop's callback endpoint on loopback: records what it receives, answers ``status``."""
    from aiohttp import web

    received: list[tuple[dict, dict]] = []
    state = SimpleNamespace(status=200, delay_s=0.0, received=received)

    async def handle(request):
        received.append((await request.json(), dict(request.headers)))
        await asyncio.sleep(state.delay_s)
        return web.json_response({}, status=state.status)

    app = web.Application()
    app.router.add_post("/kefu/callback", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state.url = f"http://127.0.0.1:{port}/kefu/callback"
    yield state
    await runner.cleanup()


async def test_a_rest_conversation_push_goes_to_the_callback_url_signed(
    callback_server, monkeypatch
):
    monkeypatch.setenv("KEFU_REST_SECRET", "shop-shared-secret")
    live = LiveChat(callback_url=callback_server.url)
    live.attach(SimpleNamespace(emit=None))  # a web chat runs too: REST pushes skip it
    assert await live.push("shop-7", {"text": "Anna here", "agent": "Anna"})
    [(body, headers)] = callback_server.received
    assert body == {"recipient_id": "shop-7", "text": "Anna here", "agent": "Anna"}
    assert headers["X-Kefu-Signature"] == sender_signature("shop-shared-secret", "shop-7")


async def test_the_callback_url_comes_from_the_environment(callback_server, monkeypatch):
    monkeypatch.setenv("KEFU_REST_CALLBACK_URL", callback_server.url)
    assert await LiveChat().push("shop-7", {"text": "hi"})
    monkeypatch.delenv("KEFU_REST_CALLBACK_URL")
    assert not await LiveChat().push("shop-7", {"text": "hi"})
    assert len(callback_server.received) == 1


async def test_a_web_conversation_never_goes_to_the_callback(callback_server):
    assert not await LiveChat(callback_url=callback_server.url).push("web-" + "0" * 32, {})
    assert callback_server.received == []


async def test_a_failing_or_slow_callback_is_logged_and_reported_undelivered(
    callback_server, monkeypatch, caplog
):
    monkeypatch.setattr("channels.live.CALLBACK_TIMEOUT_S", 0.5)
    live = LiveChat(callback_url=callback_server.url)
    callback_server.status = 500
    with caplog.at_level(logging.WARNING, logger="channels.live"):
        assert not await live.push("shop-7", {"text": "hi"})
    callback_server.status, callback_server.delay_s = 200, 2.0
    started = asyncio.get_running_loop().time()
    with caplog.at_level(logging.WARNING, logger="channels.live"):
        assert not await live.push("shop-7", {"text": "hi"})
    assert asyncio.get_running_loop().time() - started < 1.5
    assert ["HTTP 500" in r.message for r in caplog.records] == [True, False]
    assert all("polling" in r.message for r in caplog.records)
    down = LiveChat(callback_url=f"http://127.0.0.1:{free_port()}/nothing-listens")
    assert not await down.push("shop-7", {"text": "hi"})


async def test_only_http_callback_urls_are_called(caplog):
    with caplog.at_level(logging.ERROR, logger="channels.live"):
        assert not await LiveChat(callback_url="file:///etc/passwd").push("shop-7", {})
    assert "KEFU_REST_CALLBACK_URL" in caplog.records[0].message


# ---- paging messages for REST polling ------------------------------------------------------

EVENTS = [
    ActionExecuted("action_listen"),
    UserUttered("where is my order"),
    BotUttered("Which order?", data={"buttons": [{"title": "KF-1", "payload": "KF-1"}]}),
    UserUttered("KF-1"),
    BotUttered(data={"custom": {"type": "order_card", "order_number": "KF-1"}}),
    BotUttered(""),  # nothing shown: skipped
    BotUttered("Hi, this is Anna", metadata={AGENT_KEY: "Anna"}),
]


def test_messages_after_a_cursor_are_the_bot_and_agent_messages_written_later():
    messages, cursor = messages_after(EVENTS, 0, 50)
    assert [(m["role"], m["text"]) for m in messages] == [
        ("bot", "Which order?"),
        ("bot", ""),
        ("agent", "Hi, this is Anna"),
    ]
    assert messages[0]["quick_replies"] == [{"title": "KF-1", "payload": "KF-1"}]
    assert messages[1]["custom"]["order_number"] == "KF-1"
    assert messages[2]["agent"] == "Anna" and messages[2]["timestamp"] == EVENTS[6].timestamp
    assert cursor == len(EVENTS)
    assert messages_after(EVENTS, cursor, 50) == ([], cursor)


def test_pages_never_skip_a_message():
    first, cursor = messages_after(EVENTS, 0, 1)
    assert [m["text"] for m in first] == ["Which order?"] and cursor == 3
    second, cursor = messages_after(EVENTS, cursor, 1)
    assert second[0]["custom"] and cursor == 5
    third, cursor = messages_after(EVENTS, cursor, 1)
    assert third[0]["text"] == "Hi, this is Anna" and cursor == 7


def test_a_cursor_past_the_end_stays_where_it_is():
    # A store that answered with fewer events (e.g. briefly unavailable) must not rewind the
    # caller to messages it already has.
    assert messages_after(EVENTS[:2], 7, 50) == ([], 7)
