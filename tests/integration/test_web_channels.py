"""The web chat and the agent console, end to end: scripts/serve.py on a seeded database, real
socket.io clients, the console's HTTP API, and a real browser (Playwright driving Debian's
chromium; `make browser` installs it).

Browser screenshots are kept under results/browser/ as test artifacts.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from commerce.config import DATABASE_URL_ENV, TOKEN_SECRET_ENV
from commerce.services.identity import issue_customer_token
from tests.helpers import HAN, ROOT
from tests.helpers.kefu_server import running_kefu
from tests.helpers.webchat_client import ChatClient

pytestmark = pytest.mark.integration

AGENTS = ("Anna", "Bob", "Li")
#: Each agent's own console token, made with `python -m commerce agent add` (agent_accounts).
TOKENS: dict[str, str] = {}
SECRET = "web-channel-test-secret-long-enough-for-hs256"
ALICE, WANG = 1, 11  # docs/SEED.md
CHROMIUM = Path(os.environ.get("KEFU_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "results" / "browser"


@pytest.fixture(scope="module")
def kefu(tmp_path_factory, commerce_db):
    env = {
        DATABASE_URL_ENV: f"sqlite:///{commerce_db}",
        TOKEN_SECRET_ENV: SECRET,
        "KEFU_TRUSTED_PROXIES": "127.0.0.1",  # the console's throttle test poses as a proxy
        # Every test here chats from 127.0.0.1: the client limit is for the rate-limit tests
        # to reach with their own X-Forwarded-For address, not for the module as a whole.
        "KEFU_RATE_PER_CLIENT": "400",
        # serve.py's demo agent token goes here, not to the developer's var/agent-token.
        "KEFU_AGENT_TOKEN_FILE": str(tmp_path_factory.mktemp("demo-agent") / "agent-token"),
    }
    with running_kefu(tmp_path_factory.mktemp("kefu-web"), **env) as server:
        yield server


@pytest.fixture(scope="module", autouse=True)
def agent_accounts(commerce_db, tmp_path_factory):
    """Console accounts for Anna, Bob and Li, made as an operator would (the CLI)."""
    from commerce.__main__ import main

    folder = tmp_path_factory.mktemp("agent-tokens")
    for name in AGENTS:
        token_file = folder / f"{name}.token"
        args = ["agent", "add", name, "--token-file", str(token_file)]
        assert main([*args, "--url", f"sqlite:///{commerce_db}"]) == 0
        TOKENS[name] = token_file.read_text().strip()
    yield TOKENS
    TOKENS.clear()


def query(db: Path, sql: str, *params):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def texts(replies: list[dict]) -> str:
    return " ".join(r.get("text", "") for r in replies if r["event"] == "bot_uttered")


def console(
    kefu, method, path, body=None, agent="Anna", token="", forged_name=None, forwarded_for=None
):
    """Call the console API with ``agent``'s token (or ``token``: None sends none)."""
    token = TOKENS[agent] if token == "" else token
    headers = {"Content-Type": "application/json"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    if forged_name is not None:  # the old way of naming the agent: must be ignored
        headers["X-Kefu-Agent"] = forged_name
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{kefu.url}/webhooks/agent/api{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers=headers,
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - localhost
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def handoff_of(kefu, conversation_id: str) -> dict:
    status, queue = console(kefu, "GET", "/queue")
    assert status == 200, queue
    for entry in queue["waiting"] + queue["assigned"]:
        if entry["conversation_id"] == conversation_id:
            return entry
    raise AssertionError(f"{conversation_id} not in the queue: {queue}")


def get(kefu, path: str) -> tuple[int, str, dict]:
    try:
        with urllib.request.urlopen(kefu.url + path, timeout=30) as reply:  # noqa: S310
            return reply.status, reply.read().decode(), dict(reply.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def test_the_page_and_its_files_are_served(kefu):
    status, html, headers = get(kefu, "/webhooks/webchat/")
    assert status == 200 and 'role="log"' in html and "socket.io.min.js" in html
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert get(kefu, "/webhooks/webchat/static/webchat/chat.js")[0] == 200
    assert get(kefu, "/webhooks/webchat/static/vendor/socket.io.min.js")[0] == 200
    assert get(kefu, "/webhooks/webchat/static/webchat/secrets.txt")[0] == 404
    assert get(kefu, "/webhooks/agent/")[0] == 200


async def test_socket_chat_in_both_languages_and_history_on_reconnect(kefu):
    english = ChatClient(kefu.url)
    opened = await english.open()
    session_id = opened["session_confirm"]
    assert opened["identity"] == {"verified": False, "reason": "no_token"}
    assert opened["history"] == {"messages": []}
    assert "Kefu" in texts(await english.say("hi"))
    await english.close()

    chinese = ChatClient(kefu.url)
    await chinese.open()
    assert HAN.search(texts(await chinese.say("你好")))
    await chinese.close()

    # A reload: same session id, the conversation so far comes back.
    again = ChatClient(kefu.url)
    reopened = await again.open(session_id=session_id)
    assert reopened["session_confirm"] == session_id
    history = reopened["history"]["messages"]
    assert [m["role"] for m in history[:2]] == ["user", "bot"]
    assert history[0]["text"] == "hi"
    await again.close()


async def test_malformed_and_oversized_messages_are_refused_without_harming_others(
    kefu, commerce_db
):
    rude = ChatClient(kefu.url)
    await rude.sio.connect(kefu.url, socketio_path="/socket.io", transports=["polling"])
    await rude.sio.emit("user_uttered", {"message": "hi"})
    assert await rude.next() == (
        "kefu_error",
        {"error": "no_session", "message": "Send session_request first."},
    )
    await rude.sio.emit("session_request", "garbage")  # a new session, not an error
    got = {(await rude.next())[0] for _ in range(3)}
    assert got == {"session_confirm", "identity", "history"}
    for payload, code in [
        (42, "invalid_message"),
        (["hi"], "invalid_message"),
        ({"message": ""}, "empty_message"),
        ({"message": "x" * 3000}, "message_too_long"),
        ({"message": "hi", "customData": "{oops"}, "invalid_metadata"),
        (
            {"message": "'; DROP TABLE orders; --", "customData": {"x": "y" * 5000}},
            "invalid_metadata",
        ),
    ]:
        await rude.sio.emit("user_uttered", payload)
        event, data = await rude.next()
        assert (event, data["error"]) == ("kefu_error", code)

    polite = ChatClient(kefu.url)
    await polite.open()
    # A frame beyond the server's limit closes that one connection only.
    await rude.sio.emit("user_uttered", {"message": "y" * 200_000})
    await asyncio.sleep(1)
    assert "Kefu" in texts(await polite.say("hello"))
    await polite.close()
    await rude.close()
    assert query(commerce_db, "select count(*) from orders")[0][0] > 0


async def test_a_signed_customer_skips_verification_and_a_forged_one_does_not(kefu):
    forged = issue_customer_token(ALICE, secret="not-the-shop-secret-but-just-as-long-as-it")
    stranger = ChatClient(kefu.url)
    opened = await stranger.open(token=forged)
    assert opened["identity"] == {"verified": False, "reason": "invalid"}
    replies = texts(await stranger.say("where is my order KF-100004?"))
    assert "email" in replies.lower() or "phone" in replies.lower()  # asked to prove it
    assert "UPS" not in replies
    await stranger.close()

    alice = ChatClient(kefu.url)
    opened = await alice.open(token=issue_customer_token(ALICE, secret=SECRET))
    assert opened["identity"]["verified"] is True and opened["identity"]["name"]
    replies = await alice.say("where is my order KF-100004?")
    card = next(r["custom"] for r in replies if r.get("custom"))
    assert card["type"] == "order_card" and card["order_number"] == "KF-100004"
    assert card["status"] == "shipped" and card["carrier"]
    await alice.close()


def tracker_events(kefu, sender_id: str) -> list[dict]:
    rows = query(
        kefu.tracker_db, "select data from events where sender_id = ? order by id", sender_id
    )
    return [json.loads(data) for (data,) in rows]


async def test_a_signed_in_conversation_is_never_resumed_by_someone_else(kefu):
    alice_token = issue_customer_token(ALICE, secret=SECRET)
    alice = ChatClient(kefu.url)
    session_id = (await alice.open(token=alice_token))["session_confirm"]
    replies = await alice.say("where is my order KF-100004?")
    assert any(r.get("custom", {}).get("order_number") == "KF-100004" for r in replies)
    await alice.close()

    # The same browser later: a guest, then another signed-in customer, with Alice's session id.
    for token in (None, issue_customer_token(WANG, secret=SECRET)):
        other = ChatClient(kefu.url)
        opened = await other.open(session_id=session_id, token=token)
        assert opened["session_confirm"] != session_id
        assert opened["history"] == {"messages": []}
        replies = texts(await other.say("where is my order KF-100004?"))
        assert "UPS" not in replies and "shipped" not in replies.lower()
        await other.close()

    # A REST caller cannot pick the web conversation's sender id either.
    status, reply = kefu.post(
        json.dumps({"sender": f"web-{session_id}", "message": "cancel my order"}).encode()
    )
    assert (status, reply["error"]) == (400, "reserved_sender")

    # Alice herself continues where she was.
    again = ChatClient(kefu.url)
    opened = await again.open(session_id=session_id, token=alice_token)
    assert opened["session_confirm"] == session_id
    assert opened["history"]["messages"][0]["text"] == "where is my order KF-100004?"
    await again.close()

    # Only the signed claim was stored, never the token.
    events = tracker_events(kefu, f"web-{session_id}")
    stored = json.dumps(events)
    assert alice_token not in stored and "customer_token" not in stored
    user = [e for e in events if e.get("event") == "user"]
    assert user and all(e["metadata"]["kefu_identity"]["customer_id"] == ALICE for e in user)


async def test_a_flood_is_refused_per_conversation_with_a_bilingual_answer(kefu):
    flood = ChatClient(kefu.url)
    await flood.open(headers={"X-Forwarded-For": "198.51.100.20"})
    # Refused messages are cheap to send; they count all the same.
    for _ in range(20):
        await flood.sio.emit("user_uttered", {"message": ""})
        assert (await flood.next())[1]["error"] == "empty_message"
    await flood.sio.emit("user_uttered", {"message": "hi"})
    event, error = await flood.next()
    assert (event, error["error"]) == ("kefu_error", "rate_limited")
    assert "too quickly" in error["message"] and "太频繁" in error["message"]
    await flood.close()

    polite = ChatClient(kefu.url)
    await polite.open(headers={"X-Forwarded-For": "198.51.100.21"})
    assert "Kefu" in texts(await polite.say("hi"))  # others are served as usual
    await polite.close()


async def test_unreadable_frames_and_bodies_get_json_errors(kefu):
    rude = ChatClient(kefu.url)
    await rude.open()
    await rude.sio.eio.send('2["user_uttered",' + "[" * 30_000 + "]" * 30_000 + "]")
    event, error = await rude.next()
    assert (event, error["error"]) == ("kefu_error", "invalid_json")
    assert "Kefu" in texts(await rude.say("hi"))
    await rude.close()

    status, reply = kefu.post(b"[" * 30_000 + b"]" * 30_000)
    assert (status, reply["error"]) == (400, "invalid_json")
    status, _ = kefu.post(b"[" * 100_000 + b"]" * 100_000)
    assert status == 413  # larger than the channel's 64 KiB body limit
    # Bodies beyond SANIC_REQUEST_MAX_SIZE (1 MiB) are refused on their headers, unread.
    assert refused_before_the_body(kefu.port, 2 * 1024 * 1024).startswith(b"HTTP/1.1 413")
    assert kefu.say("still-alive-after-big-bodies", "hi")


def refused_before_the_body(port: int, length: int) -> bytes:
    """What the server answers to request headers announcing ``length`` bytes, none sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            b"POST /webhooks/rest/webhook HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % length
        )
        return conn.recv(200)


def test_other_origins_get_no_cors_headers(kefu):
    request = urllib.request.Request(
        kefu.url + "/webhooks/rest/webhook",
        method="OPTIONS",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - localhost
            headers = dict(reply.headers)
    except urllib.error.HTTPError as error:
        headers = dict(error.headers)
    assert "Access-Control-Allow-Origin" not in headers


async def test_handoff_agent_reply_and_handback(kefu, commerce_db):
    assert console(kefu, "GET", "/queue", token=None)[0] == 401
    assert console(kefu, "GET", "/queue", token="wrong")[0] == 401
    # The name is the account's: a header claiming another one changes nothing.
    assert console(kefu, "GET", "/me", forged_name="Bob")[1]["agent"] == "Anna"

    customer = ChatClient(kefu.url)
    session_id = (await customer.open())["session_confirm"]
    conversation = f"web-{session_id}"
    await customer.say("my parcel arrived damaged, this is unacceptable")
    queued = texts(await customer.say("I want to talk to a human"))
    assert "queue" in queued.lower()
    entry = handoff_of(kefu, conversation)
    handoff = entry["handoff_id"]
    assert entry["status"] == "waiting"

    status, detail = console(kefu, "GET", f"/handoffs/{handoff}")
    assert status == 200 and detail["paused"] is True
    said = [m["text"] for m in detail["messages"] if m["role"] == "user"]
    assert said == ["my parcel arrived damaged, this is unacceptable", "I want to talk to a human"]
    assert detail["sentiment"]["peak"] > 0
    # Replying before claiming is refused; so is claiming what another agent holds.
    assert console(kefu, "POST", f"/handoffs/{handoff}/reply", {"text": "hi"})[0] == 403
    assert console(kefu, "POST", f"/handoffs/{handoff}/claim", forged_name="Bob")[0] == 200
    joined = texts(await customer.collect())
    assert "Anna" in joined and "Bob" not in joined
    assert console(kefu, "POST", f"/handoffs/{handoff}/claim", agent="Bob")[0] == 409
    # Bob cannot speak or hand back for Anna, even calling himself Anna.
    for action in ("reply", "handback"):
        status, refused = console(
            kefu, "POST", f"/handoffs/{handoff}/{action}", {"text": "hi"}, "Bob", forged_name="Anna"
        )
        assert (status, refused["error"]) == (403, "not_assignee")
    assert console(kefu, "POST", f"/handoffs/{handoff}/reply", {"text": " "})[0] == 400
    assert console(kefu, "POST", f"/handoffs/{handoff}/reply", {"text": "x" * 3000})[0] == 413
    assert console(kefu, "POST", "/handoffs/999999/claim")[0] == 404

    # While an agent has the conversation the bot stays quiet; the agent sees the message.
    assert await customer.say("the box was crushed", expect_reply=False) == []
    status, sent = console(
        kefu, "POST", f"/handoffs/{handoff}/reply", {"text": "I'm sorry, I'll send a new one."}
    )
    assert status == 200 and sent["delivered_live"] is True
    [reply] = await customer.collect()
    assert reply == {
        "event": "bot_uttered",
        "text": "I'm sorry, I'll send a new one.",
        "agent": "Anna",
    }
    detail = console(kefu, "GET", f"/handoffs/{handoff}")[1]
    assert [m["role"] for m in detail["messages"][-2:]] == ["user", "agent"]
    assert detail["messages"][-2]["text"] == "the box was crushed"

    assert console(kefu, "POST", f"/handoffs/{handoff}/handback")[0] == 200
    assert "Kefu" in texts(await customer.collect())
    assert "Kefu" in texts(await customer.say("hi"))  # the bot answers again
    await customer.close()
    assert query(commerce_db, "select status from handoff_queue where id = ?", handoff) == [
        ("closed",)
    ]
    assert query(
        commerce_db,
        "select t.status, t.assignee from support_tickets t join handoff_queue h"
        " on h.ticket_id = t.id where h.id = ?",
        handoff,
    ) == [("resolved", "Anna")]
    trail = query(
        commerce_db,
        "select agent_name, action from agent_audit_log where handoff_id = ? order by id",
        handoff,
    )
    assert trail == [
        ("Anna", "denied"),
        ("Anna", "claim"),
        ("Bob", "denied"),
        ("Bob", "denied"),
        ("Anna", "reply"),
        ("Anna", "handback"),
    ]


def test_a_disabled_agent_and_wrong_tokens_are_refused(kefu, commerce_db):
    from commerce.db import make_session_factory
    from commerce.services import agents

    factory = make_session_factory(f"sqlite:///{commerce_db}")
    _, token = agents.create_agent(factory, "Temp")
    assert console(kefu, "GET", "/me", token=token)[1]["agent"] == "Temp"
    agents.disable_agent(factory, "Temp")
    assert console(kefu, "GET", "/me", token=token)[0] == 401
    factory.kw["bind"].dispose()
    # Failed logins are throttled per client: one behind the (trusted) local proxy here, so the
    # other tests, on the proxy's own address, are not.
    guesser = "198.51.100.7"
    for i in range(agents.MAX_LOGIN_FAILURES):
        assert console(kefu, "GET", "/me", token=f"guess-{i}", forwarded_for=guesser)[0] == 401
    status, throttled = console(kefu, "GET", "/me", forwarded_for=guesser)  # even a right token
    assert status == 429 and throttled["retry_after_s"] > 0
    assert console(kefu, "GET", "/me")[0] == 200


# ---- in a real browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run `make browser` (Debian's chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def chat_page(browser, kefu, locale: str, fragment: str = ""):
    context = browser.new_context(locale=locale, viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.goto(f"{kefu.url}/webhooks/webchat/{fragment}")
    page.wait_for_selector("body[data-ready='true']")
    return page


def type_message(page, text: str) -> None:
    page.get_by_label("Your message").or_(page.get_by_label("您的消息")).fill(text)
    page.keyboard.press("Enter")


def agent_console(browser, kefu, name: str):
    page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    page.goto(f"{kefu.url}/webhooks/agent/")
    page.get_by_label("Your agent token").fill(TOKENS[name])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#whoami:not([hidden])")
    assert page.locator("#whoami-name").inner_text() == f"Signed in as {name}"
    return page


def take_over(console_page, ticket: str, reply: str) -> None:
    console_page.locator(".queue__item", has_text=ticket).first.click()
    console_page.get_by_role("button", name="Take this conversation").click()
    console_page.get_by_label("Reply to the customer").fill(reply)
    console_page.get_by_role("button", name="Send reply").click()


def ticket_on(page) -> str:
    text = page.locator(".msg--bot").last.inner_text()
    return re.search(r"TK-[A-Z0-9-]+", text).group(0)


def test_browser_english_order_lookup_and_handoff(browser, kefu):
    page = chat_page(browser, kefu, "en-US")
    assert page.locator("#identity").inner_text() == "Chatting as a guest"
    type_message(page, "where is my order KF-100004?")
    page.wait_for_selector(".msg--bot >> text=/email|phone/i")
    type_message(page, "alice@example.com")
    card = page.locator(".card--order_card")
    card.wait_for()
    assert "KF-100004" in card.inner_text() and "Shipped" in card.inner_text()
    page.screenshot(path=ARTIFACTS / "en-order-card.png", full_page=True)

    type_message(page, "I want to talk to a human")
    page.wait_for_selector(".msg--bot >> text=/queue/")
    ticket = ticket_on(page)

    agent = agent_console(browser, kefu, "Anna")
    take_over(agent, ticket, "Hi, I'm Anna. Your parcel is with UPS; let me chase it.")
    agent.wait_for_selector(".line--user >> text=where is my order KF-100004?")
    assert "Sentiment:" in agent.locator("#sentiment").inner_text()
    assert "KF-100004" in agent.locator("#orders").inner_text()  # verified in the chat
    page.wait_for_selector(".msg--agent >> text=Your parcel is with UPS")
    assert "Anna (customer service)" in page.locator(".msg--agent").last.inner_text()
    agent.screenshot(path=ARTIFACTS / "en-agent-console.png", full_page=True)

    agent.get_by_role("button", name="Hand back to Kefu").click()
    page.wait_for_selector(".msg--bot >> text=You're back with Kefu")
    page.screenshot(path=ARTIFACTS / "en-after-handback.png", full_page=True)
    page.context.close()
    agent.context.close()


def test_browser_new_conversation_and_another_customer_signing_in(browser, kefu):
    context = browser.new_context(locale="en-US", viewport={"width": 900, "height": 900})
    page = context.new_page()
    page.goto(f"{kefu.url}/webhooks/webchat/#token={issue_customer_token(ALICE, secret=SECRET)}")
    page.wait_for_selector("body[data-ready='true']")
    type_message(page, "where is my order KF-100004?")
    page.locator(".card--order_card").wait_for()
    alice_session = page.locator("body").get_attribute("data-session")

    # "New conversation": a fresh session id, an empty log, still signed in.
    page.get_by_role("button", name="New conversation").click()
    page.wait_for_selector("body[data-fresh='true']")
    assert page.locator("body").get_attribute("data-session") != alice_session
    assert page.locator(".msg").count() == 0
    assert page.locator("#identity").inner_text().startswith("Signed in as")

    # Another customer signs in on this browser (same localStorage): not Alice's conversation.
    other = context.new_page()
    other.goto(f"{kefu.url}/webhooks/webchat/#token={issue_customer_token(WANG, secret=SECRET)}")
    other.wait_for_selector("body[data-ready='true']")
    assert other.locator("body").get_attribute("data-session") != alice_session
    assert not other.locator(".card--order_card").count()
    other.screenshot(path=ARTIFACTS / "en-another-customer.png", full_page=True)
    context.close()


def test_browser_chinese_signed_in_reload_toggle_and_restart(browser, kefu):
    token = issue_customer_token(WANG, secret=SECRET)
    page = chat_page(browser, kefu, "zh-CN", f"#token={token}")
    assert page.locator("#identity").inner_text().startswith("已登录")
    assert "token" not in page.url  # the token left the address bar
    type_message(page, "我的订单KF-200002到哪了")
    card = page.locator(".card--order_card")
    card.wait_for()
    assert "KF-200002" in card.inner_text()
    assert not page.locator(".msg--bot >> text=/邮箱|手机/").count()  # no re-verification

    page.reload()
    page.wait_for_selector("body[data-ready='true']")
    page.locator(".card--order_card >> text=KF-200002").wait_for()  # history came back

    type_message(page, "转人工")
    page.wait_for_selector(".msg--bot >> text=/排队/")
    agent = agent_console(browser, kefu, "Li")
    take_over(agent, ticket_on(page), "您好，我是客服小李，马上为您查询。")
    page.wait_for_selector(".msg--agent >> text=马上为您查询")
    page.screenshot(path=ARTIFACTS / "zh-agent-reply.png", full_page=True)
    agent.get_by_role("button", name="Hand back to Kefu").click()
    page.wait_for_selector(".msg--bot >> text=/转回智能客服/")

    page.get_by_role("button", name="English").click()
    page.wait_for_selector(".msg--bot >> text=continue in English")
    assert page.locator("html").get_attribute("lang") == "en"

    # The server restarts: the page says so, reconnects by itself and carries on.
    kefu.stop()
    page.wait_for_selector("#connection:not([hidden])")
    kefu.start()
    page.wait_for_selector("#connection", state="hidden", timeout=120_000)
    page.locator(".msg--agent >> text=马上为您查询").wait_for()
    answered = page.locator(".msg--bot").count()
    type_message(page, "hi")
    page.locator(".msg--bot").nth(answered).wait_for(timeout=60_000)  # a new answer came
    page.screenshot(path=ARTIFACTS / "zh-after-restart.png", full_page=True)
    page.context.close()
    agent.context.close()
