"""The web chat channel: message validation, what it emits, the served files, the history it
rebuilds from tracker events, and the running channel on a real socket.io server (a Sanic
server in the test's event loop, with a stand-in for the Rasa agent): identity claims, session
rotation, rate limits and unreadable frames.

With the trained assistant the page and console are exercised end to end in
tests/integration/test_web_channels.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from types import SimpleNamespace

import pytest
import socketio
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Sanic

import channels.identity
from channels.identity import CustomerIdentity, parse_trusted_proxies
from channels.limits import MessageLimits
from channels.live import AGENT_KEY, chat_history
from channels.webchat import (
    STATIC_DIR,
    STATIC_FILES,
    UNREADABLE_EVENT,
    MessageRejected,
    WebChatInput,
    WebChatOutput,
    _SafePacket,
    bound_customer,
    check_resume_key,
    may_resume,
    parse_user_message,
    resume_key,
    socket_client,
    static_file,
)
from commerce.config import DATABASE_URL_ENV, TOKEN_SECRET_ENV
from commerce.db import reset_shared_session_factory
from commerce.services.identity import check_identity_claim, issue_customer_token
from tests.helpers.network import free_port

SECRET = "test-secret-for-customer-tokens-of-32-bytes-or-more"
ALICE, BOB = 1, 2  # docs/SEED.md


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"message": "hi"}, ("hi", {})),
        ({"message": "  我的order KF-100004 到哪了 "}, ("我的order KF-100004 到哪了", {})),
        ({"message": "hi", "customData": {"language": "zh"}}, ("hi", {"language": "zh"})),
        ({"message": "hi", "customData": '{"language": "en"}'}, ("hi", {"language": "en"})),
        # Identity never comes from a message: a token here is dropped, as are unknown keys.
        ({"message": "hi", "customData": {"customer_token": "x", "a": 1}}, ("hi", {})),
        ({"message": "hi", "customData": {"language": "fr"}}, ("hi", {})),
        ({"message": "😀", "session_id": "abc"}, ("😀", {})),
    ],
)
def test_valid_messages(data, expected):
    assert parse_user_message(data) == expected


@pytest.mark.parametrize(
    "data, code",
    [
        (None, "invalid_message"),
        ("hi", "invalid_message"),
        (["hi"], "invalid_message"),
        ({}, "invalid_message"),
        ({"message": 42}, "invalid_message"),
        ({"message": {"$gt": ""}}, "invalid_message"),
        ({"message": "   \x00 "}, "empty_message"),
        ({"message": "x" * 2001}, "message_too_long"),
        ({"message": "hi", "customData": "{not json"}, "invalid_metadata"),
        ({"message": "hi", "customData": [1, 2]}, "invalid_metadata"),
        ({"message": "hi", "customData": {"pad": "x" * 5000}}, "invalid_metadata"),
        # Nested too deeply to store or even to parse: refused, never a crash.
        ({"message": "hi", "customData": {"a": [[[[[1]]]]]}}, "invalid_metadata"),
        ({"message": "hi", "customData": "[" * 30_000 + "]" * 30_000}, "invalid_metadata"),
    ],
)
def test_malformed_messages_are_refused_with_a_code(data, code):
    with pytest.raises(MessageRejected) as caught:
        parse_user_message(data)
    assert caught.value.code == code
    assert caught.value.as_event() == {"error": code, "message": caught.value.message}


class RecordingServer:
    """Records what the output channel emits (the part under test is the payload shape)."""

    def __init__(self) -> None:
        self.emitted: list[tuple[str, dict, str]] = []

    async def emit(self, event, data, room=None):
        self.emitted.append((event, data, room))


async def test_output_sends_text_buttons_and_cards_to_the_conversation_room():
    server = RecordingServer()
    output = WebChatOutput(server, "web-abc")
    await output.send_response(
        "web-abc",
        {"text": "Pick one", "buttons": [{"title": "Yes", "payload": "/affirm"}]},
    )
    await output.send_response("web-abc", {"custom": {"type": "order_card", "order_number": "1"}})
    assert server.emitted == [
        (
            "bot_uttered",
            {
                "text": "Pick one",
                "quick_replies": [{"content_type": "text", "title": "Yes", "payload": "/affirm"}],
            },
            "web-abc",
        ),
        ("bot_uttered", {"custom": {"type": "order_card", "order_number": "1"}}, "web-abc"),
    ]


def test_only_the_listed_files_are_served():
    served = static_file("webchat/chat.js")
    assert served.status == 200
    assert served.content_type.startswith("text/javascript")
    assert "default-src 'self'" in served.headers["content-security-policy"]
    for name in ("../rest.py", "webchat/../../rest.py", "vendor/socket.io.LICENSE", "x/y"):
        assert static_file(name).status == 404
    assert all((STATIC_DIR / name).is_file() for name in STATIC_FILES)


@pytest.mark.parametrize("page", ["webchat/index.html", "agent/index.html"])
def test_pages_load_only_served_files(page):
    html = (STATIC_DIR / page).read_text(encoding="utf-8")
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        if url.startswith("data:"):
            continue
        assert url.startswith("/webhooks/webchat/static/"), url
        assert url.removeprefix("/webhooks/webchat/static/") in STATIC_FILES, url


def test_history_keeps_what_the_customer_saw():
    events = [
        ActionExecuted("action_listen"),
        UserUttered("where is my order", parse_data={"sentiment": {"frustration": 0.8}}),
        BotUttered("Which order?", data={"buttons": [{"title": "KF-1", "payload": "KF-1"}]}),
        UserUttered('/switch_language{"target_language": "zh"}'),
        BotUttered(data={"custom": {"type": "order_card", "order_number": "KF-1"}}),
        BotUttered("Hi, this is Anna", metadata={AGENT_KEY: "Anna"}),
        BotUttered(""),
    ]
    history = chat_history(events)
    assert [(m["role"], m["text"]) for m in history] == [
        ("user", "where is my order"),
        ("bot", "Which order?"),
        ("bot", ""),
        ("agent", "Hi, this is Anna"),
    ]
    assert history[0]["frustration"] == 0.8
    assert history[1]["quick_replies"] == [{"title": "KF-1", "payload": "KF-1"}]
    assert history[2]["custom"]["order_number"] == "KF-1"
    assert history[3]["agent"] == "Anna"
    assert chat_history(events, limit=1) == history[-1:]


def test_unreadable_frames_become_an_event_the_channel_answers():
    deep = '2["user_uttered",' + "[" * 30_000 + "]" * 30_000 + "]"
    for frame in (deep, '2["user_uttered", {oops', "x"):
        packet = _SafePacket(encoded_packet=frame)
        assert (packet.packet_type, packet.data) == (2, [UNREADABLE_EVENT])
    assert _SafePacket(encoded_packet='2["user_uttered",{"message":"hi"}]').data == [
        "user_uttered",
        {"message": "hi"},
    ]


DOMAIN = Domain.from_dict(
    {"slots": {"verified_customer_id": {"type": "any", "mappings": [{"type": "custom"}]}}}
)


def tracker_for(customer) -> DialogueStateTracker:
    tracker = DialogueStateTracker.from_events("web-x", [], slots=DOMAIN.slots)
    if customer is not None:
        tracker.update(SlotSet("verified_customer_id", customer))
    return tracker


@pytest.mark.parametrize(
    "customer, identity, allowed",
    [
        (None, CustomerIdentity("no_token"), True),  # an anonymous conversation
        (ALICE, CustomerIdentity("verified", ALICE, "Alice", 2**40), True),
        (float(ALICE), CustomerIdentity("verified", ALICE, "Alice", 2**40), True),
        (str(ALICE), CustomerIdentity("verified", ALICE, "Alice", 2**40), True),
        (ALICE, CustomerIdentity("verified", BOB, "Bob", 2**40), False),  # another customer
        (ALICE, CustomerIdentity("no_token"), False),  # a shared computer
        (ALICE, CustomerIdentity("expired"), False),
        ("not-an-id", CustomerIdentity("verified", ALICE, "Alice", 2**40), False),
    ],
)
def test_a_verified_conversation_resumes_only_for_its_customer(customer, identity, allowed):
    assert may_resume(tracker_for(customer), identity) is allowed
    assert may_resume(None, identity)  # no tracker yet


def test_the_tab_that_had_a_conversation_resumes_it_without_a_token():
    tracker = tracker_for(ALICE)  # verified by email, say
    assert may_resume(tracker, CustomerIdentity("no_token"), same_tab=True)
    assert may_resume(tracker, CustomerIdentity("expired"), same_tab=True)
    # A token for someone else never resumes, whatever the tab.
    bob = CustomerIdentity("verified", BOB, "Bob", 2**40)
    assert not may_resume(tracker, bob, same_tab=True)
    key = resume_key("web-abc")
    assert check_resume_key("web-abc", key)
    assert not check_resume_key("web-abd", key)
    assert not check_resume_key("web-abc", None) and not check_resume_key("web-abc", 42)


def test_bound_customer_reads_the_slot():
    assert bound_customer(tracker_for(None)) is None
    assert bound_customer(tracker_for("7")) == 7
    assert bound_customer(tracker_for(True)) == "True"  # nobody's id


def test_a_conversation_stays_bound_after_its_identity_was_cleared():
    tracker = tracker_for(ALICE)
    tracker.update(SlotSet("verified_customer_id", None))  # expired, idle, or a new token
    assert tracker.get_slot("verified_customer_id") is None
    assert bound_customer(tracker) == ALICE
    assert not may_resume(tracker, CustomerIdentity("no_token"))
    tracker.update(SlotSet("verified_customer_id", BOB))
    assert bound_customer(tracker) == BOB


def test_the_client_address_is_the_peer_of_the_sanic_request():
    request = SimpleNamespace(ip="203.0.113.7")
    # engine.io's Sanic driver always writes 127.0.0.1 to REMOTE_ADDR.
    environ = {"REMOTE_ADDR": "127.0.0.1", "sanic.request": request}
    assert socket_client(environ) == "203.0.113.7"
    environ["HTTP_X_FORWARDED_FOR"] = "198.51.100.1"
    assert socket_client(environ) == "203.0.113.7"  # not a trusted proxy
    assert socket_client(environ, parse_trusted_proxies("203.0.113.0/24")) == "198.51.100.1"
    assert socket_client({"REMOTE_ADDR": "192.0.2.1"}) == "192.0.2.1"


# ---- the running channel ------------------------------------------------------------------

_apps = itertools.count()


class Assistant:
    """Stands in for the Rasa agent: keeps trackers, answers "ok", and verifies the
    conversation when a message carries a valid identity claim (as the actions do).

    As Rasa does, it sends the reply while the turn runs and saves the tracker at its end.
    "slow to store" takes a while to save; "fail after the reply" fails before saving (a
    replica dying mid-turn, as far as the customer can tell)."""

    def __init__(self) -> None:
        self.tracker_store = InMemoryTrackerStore(DOMAIN)
        self.messages = []

    async def __call__(self, message) -> None:
        self.messages.append(message)
        tracker = await self.tracker_store.get_or_create_tracker(message.sender_id)
        tracker.update(UserUttered(message.text, metadata=message.metadata))
        claim = check_identity_claim(message.metadata.get("kefu_identity"), message.sender_id)
        if claim:
            tracker.update(SlotSet("verified_customer_id", claim[0]))
        elif message.text == "alice@example.com":  # an order number + email check, say
            tracker.update(SlotSet("verified_customer_id", ALICE))
        tracker.update(BotUttered("ok"))
        await message.output_channel.send_text_message(message.sender_id, "ok")
        if message.text == "fail after the reply":
            raise RuntimeError("the replica died before the turn was stored")
        if message.text == "slow to store":
            await asyncio.sleep(0.3)
        await self.tracker_store.save(tracker)


@pytest.fixture
async def webchat(seeded_db_file, monkeypatch):
    """A real socket.io server of the web chat channel; ``configure(**kwargs)`` first."""
    monkeypatch.setenv(DATABASE_URL_ENV, f"sqlite:///{seeded_db_file}")
    monkeypatch.setenv(TOKEN_SECRET_ENV, SECRET)
    reset_shared_session_factory()
    servers = []

    async def start(**kwargs):
        kwargs.setdefault("limits", MessageLimits(per_conversation=0, per_client=0))
        kwargs.setdefault("proxies", ())
        assistant = Assistant()
        app = Sanic(f"kefu_webchat_test_{next(_apps)}", configure_logging=False)
        app.blueprint(WebChatInput(**kwargs).blueprint(assistant), url_prefix="/webhooks/webchat")
        app.ctx.agent = assistant
        port = free_port()
        server = await app.create_server(
            host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False
        )
        await server.startup()
        await server.after_start()
        servers.append(server)
        return SimpleNamespace(url=f"http://127.0.0.1:{port}", assistant=assistant)

    yield start
    for server in servers:
        await server.before_stop()
        server.close()
        await server.wait_closed()
        await server.after_stop()
    reset_shared_session_factory()


class ChatClient:
    """A socket.io client speaking the web chat's events, as the page does."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.resume_key = None
        for event in ("session_confirm", "identity", "history", "bot_uttered", "kefu_error"):
            self.sio.on(event, self._collector(event))
        self.sio.on("resume_key", self._keep_resume_key)

    def _collector(self, event: str):
        async def collect(data=None):
            await self.inbox.put((event, data))

        return collect

    async def _keep_resume_key(self, data=None):
        self.resume_key = data

    async def next(self, timeout: float = 30.0) -> tuple[str, object]:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def open(self, session_id=None, token=None, headers=None, resume_key=None) -> dict:
        if not self.sio.connected:
            await self.sio.connect(
                self.url, socketio_path="/socket.io", transports=["polling"], headers=headers
            )
        await self.sio.emit(
            "session_request",
            {
                "session_id": session_id,
                "resume_key": resume_key,
                "customData": {"customer_token": token},
            },
        )
        got = {}
        while len(got) < 3:
            event, data = await self.next()
            got[event] = data
        return got

    async def say(self, text: str) -> tuple[str, object]:
        await self.sio.emit("user_uttered", {"message": text, "customData": {"language": "en"}})
        return await self.next()

    async def close(self) -> None:
        # Without waiting for the pending long-poll (it ends with the server's ping, 25 s).
        for namespace in self.sio.namespaces:
            await self.sio._send_packet(
                self.sio.packet_class(socketio.packet.DISCONNECT, namespace=namespace)
            )
        await self.sio.eio.disconnect(abort=True)


async def test_a_signed_in_customer_is_known_by_a_claim_never_by_the_token(webchat):
    server = await webchat()
    token = issue_customer_token(ALICE, 600, secret=SECRET)
    alice = ChatClient(server.url)
    opened = await alice.open(token=token)
    assert opened["identity"]["verified"] is True and opened["identity"]["name"]
    assert await alice.say("hi") == ("bot_uttered", {"text": "ok"})
    await alice.sio.emit(
        "user_uttered",
        {"message": "hi", "customData": {"customer_token": token, "kefu_client": "6.6.6.6"}},
    )
    assert (await alice.next())[0] == "bot_uttered"
    await alice.close()
    for message in server.assistant.messages:
        assert token not in json.dumps(message.metadata)
        assert message.metadata["kefu_client"] == "127.0.0.1"
        sender = message.sender_id
        assert check_identity_claim(message.metadata["kefu_identity"], sender)[0] == ALICE
    assert server.assistant.messages[0].metadata["language"] == "en"


async def test_a_verified_conversation_is_never_handed_to_someone_else(webchat):
    server = await webchat()
    alice = ChatClient(server.url)
    opened = await alice.open(token=issue_customer_token(ALICE, 600, secret=SECRET))
    session_id = opened["session_confirm"]
    await alice.say("where is my order")
    await alice.close()

    # The same browser, later: nobody signed in, or another customer signed in.
    for token in (None, issue_customer_token(BOB, 600, secret=SECRET)):
        other = ChatClient(server.url)
        reopened = await other.open(session_id=session_id, token=token)
        assert reopened["session_confirm"] != session_id
        assert reopened["history"] == {"messages": []}
        await other.say("hi")
        await other.close()

    # Alice herself comes back to her conversation.
    again = ChatClient(server.url)
    reopened = await again.open(session_id, issue_customer_token(ALICE, 600, secret=SECRET))
    assert reopened["session_confirm"] == session_id
    assert [m["text"] for m in reopened["history"]["messages"]] == ["where is my order", "ok"]
    await again.close()
    senders = {m.sender_id for m in server.assistant.messages}
    assert len(senders) == 3 and f"web-{session_id}" in senders


async def test_an_anonymous_conversation_survives_a_reload(webchat):
    server = await webchat()
    guest = ChatClient(server.url)
    session_id = (await guest.open())["session_confirm"]
    await guest.say("hello")
    await guest.close()
    again = ChatClient(server.url)
    reopened = await again.open(session_id=session_id)
    assert reopened["session_confirm"] == session_id
    assert reopened["identity"] == {"verified": False, "reason": "no_token"}
    assert [m["text"] for m in reopened["history"]["messages"]] == ["hello", "ok"]
    await again.close()


async def test_the_identity_ends_when_the_token_expires(webchat, monkeypatch):
    server = await webchat()
    alice = ChatClient(server.url)
    opened = await alice.open(token=issue_customer_token(ALICE, 60, secret=SECRET))
    assert opened["identity"]["verified"] is True
    assert (await alice.say("hi"))[0] == "bot_uttered"
    exp = server.assistant.messages[0].metadata["kefu_identity"]["exp"]
    # The channel's clock (channels.identity reads time.time()) moves past the token's exp.
    monkeypatch.setattr(channels.identity, "time", SimpleNamespace(time=lambda: exp + 1.0))
    await alice.sio.emit("user_uttered", {"message": "cancel my order"})
    assert await alice.next() == ("identity", {"verified": False, "reason": "expired"})
    assert (await alice.next())[0] == "bot_uttered"
    await alice.close()
    late = server.assistant.messages[-1]
    assert "kefu_identity" not in late.metadata


async def test_a_reply_is_sent_only_once_its_turn_is_stored(webchat):
    server = await webchat()
    chat = ChatClient(server.url)
    session_id = (await chat.open())["session_confirm"]
    assert await chat.say("slow to store") == ("bot_uttered", {"text": "ok"})
    stored = await server.assistant.tracker_store.retrieve(f"web-{session_id}")
    assert [e.text for e in stored.events if isinstance(e, (UserUttered, BotUttered))] == [
        "slow to store",
        "ok",
    ]
    # A turn that fails before it is stored shows no reply, only the fault answer.
    event, error = await chat.say("fail after the reply")
    assert (event, error["error"]) == ("kefu_error", "processing_failed")
    assert "try again" in error["message"]
    assert await chat.say("hi") == ("bot_uttered", {"text": "ok"})
    await chat.close()


async def test_the_client_address_comes_from_a_trusted_proxy_only(webchat):
    server = await webchat(proxies=parse_trusted_proxies("127.0.0.1"))
    proxied = ChatClient(server.url)
    await proxied.open(headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.1"})
    await proxied.say("hi")
    await proxied.close()
    assert server.assistant.messages[0].metadata["kefu_client"] == "198.51.100.1"


async def test_messages_over_the_rate_limits_are_refused(webchat):
    server = await webchat(limits=MessageLimits(per_conversation=3, per_client=100))
    chat = ChatClient(server.url)
    await chat.open()
    for _ in range(3):
        assert (await chat.say("hi"))[0] == "bot_uttered"
    event, error = await chat.say("hi")
    assert event == "kefu_error" and error["error"] == "rate_limited"
    assert "too quickly" in error["message"] and "太频繁" in error["message"]
    assert error["retry_after_s"] >= 1
    # A new conversation from the same client is counted apart.
    await chat.open()
    assert (await chat.say("hi"))[0] == "bot_uttered"
    await chat.close()
    assert len(server.assistant.messages) == 4


async def test_a_client_is_limited_across_its_conversations(webchat):
    server = await webchat(limits=MessageLimits(per_conversation=100, per_client=3))
    chat = ChatClient(server.url)
    await chat.open()  # a session_request counts too
    await chat.say("hi")
    await chat.say("hi")
    await chat.sio.emit("session_request", {})
    event, error = await chat.next()
    assert (event, error["error"]) == ("kefu_error", "rate_limited")
    await chat.close()


async def test_deeply_nested_json_gets_an_error_and_the_socket_keeps_working(webchat):
    server = await webchat()
    chat = ChatClient(server.url)
    await chat.open()
    await chat.sio.eio.send('2["user_uttered",' + "[" * 30_000 + "]" * 30_000 + "]")
    event, error = await chat.next()
    assert (event, error["error"]) == ("kefu_error", "invalid_json")
    deep = '{"message": "hi", "customData": ' + "[" * 900 + "]" * 900 + "}"
    await chat.sio.eio.send('2["user_uttered",' + deep + "]")
    event, error = await chat.next()
    assert (event, error["error"]) == ("kefu_error", "invalid_metadata")
    assert await chat.say("hi") == ("bot_uttered", {"text": "ok"})
    await chat.close()


async def test_the_tab_comes_back_to_its_email_verified_conversation_and_nobody_else(webchat):
    server = await webchat()
    tab = ChatClient(server.url)
    session_id = (await tab.open())["session_confirm"]
    assert tab.resume_key["session_id"] == session_id
    await tab.say("where is my order KF-100004")
    await tab.say("alice@example.com")  # verified by email: the conversation acts for Alice
    key = tab.resume_key["key"]
    await tab.close()

    # The same tab after a lost connection: it has the key.
    back = ChatClient(server.url)
    reopened = await back.open(session_id=session_id, resume_key=key)
    assert reopened["session_confirm"] == session_id
    assert len(reopened["history"]["messages"]) == 4
    await back.close()

    # Another tab or person with only the session id, or signed in as someone else.
    for token, resume in ((None, None), (None, "0" * 64), (BOB, key)):
        signed = issue_customer_token(token, 600, secret=SECRET) if token else None
        other = ChatClient(server.url)
        reopened = await other.open(session_id=session_id, token=signed, resume_key=resume)
        assert reopened["session_confirm"] != session_id
        assert reopened["history"] == {"messages": []}
        await other.close()
