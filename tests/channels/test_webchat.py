"""The web chat channel's pieces: message validation, what it emits, the served files, the
history it rebuilds from tracker events, and customer tokens checked against a seeded database.

The running channel (socket.io, page, console) is exercised end to end in
tests/integration/test_web_channels.py.
"""

from __future__ import annotations

import re
from datetime import timedelta

import jwt
import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered

from channels.live import AGENT_KEY, chat_history
from channels.webchat import (
    STATIC_DIR,
    STATIC_FILES,
    MessageRejected,
    WebChatOutput,
    check_customer_token,
    parse_user_message,
    static_file,
)
from commerce.config import DATABASE_URL_ENV, TOKEN_SECRET_ENV
from commerce.db import reset_shared_session_factory
from commerce.services.identity import issue_customer_token

SECRET = "test-secret-for-customer-tokens-of-32-bytes-or-more"
ALICE = 1  # docs/SEED.md


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


@pytest.fixture
def customers(seeded_db_file, monkeypatch):
    monkeypatch.setenv(DATABASE_URL_ENV, f"sqlite:///{seeded_db_file}")
    monkeypatch.setenv(TOKEN_SECRET_ENV, SECRET)
    reset_shared_session_factory()
    yield
    reset_shared_session_factory()


async def test_a_signed_token_names_the_customer(customers):
    identity = await check_customer_token(issue_customer_token(ALICE, secret=SECRET))
    assert identity["verified"] and identity["customer_id"] == ALICE and identity["name"]


@pytest.mark.parametrize(
    "token, reason",
    [
        (None, "no_token"),
        ("", "no_token"),
        (12345, "invalid"),
        ("not.a.jwt", "invalid"),
        ("x" * 5000, "invalid"),
        # Signed with another secret: forged.
        (issue_customer_token(ALICE, secret="someone-else-with-their-own-long-secret"), "invalid"),
        # Unsigned ("alg": "none") tokens are never accepted.
        (jwt.encode({"sub": "1", "iss": "kefu", "aud": "kefu-customer"}, None, "none"), "invalid"),
        # A customer that does not exist.
        (issue_customer_token(99999, secret=SECRET), "invalid"),
    ],
)
async def test_bad_tokens_leave_the_customer_anonymous(customers, token, reason):
    assert await check_customer_token(token) == {"verified": False, "reason": reason}


async def test_an_expired_token_says_so(customers):
    token = issue_customer_token(ALICE, timedelta(seconds=1), secret=SECRET)
    payload = jwt.decode(token, SECRET, algorithms=["HS256"], audience="kefu-customer")
    expired = jwt.encode({**payload, "exp": payload["iat"] - 10}, SECRET, "HS256")
    assert await check_customer_token(expired) == {"verified": False, "reason": "expired"}


async def test_tokens_without_a_configured_secret(customers, monkeypatch):
    monkeypatch.delenv(TOKEN_SECRET_ENV)
    token = issue_customer_token(ALICE, secret=SECRET)
    assert await check_customer_token(token) == {"verified": False, "reason": "not_configured"}
