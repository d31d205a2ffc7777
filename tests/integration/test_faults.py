"""Faults on the trained model, through Rasa's own agent as `rasa run` loads it: the customer
gets the polite answer, the turn's message stays in the tracker store, and with Redis away no
turn is processed at all.

The action server is absent (a closed loopback port) or hangs (a loopback server that never
answers in time); Redis is a closed port. REST and web chat both read the bot's messages from
the output channel the processor utters into (REST collects them, web chat emits them), so the
collecting channel here is what a REST caller receives.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid

import pytest
import pytest_asyncio
from aiohttp import web

from channels.faults import (
    FAULT_TEXT,
    LockStoreUnavailable,
    RefusingRedisLockStore,
    fault_reply,
)
from tests.helpers.kefu_server import MODEL
from tests.helpers.network import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def agent(tmp_path_factory):
    """The trained model loaded once (about 50 s) with the masking SQL tracker store."""
    if not MODEL.exists():
        pytest.skip(f"no trained model at {MODEL}: run `make train` first")
    from rasa.core.agent import load_agent
    from rasa.core.utils import AvailableEndpoints

    folder = tmp_path_factory.mktemp("faults")
    endpoints = folder / "endpoints.yml"
    endpoints.write_text(
        f"""action_endpoint:
  url: "http://127.0.0.1:{free_port()}/webhook"
tracker_store:
  type: channels.tracker_store.MaskingSQLTrackerStore
  dialect: sqlite
  db: {folder / "tracker.db"}
"""
    )
    loaded = await load_agent(
        model_path=str(MODEL), endpoints=AvailableEndpoints.read_endpoints(str(endpoints))
    )
    loaded.tracker_db = folder / "tracker.db"
    return loaded


@pytest.fixture
def action_server_at(agent):
    """Points the loaded agent's remote actions at a URL (as endpoints.yml would)."""
    from rasa.utils.endpoints import EndpointConfig

    before = agent.processor.action_endpoint

    def point(url: str) -> None:
        agent.processor.action_endpoint = EndpointConfig(url)

    yield point
    agent.processor.action_endpoint = before


async def say(agent, sender: str, text: str) -> list[str]:
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

    output = CollectingOutputChannel()
    await agent.handle_message(UserMessage(text, output, sender, input_channel="rest"))
    return [m.get("text", "") for m in output.messages]


def stored_texts(agent, sender: str) -> list[str]:
    with sqlite3.connect(agent.tracker_db) as conn:
        rows = conn.execute(
            "SELECT data FROM events WHERE sender_id = ? AND type_name = 'user' ORDER BY id",
            (sender,),
        ).fetchall()
    return [json.loads(data)["text"] for (data,) in rows]


@pytest.mark.parametrize(
    "text, language",
    [("where is my order KF-100004", "en"), ("我的订单 KF-200002 到哪了", "zh")],
)
async def test_an_action_server_that_is_down_gets_a_polite_answer(
    agent, action_server_at, text, language
):
    action_server_at(f"http://127.0.0.1:{free_port()}/webhook")  # nothing listens there
    sender = f"fault-{uuid.uuid4().hex[:8]}"
    # The session start (a custom action) fails before the message is read: both languages.
    assert fault_reply(None) in await say(agent, sender, text)
    # Then the customer's language is known.
    assert FAULT_TEXT[language] in await say(agent, sender, text)
    assert stored_texts(agent, sender) == [text, text]  # the customer's messages are kept


async def test_a_hanging_action_server_is_answered_within_the_action_timeout(
    agent, action_server_at, monkeypatch
):
    monkeypatch.setenv("KEFU_ACTION_TIMEOUT_S", "2")

    async def hang(request):
        await asyncio.sleep(60)
        return web.json_response({"events": [], "responses": []})

    app = web.Application()
    app.router.add_post("/webhook", hang)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        action_server_at(f"http://127.0.0.1:{port}/webhook")
        sender = f"slow-{uuid.uuid4().hex[:8]}"
        loop = asyncio.get_running_loop()
        started = loop.time()
        replies = await say(agent, sender, "where is my order KF-100004")
        assert loop.time() - started < 30
    finally:
        await runner.cleanup()
    assert fault_reply(None) in replies, replies
    assert stored_texts(agent, sender) == ["where is my order KF-100004"]


async def test_without_redis_no_turn_is_processed(agent, monkeypatch):
    from rasa.utils.endpoints import EndpointConfig

    refusing = RefusingRedisLockStore(EndpointConfig(url="127.0.0.1", port=free_port()))
    monkeypatch.setattr(agent, "lock_store", refusing)  # as endpoints.yml's lock_store would
    sender = f"nolock-{uuid.uuid4().hex[:8]}"
    with pytest.raises(LockStoreUnavailable):
        await say(agent, sender, "hello")
    assert stored_texts(agent, sender) == []
