"""The load generator (bench.load) against a tiny Kefu stand-in served here on aiohttp: replies
are judged, counted and timed, stages stop by themselves, and the tracker audit finds what is
missing or stored twice. No Rasa: the stand-in answers from a fixed table, in its own thread, over
REST and python-socketio's server (socket.io over websocket or long-polling, as Rasa's)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import socketio
from aiohttp import web

from bench.load import (
    CONVERSATIONS,
    FAULT_ANSWERS,
    CpuMeter,
    LoadConfigError,
    LoadGenerator,
    Script,
    SocketChat,
    StagePlan,
    StageRun,
    Turn,
    TurnFailed,
    TurnResult,
    answer_in_history,
    audit_events,
    kill_one,
    load_scripts,
    main,
    read_pid_file,
    render,
    summarize,
    websocket_url,
    wrong_reply,
)
from channels.live import WEB_SENDER_PREFIX
from tests.helpers.network import free_port

#: What the stand-in answers to each message.
REPLIES = {
    "hi": ["Hi, I'm Kefu, the shop assistant."],
    "where is my order?": ["What's your order number? It looks like KF-100023."],
    "KF-100004": ["To protect your account, what's the email address or phone number?"],
    "你好": ["您好，我是客服助手 Kefu。"],
    "运费多少钱？": ["国内订单满 299 元包邮。"],
    # Answers in the wrong language: the generator must call this wrong.
    "谢谢": ["You're welcome!"],
    "drop": ["Back again: Kefu here."],
}
SLOW = "slow"  # the stand-in takes SLOW_S to answer this
SLOW_S = 0.3
HANG = "hang"  # never answered in time
BOOM = "boom"  # HTTP 500
FLAKY = "flaky"  # HTTP 502 the first time a conversation sends it (a replica just killed)
REFUSE = "refuse"  # socket.io: refused with a kefu_error event, as Kefu's rate limit does
LINGER = "linger"  # answered after LINGER_S, longer than the pinging stand-in's ping cycle
LINGER_S = 1.2
PING_S = 0.2  # the pinging stand-in's ping interval, and how long it waits for the answer
REFUSED_ADDRESS = "203.0.113.9"  # socket.io refused from here (TEST-NET-3: no load shopper)
DROP = "drop"  # socket.io: the server drops the connection the first time (a replica killed)
#: socket.io: the first time, the server stores the turn and drops the connection before
#: sending the reply (a replica killed between the two); the history then has the answer.
STORED_THEN_DROP = "stored then drop"
TROUBLE = "trouble"  # REST: Kefu's fault answer the first time (an action server just killed)


class StandIn:
    """A REST + socket.io server with Kefu's routes and events, answering from REPLIES."""

    def __init__(self, ping_s: float | None = None) -> None:
        self.received: list[dict] = []
        self.flaked: set[str] = set()
        self.histories: dict[str, list[dict]] = {}  # socket.io session → its messages
        self.refuse_connects = 0  # socket.io connections refused before accepting (a replica down)
        self.left: dict[str, str] = {}  # socket.io sid → why the server saw it leave
        # engine.io's heartbeat: a ping every ping_s, a socket silent ping_s longer is dropped
        self.pings = {"ping_interval": ping_s, "ping_timeout": ping_s} if ping_s else {}
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)

    async def _answer(self, text: str) -> list[str]:
        if text == SLOW:
            await asyncio.sleep(SLOW_S)
            return ["Hi, I'm Kefu, slowly."]
        if text == HANG:
            await asyncio.sleep(30)
        if text == LINGER:
            await asyncio.sleep(LINGER_S)
            return ["Hi, I'm Kefu, after a while."]
        return REPLIES.get(text, ["Sorry, I didn't get that."])

    async def rest(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append({**body, "forwarded_for": request.headers.get("X-Forwarded-For")})
        if body["message"] == BOOM:
            return web.json_response({"error": "internal"}, status=500)
        if body["message"] == FLAKY and body["sender"] not in self.flaked:
            self.flaked.add(body["sender"])
            return web.Response(status=502, text="<html>502 Bad Gateway</html>")
        if body["message"] == TROUBLE and (TROUBLE, body["sender"]) not in self.flaked:
            self.flaked.add((TROUBLE, body["sender"]))
            return web.json_response([{"recipient_id": body["sender"], "text": FAULT_ANSWERS[1]}])
        texts = await self._answer(body["message"])
        return web.json_response([{"recipient_id": body["sender"], "text": t} for t in texts])

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/webhooks/rest/webhook", self.rest)
        sio = socketio.AsyncServer(async_mode="aiohttp", **self.pings)
        sio.attach(app, socketio_path="socket.io")

        @sio.on("connect")
        async def connect(sid, environ, auth=None):
            if self.refuse_connects > 0:
                self.refuse_connects -= 1
                return False
            return environ.get("HTTP_X_FORWARDED_FOR") != REFUSED_ADDRESS

        @sio.on("disconnect")
        async def disconnect(sid, reason):
            self.left[sid] = reason

        @sio.on("session_request")
        async def session_request(sid, data=None):
            # Kefu's resume: the same session again only with the key this server gave for it.
            data = data or {}
            session = f"socket-{sid}"
            if data.get("session_id") and data.get("resume_key") == f"key-{data['session_id']}":
                session = data["session_id"]
            await sio.save_session(sid, {"session": session})
            await sio.emit("resume_key", {"session_id": session, "key": f"key-{session}"}, room=sid)
            await sio.emit("session_confirm", session, room=sid)
            history = {"messages": self.histories.get(session, [])}
            await sio.emit("history", history, room=sid)

        @sio.on("user_uttered")
        async def user_uttered(sid, data):
            session = (await sio.get_session(sid))["session"]
            if data["message"] == DROP and session not in self.flaked:
                self.flaked.add(session)
                await sio.disconnect(sid)  # the replica holding the socket is gone
                return
            self.received.append(
                {
                    "sender": session,
                    "message": data["message"],
                    "forwarded_for": sio.get_environ(sid).get("HTTP_X_FORWARDED_FOR"),
                    "transport": sio.transport(sid),
                }
            )
            if data["message"] == REFUSE:
                refusal = {"error": "rate_limited", "message": "Too many messages."}
                await sio.emit("kefu_error", refusal, room=sid)
                return
            history = self.histories.setdefault(session, [])
            history.append({"role": "user", "text": data["message"]})
            texts = await self._answer(data["message"])
            history.extend({"role": "bot", "text": text} for text in texts)
            if data["message"] == STORED_THEN_DROP and session not in self.flaked:
                self.flaked.add(session)
                await sio.disconnect(sid)
                return
            for text in texts:
                await sio.emit("bot_uttered", {"text": text}, room=sid)

        self.sio = sio
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _shutdown(self) -> None:
        await self.sio.shutdown()
        await self.runner.cleanup()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def __enter__(self) -> StandIn:
        self.thread.start()
        assert self.ready.wait(10), "the stand-in server did not start"
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def stand_in():
    with StandIn() as server:
        yield server


@pytest.fixture(scope="module")
def pinging_stand_in():
    with StandIn(ping_s=PING_S) as server:
        yield server


#: Both ways bench.load carries socket.io: a browser's websocket, engine.io's long-polling.
SOCKETIO_TRANSPORTS = pytest.mark.parametrize("socketio_transport", ["websocket", "polling"])


def script(name: str, language: str, *turns: tuple[str, list[str]]) -> Script:
    return Script(name, language, tuple(Turn(say, tuple(expect)) for say, expect in turns))


ORDER = script(
    "order",
    "en",
    ("hi", ["Kefu"]),
    ("where is my order?", ["order number"]),
    ("KF-100004", ["email address"]),
)
THANKS_ZH = script("thanks", "zh", ("你好", ["Kefu"]), ("谢谢", ["不客气"]))
FAST = (0.01, 0.03, 0.02)  # think time for tests: the shape of THINK_S, in hundredths


def run_stage(url: str, scripts, plan: StagePlan, **kwargs) -> tuple[LoadGenerator, StageRun]:
    generator = LoadGenerator(url, scripts, seed=1, **kwargs)
    return generator, asyncio.run(generator.run_stage(plan))


# --- the conversations file -----------------------------------------------------------------


def test_every_shipped_conversation_is_played_in_both_languages():
    scripts = load_scripts(CONVERSATIONS)
    by_name: dict[str, set[str]] = {}
    for s in scripts:
        by_name.setdefault(s.name, set()).add(s.language)
    assert set(by_name) >= {"order_status", "stock", "returns", "faq", "handoff"}
    assert all(languages == {"en", "zh"} for languages in by_name.values()), by_name


def test_a_turn_that_checks_nothing_is_refused(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("conversations:\n- name: x\n  language: en\n  turns:\n  - say: hi\n")
    with pytest.raises(LoadConfigError, match="checks nothing"):
        load_scripts(path)


# --- judging a reply ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "turn, language, replies, wrong",
    [
        (Turn("hi", ("Kefu",)), "en", ["Hi, I'm kefu."], None),  # case-insensitive
        (Turn("hi", ("Kefu", "help")), "en", ["Hi, I'm Kefu.", "How can I help?"], None),
        (Turn("hi", ("Kefu",)), "en", ["Hello there."], "missing ['Kefu']"),
        (Turn("你好", ("Kefu",)), "zh", ["Hi, I'm Kefu."], "not in zh"),
        (Turn("hi", ("Kefu",)), "en", ["您好，我是 Kefu"], "not in en"),
        (Turn("no", (), ("anything else", "help")), "en", ["Anything else?"], None),
        (Turn("no", (), ("anything else",)), "en", ["Bye."], "none of ['anything else']"),
        (Turn("hi", ("Kefu",)), "en", [], "no text in the reply"),
    ],
)
def test_wrong_reply(turn, language, replies, wrong):
    assert wrong_reply(turn, language, replies) == wrong


# --- stages against the stand-in ------------------------------------------------------------


def test_right_and_wrong_replies_are_counted_apart(stand_in):
    plan = StagePlan(concurrency=4, duration_s=1.0, think_s=FAST, turn_timeout_s=5)
    generator, run = run_stage(stand_in.url, [ORDER, THANKS_ZH], plan)
    summary = summarize(run)
    by_script = {s.label: [t for t in run.turns if t.script == s.label] for s in (ORDER, THANKS_ZH)}
    assert by_script["order/en"] and all(t.outcome == "ok" for t in by_script["order/en"])
    thanks = by_script["thanks/zh"]
    assert thanks and {t.index: t.outcome for t in thanks} == {0: "ok", 1: "wrong"}
    assert "not in zh" not in thanks[-1].detail  # the missing words are named first
    assert "missing ['不客气']" in [t for t in thanks if t.outcome == "wrong"][0].detail
    assert summary["turns_wrong"] == sum(1 for t in run.turns if t.outcome == "wrong") > 0
    assert summary["turns_error"] == 0
    assert summary["conversations"]["wrong"] > 0 and summary["conversations"]["ok"] > 0
    assert summary["latency"]["n"] == summary["turns_ok"] + summary["turns_wrong"]
    # every conversation is its own sender and its own shopper address
    senders = {m["sender"] for m in stand_in.received}
    assert set(generator.sent) <= senders
    addresses = [m["forwarded_for"] for m in stand_in.received if m["sender"] in generator.sent]
    assert len(set(addresses)) == len(generator.sent)
    assert all(a.startswith("198.1") for a in addresses)


def test_server_errors_are_errors_not_wrong_replies(stand_in):
    boom = script("boom", "en", ("hi", ["Kefu"]), (BOOM, ["anything"]))
    plan = StagePlan(concurrency=2, duration_s=0.5, think_s=FAST, turn_timeout_s=5)
    _, run = run_stage(stand_in.url, [boom], plan)
    summary = summarize(run)
    assert summary["turns_error"] > 0 and summary["turns_wrong"] == 0
    # each try's error is told
    assert (
        summary["error_examples"][0]["detail"]
        == "try 1: HTTP 500 internal; try 2: HTTP 500 internal"
    )


def test_a_failed_message_is_sent_again_and_counts_as_retried(stand_in):
    flaky = script("flaky", "en", ("hi", ["Kefu"]), (FLAKY, ["didn't get that"]))
    plan = StagePlan(concurrency=2, duration_s=0.5, think_s=FAST, turn_timeout_s=5)
    _, run = run_stage(stand_in.url, [flaky], plan)
    summary = summarize(run)
    assert summary["turns_error"] == 0 and summary["turns_retried"] == 2
    retried = [t for t in run.turns if t.attempts == 2]
    assert all(t.outcome == "ok" and t.latency_s >= 1.0 for t in retried)  # waited RETRY_AFTER_S
    assert summary["conversations"]["ok"] == 2


def test_the_fault_answer_is_a_request_to_send_again(stand_in):
    # "Sorry, we're having trouble on our side. Please try again shortly." (or in Chinese)
    troubled = script("trouble", "en", ("hi", ["Kefu"]), (TROUBLE, ["didn't get that"]))
    plan = StagePlan(concurrency=2, duration_s=0.5, think_s=FAST, turn_timeout_s=5)
    _, run = run_stage(stand_in.url, [troubled], plan)
    summary = summarize(run)
    assert summary["turns_error"] == summary["turns_wrong"] == 0
    assert summary["turns_retried"] == 2

    # Without a second try it is an error, not a wrong reply, and says so.
    _, run = run_stage(stand_in.url, [troubled], plan, retries=0)
    summary = summarize(run)
    assert summary["turns_wrong"] == 0 and summary["turns_error"] > 0
    assert all("the fault answer: 抱歉" in e["detail"] for e in summary["error_examples"])


def test_fault_answers_are_the_domains_in_both_languages():
    assert len(FAULT_ANSWERS) == 2
    assert "try again" in FAULT_ANSWERS[0] and "稍后再试" in FAULT_ANSWERS[1]


def test_latency_percentiles_reflect_the_servers_time(stand_in):
    slow = script("slow", "en", (SLOW, ["Kefu"]))
    plan = StagePlan(concurrency=3, duration_s=0.8, think_s=None, turn_timeout_s=5)
    _, run = run_stage(stand_in.url, [slow], plan)
    summary = summarize(run)
    assert summary["mode"] == "closed"
    assert SLOW_S * 1e3 <= summary["latency"]["p50_ms"] < SLOW_S * 1e3 + 250
    # closed loop, 3 shoppers, each turn SLOW_S: about 3 / SLOW_S turns a second
    assert 0.5 * 3 / SLOW_S < summary["turns_per_s"] <= 3 / SLOW_S + 0.5


def test_a_stage_stops_by_itself_when_the_server_hangs(stand_in):
    hang = script("hang", "en", (HANG, ["Kefu"]))
    plan = StagePlan(concurrency=5, duration_s=0.5, think_s=FAST, turn_timeout_s=1.0)
    start = time.monotonic()
    _, run = run_stage(stand_in.url, [hang], plan)
    # no new message after 0.5 s; a turn waits 1 s, then 1 s, then 1 s again (one retry)
    assert time.monotonic() - start < 0.5 + 3.0 + 1.0
    summary = summarize(run)
    assert summary["turns_error"] >= 5 and summary["turns_ok"] == 0
    assert "TimeoutError" in summary["error_examples"][0]["detail"]
    assert {t.attempts for t in run.turns} == {2}


def test_conversations_still_running_at_the_end_are_cut_not_failed(stand_in):
    long_think = (5.0, 5.0, 5.0)  # nobody gets to a second turn in a 0.5 s stage
    plan = StagePlan(concurrency=3, duration_s=0.5, think_s=long_think, turn_timeout_s=1.0)
    start = time.monotonic()
    _, run = run_stage(stand_in.url, [ORDER], plan)
    assert time.monotonic() - start < 5.0 + 1.0 + 5.0 + 1.0
    summary = summarize(run)
    assert summary["conversations"] == {"ok": 0, "wrong": 0, "error": 0, "cut": 3}
    assert summary["turns_ok"] == 3  # the first turn of each, answered before the end


def test_conversations_arrive_at_the_rate_asked_and_the_cap_turns_the_rest_away(stand_in):
    plan = StagePlan(
        concurrency=50, duration_s=1.0, think_s=FAST, turn_timeout_s=5, rate_per_s=30.0
    )
    _, run = run_stage(stand_in.url, [ORDER], plan)
    assert 10 <= len(run.conversations) <= 60  # Poisson with mean 30 in 1 s
    assert run.turned_away == 0 and summarize(run)["mode"] == "open 30/s"
    capped = StagePlan(concurrency=1, duration_s=1.0, think_s=(0.5, 0.5, 0.5), rate_per_s=30.0)
    _, run = run_stage(stand_in.url, [ORDER], capped)
    # one conversation at a time, each ≥ 1 s of thinking: the others are turned away
    assert len(run.conversations) == 1 and run.turned_away > 5


@SOCKETIO_TRANSPORTS
def test_a_socketio_conversation_that_cannot_connect_tries_again(stand_in, socketio_transport):
    stand_in.refuse_connects = 1  # the first connection lands on a replica that just died
    # The second try comes 1 s after the first failed (long-polling: at its 2 s timeout).
    plan = StagePlan(1, 4.0, FAST, 2, ("socketio",))
    _, run = run_stage(stand_in.url, [ORDER], plan, socketio_transport=socketio_transport)
    assert run.turns and all(t.outcome == "ok" for t in run.turns)
    assert run.conversations[0]["sender"].startswith("web-socket-")

    stand_in.refuse_connects = 2  # and the second try too: the conversation is lost
    _, run = run_stage(stand_in.url, [ORDER], plan, socketio_transport=socketio_transport)
    first = run.turns[0]
    assert (first.outcome, first.attempts) == ("error", 2)
    assert first.detail.startswith("try 1: socket.io session") and "; try 2: " in first.detail


@SOCKETIO_TRANSPORTS
def test_socketio_conversations_are_judged_like_rest_ones(stand_in, socketio_transport):
    plan = StagePlan(
        concurrency=2, duration_s=1.0, think_s=FAST, turn_timeout_s=5, transports=("socketio",)
    )
    generator, run = run_stage(
        stand_in.url, [ORDER, THANKS_ZH], plan, socketio_transport=socketio_transport
    )
    assert run.turns and {t.transport for t in run.turns} == {"socketio"}
    outcomes = {(t.script, t.index): t.outcome for t in run.turns}
    assert outcomes[("order/en", 2)] == "ok" and outcomes[("thanks/zh", 1)] == "wrong"
    # the tracker store's name of a web chat conversation: channels.live.WEB_SENDER_PREFIX + id
    assert all(sender.startswith("web-socket-") for sender in generator.sent)
    # carried as asked, each shopper with its own address
    seen = [m for m in stand_in.received if "web-" + m["sender"] in generator.sent]
    assert {m["transport"] for m in seen} == {socketio_transport}
    assert len({m["forwarded_for"] for m in seen}) == len(generator.sent)


async def _play(chat: SocketChat, *turns: Turn) -> list[list[str] | TurnFailed]:
    """Opens the chat, says each turn in English, closes; each turn's replies or failure."""
    said: list[list[str] | TurnFailed] = []
    try:
        await chat.open()
        for turn in turns:
            try:
                said.append(await chat.say(turn, "en"))
            except TurnFailed as e:
                said.append(e)
    finally:
        await chat.close()
    return said


def _messages_of(server: StandIn, chat: SocketChat) -> list[dict]:
    return [m for m in server.received if "web-" + m["sender"] == chat.sender]


@SOCKETIO_TRANSPORTS
def test_a_socketio_turn_gets_its_reply_and_a_kefu_error_fails_it(stand_in, socketio_transport):
    chat = SocketChat(stand_in.url, "198.18.0.7", 5.0, socketio_transport)
    hi, refused, again = asyncio.run(
        _play(chat, Turn("hi", ("Kefu",)), Turn(REFUSE, ("Kefu",)), Turn("hi", ("Kefu",)))
    )
    assert hi == again == REPLIES["hi"]  # the session goes on after a refused message
    assert isinstance(refused, TurnFailed) and str(refused) == "kefu_error rate_limited"
    seen = _messages_of(stand_in, chat)
    assert [m["message"] for m in seen] == ["hi", REFUSE, "hi"]
    assert {(m["transport"], m["forwarded_for"]) for m in seen} == {
        (socketio_transport, "198.18.0.7")
    }
    # closed cleanly: the server saw the client leave, not its connection drop
    sid = chat.sender.removeprefix("web-socket-")
    deadline = time.monotonic() + 5
    while sid not in stand_in.left and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stand_in.left[sid] == stand_in.sio.reason.CLIENT_DISCONNECT


@SOCKETIO_TRANSPORTS
def test_server_pings_are_answered_through_a_turn_longer_than_them(
    pinging_stand_in, socketio_transport
):
    # The server pings every PING_S and drops a socket that has not answered PING_S later: a
    # turn of LINGER_S gets its reply only if the client answered the pings in between.
    chat = SocketChat(pinging_stand_in.url, None, 5.0, socketio_transport)
    lingered, hi = asyncio.run(_play(chat, Turn(LINGER, ("after a while",)), Turn("hi", ("Kefu",))))
    assert lingered == ["Hi, I'm Kefu, after a while."] and hi == REPLIES["hi"]
    assert [m["transport"] for m in _messages_of(pinging_stand_in, chat)] == [
        socketio_transport
    ] * 2


@SOCKETIO_TRANSPORTS
@pytest.mark.parametrize("who", ["nobody listening", "the server refusing"])
def test_a_socketio_session_that_does_not_open_fails_like_a_turn(stand_in, socketio_transport, who):
    if who == "nobody listening":
        chat = SocketChat(f"http://127.0.0.1:{free_port()}", None, 2.0, socketio_transport)
    else:
        chat = SocketChat(stand_in.url, REFUSED_ADDRESS, 2.0, socketio_transport)
    start = time.monotonic()
    with pytest.raises(TurnFailed, match="^socket.io session: "):
        asyncio.run(_play(chat))
    assert time.monotonic() - start < 2.0 + 1.0  # refused at once, not at the timeout


@pytest.mark.parametrize(
    "base_url, url",
    [
        ("http://127.0.0.1:8080", "ws://127.0.0.1:8080/socket.io/?EIO=4&transport=websocket"),
        (
            "https://shop.example/kefu/",
            "wss://shop.example/kefu/socket.io/?EIO=4&transport=websocket",
        ),
    ],
)
def test_the_websocket_opens_under_the_base_urls_path(base_url, url):
    assert websocket_url(base_url) == url


# --- statistics, tables, processes ----------------------------------------------------------


def test_summary_of_a_known_stage():
    plan = StagePlan(concurrency=2, duration_s=10.0, think_s=FAST)
    run = StageRun(plan, wall_s=10.0, cpu_s=0.9)
    latencies = [0.1 * i for i in range(1, 12)]  # 100 … 1100 ms
    run.turns = [
        TurnResult("x/en", "rest", "s", i, i, lat, "ok") for i, lat in enumerate(latencies)
    ]
    run.turns[-1].outcome = "wrong"
    run.turns.append(TurnResult("x/en", "rest", "s", 11, 11, 0.0, "error", "HTTP 502"))
    run.conversations = [{"outcome": "ok"}, {"outcome": "wrong"}, {"outcome": "cut"}]
    summary = summarize(run)
    assert (summary["turns_ok"], summary["turns_wrong"], summary["turns_error"]) == (10, 1, 1)
    # nearest rank over the 11 answered turns (the error has no latency)
    assert summary["latency"]["p50_ms"] == pytest.approx(600)
    assert summary["latency"]["p95_ms"] == pytest.approx(1100)
    assert summary["turns_per_s"] == pytest.approx(1.1)  # 11 answered in 10 s
    assert summary["cpu_ms_per_turn"] == pytest.approx(900 / 11)
    table = render([summary])
    assert "| open" in table and "81.82" in table and "1/1" in table


def test_what_customers_saw_is_split_at_each_fault():
    run = StageRun(StagePlan(concurrency=1, duration_s=9.0, think_s=FAST), wall_s=9.0)
    run.turns = [
        TurnResult("x/en", "rest", "s", 0, 1.0, 0.1, "ok"),
        TurnResult("x/en", "rest", "s", 1, 4.0, 0.1, "error", "HTTP 502 bad gateway"),
        TurnResult("x/en", "rest", "s", 2, 7.0, 0.1, "wrong", "missing ['ticket']: trouble"),
    ]
    run.faults = [{"at_s": 3.0, "fault": "kill -9 rasa"}, {"at_s": 6.0, "fault": "kill -9 action"}]
    windows = summarize(run)["around_faults"]
    assert [(w["from_s"], w["ok"], w["error"], w["wrong"]) for w in windows] == [
        (0.0, 1, 0, 0),
        (3.0, 0, 1, 0),
        (6.0, 0, 0, 1),
    ]


def test_pid_files_of_several_shapes_name_every_process(tmp_path):
    path = tmp_path / "pids.json"
    path.write_text(json.dumps({"rasa": [11, 12], "actions-0": {"pid": 21}, "nginx": 31}))
    assert read_pid_file(path) == {"rasa-0": 11, "rasa-1": 12, "actions-0": 21, "nginx": 31}


def test_cluster_pid_records_are_named_by_role(tmp_path):
    path = tmp_path / "pids.json"
    records = [{"name": "rasa-0", "role": "rasa", "pid": 11, "port": 5105},
               {"name": "a0", "role": "actions", "pid": 21, "port": 5155}]  # fmt: skip
    path.write_text(json.dumps({"balancer_url": "http://127.0.0.1:8080", "processes": records}))
    assert read_pid_file(path) == {"rasa-0": 11, "actions/a0": 21}


def test_a_fault_kills_only_a_process_that_still_is_what_the_pid_file_says():
    stranger = subprocess.Popen(["sleep", "30"])  # a recycled pid: not a Rasa server
    replica = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "rasa"])
    try:
        deadline = time.monotonic() + 5  # until both have exec'd and show their command lines
        while time.monotonic() < deadline and not all(
            Path(f"/proc/{p.pid}/cmdline").read_bytes() for p in (stranger, replica)
        ):
            time.sleep(0.02)
        pids = {"rasa-0": stranger.pid, "rasa-1": replica.pid}
        assert kill_one(pids, "rasa") == {
            "fault": "kill -9 rasa",
            "process": "rasa-1",
            "pid": replica.pid,
        }
        assert replica.wait(5) == -9 and stranger.poll() is None
        assert kill_one(pids, "rasa")["process"] is None  # nothing left to kill
    finally:
        for process in (stranger, replica):
            process.kill()
            process.wait()


def test_cpu_meter_counts_this_process_working():
    meter = CpuMeter([os.getpid()])
    before = meter.sample()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert meter.sample() - before >= 0.15


def test_cpu_meter_splits_by_kind_of_server():
    worker = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: pass"])
    try:
        meter = CpuMeter({"rasa/rasa-1": os.getpid(), "actions-2": worker.pid})
        before = meter.by_group()
        deadline = time.monotonic() + 10  # a busy machine gives the child its 0.15 s later
        after = meter.by_group()
        while after.get("actions", 0.0) - before.get("actions", 0.0) < 0.15:
            assert time.monotonic() < deadline, after
            time.sleep(0.1)
            after = meter.by_group()
    finally:
        worker.kill()
        worker.wait()

    assert {"rasa", "actions"} <= set(after)
    assert after["actions"] - before.get("actions", 0.0) >= 0.15
    assert meter.sample() == pytest.approx(after["rasa"] + after["actions"], abs=0.05)


# --- the tracker store audit ----------------------------------------------------------------


def _event(kind: str, ts: float, **data) -> tuple[str, str]:
    return kind, json.dumps({"event": kind, "timestamp": ts, **data})


def test_a_complete_conversation_passes_the_audit():
    rows = [
        _event("user", 1.0, text="hi", message_id="m1"),
        _event("action", 1.1, name="utter_greet"),
        _event("action", 1.2, name="action_listen"),
        _event("user", 2.0, text="bye", message_id="m2"),
        _event("action", 2.2, name="action_listen"),
    ]
    sent = [TurnResult("x/en", "rest", "s", i, 0, 0.1, "ok") for i in range(2)]
    assert audit_events(rows, sent) == {
        "user_events": 2,
        "answered": 2,
        "sent": 2,
        "missing": 0,
        "extra": 0,
        "duplicated": 0,
        "unfinished": 0,
    }


def test_the_audit_finds_lost_duplicated_and_unfinished_turns():
    rows = [
        _event("user", 1.0, text="hi", message_id="m1"),
        _event("action", 1.2, name="action_listen"),
        _event("user", 1.0, text="hi", message_id="m1"),  # applied twice (a replayed message)
        _event("action", 1.2, name="action_listen"),
    ]
    sent = [TurnResult("x/en", "rest", "s", i, 0, 0.1, "ok") for i in range(3)]
    audit = audit_events(rows, sent)
    assert audit["duplicated"] == 3  # the user event (twice: JSON and message id), the listen
    assert audit["missing"] == 1  # three answered, two user events stored
    unfinished = audit_events([_event("user", 1.0, text="hi", message_id="m1")], sent[:1])
    assert unfinished["unfinished"] == 1
    handed_over = [
        _event("user", 1.0, text="a person please", message_id="m1"),
        _event("action", 1.1, name="action_handoff"),
        ("pause", json.dumps({"event": "pause", "timestamp": 1.2})),  # a person takes over
    ]
    assert audit_events(handed_over, sent[:1])["unfinished"] == 0


# --- the command line -----------------------------------------------------------------------


def test_command_line_writes_json_and_table(stand_in, tmp_path):
    conversations = tmp_path / "conversations.yml"
    conversations.write_text(
        "conversations:\n- name: order\n  language: en\n  turns:\n"
        "  - say: hi\n    expect: [Kefu]\n  - say: where is my order?\n    expect: [order number]\n"
    )
    out = tmp_path / "load.json"
    argv = [
        "--url", stand_in.url, "--stages", "1,2", "--stage-s", "0.5", "--closed-loop",
        "--transports", "rest", "--conversations", str(conversations), "--out", str(out),
        "--pid", str(os.getpid()), "--warmup-s", "0.3",
    ]  # fmt: skip
    assert main(argv) == 0
    results = json.loads(out.read_text())
    assert [s["concurrency"] for s in results["stages"]] == [1, 2]
    assert results["cpu_count"] == os.cpu_count()
    assert all(s["turns_ok"] > 0 and s["turns_wrong"] == 0 for s in results["stages"])
    assert all(s["cpu_ms_per_turn"] is not None for s in results["stages"])
    # The generator's own CPU is reported beside the servers', never counted as theirs.
    assert all("load generator" in s["cpu_ms_per_turn_by_process"] for s in results["stages"])
    assert "p99 ms" in Path(out.with_suffix(".md")).read_text()


def test_command_line_plays_socketio_over_the_transport_asked_and_says_which(stand_in, tmp_path):
    conversations = tmp_path / "conversations.yml"
    conversations.write_text(
        "conversations:\n- name: order\n  language: en\n  turns:\n  - say: hi\n    expect: [Kefu]\n"
    )
    for transport in ("polling", None):  # None: the default, websocket
        out = tmp_path / f"load-{transport}.json"
        argv = [
            "--url", stand_in.url, "--stages", "1", "--stage-s", "0.5", "--closed-loop",
            "--transports", "socketio", "--conversations", str(conversations),
            "--out", str(out), "--warmup-s", "0",
        ] + (["--socketio-transport", transport] if transport else [])  # fmt: skip
        assert main(argv) == 0
        results = json.loads(out.read_text())
        assert results["socketio_transport"] == (transport or "websocket")
        stage = results["stages"][0]
        assert stage["turns_ok"] > 0 and stage["turns_error"] == 0


def test_command_line_refuses_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["--stages", "10,zero"])
    assert "--stages wants positive integers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--socketio-transport", "carrier-pigeon"])
    assert "invalid choice: 'carrier-pigeon'" in capsys.readouterr().err


@pytest.mark.postgres
def test_the_audit_reads_rasas_own_tracker_store_in_postgresql():
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from sqlalchemy import create_engine, text

    from bench.load import audit_tracker_store
    from tests.postgres import ensure_database

    url = ensure_database("kefu_test_load_audit")
    user = url.split("//", 1)[1].split("@", 1)[0]
    store = SQLTrackerStore(
        Domain.empty(), dialect="postgresql", host="127.0.0.1", port=5432,
        db="kefu_test_load_audit", username=user,
    )  # fmt: skip
    sender = f"load-audit-{os.getpid()}-{time.monotonic_ns()}"
    events = [
        UserUttered("hi", message_id="m1"),
        ActionExecuted("utter_greet"),
        ActionExecuted("action_listen"),
    ]
    asyncio.run(store.save(DialogueStateTracker.from_events(sender, events)))
    sent = {sender: [TurnResult("x/en", "rest", sender, 0, 0, 0.1, "ok")]}
    engine = create_engine(url)
    try:
        assert audit_tracker_store(url, sent)["conversations_with_problems"] == []
        with engine.begin() as conn:  # the same message stored a second time
            conn.execute(
                text(
                    "INSERT INTO events (sender_id, type_name, timestamp, intent_name,"
                    " action_name, data) SELECT sender_id, type_name, timestamp, intent_name,"
                    " action_name, data FROM events WHERE sender_id = :s AND type_name = 'user'"
                ),
                {"s": sender},
            )
        audit = audit_tracker_store(url, sent)
        assert audit["duplicated"] == 2 and audit["unfinished"] == 1
        assert [c["sender"] for c in audit["conversations_with_problems"]] == [sender]
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM events WHERE sender_id = :s"), {"s": sender})
        engine.dispose()
        store.engine.dispose()


@SOCKETIO_TRANSPORTS
def test_an_answer_stored_before_the_socket_was_lost_is_read_from_the_history(
    stand_in, socketio_transport
):
    stored = script(
        "stored", "en", ("hi", ["Kefu"]), (STORED_THEN_DROP, ["didn't get"]), ("hi", ["Kefu"])
    )
    plan = StagePlan(1, 4.0, FAST, 5, ("socketio",))

    _, run = run_stage(stand_in.url, [stored], plan, socketio_transport=socketio_transport)

    turns = [t for t in run.turns if t.outcome != "cut"]
    assert [t.outcome for t in turns[:3]] == ["ok", "ok", "ok"], turns
    assert turns[1].attempts == 2  # the page reconnected and showed the stored answer
    session = turns[0].sender.removeprefix(WEB_SENDER_PREFIX)
    sent = [m["message"] for m in stand_in.received if m["sender"] == session]
    assert sent[:3] == ["hi", STORED_THEN_DROP, "hi"]  # not sent twice


def test_the_answer_in_the_history_is_the_one_after_the_last_customer_message():
    history = [
        {"role": "user", "text": "hi"},
        {"role": "bot", "text": "Hello!"},
        {"role": "user", "text": "where is my order?"},
        {"role": "bot", "text": "Which order?", "quick_replies": []},
        {"role": "agent", "text": "Anna here.", "agent": "Anna"},
    ]
    assert answer_in_history(history, "where is my order?") == ["Which order?", "Anna here."]
    assert answer_in_history(history, "hi") == []  # an earlier message: this one was not stored
    assert answer_in_history(history[:3], "where is my order?") == []  # stored, not answered
    assert answer_in_history([], "hi") == []


@SOCKETIO_TRANSPORTS
def test_a_lost_socket_reconnects_resumes_its_session_and_sends_again(stand_in, socketio_transport):
    dropped = script("dropped", "en", ("hi", ["Kefu"]), (DROP, ["Kefu"]), ("hi", ["Kefu"]))
    plan = StagePlan(1, 4.0, FAST, 5, ("socketio",))

    generator, run = run_stage(stand_in.url, [dropped], plan, socketio_transport=socketio_transport)

    turns = [t for t in run.turns if t.outcome != "cut"]
    assert [t.outcome for t in turns[:3]] == ["ok", "ok", "ok"], turns
    assert turns[1].attempts == 2  # sent again on the new connection
    sender = turns[0].sender
    assert {t.sender for t in turns[:3]} == {sender}
    session = sender.removeprefix(WEB_SENDER_PREFIX)
    assert [m["message"] for m in stand_in.received if m["sender"] == session][:3] == [
        "hi",
        DROP,
        "hi",
    ]
