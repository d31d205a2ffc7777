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
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import socketio

from commerce.config import DATABASE_URL_ENV, TOKEN_SECRET_ENV
from commerce.services.identity import issue_customer_token
from tests.conftest import ROOT
from tests.integration.test_chat_over_rest import HAN, running_kefu

pytestmark = pytest.mark.integration

AGENT_TOKEN = "console-test-token"
SECRET = "web-channel-test-secret-long-enough-for-hs256"
ALICE, WANG = 1, 11  # docs/SEED.md
CHROMIUM = Path(os.environ.get("KEFU_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = ROOT / "results" / "browser"
QUIET_S = 2.5  # a turn is over when no message came for this long


@pytest.fixture(scope="module")
def kefu(tmp_path_factory, commerce_db):
    env = {
        DATABASE_URL_ENV: f"sqlite:///{commerce_db}",
        TOKEN_SECRET_ENV: SECRET,
        "KEFU_AGENT_TOKEN": AGENT_TOKEN,
    }
    with running_kefu(tmp_path_factory.mktemp("kefu-web"), **env) as server:
        yield server


def query(db: Path, sql: str, *params):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


class ChatClient:
    """A socket.io client speaking the web chat's events, as the page does."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.inbox: asyncio.Queue = asyncio.Queue()
        for event in ("session_confirm", "identity", "history", "bot_uttered", "kefu_error"):
            self.sio.on(event, self._collector(event))

    def _collector(self, event: str):
        async def collect(data=None):
            await self.inbox.put((event, data))

        return collect

    async def next(self, timeout: float = 60.0) -> tuple[str, object]:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def open(self, session_id: str | None = None, token: str | None = None) -> dict:
        await self.sio.connect(self.url, socketio_path="/socket.io", transports=["polling"])
        await self.sio.emit(
            "session_request", {"session_id": session_id, "customData": {"customer_token": token}}
        )
        got = {}
        while len(got) < 3:
            event, data = await self.next()
            got[event] = data
        return got

    async def say(self, text: str, *, expect_reply: bool = True) -> list[dict]:
        """Send a message; the replies that came until the conversation went quiet."""
        await self.sio.emit("user_uttered", {"message": text})
        return await self.collect(expect_reply=expect_reply)

    async def collect(self, *, expect_reply: bool = True) -> list[dict]:
        replies = []
        timeout = 90.0 if expect_reply else QUIET_S
        while True:
            try:
                event, data = await self.next(timeout)
            except asyncio.TimeoutError:
                break
            replies.append({"event": event, **(data if isinstance(data, dict) else {})})
            timeout = QUIET_S
        if expect_reply:
            assert replies, "no reply"
        return replies

    async def close(self) -> None:
        await self.sio.disconnect()


def texts(replies: list[dict]) -> str:
    return " ".join(r.get("text", "") for r in replies if r["event"] == "bot_uttered")


def console(kefu, method: str, path: str, body=None, token=AGENT_TOKEN, agent="Anna"):
    headers = {"X-Kefu-Agent": agent, "Content-Type": "application/json"}
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


async def test_handoff_agent_reply_and_handback(kefu, commerce_db):
    assert console(kefu, "GET", "/queue", token=None)[0] == 401
    assert console(kefu, "GET", "/queue", token="wrong")[0] == 401
    assert console(kefu, "GET", "/queue", agent="<script>")[0] == 400

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
    assert console(kefu, "POST", f"/handoffs/{handoff}/reply", {"text": "hi"})[0] == 409
    assert console(kefu, "POST", f"/handoffs/{handoff}/claim")[0] == 200
    joined = texts(await customer.collect())
    assert "Anna" in joined
    assert console(kefu, "POST", f"/handoffs/{handoff}/claim", agent="Bob")[0] == 409
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
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Agent token").fill(AGENT_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#whoami:not([hidden])")
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
