"""The live-push route of proactive notices, on a real web chat server with a real socket.io
tab: a notice reaches the customer's open chat and its transcript, and nothing reaches a
conversation that is not connected here or belongs to someone else."""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.error
import urllib.request

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, SlotSet
from sanic import Sanic

from channels.limits import MessageLimits
from channels.live import LiveChat
from channels.notices import NOTICE_KEY, NoticeRoute
from channels.webchat import WebChatInput
from tests.channels.conftest import server_stores, start_app, stop_server
from tests.channels.test_live import Tab

TOKEN = "notice-token-for-tests"
_apps = itertools.count()


class Server:
    """One Rasa server's web chat and notice route over the shared stores."""

    def __init__(self, agent, token: str) -> None:
        channel = WebChatInput(limits=MessageLimits(per_conversation=0, per_client=0), proxies=())
        self.webchat = channel.blueprint(self._no_messages)
        live = LiveChat()
        live.attach(self.webchat.ctx.sio)
        self.route = NoticeRoute(token=token, chat=live)
        self.agent = agent
        self.url = ""

    async def _no_messages(self, message) -> None:
        raise AssertionError("these tests send no customer messages")

    async def start(self) -> Server:
        app = Sanic(f"kefu_notice_test_{next(_apps)}", configure_logging=False)
        app.blueprint(self.webchat, url_prefix="/webhooks/webchat")
        app.add_route(self.route.notify, "/webhooks/live/notify", methods=["POST"])
        app.ctx.agent = self.agent
        self.server, self.url = await start_app(app)
        return self

    async def stop(self) -> None:
        await stop_server(self.server)

    async def notify(self, body, token: str = TOKEN) -> tuple[int, dict]:
        return await asyncio.to_thread(self._post, body, token)

    def _post(self, body, token: str) -> tuple[int, dict]:
        request = urllib.request.Request(  # noqa: S310 - loopback
            self.url + "/webhooks/live/notify",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


#: The slot the route reads, as the shop's domain declares it.
DOMAIN = Domain.from_dict(
    {"slots": {"verified_customer_id": {"type": "float", "mappings": [{"type": "custom"}]}}}
)


@pytest.fixture
def shared_stores():
    return server_stores(DOMAIN)


@pytest.fixture
async def server(shared_stores):
    started = []

    async def start(token: str = TOKEN) -> Server:
        started.append(await Server(shared_stores, token).start())
        return started[-1]

    yield start
    for one in started:
        await one.stop()


async def verify(stores, sender_id: str, customer_id: float) -> None:
    tracker = await stores.tracker_store.get_or_create_tracker(sender_id)
    tracker.update(SlotSet("verified_customer_id", customer_id))
    await stores.tracker_store.save(tracker)


async def notices_in(stores, sender_id: str) -> list[str]:
    tracker = await stores.tracker_store.retrieve(sender_id)
    return [
        e.text
        for e in tracker.events
        if isinstance(e, BotUttered) and (e.metadata or {}).get(NOTICE_KEY)
    ]


async def test_a_notice_reaches_the_customers_open_chat_and_its_transcript(
    server,
    shared_stores,
):
    kefu = await server()
    tab = Tab(kefu.url)
    sender_id = f"web-{(await tab.open())['session_confirm']}"
    await verify(shared_stores, sender_id, 14.0)

    status, answer = await kefu.notify(
        {"sender": sender_id, "customer_id": 14, "text": "Good news: the Trail Runner is back."}
    )

    assert (status, answer) == (200, {"delivered": True})
    assert await tab.pushed() == [{"text": "Good news: the Trail Runner is back."}]
    assert await notices_in(shared_stores, sender_id) == ["Good news: the Trail Runner is back."]
    await tab.close()


async def test_another_customers_conversation_gets_nothing(server, shared_stores):
    kefu = await server()
    tab = Tab(kefu.url)
    sender_id = f"web-{(await tab.open())['session_confirm']}"
    await verify(shared_stores, sender_id, 15.0)

    status, answer = await kefu.notify({"sender": sender_id, "customer_id": 14, "text": "Yours"})

    assert (status, answer["reason"]) == (409, "other_customer")
    assert await tab.pushed(timeout=1.0) == []
    assert await notices_in(shared_stores, sender_id) == []
    await tab.close()


async def test_a_conversation_with_no_tab_here_is_not_delivered(server, shared_stores):
    kefu = await server()
    await verify(shared_stores, "web-closed-tab", 14.0)

    status, answer = await kefu.notify(
        {"sender": "web-closed-tab", "customer_id": 14, "text": "Your refund is complete."}
    )

    # The worker then sends it by email; the transcript gets no copy nobody saw.
    assert (status, answer) == (404, {"delivered": False, "reason": "not_connected"})
    assert await notices_in(shared_stores, "web-closed-tab") == []


@pytest.mark.parametrize(
    "token, body, status, reason",
    [
        ("wrong", {"sender": "web-x", "customer_id": 1, "text": "hi"}, 401, "invalid_token"),
        (
            TOKEN,
            {"sender": "rest-x", "customer_id": 1, "text": "hi"},
            400,
            "sender_must_be_a_web_chat",
        ),
        (
            TOKEN,
            {"sender": "web-x", "customer_id": "1", "text": "hi"},
            400,
            "customer_id_must_be_an_integer",
        ),
        (
            TOKEN,
            {"sender": "web-x", "customer_id": 1, "text": " "},
            400,
            "text_must_be_1_to_2000_characters",
        ),
        (TOKEN, ["not", "an", "object"], 400, "expected_json_object"),
    ],
)
async def test_bad_requests_are_refused_with_the_reason(server, token, body, status, reason):
    kefu = await server()
    got_status, answer = await kefu.notify(body, token=token)
    assert (got_status, answer) == (status, {"delivered": False, "reason": reason})


async def test_without_a_configured_token_the_route_is_off(server):
    kefu = await server(token="")
    status, answer = await kefu.notify({"sender": "web-x", "customer_id": 1, "text": "hi"}, "")
    assert (status, answer["reason"]) == (404, "notices_disabled")
