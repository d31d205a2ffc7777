"""The REST channel: payload validation, and the running blueprint (Sanic's test client) with
identity claims, client addresses, sender signatures and rate limits; polling a conversation's
bot and agent messages."""

import hashlib
import hmac
import itertools
import json
import time
from types import SimpleNamespace

import pytest
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Sanic

from channels.faults import LockStoreUnavailable, fault_reply
from channels.identity import parse_trusted_proxies
from channels.limits import MessageLimits
from channels.live import AGENT_KEY
from channels.rest import (
    KefuRestInput,
    RequestRejected,
    parse_poll_query,
    parse_rest_payload,
    sender_signature,
)
from commerce.services.identity import check_identity_claim, issue_customer_token
from tests.helpers.channels import SECRET

ALICE = 1  # docs/SEED.md


def body(payload) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    "payload, expected",
    [
        ({"sender": "anna", "message": "hi"}, ("anna", "hi", {})),
        ({"sender": "u-1", "message": "  你好  "}, ("u-1", "你好", {})),
        (
            {
                "sender": "a.b@c:d_e-f",
                "message": "我的order KF-100023 到哪了",
                "metadata": {"k": 1},
            },
            ("a.b@c:d_e-f", "我的order KF-100023 到哪了", {"k": 1}),
        ),
        ({"sender": "x", "message": "😀 ok", "metadata": None}, ("x", "😀 ok", {})),
    ],
)
def test_valid_payloads(payload, expected):
    assert parse_rest_payload(body(payload)) == expected


@pytest.mark.parametrize(
    "raw, status, code",
    [
        (b"", 400, "invalid_json"),
        (b"not json", 400, "invalid_json"),
        (b"{'sender': 'single quotes'}", 400, "invalid_json"),
        (b'["a", "list"]', 400, "invalid_json"),
        (b"\xff\xfe\x00garbage", 400, "invalid_encoding"),
        ('{"sender": "a", "message": "caf\xe9"}'.encode("latin-1"), 400, "invalid_encoding"),
        (body({"message": "hi"}), 400, "invalid_sender"),
        (body({"sender": "", "message": "hi"}), 400, "invalid_sender"),
        (body({"sender": "a b", "message": "hi"}), 400, "invalid_sender"),
        (body({"sender": "x" * 129, "message": "hi"}), 400, "invalid_sender"),
        (body({"sender": "'; DROP TABLE events;--", "message": "hi"}), 400, "invalid_sender"),
        (body({"sender": 42, "message": "hi"}), 400, "invalid_sender"),
        (body({"sender": "a"}), 400, "invalid_message"),
        (body({"sender": "a", "message": {"text": "hi"}}), 400, "invalid_message"),
        (body({"sender": "a", "message": ""}), 400, "empty_message"),
        (body({"sender": "a", "message": " \n\t "}), 400, "empty_message"),
        (body({"sender": "a", "message": "\x00\x00"}), 400, "empty_message"),
        (body({"sender": "a", "message": "hi", "metadata": "x"}), 400, "invalid_metadata"),
        (body({"sender": "a", "message": "好" * 2001}), 413, "message_too_long"),
        (b'{"sender": "a", "message": "' + b"a" * 70_000 + b'"}', 413, "body_too_large"),
        # web- senders are the web chat's conversations.
        (body({"sender": "web-0123456789abcdef", "message": "hi"}), 400, "reserved_sender"),
        (body({"sender": "WEB-x", "message": "hi"}), 400, "reserved_sender"),
        # Nested too deeply for the parser: a JSON error, not a crash.
        (b"[" * 30_000 + b"]" * 30_000, 400, "invalid_json"),
        (b'{"sender": "a", "message": "hi", "metadata": ' + b"[" * 30_000, 400, "invalid_json"),
        (
            body({"sender": "a", "message": "hi", "metadata": {"a": [[[[[[[[[1]]]]]]]]]}}),
            400,
            "invalid_metadata",
        ),
    ],
)
def test_malformed_payloads_are_rejected_with_a_code(raw, status, code):
    with pytest.raises(RequestRejected) as caught:
        parse_rest_payload(raw)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.message


def test_a_hundred_thousand_nested_arrays_are_invalid_json():
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(RequestRejected) as caught:
        parse_rest_payload(deep, max_body_bytes=len(deep))
    assert (caught.value.status, caught.value.code) == (400, "invalid_json")


def test_limits_are_configurable():
    assert parse_rest_payload(body({"sender": "a", "message": "abc"}), max_message_chars=3)
    with pytest.raises(RequestRejected):
        parse_rest_payload(body({"sender": "a", "message": "abcd"}), max_message_chars=3)


def test_rejection_renders_json_error():
    reply = RequestRejected(400, "invalid_json", "bad").as_response()
    assert reply.status == 400
    assert json.loads(reply.body) == {"error": "invalid_json", "message": "bad"}


# ---- the running channel ------------------------------------------------------------------

_apps = itertools.count()


class Recorder:
    """Stands in for the Rasa agent: records messages and answers each."""

    def __init__(self) -> None:
        self.messages = []

    async def __call__(self, message) -> None:
        self.messages.append(message)
        await message.output_channel.send_text_message(message.sender_id, "ok")


def serve(channel: KefuRestInput):
    recorder = Recorder()
    app = Sanic(f"kefu_rest_test_{next(_apps)}")
    app.blueprint(channel.blueprint(recorder), url_prefix="/webhooks/rest")
    return app.test_client, recorder


def post(client, payload, headers=None):
    _, reply = client.post(
        "/webhooks/rest/webhook", data=json.dumps(payload), headers=headers or {}
    )
    return reply.status, reply.json


def channel(**kwargs) -> KefuRestInput:
    kwargs.setdefault("limits", MessageLimits(per_conversation=0, per_client=0))
    kwargs.setdefault("proxies", ())
    kwargs.setdefault("secret", "")
    return KefuRestInput(**kwargs)


def test_a_customer_token_becomes_a_signed_claim_and_never_reaches_the_assistant(customers):
    client, recorder = serve(channel())
    token = issue_customer_token(ALICE, 600, secret=SECRET)
    sent = {"customer_token": token, "language": "en", "kefu_client": "6.6.6.6"}
    status, reply = post(client, {"sender": "shop-1", "message": "hi", "metadata": sent})
    assert (status, reply) == (200, [{"recipient_id": "shop-1", "text": "ok"}])
    [message] = recorder.messages
    metadata = message.metadata
    assert set(metadata) == {"language", "kefu_identity", "kefu_client"}
    assert token not in json.dumps(metadata)
    assert metadata["kefu_client"] == "127.0.0.1"  # the peer, not what the client wrote
    customer_id, exp = check_identity_claim(metadata["kefu_identity"], "shop-1")
    assert customer_id == ALICE and exp > time.time() + 500


def test_a_forged_token_or_a_client_made_claim_gives_no_identity(customers):
    client, recorder = serve(channel())
    forged = issue_customer_token(ALICE, secret="not-the-shop-secret-but-just-as-long-as-it")
    claim = {"customer_id": ALICE, "exp": 2**40, "sid": "shop-2", "sig": "00" * 32}
    sent = {"customer_token": forged, "kefu_identity": claim}
    assert post(client, {"sender": "shop-2", "message": "hi", "metadata": sent})[0] == 200
    assert recorder.messages[0].metadata == {"kefu_client": "127.0.0.1"}


def test_a_trusted_proxy_names_the_client():
    client, recorder = serve(channel(proxies=parse_trusted_proxies("127.0.0.1")))
    headers = {"X-Forwarded-For": "6.6.6.6, 198.51.100.1"}
    assert post(client, {"sender": "a", "message": "hi"}, headers)[0] == 200
    assert recorder.messages[0].metadata["kefu_client"] == "198.51.100.1"


def test_with_a_secret_each_request_signs_its_sender():
    client, recorder = serve(channel(secret="shop-shared-secret"))
    payload = {"sender": "shop-customer-7", "message": "hi"}
    status, reply = post(client, payload)
    assert (status, reply["error"]) == (401, "invalid_signature")
    assert "X-Kefu-Signature" in reply["message"]
    wrong = {"X-Kefu-Signature": sender_signature("shop-shared-secret", "someone-else")}
    assert post(client, payload, wrong)[0] == 401
    signature = hmac.new(b"shop-shared-secret", b"shop-customer-7", hashlib.sha256).hexdigest()
    assert signature == sender_signature("shop-shared-secret", "shop-customer-7")
    assert post(client, payload, {"X-Kefu-Signature": signature})[0] == 200
    assert len(recorder.messages) == 1


def test_a_web_sender_is_refused_even_when_signed():
    client, recorder = serve(channel(secret="s"))
    sender = "web-" + "0" * 32
    headers = {"X-Kefu-Signature": sender_signature("s", sender)}
    status, reply = post(client, {"sender": sender, "message": "hi"}, headers)
    assert (status, reply["error"]) == (400, "reserved_sender")
    assert not recorder.messages


def test_messages_over_the_rate_limits_get_429_in_both_languages():
    client, recorder = serve(channel(limits=MessageLimits(per_conversation=2, per_client=4)))
    assert [post(client, {"sender": "a", "message": "hi"})[0] for _ in range(2)] == [200, 200]
    _, reply = client.post(
        "/webhooks/rest/webhook", data=json.dumps({"sender": "a", "message": "hi"})
    )
    assert reply.status == 429 and reply.json["error"] == "rate_limited"
    assert "too quickly" in reply.json["message"] and "太频繁" in reply.json["message"]
    assert reply.json["retry_after_s"] >= 1 and reply.headers["retry-after"]
    # Every request counts for its client (4 per window), refused ones too.
    assert post(client, {"sender": "b", "message": "hi"})[0] == 200
    status, reply = post(client, {"sender": "c", "message": "hi"})
    assert (status, reply["error"]) == (429, "rate_limited")
    assert len(recorder.messages) == 3


@pytest.mark.parametrize(
    "failure, status",
    [
        (LockStoreUnavailable("the lock store at 127.0.0.1:6379 does not answer"), 503),
        (RuntimeError("the tracker store is gone"), 500),
    ],
)
def test_a_turn_that_fails_inside_rasa_gets_the_bilingual_fault_answer(failure, status):
    async def failing(message) -> None:
        raise failure

    app = Sanic(f"kefu_rest_test_{next(_apps)}")
    app.blueprint(channel().blueprint(failing), url_prefix="/webhooks/rest")
    _, reply = app.test_client.post(
        "/webhooks/rest/webhook", data=json.dumps({"sender": "a", "message": "hi"})
    )
    assert reply.status == status
    text = reply.json[0]["text"] if status == 503 else reply.json["message"]
    assert text == fault_reply() and "try again" in text and "稍后再试" in text
    if status == 503:  # refused before anything was stored: sending again is safe
        assert reply.json[0]["recipient_id"] == "a" and reply.headers["retry-after"] == "5"


def test_deeply_nested_json_over_http_is_a_400():
    client, _ = serve(channel())
    _, reply = client.post("/webhooks/rest/webhook", data=b"[" * 30_000 + b"]" * 30_000)
    assert (reply.status, reply.json["error"]) == (400, "invalid_json")


# ---- polling for agent replies -------------------------------------------------------------


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"sender": "shop-7"}, ("shop-7", 0, 50)),
        ({"sender": "shop-7", "after": "12", "limit": "100"}, ("shop-7", 12, 100)),
        ({"sender": "shop-7", "after": "", "limit": ""}, ("shop-7", 0, 50)),
    ],
)
def test_valid_poll_queries(query, expected):
    assert parse_poll_query(query) == expected


@pytest.mark.parametrize(
    "query, code",
    [
        ({}, "invalid_sender"),
        ({"sender": "a b"}, "invalid_sender"),
        ({"sender": "web-" + "0" * 32}, "reserved_sender"),
        ({"sender": "Web-x"}, "reserved_sender"),
        ({"sender": "a", "after": "-1"}, "invalid_after"),
        ({"sender": "a", "after": "1e3"}, "invalid_after"),
        ({"sender": "a", "after": "9" * 40}, "invalid_after"),
        ({"sender": "a", "limit": "0"}, "invalid_limit"),
        ({"sender": "a", "limit": "101"}, "invalid_limit"),
        ({"sender": "a", "limit": "ten"}, "invalid_limit"),
    ],
)
def test_bad_poll_queries_are_rejected_with_a_code(query, code):
    with pytest.raises(RequestRejected) as caught:
        parse_poll_query(query)
    assert (caught.value.status, caught.value.code) == (400, code)


POLL_SECRET = "shop-shared-secret"


@pytest.fixture
async def polled():
    """A REST channel with a secret, over a tracker store holding two shoppers' conversations:
    shop-7 was answered by the bot, then by the agent Anna; shop-8 talked about their order."""
    store = InMemoryTrackerStore(Domain.empty())
    for tracker in (
        DialogueStateTracker.from_events(
            "shop-7",
            [
                UserUttered("I want a person"),
                BotUttered("Connecting you to a person."),
                BotUttered("Hi, Anna here. How can I help?", metadata={AGENT_KEY: "Anna"}),
            ],
        ),
        DialogueStateTracker.from_events(
            "shop-8", [UserUttered("KF-100023"), BotUttered("Order KF-100023 is at 1 Bob St")]
        ),
    ):
        await store.save(tracker)
    app = Sanic(f"kefu_rest_test_{next(_apps)}")
    app.blueprint(channel(secret=POLL_SECRET).blueprint(Recorder()), url_prefix="/webhooks/rest")
    app.ctx.agent = SimpleNamespace(tracker_store=store)
    return SimpleNamespace(app=app, store=store)


async def poll(app, sender: str, signed_for: str | None = None, **args):
    signature = sender_signature(POLL_SECRET, signed_for or sender)
    _, reply = await app.asgi_client.get(
        "/webhooks/rest/messages",
        params={"sender": sender, **args},
        headers={"X-Kefu-Signature": signature},
    )
    return reply.status, reply.json


async def test_a_rest_caller_polls_the_agent_replies_of_its_conversation(polled):
    status, reply = await poll(polled.app, "shop-7")
    assert status == 200 and reply["sender"] == "shop-7"
    assert [(m["role"], m.get("agent"), m["text"]) for m in reply["messages"]] == [
        ("bot", None, "Connecting you to a person."),
        ("agent", "Anna", "Hi, Anna here. How can I help?"),
    ]
    assert all(isinstance(m["timestamp"], float) for m in reply["messages"])
    # Nothing new yet; then Anna writes again and the next poll has only that.
    cursor = reply["cursor"]
    assert (await poll(polled.app, "shop-7", after=cursor))[1]["messages"] == []
    tracker = await polled.store.retrieve("shop-7")
    tracker.update(BotUttered("Your refund is on its way.", metadata={AGENT_KEY: "Anna"}))
    await polled.store.save(tracker)
    status, reply = await poll(polled.app, "shop-7", after=cursor)
    assert [m["text"] for m in reply["messages"]] == ["Your refund is on its way."]
    assert int(reply["cursor"]) > int(cursor)


async def test_a_caller_never_reads_another_conversation(polled):
    # Signed for shop-7, asking for shop-8.
    status, reply = await poll(polled.app, "shop-8", signed_for="shop-7")
    assert (status, reply["error"]) == (401, "invalid_signature")
    assert "1 Bob St" not in json.dumps(reply)
    _, reply = await polled.app.asgi_client.get(
        "/webhooks/rest/messages", params={"sender": "shop-8"}
    )
    assert reply.status == 401
    status, reply = await poll(polled.app, "web-" + "0" * 32)
    assert (status, reply["error"]) == (400, "reserved_sender")


async def test_an_unknown_conversation_has_no_messages_and_is_not_created(polled):
    status, reply = await poll(polled.app, "shop-9")
    assert (status, reply) == (200, {"sender": "shop-9", "messages": [], "cursor": "0"})
    assert await polled.store.retrieve("shop-9") is None


async def test_bad_cursors_and_limits_get_a_400(polled):
    status, reply = await poll(polled.app, "shop-7", after="-5")
    assert (status, reply["error"]) == (400, "invalid_after")
    status, reply = await poll(polled.app, "shop-7", limit="1")
    assert status == 200 and len(reply["messages"]) == 1


async def test_without_a_secret_polling_is_disabled():
    app = Sanic(f"kefu_rest_test_{next(_apps)}")
    app.blueprint(channel().blueprint(Recorder()), url_prefix="/webhooks/rest")
    _, reply = await app.asgi_client.get("/webhooks/rest/messages", params={"sender": "shop-7"})
    assert (reply.status, reply.json["error"]) == (403, "polling_disabled")
    assert "KEFU_REST_SECRET" in reply.json["message"]


async def test_before_the_assistant_is_loaded_polling_says_so():
    app = Sanic(f"kefu_rest_test_{next(_apps)}")
    app.blueprint(channel(secret=POLL_SECRET).blueprint(Recorder()), url_prefix="/webhooks/rest")
    status, reply = await poll(app, "shop-7")
    assert (status, reply["error"]) == (503, "not_ready")
