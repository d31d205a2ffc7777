"""What the web chat and the agent console share inside one Rasa server process.

- :class:`LiveChat` pushes a message to every browser tab of a web chat conversation (the
  socket.io room of its sender id), or, for a REST conversation, to the operator's callback URL
  (``KEFU_REST_CALLBACK_URL``); the agent console uses it to reach the customer.
- :func:`append_bot_message` writes a message that did not come from a bot prediction (an agent's
  reply, the "you are back with Kefu" note) into the tracker, under the conversation's lock, so
  the transcript, the history a reloaded page shows and the event broker all see it.
- :func:`chat_history` turns tracker events into the messages a chat page or console shows;
  :func:`messages_after` pages through them for the REST channel's polling endpoint.

Across replicas: with ``KEFU_SOCKETIO_REDIS_URL`` set (e.g. ``redis://127.0.0.1:6379/2``), the
web chat's socket.io server uses python-socketio's Redis message queue
(:func:`message_queue`): an emit to a conversation's room, made on any replica (the console
of replica B replying to a tab connected to replica A, a bot reply), is published on Redis and
every replica delivers it to the tabs it holds (``KEFU_SOCKETIO_CHANNEL`` names the pub/sub
channel, ``kefu-webchat`` by default: one per deployment sharing a Redis server). Without the setting, or when Redis does not
answer at start (logged as an error), pushes reach only the tabs connected to the same
process; the message is in the tracker either way and appears on reload, once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rasa.shared.core.events import BotUttered, Event, UserUttered
from socketio import AsyncManager, AsyncRedisManager

from contract import frustration_of

#: BotUttered metadata key naming the human agent who wrote a message.
AGENT_KEY = "kefu_agent"
#: Tracker sender ids of web chat conversations start with this (REST ids cannot be confused).
WEB_SENDER_PREFIX = "web-"
BOT_EVENT = "bot_uttered"
#: The Redis URL of the socket.io message queue shared by the replicas (unset: this process).
SOCKETIO_REDIS_URL_ENV = "KEFU_SOCKETIO_REDIS_URL"
#: The Redis pub/sub channel the replicas of one deployment share. Redis pub/sub ignores the
#: database number, so two deployments on one Redis server need two channel names.
SOCKETIO_CHANNEL_ENV = "KEFU_SOCKETIO_CHANNEL"
SOCKETIO_CHANNEL = "kefu-webchat"
#: How long connecting to Redis, or publishing one push, may take before it counts as down.
REDIS_TIMEOUT_S = 2.0
#: The operator's URL that REST conversations' pushes (agent replies, notes) are posted to.
REST_CALLBACK_URL_ENV = "KEFU_REST_CALLBACK_URL"
CALLBACK_TIMEOUT_S = 5.0

logger = logging.getLogger(__name__)


def redacted(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class _BoundedRedisManager(AsyncRedisManager):
    """python-socketio's Redis manager whose publish gives up after :data:`REDIS_TIMEOUT_S`.

    The emit has already reached this replica's tabs when the publish starts, so a hung Redis
    costs the other replicas' tabs a live copy (the tracker keeps the message), never the turn.
    """

    async def _publish(self, data):
        try:
            return await asyncio.wait_for(super()._publish(data), REDIS_TIMEOUT_S)
        except asyncio.TimeoutError:
            self.connected = False  # reconnect on the next publish
            logger.error(
                "socket.io message queue %s: publishing took over %.0f s; this push reached "
                "only the tabs connected to this replica",
                redacted(self.redis_url),
                REDIS_TIMEOUT_S,
            )


def message_queue(url: str | None = None, channel: str | None = None) -> AsyncManager:
    """The socket.io client manager for the web chat.

    Args:
        url: the Redis URL; ``KEFU_SOCKETIO_REDIS_URL`` by default.
        channel: the pub/sub channel all replicas of one deployment share;
            ``KEFU_SOCKETIO_CHANNEL``, else ``kefu-webchat``, by default.

    Returns:
        A Redis manager (pushes reach every replica's tabs) when ``url`` is set and Redis
        answers now; else the in-process manager, with an error logged when Redis was asked for.
    """
    url = url if url is not None else os.environ.get(SOCKETIO_REDIS_URL_ENV, "").strip()
    channel = channel or os.environ.get(SOCKETIO_CHANNEL_ENV, "").strip() or SOCKETIO_CHANNEL
    if not url:
        return AsyncManager()
    import redis

    try:
        with redis.Redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S
        ) as probe:
            probe.ping()
    except (redis.RedisError, ValueError, OSError) as e:
        logger.error(
            "%s=%s does not answer (%s): web chat pushes reach only the tabs connected to this "
            "replica; agent replies on other replicas are in the tracker and show on reload",
            SOCKETIO_REDIS_URL_ENV,
            redacted(url),
            e,
        )
        return AsyncManager()
    logger.info("web chat pushes cross replicas through Redis %s", redacted(url))
    # No socket_timeout: the subscriber blocks reading until a message comes, by design.
    return _BoundedRedisManager(
        url,
        channel=channel,
        redis_options={"socket_connect_timeout": REDIS_TIMEOUT_S, "socket_keepalive": True},
    )


def crosses_replicas(sio) -> bool:
    """Whether pushes through ``sio`` reach the tabs of every replica."""
    return isinstance(getattr(sio, "manager", None), AsyncRedisManager)


def start_message_queue(sio) -> None:
    """Subscribe ``sio``'s manager now, not at the first connection (python-socketio's
    default), so pushes from other replicas reach the first tab too. Needs a running loop."""
    if not sio.manager_initialized:
        sio.manager_initialized = True  # python-socketio would otherwise start a second listener
        sio.manager.initialize()


async def stop_message_queue(sio) -> None:
    """Stop ``sio``'s Redis subscriber and close its connections (nothing for the in-process
    manager)."""
    manager = sio.manager
    task = getattr(manager, "thread", None)
    if task is not None and not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    if crosses_replicas(sio) and manager.redis is not None:
        await manager.redis.close(close_connection_pool=True)
        manager.connected = False


class LiveChat:
    """Pushes messages no customer turn answered: to the web chat's socket.io rooms, and for
    REST conversations to the operator's callback URL (``KEFU_REST_CALLBACK_URL``), if any.

    Args:
        callback_url: where REST conversations' pushes go; ``KEFU_REST_CALLBACK_URL`` (read at
            each push) by default, ``""`` for none.
    """

    def __init__(self, callback_url: str | None = None) -> None:
        self.sio = None
        self._callback_url = callback_url

    def attach(self, sio) -> None:
        self.sio = sio

    @property
    def callback_url(self) -> str:
        if self._callback_url is not None:
            return self._callback_url
        return os.environ.get(REST_CALLBACK_URL_ENV, "").strip()

    def has_local_tab(self, sender_id: str) -> bool:
        """Whether a tab of the web chat conversation ``sender_id`` is connected to this
        process (python-socketio knows only its own sockets, whatever the message queue)."""
        if self.sio is None:
            return False
        return any(True for _ in self.sio.manager.get_participants("/", sender_id))

    async def push(self, sender_id: str, message: dict[str, Any]) -> bool:
        """Emit ``message`` to the browser tabs of ``sender_id`` (on every replica when the
        message queue is Redis), or post a REST conversation's to the callback URL.

        Returns:
            False when nothing could take it: no web chat runs, no callback URL is configured,
            or the callback did not answer 2xx in time (the message is in the tracker anyway).
        """
        if not sender_id.startswith(WEB_SENDER_PREFIX):
            return await self._call_back(sender_id, message)
        if self.sio is None:
            return False
        await self.sio.emit(BOT_EVENT, message, room=sender_id)
        return True

    async def _call_back(self, sender_id: str, message: dict[str, Any]) -> bool:
        """POST Rasa's callback body (``{"recipient_id", "text", ...}``) to the one URL the
        operator configured, signed like the REST channel's requests: ``X-Kefu-Signature``,
        HMAC-SHA256 of the recipient with ``KEFU_REST_SECRET``. One try, bounded in time."""
        url = self.callback_url
        if not url:
            return False
        if urlsplit(url).scheme not in ("http", "https"):
            logger.error("%s must be an http(s) URL; nothing was posted", REST_CALLBACK_URL_ENV)
            return False
        import aiohttp

        from channels.rest import REST_SECRET_ENV, SIGNATURE_HEADER, sender_signature

        headers = {}
        secret = os.environ.get(REST_SECRET_ENV)
        if secret:
            headers[SIGNATURE_HEADER] = sender_signature(secret, sender_id)
        body = {"recipient_id": sender_id, **message}
        timeout = aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT_S)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.post(url, json=body, headers=headers) as reply:
                    if 200 <= reply.status < 300:
                        return True
                    reason = f"HTTP {reply.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            reason = type(e).__name__
        logger.warning(
            "the REST callback %s did not take a push for %s (%s); it stays in the tracker "
            "for polling",
            redacted(url),
            sender_id,
            reason,
        )
        return False


#: The process's web chat (one Rasa server process serves one web chat channel).
live_chat = LiveChat()


async def append_bot_message(
    agent,
    sender_id: str,
    text: str,
    *,
    data: dict | None = None,
    metadata: dict | None = None,
    before: Iterable[Event] = (),
    after: Iterable[Event] = (),
) -> dict[str, Any]:
    """Record a bot-side message that no policy predicted and return it as the page shows it.

    Args:
        agent: the Rasa ``Agent`` of the server (``app.ctx.agent``).
        sender_id: the conversation.
        text: what the customer reads.
        data: BotUttered data (buttons, custom payloads).
        metadata: BotUttered metadata (e.g. ``{AGENT_KEY: "Anna"}``).
        before: events to append just before the message, in the same locked update.
        after: events to append just after it.
    """
    event = BotUttered(text, data=data or {}, metadata=metadata or {})
    await append_events(agent, sender_id, [*before, event, *after])
    return bot_message(event)


async def append_events(agent, sender_id: str, events: list[Event]) -> None:
    """Append events to a conversation's tracker under its lock and save it."""
    async with agent.lock_store.lock(sender_id):
        tracker = await agent.processor.get_tracker(sender_id)
        for event in events:
            tracker.update(event)
        await agent.tracker_store.save(tracker)


def bot_message(event: BotUttered) -> dict[str, Any]:
    """A bot-side message as the page, the console and REST polling show it: ``role`` is
    ``agent`` (with the ``agent``'s name) for a person's reply, else ``bot``."""
    data = event.data or {}
    message: dict[str, Any] = {"role": "bot", "text": event.text or ""}
    agent_name = (event.metadata or {}).get(AGENT_KEY)
    if agent_name:
        message["role"] = "agent"
        message["agent"] = agent_name
    if data.get("buttons"):
        message["quick_replies"] = [
            {"title": b.get("title", ""), "payload": b.get("payload", "")} for b in data["buttons"]
        ]
    if data.get("custom"):
        message["custom"] = data["custom"]
    return message


def chat_history(events, limit: int = 100) -> list[dict[str, Any]]:
    """The last ``limit`` customer / bot / agent messages of a tracker, oldest first.

    User messages carry their frustration score; bot messages their buttons and cards.
    """
    messages: list[dict[str, Any]] = []
    for event in events:
        if isinstance(event, UserUttered):
            text = event.text or ""
            if text.startswith("/"):  # a button payload: the button's title was shown instead
                continue
            messages.append(
                {
                    "role": "user",
                    "text": text,
                    "frustration": round(frustration_of(event.parse_data), 3),
                    "timestamp": event.timestamp,
                }
            )
        elif _shown(event):
            message = bot_message(event)
            message["timestamp"] = event.timestamp
            messages.append(message)
    return messages[-limit:]


def _shown(event: Event) -> bool:
    return isinstance(event, BotUttered) and bool(event.text or (event.data or {}).get("custom"))


def messages_after(events, cursor: int, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The bot and agent messages among ``events`` after position ``cursor``, oldest first.

    Args:
        events: all of a conversation's events (``retrieve_full_tracker``: positions do not
            move when a new session starts).
        cursor: how many events the caller has seen (0: from the start).
        limit: the most messages to return.

    Returns:
        ``(messages, next_cursor)``: each message as :func:`bot_message` with its
        ``timestamp``; ``next_cursor`` is the position after the last message returned, or
        after the last event when fewer than ``limit`` came, so a page never skips a message.
    """
    events = list(events)
    messages: list[dict[str, Any]] = []
    position = max(cursor, 0)
    while position < len(events) and len(messages) < limit:
        event = events[position]
        position += 1
        if _shown(event):
            message = bot_message(event)
            message["timestamp"] = event.timestamp
            messages.append(message)
    return messages, max(position, cursor)
