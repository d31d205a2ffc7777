"""End-to-end load on a running Kefu: real bilingual conversations, checked turn by turn.

    .venv/bin/python -m bench.load --url http://127.0.0.1:8080 [--stages 10,50,200]
        [--stage-s 120] [--closed-loop] [--transports rest,socketio]
        [--socketio-transport websocket|polling] [--pids var/cluster/pids.json]
        [--faults] [--tracker-db postgresql://postgres@127.0.0.1:5432/kefu_cluster_tracker]

Each simulated shopper plays one conversation of bench/data/load_conversations.yml (order
tracking with verification, stock, returns, FAQ, handoff; English and Chinese, the demo seed's
accounts) over REST (``/webhooks/rest/webhook``) or the web chat's socket.io, and every reply is
checked against what that turn must say: a wrong answer counts as wrong, not as a success.

socket.io runs over WebSocket by default (``--socketio-transport websocket``), as a browser's chat
page does once engine.io has upgraded: a small Engine.IO v4 / Socket.IO v5 client here on the
``websockets`` package that Sanic brings (python-engineio 4.15's own websocket client needs
aiohttp ≥ 3.10, and Rasa 3.6 pins 3.9). ``--socketio-transport polling`` plays them over
engine.io long-polling with python-socketio's client instead, as a browser without WebSocket
does (each poll its own request; nginx keeps them on one replica by the sticky cookie, which the
client keeps even for an IP-address host). Either way the turn is the
same: over once the replies are right (or nothing more came for ``SOCKET_QUIET_S``), an error on
``kefu_error`` or no reply; the results record which transport ran (``socketio_transport``).

Load, per stage of the ramp (default 10 → 50 → 200 concurrent conversations):
- open loop (default): each conversation waits a random 3–10 s (triangular, mean 6 s) before its
  next message, as shoppers read and type; a finished conversation is replaced by a new one, so
  the stage holds its concurrency until its time is up (≈ concurrency / 6.6 turns/s);
- ``--rate R``: conversations arrive at R a second (Poisson) whatever the replies' speed, the
  stage's concurrency being the most at once (arrivals beyond it are counted, turned away);
- ``--closed-loop``: no think time, the maximum the server sustains at that concurrency.
A web chat conversation whose connection is lost reconnects and resumes its session, as the
page does; the page then shows the conversation's history, so a message whose answer is there
is not sent again. A message that fails (HTTP error, refused, no reply in ``--turn-timeout-s``,
or Kefu's own "we're having trouble, please try again shortly" of domain/faults.yml) is sent
again once after 1 s (``--retries``), as a shopper's client or the shopper told to try again
would; a turn that still fails is an error and its conversation is lost. Every stage stops by
itself: no new message after ``--stage-s``, and whatever is still waiting is cancelled once
its last try could have timed out.

Reported per stage: turns, right / wrong / errors, per-turn latency p50 / p95 / p99 (of answered
turns), turns/s, conversations cut by the stage's end, and the servers' CPU milliseconds per turn
served (utime + stime from /proc/<pid>/stat of the given pids and their children, before and
after the stage; ``var/cluster/pids.json`` when it exists, else ``--pid``), with os.cpu_count().
Results go to bench/results/load.json and load.md.

``--faults`` (the last stage): kills one Rasa replica with SIGKILL at a third of the stage and one
action server at half (both from the cluster's pid file), and reports what the customers saw in
each window. The system RabbitMQ is shared by everyone on the machine, so it is not stopped here:
a broker outage is simulated by starting the cluster with ``KEFU_RABBITMQ_HOST`` pointing at an
address where nothing listens (see deploy/README.md). With ``--tracker-db`` the run ends with an
audit of the tracker store: every conversation's user messages there, each once, and every
answered turn finished (an ``action_listen`` after it).

Simulated shoppers each send ``X-Forwarded-For`` with their own address from 198.18.0.0/15 (the
range RFC 2544 sets aside for benchmarks), so the per-client limits count shoppers, not the load
generator; the servers must list the balancer (or 127.0.0.1) in ``KEFU_TRUSTED_PROXIES``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import random
import re
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

from bench.common import RESULTS_DIR, format_table, percentiles, write_results

ROOT = Path(__file__).resolve().parents[1]
CONVERSATIONS = Path(__file__).resolve().parent / "data" / "load_conversations.yml"
CLUSTER_PIDS = ROOT / "var" / "cluster" / "pids.json"
REST_PATH = "/webhooks/rest/webhook"
SOCKETIO_PATH = "/socket.io"
DEFAULT_STAGES = (10, 50, 200)
#: Think time between a reply and the next message: 3–10 s, mode 5 s, so the mean is 6 s.
THINK_S = (3.0, 10.0, 5.0)
#: A socket.io turn is over once the reply is right, or when nothing more came for this long.
SOCKET_QUIET_S = 2.0
#: A shopper whose message failed (a 502 from a killed replica) sends it again after this long.
RETRY_AFTER_S = 1.0
HAN = re.compile(r"[\u4e00-\u9fff]")
#: RFC 2544's benchmarking range: addresses that are no real shopper's.
BENCH_NETWORK = ipaddress.ip_network("198.18.0.0/15")
CLK_TCK = os.sysconf("SC_CLK_TCK")


class LoadConfigError(ValueError):
    """The conversations file or the command line asks for something the benchmark cannot do."""


# --- conversations and how a reply is judged ----------------------------------------------


@dataclass(frozen=True)
class Turn:
    """One message of a shopper and what the reply to it must contain."""

    say: str
    expect: tuple[str, ...] = ()
    expect_any: tuple[str, ...] = ()


@dataclass(frozen=True)
class Script:
    """A conversation a simulated shopper plays from start to end."""

    name: str
    language: str
    turns: tuple[Turn, ...]
    weight: float = 1.0

    @property
    def label(self) -> str:
        return f"{self.name}/{self.language}"


def load_scripts(path: Path = CONVERSATIONS) -> list[Script]:
    """Reads the conversations file.

    Raises:
        LoadConfigError: a conversation without turns, a turn without `say` or without any
            expectation, or a language other than en / zh.
    """
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    scripts = []
    for number, entry in enumerate(data.get("conversations") or [], start=1):
        where = f"{path}: conversation {number} ({entry.get('name', '?')})"
        if entry.get("language") not in ("en", "zh"):
            raise LoadConfigError(
                f"{where}: language must be en or zh, got {entry.get('language')!r}"
            )
        turns = []
        for turn in entry.get("turns") or []:
            if not str(turn.get("say", "")).strip():
                raise LoadConfigError(f"{where}: every turn needs a non-empty `say`")
            expect = tuple(str(s) for s in turn.get("expect") or ())
            expect_any = tuple(str(s) for s in turn.get("expect_any") or ())
            if not expect and not expect_any:
                # A turn nothing is checked on could hide a wrong answer: refuse it.
                raise LoadConfigError(f"{where}: turn {turn['say']!r} checks nothing")
            turns.append(Turn(str(turn["say"]), expect, expect_any))
        if not turns:
            raise LoadConfigError(f"{where}: no turns")
        weight = float(entry.get("weight", 1.0))
        if weight <= 0:
            raise LoadConfigError(f"{where}: weight must be positive, got {weight}")
        scripts.append(Script(str(entry["name"]), entry["language"], tuple(turns), weight))
    if not scripts:
        raise LoadConfigError(f"{path}: no conversations")
    return scripts


def wrong_reply(turn: Turn, language: str, replies: Sequence[str]) -> str | None:
    """Why the replies to ``turn`` are wrong, or None when they say what they must.

    Args:
        turn: the message sent and its expectations.
        language: the conversation's language (``en`` or ``zh``).
        replies: the texts of the bot's messages for this turn.
    """
    text = " ".join(r for r in replies if r)
    if not text.strip():
        return "no text in the reply"
    folded = text.casefold()
    missing = [s for s in turn.expect if s.casefold() not in folded]
    if missing:
        return f"missing {missing!r}"
    if turn.expect_any and not any(s.casefold() in folded for s in turn.expect_any):
        return f"none of {list(turn.expect_any)!r}"
    if bool(HAN.search(text)) != (language == "zh"):
        return f"not in {language}"
    return None


# --- transports -----------------------------------------------------------------------------


class TurnFailed(Exception):
    """The server gave no usable answer to a message (HTTP error, refused, timed out)."""


def answer_in_history(history: Sequence[Mapping[str, Any]], text: str) -> list[str]:
    """The replies to ``text`` that a web chat page shows after reconnecting, or [].

    The page draws the conversation's ``history`` again on every reconnect: when the message in
    flight is the last customer message there and replies follow it, the turn was stored and the
    customer reads its answer without sending again (a replica killed after saving the turn and
    before sending it). The conversation scripts never send the same text twice in a row, so the
    last customer message being ``text`` means this one.
    """
    users = [i for i, m in enumerate(history) if m.get("role") == "user"]
    if not users or history[users[-1]].get("text") != text:
        return []
    after = history[users[-1] + 1 :]
    return [m.get("text", "") for m in after if m.get("role") in ("bot", "agent")]


def fault_answers(domain_file: Path = ROOT / "domain" / "faults.yml") -> tuple[str, ...]:
    """Kefu's "we're having trouble, please try again shortly", in each language: the answer to
    a turn that a failure behind Rasa ended, which asks the shopper to send it again."""
    responses = yaml.safe_load(domain_file.read_text(encoding="utf-8"))["responses"]
    return tuple(variant["text"] for variant in responses["utter_service_trouble"])


FAULT_ANSWERS = fault_answers()


def shopper_address(number: int) -> str:
    """The simulated shopper's own address in the benchmarking range."""
    return str(BENCH_NETWORK[1 + number % (BENCH_NETWORK.num_addresses - 2)])


class RestChat:
    """A conversation over Kefu's REST channel (one POST per message, replies in the body)."""

    transport = "rest"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        sender: str,
        address: str | None,
        rest_secret: str | None,
        timeout_s: float,
    ) -> None:
        self.session = session
        self.url = base_url.rstrip("/") + REST_PATH
        self.sender = sender
        self.headers = {"X-Forwarded-For": address} if address else {}
        if rest_secret:
            signature = hmac.new(rest_secret.encode(), sender.encode(), hashlib.sha256)
            self.headers["X-Kefu-Signature"] = signature.hexdigest()
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.answered_at = 0.0  # when the last reply arrived (monotonic)

    async def open(self) -> None:
        """Nothing to open: every REST message stands alone."""

    async def say(self, turn: Turn, language: str) -> list[str]:
        body = {"sender": self.sender, "message": turn.say}
        try:
            async with self.session.post(
                self.url, json=body, headers=self.headers, timeout=self.timeout
            ) as reply:
                payload = await reply.json(content_type=None)
                if reply.status != 200:
                    code = payload.get("error") if isinstance(payload, dict) else payload
                    raise TurnFailed(f"HTTP {reply.status} {code}")
        except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError) as e:
            raise TurnFailed(f"{type(e).__name__}: {e}") from e
        self.answered_at = time.monotonic()
        return [m.get("text", "") for m in payload if isinstance(m, dict)]

    async def close(self) -> None:
        """Nothing to close: the session is shared."""


#: The web chat's events a socket.io conversation listens to; its links pass on only these.
SOCKET_EVENTS = ("session_confirm", "resume_key", "history", "bot_uttered", "kefu_error")
#: What a link delivers itself when its connection ends (the server died or closed it).
LINK_LOST = "link_lost"


def _socketio_endpoint(base_url: str) -> tuple[str, str]:
    """``(scheme://host[:port], path of socket.io)``, under the base URL's own path as the REST
    channel's is."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/") + SOCKETIO_PATH


def websocket_url(base_url: str) -> str:
    """Where engine.io's websocket transport opens: ``ws(s)://host/<path>/socket.io/?EIO=4&…``."""
    origin, path = _socketio_endpoint(base_url)
    return re.sub(r"^http", "ws", origin) + path + "/?EIO=4&transport=websocket"


class WebSocketLink:
    """Socket.IO v5 over Engine.IO v4's websocket transport, spoken here on ``websockets``.

    What a browser's chat page ends up on. Minimal: the default namespace, text packets only
    (the web chat sends no binary), no reconnection. One websocket message is one engine.io
    packet: ``0{…}`` open, ``2`` ping (answered ``3``), ``1`` close, ``4…`` a socket.io packet:
    ``40`` connect (answered ``40{"sid": …}``, or ``44{…}`` when refused), ``41`` disconnect,
    ``42["event", data]`` an event.
    """

    def __init__(
        self, base_url: str, headers: Mapping[str, str], timeout_s: float, deliver
    ) -> None:
        self.url = websocket_url(base_url)  # timeout_s: the caller times the whole handshake
        self.headers = dict(headers)
        self.deliver = deliver  # called with (event, data) for each of SOCKET_EVENTS
        self.ws = None
        self.reader: asyncio.Task | None = None
        self.joined: asyncio.Future | None = None  # the server's answer to our 40
        self.lost: str | None = None  # why the connection ended, once it has
        self.heard_at: float | None = None  # when the server last sent anything (monotonic)

    async def connect(self) -> None:
        import websockets  # Sanic's dependency; the asyncio client of websockets 10

        self.joined = asyncio.get_running_loop().create_future()
        # No websocket-level pings: engine.io's heartbeat keeps the socket, as in a browser.
        self.ws = await websockets.connect(
            self.url,
            extra_headers=self.headers,
            open_timeout=None,  # the caller's timeout covers the whole handshake
            ping_interval=None,
            close_timeout=SOCKET_QUIET_S,
        )
        self.reader = asyncio.create_task(self._read())
        await self.joined

    def _is_joined(self) -> bool:
        joined = self.joined
        return bool(joined and joined.done() and not joined.cancelled() and not joined.exception())

    async def emit(self, event: str, data: Any) -> None:
        if self.lost or not self._is_joined():
            raise ConnectionError(self.lost or "socket.io is not connected")
        await self.ws.send("42" + json.dumps([event, data], ensure_ascii=False))

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        why = "the server ended engine.io"
        try:
            async for message in self.ws:
                self.heard_at = time.monotonic()
                if not isinstance(message, str) or not message:
                    continue  # binary attachments: no event of the web chat has any
                kind, body = message[0], message[1:]
                if kind == "2":  # ping: the server drops a socket that does not answer
                    await self.ws.send("3")
                elif kind == "0":  # open: {"sid", "pingInterval", "pingTimeout", …}
                    await self.ws.send("40")  # join the default namespace
                elif kind == "4" and not self._socketio(body):
                    why = "the server ended the socket.io session"
                    break
                elif kind == "1":
                    break
        except ConnectionClosed as e:
            why = f"websocket closed ({e})"
        finally:
            self.lost = why
            if not self.joined.done():
                self.joined.set_exception(ConnectionError(why))
            else:
                self.deliver((LINK_LOST, why))

    def _socketio(self, packet: str) -> bool:
        """Handles one socket.io packet; False when the server ended the session."""
        kind, rest = packet[:1], packet[1:]
        if rest.startswith("/"):  # another namespace than "/": not the web chat's
            namespace, _, rest = rest.partition(",")
            if namespace != "/":
                return True
        rest = rest.lstrip("0123456789")  # an ack id: the web chat asks for none
        if kind == "0":
            if not self.joined.done():
                self.joined.set_result(json.loads(rest) if rest else {})
        elif kind == "4":
            if not self.joined.done():
                self.joined.set_exception(ConnectionError(f"socket.io refused: {rest}"))
            return False
        elif kind == "1":
            return False
        elif kind == "2":
            event, *args = json.loads(rest)
            if event in SOCKET_EVENTS:
                self.deliver((event, args[0] if args else None))
        return True

    def describe(self) -> str:
        """The connection's state, for an error that needs explaining."""
        if self.lost:
            return f"lost: {self.lost}"
        if self.heard_at is None:
            return "open, nothing heard"
        return f"open, last heard {time.monotonic() - self.heard_at:.1f} s ago"

    async def close(self) -> None:
        """``41`` (leave the namespace), then the websocket's closing handshake."""
        if self.ws is not None:
            if self._is_joined() and not self.lost:
                with contextlib.suppress(Exception):
                    await self.ws.send("41")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), SOCKET_QUIET_S)
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self.reader


class PollingLink:
    """Socket.IO over engine.io's long-polling, python-socketio's client: a browser without
    WebSocket. Each poll is an HTTP request, so a reply may wait for the poll in flight."""

    def __init__(
        self, base_url: str, headers: Mapping[str, str], timeout_s: float, deliver
    ) -> None:
        self.origin, self.path = _socketio_endpoint(base_url)
        self.headers = dict(headers)
        self.timeout_s = timeout_s
        self.deliver = deliver  # called with (event, data) for each of SOCKET_EVENTS
        self.http: aiohttp.ClientSession | None = None
        self.sio = None

    async def connect(self) -> None:
        import socketio  # python-socketio; only this transport needs it

        # One cookie jar per shopper, as one browser each: a balancer's sticky cookie is theirs.
        # `unsafe`: aiohttp's jar otherwise drops every cookie of an IP-address host
        # (127.0.0.1), and with two replicas half the polls would reach the wrong one.
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        # engine.io's 5 s request timeout would call a busy server's handshake "refused".
        self.sio = socketio.AsyncClient(
            reconnection=False,
            http_session=self.http,
            handle_sigint=False,
            request_timeout=self.timeout_s,
        )
        for event in SOCKET_EVENTS:
            self.sio.on(event, self._collector(event))
        self.sio.on("disconnect", self._collector(LINK_LOST))
        await self.sio.connect(
            self.origin,
            socketio_path=self.path,
            transports=["polling"],
            headers=self.headers,
            wait_timeout=self.timeout_s,  # the namespace's answer (1 s by default), as websocket
        )

    def _collector(self, event: str):
        async def collect(data=None):
            self.deliver((event, data))

        return collect

    async def emit(self, event: str, data: Any) -> None:
        if self.sio is None:
            raise ConnectionError("socket.io is not connected")
        await self.sio.emit(event, data)

    def describe(self) -> str:
        """The connection's state, for an error that needs explaining."""
        return f"engine.io {self.sio.eio.state}" if self.sio is not None else "not connected"

    async def close(self) -> None:
        if self.sio is None:
            return
        # Not python-socketio's disconnect: it waits for the long-poll in flight, which the
        # server ends at its next ping (~25 s). engine.io's close packet is posted here, as
        # disconnect(abort=True) drops it from its queue unsent; the server then ends the
        # session at once, and closing the HTTP session ends the poll in flight.
        eio = self.sio.eio
        writer, reader = eio.write_loop_task, eio.read_loop_task
        if eio.state == "connected":
            with contextlib.suppress(Exception):
                async with self.http.post(
                    eio.base_url,
                    data="1",
                    headers={**self.headers, "Content-Type": "text/plain"},
                    timeout=aiohttp.ClientTimeout(total=SOCKET_QUIET_S),
                ):
                    pass
        with contextlib.suppress(Exception):
            await asyncio.wait_for(eio.disconnect(abort=True), SOCKET_QUIET_S)
        await self.http.close()
        if writer is not None:
            writer.cancel()  # waiting for packets that will not come
        for task in (writer, reader):
            if task is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(task, SOCKET_QUIET_S)


#: What carries a socket.io conversation (``--socketio-transport``).
SOCKET_LINKS = {"websocket": WebSocketLink, "polling": PollingLink}


class SocketChat:
    """A conversation over the web chat's socket.io events, as the chat page speaks them.

    The turns are played here the same whatever carries the packets: ``link`` names the
    transport beneath (:data:`SOCKET_LINKS`), a browser's ``websocket`` or engine.io's
    long-``polling``.
    """

    transport = "socketio"

    def __init__(
        self, base_url: str, address: str | None, timeout_s: float, link: str = "websocket"
    ) -> None:
        from channels.live import WEB_SENDER_PREFIX

        self.headers = {"X-Forwarded-For": address} if address else {}
        self.timeout_s = timeout_s
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.link_args = (base_url, self.headers, timeout_s, self.inbox.put_nowait)
        self.link = SOCKET_LINKS[link](*self.link_args)
        self.sender: str | None = None
        self.resume: dict[str, Any] | None = None  # the server's resume key for this session
        self.lost = False  # the connection ended; the next message reconnects first
        self.history: list[dict[str, Any]] = []  # what the server sent on the last (re)connect
        self.sender_prefix = WEB_SENDER_PREFIX
        self.answered_at = 0.0  # when the last message of the reply arrived (monotonic)

    async def open(self) -> None:
        """Connects and asks for a new session; after a failed try, on a new connection."""
        try:
            await (self._reconnect() if self.lost else self._join())
        except TurnFailed:
            self.lost = True
            raise

    async def _join(self) -> None:
        """Connects and asks for the session: a new one, or after a lost connection the same
        one with its resume key, as the chat page does when its socket reconnects (the
        conversation then goes on, on whichever replica the balancer picks)."""
        resume = self.resume or {}
        try:
            await asyncio.wait_for(self.link.connect(), self.timeout_s)
            await self.link.emit(
                "session_request",
                {"session_id": resume.get("session_id"), "resume_key": resume.get("key")},
            )
            confirmed = history = None
            while confirmed is None or history is None:  # the web chat sends history last
                event, data = await asyncio.wait_for(self.inbox.get(), self.timeout_s)
                if event == "resume_key" and isinstance(data, dict):
                    self.resume = data
                elif event == "session_confirm":
                    confirmed = str(data)
                elif event == "history":
                    history = (data or {}).get("messages") if isinstance(data, dict) else None
                    history = history if isinstance(history, list) else []
            self.history = [m for m in history if isinstance(m, dict)]
        except Exception as e:  # socketio, websockets and aiohttp raise their own errors
            raise TurnFailed(f"socket.io session: {type(e).__name__}: {e}") from e
        # The tracker store keeps a web chat conversation under the prefixed id.
        sender = self.sender_prefix + confirmed
        if self.sender is not None and sender != self.sender:
            raise TurnFailed(f"socket.io session not resumed: {self.sender} became {sender}")
        self.sender = sender
        self.lost = False

    async def _reconnect(self) -> None:
        await self.link.close()
        self.link = type(self.link)(*self.link_args)
        await self._join()

    async def say(self, turn: Turn, language: str) -> list[str]:
        if self.lost:  # the last try lost the connection: reconnect, resume, send again
            await self._reconnect()
            shown = answer_in_history(self.history, turn.say)
            if shown:  # stored before the replica died: the page shows it, nothing to send
                self.answered_at = time.monotonic()
                return shown
        while not self.inbox.empty():  # late messages of the previous turn are not this reply
            self.inbox.get_nowait()
        try:
            await self.link.emit("user_uttered", {"message": turn.say})
        except Exception as e:
            self.lost = True
            raise TurnFailed(f"socket.io emit: {type(e).__name__}: {e}") from e
        replies: list[str] = []
        deadline = time.monotonic() + self.timeout_s
        while True:
            # Until the first message, wait as long as a turn may take; after it, the turn is
            # over when nothing more comes for a moment (Rasa sends no end-of-turn event).
            wait = deadline - time.monotonic() if not replies else SOCKET_QUIET_S
            try:
                event, data = await asyncio.wait_for(self.inbox.get(), max(wait, 0.001))
            except asyncio.TimeoutError:
                if not replies:
                    raise TurnFailed(f"no reply (connection {self.link.describe()})") from None
                return replies
            if event == LINK_LOST:
                self.lost = True
                raise TurnFailed(f"socket.io connection lost: {data}")
            if event == "kefu_error":  # {"error": code, "message": …}: refused, not answered
                raise TurnFailed(
                    f"kefu_error {data.get('error') if isinstance(data, dict) else data}"
                )
            if event == "bot_uttered" and isinstance(data, dict):
                replies.append(data.get("text", ""))
                self.answered_at = time.monotonic()  # the quiet wait after it is not latency
                if wrong_reply(turn, language, replies) is None:
                    return replies  # latency ends when the reply is complete enough to be right

    async def close(self) -> None:
        await self.link.close()


# --- one stage of load ----------------------------------------------------------------------


@dataclass
class TurnResult:
    """One message sent and what came back."""

    script: str
    transport: str
    sender: str
    index: int
    sent_at: float  # seconds since the stage started
    latency_s: float
    outcome: str  # ok | wrong | error
    detail: str = ""
    attempts: int = 1  # sent again after an error (--retries)


@dataclass
class StagePlan:
    """What one stage does."""

    concurrency: int
    duration_s: float
    think_s: tuple[float, float, float] | None  # None: closed loop
    turn_timeout_s: float = 30.0
    transports: tuple[str, ...] = ("rest",)
    #: Conversations started per second (Poisson arrivals), ``concurrency`` being the cap;
    #: None: ``concurrency`` shoppers, each starting a new conversation when one ends.
    rate_per_s: float | None = None


@dataclass
class StageRun:
    """What happened in a stage."""

    plan: StagePlan
    turns: list[TurnResult] = field(default_factory=list)
    conversations: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float | None = None
    cpu_by_group: dict[str, float] = field(default_factory=dict)
    faults: list[dict[str, Any]] = field(default_factory=list)
    turned_away: int = 0  # arrivals that found ``concurrency`` conversations already running


class LoadGenerator:
    """Plays conversations against one base URL, stage by stage."""

    def __init__(
        self,
        base_url: str,
        scripts: Sequence[Script],
        *,
        seed: int = 0,
        forwarded_for: bool = True,
        rest_secret: str | None = None,
        socketio_transport: str = "websocket",
        run_id: str | None = None,
        retries: int = 1,
    ) -> None:
        self.base_url = base_url
        self.scripts = list(scripts)
        self.rng = random.Random(seed)
        self.forwarded_for = forwarded_for
        self.rest_secret = rest_secret
        if socketio_transport not in SOCKET_LINKS:
            raise LoadConfigError(
                f"socket.io transport {socketio_transport!r}: {' or '.join(SOCKET_LINKS)}"
            )
        self.socketio_transport = socketio_transport
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self.retries = retries
        self.started = 0  # conversations started in this run, for unique senders and addresses
        #: Every conversation's sender and the turns it sent, for the tracker store audit.
        self.sent: dict[str, list[TurnResult]] = {}

    def _pick(self) -> Script:
        return self.rng.choices(self.scripts, weights=[s.weight for s in self.scripts])[0]

    def _chat(self, transport: str, session: aiohttp.ClientSession, plan: StagePlan):
        self.started += 1
        address = shopper_address(self.started) if self.forwarded_for else None
        if transport == "rest":
            sender = f"load-{self.run_id}-{self.started}"
            return RestChat(
                session, self.base_url, sender, address, self.rest_secret, plan.turn_timeout_s
            )
        if transport == "socketio":
            return SocketChat(self.base_url, address, plan.turn_timeout_s, self.socketio_transport)
        raise LoadConfigError(f"unknown transport {transport!r}: rest or socketio")

    async def _conversation(
        self,
        run: StageRun,
        session: aiohttp.ClientSession,
        stage_start: float,
        last_send: float,
    ) -> str:
        """Plays one conversation to its end (or the stage's); returns its outcome."""
        plan = run.plan
        script = self._pick()
        transport = self.rng.choice(plan.transports)
        chat = self._chat(transport, session, plan)
        record: dict[str, Any] = {"script": script.label, "transport": transport, "turns": 0}
        run.conversations.append(record)
        try:
            # Opening is tried as often as a message is (a page's socket.io client reconnects).
            opened, _, failures = await self._tries(chat.open)
            if not opened:
                record["outcome"] = "error"
                sent_at = time.monotonic() - stage_start
                detail = "; ".join(failures)
                run.turns.append(
                    TurnResult(
                        script.label, transport, "", 0, sent_at, 0.0, "error", detail, len(failures)
                    )
                )
                return "error"
            record["sender"] = chat.sender
            mine = self.sent.setdefault(chat.sender, [])
            for index, turn in enumerate(script.turns):
                if index and plan.think_s:
                    low, high, mode = plan.think_s
                    await asyncio.sleep(self.rng.triangular(low, high, mode))
                if time.monotonic() >= last_send:
                    record["outcome"] = "cut"  # the stage ended before the conversation did
                    return "cut"
                start = time.monotonic()
                outcome, detail, attempts = await self._turn(chat, turn, script.language)
                result = TurnResult(
                    script.label,
                    transport,
                    chat.sender,
                    index,
                    start - stage_start,
                    chat.answered_at - start,
                    outcome,
                    detail,
                    attempts,
                )
                run.turns.append(result)
                mine.append(result)
                record["turns"] += 1
                if outcome != "ok":
                    record["outcome"] = outcome  # a shopper answered wrongly gives up here
                    return outcome
            record["outcome"] = "ok"
            return "ok"
        finally:
            await chat.close()

    async def _tries(self, attempt: Callable[[], Awaitable[Any]]) -> tuple[bool, Any, list[str]]:
        """Runs ``attempt`` until it raises no :class:`TurnFailed`, at most ``retries`` + 1
        times, 1 s apart, as a shopper's client would.

        Returns:
            ``(succeeded, its result, each failed try's error)``: the failures tell a lost
            turn's story, and one more than their number is how many tries a success took.
        """
        failures: list[str] = []
        for number in range(1, self.retries + 2):
            try:
                return True, await attempt(), failures
            except TurnFailed as e:
                failures.append(f"try {number}: {e}")
                if number <= self.retries:
                    await asyncio.sleep(RETRY_AFTER_S)
        return False, None, failures

    async def _turn(self, chat, turn: Turn, language: str) -> tuple[str, str, int]:
        """Sends one message, again after an error or Kefu's fault answer (:meth:`_tries`);
        returns the outcome, what was wrong and how many times it was sent."""

        async def say() -> tuple[str | None, list[str]]:
            try:
                replies = await chat.say(turn, language)
            except TurnFailed:
                chat.answered_at = time.monotonic()
                raise
            why = wrong_reply(turn, language, replies)
            if why and any(fault in reply for reply in replies for fault in FAULT_ANSWERS):
                raise TurnFailed(f"the fault answer: {' '.join(replies)[:120]}")
            return why, replies

        answered, result, failures = await self._tries(say)
        if not answered:
            return "error", "; ".join(failures), len(failures)
        why, replies = result
        if why:
            return "wrong", f"{why}: {' '.join(replies)[:200]}", len(failures) + 1
        return "ok", "", len(failures) + 1

    async def _slot(self, run: StageRun, session, stage_start: float, delay: float) -> None:
        """One of the stage's concurrent shoppers: a new conversation as soon as one ends."""
        await asyncio.sleep(delay)
        last_send = stage_start + run.plan.duration_s
        while time.monotonic() < last_send:
            outcome = await self._conversation(run, session, stage_start, last_send)
            if outcome == "error":
                # A shopper who got no answer comes back later, not in a tight loop.
                await asyncio.sleep(run.plan.think_s[2] if run.plan.think_s else 0.5)

    async def run_stage(
        self, plan: StagePlan, faults: Iterable[tuple[float, Any]] = (), cpu=None
    ) -> StageRun:
        """Runs one stage: ``plan.concurrency`` shoppers until ``plan.duration_s`` has passed.

        Args:
            plan: concurrency, duration, think time and transports.
            faults: ``(fraction of the stage, callable)``; each callable runs at that moment and
                returns a dict describing what it did.
            cpu: a :class:`CpuMeter` for the servers, or None.

        Returns:
            Every turn, every conversation, the wall time and the servers' CPU seconds.
        """
        if plan.concurrency < 1 or plan.duration_s <= 0:
            raise LoadConfigError("a stage needs concurrency ≥ 1 and a positive duration")
        run = StageRun(plan)
        connector = aiohttp.TCPConnector(limit=0)
        cpu_before = cpu.by_group() if cpu else {}
        generator_before = time.process_time()
        stage_start = time.monotonic()
        # Shoppers arrive spread over one think time (or a tenth of the stage), not all at once.
        spread = min(plan.think_s[2] if plan.think_s else 0.0, plan.duration_s / 10) or 0.0
        async with aiohttp.ClientSession(connector=connector) as session:
            if plan.rate_per_s:
                tasks = [asyncio.create_task(self._arrivals(run, session, stage_start))]
            else:
                tasks = [
                    asyncio.create_task(
                        self._slot(run, session, stage_start, spread * i / plan.concurrency)
                    )
                    for i in range(plan.concurrency)
                ]
            fault_tasks = [
                asyncio.create_task(self._fault_at(stage_start, plan.duration_s * at, act, run))
                for at, act in faults
            ]
            # Hard limit: a turn sent just before the end may take its timeout (per try), no more.
            hard = plan.duration_s + (self.retries + 1) * (plan.turn_timeout_s + RETRY_AFTER_S) + 5
            done, pending = await asyncio.wait(tasks + fault_tasks, timeout=hard)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()
        run.wall_s = time.monotonic() - stage_start
        if cpu:
            after = cpu.by_group()
            run.cpu_by_group = {g: after[g] - cpu_before.get(g, 0.0) for g in sorted(after)}
            run.cpu_s = sum(v for g, v in run.cpu_by_group.items() if g not in STORE_PROCESSES)
            # Not the servers' either, but it shares their cores on one machine.
            run.cpu_by_group[GENERATOR] = time.process_time() - generator_before
        for record in run.conversations:
            record.setdefault("outcome", "cut")
        return run

    async def _arrivals(self, run: StageRun, session, stage_start: float) -> None:
        """Conversations arriving at ``rate_per_s`` (Poisson), whatever the server's speed: the
        load does not ease off when replies slow down, as real shoppers do not."""
        plan = run.plan
        last_send = stage_start + plan.duration_s
        live: set[asyncio.Task] = set()
        try:
            while True:
                await asyncio.sleep(self.rng.expovariate(plan.rate_per_s))
                if time.monotonic() >= last_send:
                    break
                if len(live) >= plan.concurrency:
                    run.turned_away += 1
                    continue
                task = asyncio.create_task(self._conversation(run, session, stage_start, last_send))
                live.add(task)
                task.add_done_callback(live.discard)
            if live:
                await asyncio.gather(*live)
        finally:
            for task in live:
                task.cancel()

    @staticmethod
    async def _fault_at(stage_start: float, after_s: float, act, run: StageRun) -> None:
        await asyncio.sleep(max(0.0, stage_start + after_s - time.monotonic()))
        happened = act()
        run.faults.append({"at_s": round(time.monotonic() - stage_start, 3), **happened})


# --- statistics -----------------------------------------------------------------------------


def summarize(run: StageRun) -> dict[str, Any]:
    """The figures of one stage: latency percentiles of answered turns, rates and counts."""
    turns = run.turns
    answered = [t.latency_s for t in turns if t.outcome in ("ok", "wrong")]
    latency = percentiles(answered, points=(50, 95, 99))
    counted = [t for t in turns if t.outcome in ("ok", "wrong", "error")]
    outcomes = {k: sum(1 for t in counted if t.outcome == k) for k in ("ok", "wrong", "error")}
    conversations = {
        k: sum(1 for c in run.conversations if c.get("outcome") == k)
        for k in ("ok", "wrong", "error", "cut")
    }
    served = outcomes["ok"] + outcomes["wrong"]
    summary: dict[str, Any] = {
        "concurrency": run.plan.concurrency,
        "mode": ("open" if run.plan.think_s else "closed")
        + (f" {run.plan.rate_per_s:g}/s" if run.plan.rate_per_s else ""),
        "transports": list(run.plan.transports),
        "wall_s": round(run.wall_s, 3),
        "turns": len(counted),
        **{f"turns_{k}": v for k, v in outcomes.items()},
        # answered only when sent again: what a killed replica costs a customer
        "turns_retried": sum(1 for t in counted if t.attempts > 1 and t.outcome != "error"),
        "turns_per_s": served / run.wall_s if run.wall_s else 0.0,
        "latency": latency,
        "conversations": conversations,
        "arrivals_turned_away": run.turned_away,
        "cpu_s": run.cpu_s,
        "cpu_ms_per_turn": (run.cpu_s * 1e3 / served) if run.cpu_s is not None and served else None,
        # where a turn's CPU goes: each kind of server, and the shared stores
        "cpu_ms_per_turn_by_process": {
            group: round(seconds * 1e3 / served, 2) for group, seconds in run.cpu_by_group.items()
        }
        if served
        else {},
        "wrong_examples": [asdict(t) for t in turns if t.outcome == "wrong"][:10],
        "error_examples": [asdict(t) for t in turns if t.outcome == "error"][:10],
        "faults": run.faults,
    }
    if run.faults:
        summary["around_faults"] = _around_faults(run)
    return summary


def _around_faults(run: StageRun) -> list[dict[str, Any]]:
    """What customers saw before the first fault and after each one, until the next."""
    marks = [0.0] + sorted(f["at_s"] for f in run.faults) + [float("inf")]
    windows = []
    for start, end in zip(marks, marks[1:], strict=False):
        inside = [t for t in run.turns if start <= t.sent_at < end]
        windows.append(
            {
                "from_s": start,
                "turns": len(inside),
                **{k: sum(1 for t in inside if t.outcome == k) for k in ("ok", "wrong", "error")},
                "replies_seen": sorted({t.detail[:240] for t in inside if t.outcome != "ok"})[:5],
            }
        )
    return windows


def render(summaries: Sequence[dict[str, Any]]) -> str:
    """The stages as a Markdown table."""
    headers = [
        "mode", "conc.", "turns", "ok", "wrong", "errors", "retried", "p50 ms", "p95 ms", "p99 ms",
        "turns/s", "conv. ok/cut", "CPU-ms/turn",
    ]  # fmt: skip
    rows = []
    for s in summaries:
        lat = s["latency"]
        cpu = s["cpu_ms_per_turn"]
        rows.append(
            [
                s["mode"] + (" +faults" if s["faults"] else ""),
                s["concurrency"],
                s["turns"],
                s["turns_ok"],
                s["turns_wrong"],
                s["turns_error"],
                s["turns_retried"],
                float(lat.get("p50_ms", 0.0)),
                float(lat.get("p95_ms", 0.0)),
                float(lat.get("p99_ms", 0.0)),
                float(s["turns_per_s"]),
                f"{s['conversations']['ok']}/{s['conversations']['cut']}",
                "n/a" if cpu is None else float(cpu),
            ]
        )
    split = [
        f"- {s['mode']} {s['concurrency']}: "
        + ", ".join(f"{group} {ms:g}" for group, ms in s["cpu_ms_per_turn_by_process"].items())
        for s in summaries
        if s.get("cpu_ms_per_turn_by_process")
    ]
    if split:
        return (
            format_table(headers, rows)
            + "\n\nCPU-ms per turn by process (stores: the machine's PostgreSQL, Redis, RabbitMQ; the load generator shares the cores):\n"
            + "\n".join(split)
        )
    return format_table(headers, rows)


# --- server processes: CPU time and faults --------------------------------------------------


def read_pid_file(path: Path) -> dict[str, int]:
    """``name → pid`` from a pid file: ``{"rasa-0": 123, ...}``, ``{"rasa-0": {"pid": 123}}``,
    lists of either, ``{"rasa": [123, 124]}`` (named ``rasa-0``, ``rasa-1``), or the records of
    scripts/cluster.py (``{"name": ..., "role": "rasa", "pid": ...}``, named ``role/name``)."""
    found: dict[str, int] = {}

    def walk(name: str, value: Any) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, int):
            found[name] = value
        elif isinstance(value, dict):
            if isinstance(value.get("pid"), int):
                label = str(value.get("name", name))
                role = value.get("role")
                found[f"{role}/{label}" if role and role not in label else label] = value["pid"]
                return
            for key, item in value.items():
                walk(f"{name}.{key}" if name else str(key), item)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(f"{name}-{i}", item)

    walk("", json.loads(Path(path).read_text(encoding="utf-8")))
    return found


def _proc_table() -> dict[int, tuple[int, float, str]]:
    """pid → (parent pid, CPU seconds used, command name), for every process /proc shows."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ... utime(14) stime(15)": comm may hold spaces and ")".
            head, tail = stat.read_text().rsplit(")", 1)
            fields = tail.split()
        except (OSError, IndexError, ValueError):
            continue
        table[int(stat.parent.name)] = (
            int(fields[1]),
            (int(fields[11]) + int(fields[12])) / CLK_TCK,
            head.split("(", 1)[-1],
        )
    return table


#: The load generator itself (this process), reported beside the servers and the stores.
GENERATOR = "load generator"
#: The shared stores a turn also costs, by the command names of their server processes.
STORE_PROCESSES = {
    "postgres": ("postgres",),
    "redis": ("redis-server",),
    "rabbitmq": ("beam.smp", "erl_child_setup", "inet_gethost", "epmd"),
}


class CpuMeter:
    """CPU seconds used by server processes and their children, read from /proc.

    ``by_group`` splits it by kind of process: each server's name without its number (``rasa``,
    ``actions``, ``nginx``, ``notify``) and, with ``stores``, the machine's PostgreSQL, Redis and
    RabbitMQ (:data:`STORE_PROCESSES`), which serve every client of the machine: read them only
    while nothing else uses the stores. ``sample`` is the servers' total, stores left out.

    A process that dies (a killed replica) keeps counting what it used while it was seen, so a
    fault does not make the stage's CPU time go backwards.
    """

    def __init__(
        self,
        pids: Mapping[str, int] | Iterable[int],
        stores: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        named = pids.items() if isinstance(pids, Mapping) else ((str(p), p) for p in pids)
        self.roots = {pid: _group_of(name) for name, pid in named}
        self.stores = {comm: group for group, comms in (stores or {}).items() for comm in comms}
        self.seen: dict[int, tuple[str, float]] = {}

    def sample(self) -> float:
        """The servers' CPU seconds so far (stores excluded)."""
        return sum(s for group, s in self.by_group().items() if group not in STORE_PROCESSES)

    def by_group(self) -> dict[str, float]:
        """CPU seconds so far per group of processes."""
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        queue = [(p, group) for p, group in self.roots.items() if p in table]
        queue += [
            (p, self.stores[comm]) for p, (_, _, comm) in table.items() if comm in self.stores
        ]
        while queue:
            pid, group = queue.pop()
            if pid in self.seen and self.seen[pid][0] != group:
                continue  # already counted under another root
            self.seen[pid] = (group, max(self.seen.get(pid, (group, 0.0))[1], table[pid][1]))
            queue.extend((child, group) for child in children.get(pid, []))
        totals: dict[str, float] = {}
        for group, seconds in self.seen.values():
            totals[group] = totals.get(group, 0.0) + seconds
        return totals


def _group_of(name: str) -> str:
    """``rasa/rasa-1`` or ``rasa-1`` → ``rasa``; ``pid-123`` → ``pid``."""
    return re.sub(r"[-_.]?\d+$", "", name.rsplit("/", 1)[-1]) or name


def kill_one(pids: dict[str, int], role: str) -> dict[str, Any]:
    """SIGKILL the first live process whose name contains ``role``.

    Only a process whose command line still names ``role`` is hit: a pid file outlives its
    processes, and a recycled pid may now be anyone's.
    """
    for name, pid in sorted(pids.items()):
        if role not in name:
            continue
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if role not in command:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        return {"fault": f"kill -9 {role}", "process": name, "pid": pid}
    return {"fault": f"kill -9 {role}", "process": None, "note": f"no live {role} process"}


# --- tracker store audit --------------------------------------------------------------------


def audit_events(rows: Sequence[tuple[str, str]], sent: Sequence[TurnResult]) -> dict[str, Any]:
    """Checks one conversation's events as stored against the messages it sent.

    Args:
        rows: ``(type_name, data JSON)`` of the conversation's events, in store order.
        sent: the turns the load generator sent for it.

    Returns:
        ``user_events``, ``answered`` (turns the customer got an answer to), ``missing`` (answered
        turns without their message stored), ``duplicated`` (events stored twice: the same
        message id, or the same event with the same timestamp) and ``unfinished`` (user
        messages followed neither by ``action_listen`` nor by a handoff's ``pause``).
    """
    seen: set[str] = set()
    message_ids: set[str] = set()
    duplicated = user_events = unfinished = 0
    open_turn = False
    for type_name, data in rows:
        event = json.loads(data)
        key = json.dumps(event, sort_keys=True)
        if key in seen:
            duplicated += 1
        seen.add(key)
        if type_name == "user":
            user_events += 1
            unfinished += open_turn
            open_turn = True
            message_id = event.get("message_id")
            if message_id:
                duplicated += message_id in message_ids
                message_ids.add(message_id)
        elif type_name == "action" and event.get("name") == "action_listen":
            open_turn = False
        elif type_name == "pause":  # handed to a person: the bot waits for no next message
            open_turn = False
    unfinished += open_turn
    answered = sum(1 for t in sent if t.outcome in ("ok", "wrong"))
    return {
        "user_events": user_events,
        "answered": answered,
        "sent": sum(t.attempts for t in sent),
        "missing": max(0, answered - user_events),
        "extra": max(0, user_events - sum(t.attempts for t in sent)),
        "duplicated": duplicated,
        "unfinished": unfinished,
    }


def audit_tracker_store(url: str, sent: dict[str, list[TurnResult]]) -> dict[str, Any]:
    """Audits every conversation of the run in the SQL tracker store at ``url``."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    totals = {"conversations": 0, "missing": 0, "extra": 0, "duplicated": 0, "unfinished": 0}
    bad: list[dict[str, Any]] = []
    try:
        with engine.connect() as conn:
            for sender, turns in sent.items():
                rows = conn.execute(
                    sa.text("SELECT type_name, data FROM events WHERE sender_id = :s ORDER BY id"),
                    {"s": sender},
                ).fetchall()
                result = audit_events([(r[0], r[1]) for r in rows], turns)
                totals["conversations"] += 1
                for key in ("missing", "extra", "duplicated", "unfinished"):
                    totals[key] += result[key]
                if any(result[k] for k in ("missing", "extra", "duplicated", "unfinished")):
                    bad.append({"sender": sender, **result})
    finally:
        engine.dispose()
    return {**totals, "conversations_with_problems": bad[:20]}


# --- command line ---------------------------------------------------------------------------


def _server_pids(args: argparse.Namespace) -> dict[str, int]:
    pids = {f"pid-{p}": p for p in args.pid}
    pid_file = Path(args.pids) if args.pids else CLUSTER_PIDS
    if pid_file.exists():
        pids.update(read_pid_file(pid_file))
    elif args.pids:
        raise LoadConfigError(f"no pid file at {pid_file}")
    return pids


def _stages(text: str) -> list[int]:
    try:
        stages = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        stages = []
    if not stages or min(stages) < 1:
        raise LoadConfigError(f"--stages wants positive integers like 10,50,200, got {text!r}")
    return stages


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    scripts = load_scripts(Path(args.conversations))
    transports = tuple(t.strip() for t in args.transports.split(",") if t.strip())
    if not transports or set(transports) - {"rest", "socketio"}:
        raise LoadConfigError(f"--transports: rest and/or socketio, got {args.transports!r}")
    pids = _server_pids(args)
    generator = LoadGenerator(
        args.url,
        scripts,
        seed=args.seed,
        forwarded_for=not args.no_forwarded_for,
        rest_secret=os.environ.get("KEFU_REST_SECRET") or None,
        retries=args.retries,
        socketio_transport=args.socketio_transport,
    )
    stages = _stages(args.stages)
    if args.rate is not None and args.rate <= 0:
        raise LoadConfigError(f"--rate wants conversations per second above 0, got {args.rate}")
    if args.warmup_s > 0:
        # First messages trace TensorFlow graphs and fill caches: not what a shop sees all day.
        print(f"warm-up: {args.warmup_s:g} s, not counted")
        warmup = StagePlan(2, args.warmup_s, None, args.turn_timeout_s, transports)
        await generator.run_stage(warmup)
    summaries = []
    for number, concurrency in enumerate(stages):
        plan = StagePlan(
            concurrency,
            args.stage_s,
            None if args.closed_loop else THINK_S,
            args.turn_timeout_s,
            transports,
            args.rate,
        )
        faults = []
        if args.faults and number == len(stages) - 1:
            faults = [
                (1 / 3, lambda: kill_one(pids, "rasa")),
                (1 / 2, lambda: kill_one(pids, "action")),
            ]
        cpu = CpuMeter(pids, None if args.no_stores else STORE_PROCESSES) if pids else None
        print(f"stage {number + 1}/{len(stages)}: {concurrency} conversations, {args.stage_s:g} s")
        run = await generator.run_stage(plan, faults, cpu)
        summaries.append(summarize(run))
    results: dict[str, Any] = {
        "url": args.url,
        "cpu_count": os.cpu_count(),
        "server_pids": pids,
        # what carried the socket.io conversations: latency differs (see the module's doc)
        "socketio_transport": args.socketio_transport,
        "think_s": None
        if args.closed_loop
        else dict(zip(("low", "high", "mode"), THINK_S, strict=True)),
        "stages": summaries,
    }
    if args.faults:
        results["broker_fault"] = (
            "not injected by bench.load: the system RabbitMQ is shared; start the cluster with "
            "KEFU_RABBITMQ_HOST at an address where nothing listens to simulate it"
        )
    if args.tracker_db:
        results["tracker_store_audit"] = audit_tracker_store(args.tracker_db, generator.sent)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--url", default="http://127.0.0.1:8080", help="balancer or one Rasa server"
    )
    parser.add_argument("--stages", default=",".join(map(str, DEFAULT_STAGES)))
    parser.add_argument("--stage-s", type=float, default=120.0, help="hard limit per stage")
    parser.add_argument(
        "--no-stores",
        action="store_true",
        help="leave the machine's PostgreSQL, Redis and RabbitMQ out of the CPU split",
    )
    parser.add_argument("--turn-timeout-s", type=float, default=30.0)
    parser.add_argument("--warmup-s", type=float, default=20.0, help="uncounted load first")
    parser.add_argument(
        "--retries", type=int, default=1, help="sends of a failed message again (0: none)"
    )
    parser.add_argument("--closed-loop", action="store_true", help="no think time: the maximum")
    parser.add_argument(
        "--rate", type=float, help="conversations started per second; stages are then caps"
    )
    parser.add_argument("--transports", default="rest,socketio")
    parser.add_argument(
        "--socketio-transport",
        choices=tuple(SOCKET_LINKS),
        default="websocket",
        help="under socket.io: websocket, as browsers (default), or engine.io long-polling",
    )
    parser.add_argument("--conversations", default=str(CONVERSATIONS))
    parser.add_argument("--pids", help=f"pid file (default {CLUSTER_PIDS} when it exists)")
    parser.add_argument("--pid", type=int, action="append", default=[], help="a server pid")
    parser.add_argument("--faults", action="store_true", help="kill a replica and an action server")
    parser.add_argument("--tracker-db", help="SQLAlchemy URL of the tracker store to audit")
    parser.add_argument("--no-forwarded-for", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS_DIR / "load.json"))
    args = parser.parse_args(argv)
    try:
        results = asyncio.run(_main(args))
    except LoadConfigError as e:
        parser.error(str(e))
    out = Path(args.out)
    write_results(out.stem, results, render(results["stages"]), out.parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
