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
from aiohttp import web

from channels.faults import FAULT_TEXT, LockStoreUnavailable
from tests.helpers.kefu_server import MODEL
from tests.helpers.network import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model_path():
    if not MODEL.exists():
        pytest.skip(f"no trained model at {MODEL}: run `make train` first")
    return str(MODEL)


def endpoints_yaml(tmp_path, action_url: str, lock_store: str = "") -> str:
    path = tmp_path / "endpoints.yml"
    path.write_text(
        f"""action_endpoint:
  url: "{action_url}"
tracker_store:
  type: channels.tracker_store.MaskingSQLTrackerStore
  dialect: sqlite
  db: {tmp_path / "tracker.db"}
{lock_store}"""
    )
    return str(path)


async def agent_for(model_path: str, endpoints: str):
    from rasa.core.agent import load_agent
    from rasa.core.utils import AvailableEndpoints

    return await load_agent(
        model_path=model_path, endpoints=AvailableEndpoints.read_endpoints(endpoints)
    )


async def say(agent, sender: str, text: str) -> list[str]:
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

    output = CollectingOutputChannel()
    await agent.handle_message(UserMessage(text, output, sender, input_channel="rest"))
    return [m.get("text", "") for m in output.messages]


def stored_texts(tmp_path, sender: str) -> list[str]:
    with sqlite3.connect(tmp_path / "tracker.db") as conn:
        rows = conn.execute(
            "SELECT data FROM events WHERE sender_id = ? AND type_name = 'user' ORDER BY id",
            (sender,),
        ).fetchall()
    return [json.loads(data)["text"] for (data,) in rows]


@pytest.mark.parametrize("text, language", [("hello there", "en"), ("你好，我想查订单", "zh")])
async def test_an_action_server_that_is_down_gets_a_polite_answer(
    model_path, tmp_path, text, language
):
    closed = f"http://127.0.0.1:{free_port()}/webhook"
    agent = await agent_for(model_path, endpoints_yaml(tmp_path, closed))
    sender = f"fault-{uuid.uuid4().hex[:8]}"
    replies = await say(agent, sender, text)
    assert any(r in FAULT_TEXT.values() or FAULT_TEXT["en"] in r for r in replies), replies
    assert stored_texts(tmp_path, sender) == [text]  # the customer's message is kept


async def test_a_hanging_action_server_is_answered_within_the_action_timeout(
    model_path, tmp_path, monkeypatch
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
        agent = await agent_for(
            model_path, endpoints_yaml(tmp_path, f"http://127.0.0.1:{port}/webhook")
        )
        sender = f"slow-{uuid.uuid4().hex[:8]}"
        loop = asyncio.get_running_loop()
        started = loop.time()
        replies = await say(agent, sender, "where is my order KF-100004")
        assert loop.time() - started < 30
    finally:
        await runner.cleanup()
    assert any(FAULT_TEXT["en"] in r for r in replies), replies
    assert stored_texts(tmp_path, sender) == ["where is my order KF-100004"]


async def test_without_redis_no_turn_is_processed(model_path, tmp_path):
    lock_store = f"""lock_store:
  type: channels.faults.RefusingRedisLockStore
  url: 127.0.0.1
  port: {free_port()}
"""
    closed = f"http://127.0.0.1:{free_port()}/webhook"
    agent = await agent_for(model_path, endpoints_yaml(tmp_path, closed, lock_store))
    sender = f"nolock-{uuid.uuid4().hex[:8]}"
    with pytest.raises(LockStoreUnavailable):
        await say(agent, sender, "hello")
    assert not (tmp_path / "tracker.db").exists() or stored_texts(tmp_path, sender) == []
