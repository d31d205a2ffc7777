"""The fault answers (channels/faults.py, channels/fault_actions.py) against real loopback parts:
an action server that is down, one that hangs, one that refuses; Redis at a closed port and the
local Redis."""

from __future__ import annotations

import asyncio
import logging

import pytest
import rasa.core.actions.action as rasa_actions
import rasa.core.actions.forms as rasa_forms
import yaml
from aiohttp import web
from rasa.core.actions.action import ActionExecutionRejection
from rasa.core.channels.channel import CollectingOutputChannel
from rasa.core.lock_store import LockStore
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, FollowupAction, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig

from channels.fault_actions import KefuRemoteAction
from channels.faults import (
    ACTION_TIMEOUT_ENV,
    FAULT_RESPONSE,
    FAULT_TEXT,
    LOCK_POLL_S,
    LockStoreUnavailable,
    RefusingRedisLockStore,
    fault_reply,
    install_fault_answers,
)
from tests.helpers import ROOT
from tests.helpers.network import free_port, require_service

DOMAIN = Domain.from_dict(yaml.safe_load((ROOT / "domain" / "faults.yml").read_text()))


def test_the_channels_words_are_the_domains():
    variations = {v["condition"][0]["value"]: v["text"] for v in DOMAIN.responses[FAULT_RESPONSE]}
    assert variations == FAULT_TEXT


@pytest.mark.parametrize(
    "language, expected",
    [("en", FAULT_TEXT["en"]), ("zh", FAULT_TEXT["zh"]), (None, "trouble"), ("fr", "稍后再试")],
)
def test_fault_reply_is_bilingual_when_the_language_is_unknown(language, expected):
    assert expected in fault_reply(language)


# --- the action server fails -------------------------------------------------------------------


def conversation(language: str | None, *, started: bool = True) -> DialogueStateTracker:
    """A tracker after the customer's first message (``started``) in ``language``."""
    domain = Domain.from_dict(
        {"slots": {"language": {"type": "text", "mappings": [{"type": "custom"}]}}}
    )
    events = [UserUttered("hi")] if started else []
    if language:
        events.append(SlotSet("language", language))
    return DialogueStateTracker.from_events("c1", events, slots=domain.slots)


async def run_against(url: str, language: str | None = "en", *, started: bool = True) -> list:
    action = KefuRemoteAction("action_cancel_order", EndpointConfig(url))
    nlg = TemplatedNaturalLanguageGenerator(DOMAIN.responses)
    tracker = conversation(language, started=started)
    return await action.run(CollectingOutputChannel(), nlg, tracker, DOMAIN)


async def serve(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/webhook", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/webhook"


def assert_fault_answer(events: list, text: str) -> None:
    assert len(events) == 2
    bot, followup = events
    assert isinstance(bot, BotUttered) and bot.text == text
    assert bot.metadata["utter_action"] == FAULT_RESPONSE
    assert isinstance(followup, FollowupAction) and followup.action_name == "action_listen"


# --- the action server's answer is checked against Rasa's schema -----------------------------

VALID_ANSWER = {
    "events": [{"event": "slot", "name": "language", "value": "en"}],
    "responses": [{"text": "Your order is on its way."}],
}
INVALID_ANSWERS = [
    {"events": [{"event": "slot", "name": 5}]},  # a slot without a name string
    {"events": {"event": "slot"}},  # events not a list
    {"responses": ["just text"]},  # a response that is not an object
    {"events": [{"event": "no_such_event"}]},
]


def test_a_valid_answer_passes_as_in_rasa():
    action = KefuRemoteAction("action_track_order", EndpointConfig("http://unused"))

    assert action._validate_action_result(VALID_ANSWER) is True
    assert rasa_actions.RemoteAction._validate_action_result(action, VALID_ANSWER) is True


@pytest.mark.parametrize("answer", INVALID_ANSWERS)
def test_an_invalid_answer_is_refused_with_rasas_error(answer):
    from jsonschema import ValidationError

    action = KefuRemoteAction("action_track_order", EndpointConfig("http://unused"))
    with pytest.raises(ValidationError) as ours:
        action._validate_action_result(answer)
    with pytest.raises(ValidationError) as rasas:
        rasa_actions.RemoteAction._validate_action_result(action, answer)

    assert ours.value.message == rasas.value.message
    assert "Failed to validate Action server response" in ours.value.message


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_an_action_server_that_is_down_gets_the_fault_answer(language, caplog):
    closed = f"http://127.0.0.1:{free_port()}/webhook"
    with caplog.at_level(logging.ERROR, "channels.fault_actions"):
        events = await run_against(closed, language)
    assert_fault_answer(events, FAULT_TEXT[language])
    assert "action_cancel_order" in caplog.text and closed in caplog.text


async def test_without_a_language_both_are_said():
    events = await run_against(f"http://127.0.0.1:{free_port()}/webhook", None)
    assert_fault_answer(events, fault_reply(None))


async def test_before_the_first_message_is_read_both_are_said():
    # A new conversation's session start: the language slot holds only its initial value.
    closed = f"http://127.0.0.1:{free_port()}/webhook"
    events = await run_against(closed, "en", started=False)
    assert_fault_answer(events, fault_reply(None))


async def test_a_hanging_action_server_is_given_up_on_at_the_deadline(monkeypatch):
    monkeypatch.setenv(ACTION_TIMEOUT_ENV, "0.5")

    async def hang(request):
        await asyncio.sleep(30)
        return web.json_response({"events": [], "responses": []})

    runner, url = await serve(hang)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        events = await run_against(url)
        assert loop.time() - started < 5
    finally:
        await runner.cleanup()
    assert_fault_answer(events, FAULT_TEXT["en"])


async def test_a_working_action_server_is_answered_as_usual():
    async def ok(request):
        return web.json_response(
            {"events": [{"event": "slot", "name": "language", "value": "en"}], "responses": []}
        )

    runner, url = await serve(ok)
    try:
        events = await run_against(url)
    finally:
        await runner.cleanup()
    assert [type(e).__name__ for e in events] == ["SlotSet"]


async def test_action_calls_share_a_kept_connection_and_a_restarted_server_gets_a_new_one():
    peers = []

    async def ok(request):
        peers.append(request.transport.get_extra_info("peername"))
        return web.json_response({"events": [], "responses": []})

    runner, url = await serve(ok)
    try:
        for _ in range(3):  # Rasa builds a new remote action for each action it runs
            assert await run_against(url) == []
    finally:
        await runner.cleanup()  # the action server restarts: its connections close
    assert len(peers) == 3 and len(set(peers)) == 1  # one connection for the three calls

    port = int(url.rsplit(":", 1)[1].split("/")[0])
    app = web.Application()
    app.router.add_post("/webhook", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        assert await run_against(url) == []  # not the fault answer: a new connection
    finally:
        await runner.cleanup()
    assert len(peers) == 4 and peers[3] != peers[0]


async def test_a_rejection_still_hands_over_to_the_other_policies():
    async def reject(request):
        return web.json_response({"action_name": "action_cancel_order"}, status=400)

    runner, url = await serve(reject)
    try:
        with pytest.raises(ActionExecutionRejection):
            await run_against(url)
    finally:
        await runner.cleanup()


def test_installed_rasa_builds_the_kefu_remote_action(monkeypatch):
    # Undone after the test: monkeypatch restores the names it saved.
    monkeypatch.setattr(rasa_actions, "RemoteAction", rasa_actions.RemoteAction)
    monkeypatch.setattr(rasa_forms, "RemoteAction", rasa_forms.RemoteAction)
    install_fault_answers()
    domain = Domain.from_dict({"actions": ["action_cancel_order"]})
    action = rasa_actions.action_for_name_or_text(
        "action_cancel_order", domain, EndpointConfig("http://127.0.0.1:9/webhook")
    )
    assert isinstance(action, KefuRemoteAction)
    assert rasa_forms.RemoteAction is KefuRemoteAction


# --- Redis (the lock store) is down ------------------------------------------------------------


def lock_store(port: int) -> LockStore:
    return LockStore.create(
        EndpointConfig(
            url="127.0.0.1",
            port=port,
            db=1,
            key_prefix="kefutestfaults",
            type="channels.faults.RefusingRedisLockStore",
        )
    )


async def test_a_lock_store_that_is_down_refuses_the_turn_with_one_clear_log(caplog):
    store = lock_store(free_port())
    assert isinstance(store, RefusingRedisLockStore)
    reached = []
    with caplog.at_level(logging.ERROR, "channels.faults"):
        for _ in range(2):
            with pytest.raises(LockStoreUnavailable):
                async with store.lock("c1"):
                    reached.append(True)
    assert reached == []  # nothing ran without its lock
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "refusing turns" in errors[0].getMessage()


@pytest.mark.services
async def test_the_lock_store_serves_turns_when_redis_is_there():
    require_service("Redis", "127.0.0.1", 6379)
    store = lock_store(6379)
    async with store.lock("kefu-faults-test") as lock:
        assert lock.conversation_id == "kefu-faults-test"
    assert store.get_lock("kefu-faults-test") is None  # released and deleted


@pytest.mark.services
async def test_a_turn_waiting_for_the_conversation_lock_looks_again_every_poll(monkeypatch):
    require_service("Redis", "127.0.0.1", 6379)
    store = lock_store(6379)
    conversation_id = f"kefu-faults-wait-{free_port()}"
    order, waits = [], []
    real_sleep = asyncio.sleep

    async def recorded_sleep(seconds, *args, **kwargs):
        waits.append(seconds)
        return await real_sleep(seconds, *args, **kwargs)

    # Rasa's wait between two looks at a busy lock (rasa.core.lock_store._acquire_lock).
    monkeypatch.setattr("rasa.core.lock_store.asyncio.sleep", recorded_sleep)

    async def turn(name: str, hold_s: float) -> None:
        async with store.lock(conversation_id):
            order.append(name)
            await real_sleep(hold_s)

    first = asyncio.create_task(turn("first", 0.2))
    await real_sleep(0.01)  # the second message arrives while the first turn runs
    await asyncio.gather(first, turn("second", 0.0))

    assert order == ["first", "second"]  # one turn at a time, in order
    # Rasa's own default would wait 1 s (the other sleeps are the lease's renewals).
    assert LOCK_POLL_S in waits and set(waits) - {store.lease_s / 5} == {LOCK_POLL_S}
