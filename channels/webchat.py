"""Kefu's web chat: the chat page and a socket.io channel with Rasa's conventions.

The page (``GET /webhooks/webchat/``) talks socket.io at ``/socket.io`` with Rasa's events:
``session_request`` → ``session_confirm``, ``user_uttered`` → ``bot_uttered``, so Rasa's own
web chat widgets also work against it. On top of Rasa's ``SocketIOInput`` it:

- keeps a conversation across page reloads and server restarts: the page stores the session id
  the server issued and asks for it again; the server answers with ``history`` (the
  conversation's messages from the tracker store) and puts every tab of a session in one room;
- checks a signed customer token (HS256 JWT, ``KEFU_CUSTOMER_TOKEN_SECRET``) sent with
  ``session_request`` (``customData.customer_token``) and keeps the checked identity in the
  socket's session, never the token: each message carries a signed ``kefu_identity`` claim
  (customer id, the token's expiry, this conversation) and ``kefu_client`` (the client's
  address), see :mod:`channels.identity`. The expiry is re-checked on every message; once past,
  messages carry no claim and the page is told (``identity`` event, reason ``expired``).
  A forged, expired or unknown token is dropped and the customer chats anonymously;
- never hands a verified conversation to someone who cannot prove to be that customer: a
  ``session_request`` for a session that acted for a verified customer (a
  ``verified_customer_id`` slot event in its latest session, even if since cleared), without
  a valid token for that same customer, gets a fresh session id and no history (a shared
  computer, another customer signing in). The tab that had the conversation may come back to
  it without a token (a reload, a lost connection, a server restart, e.g. a customer who
  verified by email and is talking to an agent): with ``session_id`` it sends the
  ``resume_key`` it was given (``resume_key`` event), which the page keeps in
  ``sessionStorage``, gone with the tab. A token for another customer never resumes. The page
  also drops its stored session id when the signed-in customer changes, and has a "new
  conversation" button;
- limits messages per client address and per conversation (:mod:`channels.limits`;
  ``kefu_error`` ``rate_limited``), and answers JSON nested too deeply to read with
  ``kefu_error`` ``invalid_json``;
- refuses malformed, oversized or session-less messages with an ``kefu_error`` event to that
  socket only, and keeps serving everyone else;
- sends a turn's replies once the turn is stored (:class:`TurnOutput`), so a replica killed
  mid-turn never shows an answer the tracker store lacks;
- sends cards (product, order tracking) as ``{"custom": {...}}`` messages, and lets the agent
  console push an agent's replies into the conversation (:mod:`channels.live`);
- with several replicas, shares its socket.io rooms through Redis when
  ``KEFU_SOCKETIO_REDIS_URL`` is set (:func:`channels.live.message_queue`), so a push made on
  any replica reaches the tabs connected to every replica; ``GET /webhooks/webchat/health``
  says which (``"pushes": "all_replicas"`` or ``"this_process"``).

Rasa 3.6's stock channel awaits nothing when it joins a room, which python-socketio 5.18 needs,
so its session persistence silently drops replies; this channel does not share that problem.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from engineio import json as engineio_json
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.shared.core.events import SlotSet
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer
from socketio import packet as socketio_packet

from channels.faults import RETRY_AFTER_FAULT_S, LockStoreUnavailable, fault_reply
from channels.identity import (
    NO_TOKEN,
    TOKEN_KEY,
    CustomerIdentity,
    channel_metadata,
    check_customer_token,
    client_address,
    trusted_proxies,
)
from channels.limits import MessageLimits, RateLimited
from channels.live import (
    BOT_EVENT,
    WEB_SENDER_PREFIX,
    chat_history,
    crosses_replicas,
    live_chat,
    message_queue,
    start_message_queue,
    stop_message_queue,
)
from channels.rest import DEFAULT_MAX_MESSAGE_CHARS, nesting_exceeds
from contract import LANGUAGES, VERIFIED_CUSTOMER_SLOT

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
SESSION_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_METADATA_BYTES = 4096
MAX_FRAME_BYTES = 64 * 1024
HISTORY_LIMIT = 100
MAX_METADATA_DEPTH = 4
#: The event a socket.io frame whose JSON could not be read is dispatched as.
UNREADABLE_EVENT = "kefu_unreadable_frame"
#: Files the page may load, and their content types (nothing else under static/ is served).
STATIC_FILES = {
    "webchat/index.html": "text/html; charset=utf-8",
    "webchat/chat.js": "text/javascript; charset=utf-8",
    "webchat/chat.css": "text/css; charset=utf-8",
    "vendor/socket.io.min.js": "text/javascript; charset=utf-8",
    "agent/index.html": "text/html; charset=utf-8",
    "agent/console.js": "text/javascript; charset=utf-8",
    "agent/console.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; style-src 'self'; script-src 'self'",
}


def static_file(name: str) -> HTTPResponse:
    """One of :data:`STATIC_FILES`, with security headers; 404 for anything else."""
    content_type = STATIC_FILES.get(name)
    if content_type is None:
        return response.json({"error": "not_found"}, status=404)
    return response.raw(
        (STATIC_DIR / name).read_bytes(),
        content_type=content_type,
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


class MessageRejected(ValueError):
    """A socket message that cannot be processed, with a stable code."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    def as_event(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


def parse_user_message(
    data: Any, max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS
) -> tuple[str, dict[str, Any]]:
    """Validates a ``user_uttered`` payload: ``{"message": str, "customData": {...}}``.

    ``customData`` must be a small JSON object; of it, only ``language`` (``en``/``zh``, the
    page's language) is passed on as metadata. Identity comes from the session (a token checked
    at ``session_request``), never from a message.

    Returns:
        ``(text, metadata)``.

    Raises:
        MessageRejected: with a code naming what was wrong.
    """
    if not isinstance(data, dict):
        raise MessageRejected("invalid_message", 'Send {"message": "your text"}.')
    text = data.get("message")
    if not isinstance(text, str):
        raise MessageRejected("invalid_message", "'message' must be a string.")
    text = text.replace("\x00", "").strip()
    if not text:
        raise MessageRejected("empty_message", "'message' must not be empty.")
    if len(text) > max_message_chars:
        raise MessageRejected(
            "message_too_long",
            f"Messages are limited to {max_message_chars} characters; please shorten it.",
        )
    custom = data.get("customData", data.get("metadata")) or {}
    if isinstance(custom, str):
        try:
            custom = json.loads(custom)
        except (json.JSONDecodeError, RecursionError) as e:
            raise MessageRejected("invalid_metadata", "'customData' must be an object.") from e
    if not isinstance(custom, dict) or not _small(custom):
        raise MessageRejected("invalid_metadata", "'customData' must be a small object.")
    metadata: dict[str, Any] = {}
    if custom.get("language") in LANGUAGES:
        metadata["language"] = custom["language"]
    return text, metadata


def _small(custom: dict) -> bool:
    if nesting_exceeds(custom, MAX_METADATA_DEPTH):
        return False
    try:
        return len(json.dumps(custom, default=str)) <= MAX_METADATA_BYTES
    except (RecursionError, ValueError, TypeError):
        return False


def bound_customer(tracker) -> int | str | None:
    """The verified customer a tracker acted for most recently, or None.

    Read from the ``verified_customer_id`` slot events of the conversation (its latest
    session), not only the slot's current value: a conversation whose identity expired still
    shows that customer's orders in its history.
    """
    if tracker is None:
        return None
    values = [tracker.get_slot(VERIFIED_CUSTOMER_SLOT)]
    values += [
        event.value
        for event in reversed(list(tracker.events))
        if isinstance(event, SlotSet) and event.key == VERIFIED_CUSTOMER_SLOT
    ]
    value = next((v for v in values if v is not None and v != ""), None)
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)  # set but unreadable: nobody can prove it
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return str(value)


def may_resume(tracker, identity: CustomerIdentity, same_tab: bool = False) -> bool:
    """Whether a request with ``identity`` may continue the conversation of ``tracker``:
    always when it acted for nobody; else with a valid token for that same customer, or,
    without a token, from the tab that had it (``same_tab``: a valid resume key)."""
    bound = bound_customer(tracker)
    if bound is None:
        return True
    if identity.verified:
        return identity.customer_id == bound
    return same_tab


#: Signs resume keys when no customer-token secret is configured (keys end with the process).
_PROCESS_SECRET = secrets.token_hex(32)


def resume_key(sender_id: str) -> str:
    """The key that lets the tab holding a conversation resume it without a token."""
    from commerce.config import token_secret

    secret = token_secret() or _PROCESS_SECRET
    message = f"kefu-webchat-resume\n{sender_id}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def check_resume_key(sender_id: str, key: Any) -> bool:
    return isinstance(key, str) and hmac.compare_digest(key, resume_key(sender_id))


def socket_client(environ: dict, proxies=()) -> str | None:
    """The client address of a socket.io connection (engine.io's Sanic driver always puts
    127.0.0.1 in ``REMOTE_ADDR``, so the Sanic request's peer is read instead)."""
    request = environ.get("sanic.request")
    peer = getattr(request, "ip", None) or environ.get("REMOTE_ADDR")
    return client_address(peer, environ.get("HTTP_X_FORWARDED_FOR"), proxies)


class _SafeJson:
    """engine.io's json module, reading JSON nested too deeply to parse as invalid JSON."""

    dumps = staticmethod(engineio_json.dumps)

    @staticmethod
    def loads(*args: Any, **kwargs: Any) -> Any:
        try:
            return engineio_json.loads(*args, **kwargs)
        except RecursionError as e:
            raise ValueError("JSON nested too deeply") from e


class _SafePacket(socketio_packet.Packet):
    """A socket.io packet that cannot be decoded becomes an :data:`UNREADABLE_EVENT` event, so
    the sender gets an answer instead of a silently dropped frame."""

    json = _SafeJson

    def decode(self, encoded_packet):
        try:
            return super().decode(encoded_packet)
        except ValueError:
            self.packet_type = socketio_packet.EVENT
            self.namespace, self.id = None, None
            self.data = [UNREADABLE_EVENT]
            return 0


def _cors_origins() -> list[str] | None:
    """The origins of ``KEFU_CORS_ORIGINS`` (what scripts/serve.py passes to ``rasa run --cors``)."""
    listed = [o.strip() for o in os.environ.get("KEFU_CORS_ORIGINS", "").split(",") if o.strip()]
    return listed or None


class WebChatOutput(OutputChannel):
    """Emits bot messages to every tab of one conversation (its socket.io room)."""

    @classmethod
    def name(cls) -> str:
        return WebChatInput.name()

    def __init__(self, sio: AsyncServer, room: str) -> None:
        self.sio = sio
        self.room = room

    async def _emit(self, message: dict[str, Any]) -> None:
        await self.sio.emit(BOT_EVENT, message, room=self.room)

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._emit({"text": text})

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        await self._emit(
            {
                "text": text,
                "quick_replies": [
                    {"content_type": "text", "title": b["title"], "payload": b["payload"]}
                    for b in buttons
                ],
            }
        )

    async def send_quick_replies(
        self, recipient_id: str, text: str, quick_replies: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies, **kwargs)

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self._emit({"attachment": {"type": "image", "payload": {"src": image}}})

    async def send_attachment(self, recipient_id: str, attachment: Any, **kwargs: Any) -> None:
        await self._emit({"attachment": attachment})

    async def send_elements(
        self, recipient_id: str, elements: Iterable[dict[str, Any]], **kwargs: Any
    ) -> None:
        for element in elements:
            await self._emit(
                {
                    "attachment": {
                        "type": "template",
                        "payload": {"template_type": "generic", "elements": element},
                    }
                }
            )

    async def send_custom_json(
        self, recipient_id: str, json_message: dict[str, Any], **kwargs: Any
    ) -> None:
        # Rasa's socket.io output spreads the dict into emit()'s arguments; send it as data.
        await self._emit({"custom": json_message})


class TurnOutput(WebChatOutput):
    """A turn's replies, held until the turn is stored, then sent to its room.

    Rasa sends each reply as soon as an action produces it and saves the tracker at the end of
    the turn. A replica that dies between the two has shown the customer an answer the store
    does not hold, and the next turn, on another replica, runs without it. Holding the replies
    until ``on_new_message`` returns (after the save) makes the web chat answer as REST does:
    what the customer saw is stored. A turn that fails sends none of them; the customer gets
    the fault answer and may send the message again.
    """

    def __init__(self, sio: AsyncServer, room: str) -> None:
        super().__init__(sio, room)
        self.held: list[dict[str, Any]] = []

    async def _emit(self, message: dict[str, Any]) -> None:
        self.held.append(message)

    async def send_held(self) -> None:
        """Sends the held replies, in order, to every tab of the conversation."""
        held, self.held = self.held, []
        for message in held:
            await super()._emit(message)


class WebChatInput(InputChannel):
    """socket.io channel for the web chat page (see the module docstring)."""

    @classmethod
    def name(cls) -> str:
        return "webchat"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> WebChatInput:
        credentials = credentials or {}
        return cls(
            socketio_path=credentials.get("socketio_path", "/socket.io"),
            max_message_chars=int(credentials.get("max_message_chars", DEFAULT_MAX_MESSAGE_CHARS)),
            allowed_origins=credentials.get("allowed_origins") or _cors_origins(),
        )

    def __init__(
        self,
        socketio_path: str = "/socket.io",
        max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
        allowed_origins: list[str] | None = None,
        *,
        limits: MessageLimits | None = None,
        proxies=None,
        message_queue_url: str | None = None,
        message_queue_channel: str | None = None,
    ) -> None:
        """
        Args:
            socketio_path: where socket.io listens.
            max_message_chars: longest accepted customer message.
            allowed_origins: web origins (``https://shop.example``) whose pages may open the
                socket besides the chat page's own; None allows only the same origin.
            limits: message rate limits; ``KEFU_RATE_*`` by default.
            proxies: trusted proxy networks; ``KEFU_TRUSTED_PROXIES`` by default.
            message_queue_url: Redis URL shared by the replicas; ``KEFU_SOCKETIO_REDIS_URL`` by
                default, ``""`` for pushes within this process only.
            message_queue_channel: the Redis pub/sub channel of this deployment's replicas;
                ``KEFU_SOCKETIO_CHANNEL``, else ``kefu-webchat``, by default.
        """
        self.message_queue_url = message_queue_url
        self.message_queue_channel = message_queue_channel
        self.socketio_path = socketio_path
        self.max_message_chars = max_message_chars
        self.allowed_origins = list(allowed_origins) if allowed_origins else None
        self.limits = limits if limits is not None else MessageLimits.from_env()
        self.proxies = tuple(proxies) if proxies is not None else trusted_proxies()
        self.app: Sanic | None = None

    def get_output_channel(self) -> OutputChannel | None:
        return None  # replies go to a conversation's room, see WebChatOutput

    async def _tracker(self, sender_id: str):
        agent = getattr(self.app.ctx, "agent", None) if self.app else None
        if agent is None or agent.tracker_store is None:
            return None
        return await agent.tracker_store.retrieve(sender_id)

    async def _open_session(
        self, requested: Any, identity: CustomerIdentity, key: Any = None
    ) -> tuple[str, list[dict[str, Any]]]:
        """The session id to use and its history: the requested one, unless it acted for a
        customer that neither ``identity`` nor the resume ``key`` proves (then a fresh one,
        with no history)."""
        if not isinstance(requested, str) or not SESSION_ID.match(requested):
            return uuid.uuid4().hex, []
        sender_id = WEB_SENDER_PREFIX + requested
        try:
            tracker = await self._tracker(sender_id)
        except Exception:  # tracker store down: a fresh session, the chat still works
            logger.exception("conversation %s could not be read", sender_id)
            return uuid.uuid4().hex, []
        if not may_resume(tracker, identity, check_resume_key(sender_id, key)):
            logger.info(
                "session %s acts for a verified customer this request does not prove; "
                "starting a fresh session",
                sender_id,
            )
            return uuid.uuid4().hex, []
        history = chat_history(tracker.events, HISTORY_LIMIT) if tracker else []
        return requested, history

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        sio = AsyncServer(
            client_manager=message_queue(self.message_queue_url, self.message_queue_channel),
            async_mode="sanic",
            # None: only pages of this server's own origin (engine.io checks the Origin header).
            cors_allowed_origins=self.allowed_origins,
            max_http_buffer_size=MAX_FRAME_BYTES,
            serializer=_SafePacket,
            json=_SafeJson,
        )
        live_chat.attach(sio)
        channel = self
        webhook = _SocketBlueprint(sio, self.socketio_path, channel, "kefu_webchat", __name__)

        @webhook.route("/", methods=["GET"])
        async def page(request: Request) -> HTTPResponse:
            return static_file("webchat/index.html")

        @webhook.route("/health", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            pushes = "all_replicas" if crosses_replicas(sio) else "this_process"
            return response.json({"status": "ok", "pushes": pushes})

        @webhook.route("/static/<folder:str>/<name:str>", methods=["GET"])
        async def static(request: Request, folder: str, name: str) -> HTTPResponse:
            return static_file(f"{folder}/{name}")

        @sio.on("connect")
        async def connect(sid: str, environ: dict, auth: Any = None) -> bool:
            await sio.save_session(sid, {"client": socket_client(environ, channel.proxies)})
            return True

        @sio.on("session_request")
        async def session_request(sid: str, data: Any = None) -> None:
            session = await sio.get_session(sid)
            refused = channel.limits.check_client(session.get("client"))
            if refused:
                await _refuse(sid, _rate_limited(refused))
                return
            data = data if isinstance(data, dict) else {}
            custom = data.get("customData") if isinstance(data.get("customData"), dict) else {}
            identity = await check_customer_token(custom.get(TOKEN_KEY))
            session_id, history = await channel._open_session(
                data.get("session_id"), identity, data.get("resume_key")
            )
            sender_id = WEB_SENDER_PREFIX + session_id
            previous = session.get("sender_id")
            if previous and previous != sender_id:
                await sio.leave_room(sid, previous)
            await sio.save_session(sid, {**session, "sender_id": sender_id, "identity": identity})
            await sio.enter_room(sid, sender_id)
            key = {"session_id": session_id, "key": resume_key(sender_id)}
            await _to_socket(sid, "resume_key", key)
            await _to_socket(sid, "session_confirm", session_id)
            await _to_socket(sid, "identity", identity.as_event())
            await _to_socket(sid, "history", {"messages": history})

        @sio.on("user_uttered")
        async def user_uttered(sid: str, data: Any = None) -> None:
            session = await sio.get_session(sid)
            sender_id = session.get("sender_id")
            if not sender_id:
                await _refuse(sid, MessageRejected("no_session", "Send session_request first."))
                return
            refused = channel.limits.check_client(session.get("client"))
            refused = refused or channel.limits.check_conversation(sender_id)
            if refused:
                await _refuse(sid, _rate_limited(refused))
                return
            try:
                text, sent = parse_user_message(data, channel.max_message_chars)
            except MessageRejected as rejected:
                await _refuse(sid, rejected)
                return
            identity = session.get("identity") or NO_TOKEN
            if identity.current() is not identity:  # the token expired since session_request
                identity = identity.current()
                await sio.save_session(sid, {**session, "identity": identity})
                await _to_socket(sid, "identity", identity.as_event())
            metadata = channel_metadata(
                sent, sender_id=sender_id, identity=identity, client=session.get("client")
            )
            output = TurnOutput(sio, sender_id)
            message = UserMessage(
                text,
                output,
                sender_id,
                input_channel=channel.name(),
                metadata=metadata,
            )
            try:
                await on_new_message(message)
            except LockStoreUnavailable:  # refused before anything was read or written
                await _refuse(
                    sid,
                    MessageRejected(
                        "service_unavailable", fault_reply(), retry_after_s=RETRY_AFTER_FAULT_S
                    ),
                )
            except Exception:
                logger.exception("web chat message of %s could not be processed", sender_id)
                await _refuse(sid, MessageRejected("processing_failed", fault_reply()))
            else:
                await output.send_held()

        @sio.on(UNREADABLE_EVENT)
        async def unreadable(sid: str, *args: Any) -> None:
            await _refuse(
                sid,
                MessageRejected(
                    "invalid_json", "The message could not be read: send plain, small JSON."
                ),
            )

        async def _refuse(sid: str, rejected: MessageRejected) -> None:
            await _to_socket(sid, "kefu_error", rejected.as_event())

        async def _to_socket(sid: str, event: str, data: Any) -> None:
            # The socket is connected to this process: answers to it stay off the message queue
            # (other replicas need none of them, and resume keys and histories stay here).
            await sio.emit(event, data, room=sid, ignore_queue=True)

        return webhook


def _rate_limited(refused: RateLimited) -> MessageRejected:
    return MessageRejected("rate_limited", refused.message, retry_after_s=refused.retry_after_s)


class _SocketBlueprint(Blueprint):
    """Attaches the socket.io server to the app and remembers the app (for the tracker store)."""

    def __init__(self, sio: AsyncServer, path: str, channel: WebChatInput, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ctx.sio = sio
        self.ctx.path = path
        self.ctx.channel = channel

    def register(self, app: Sanic, options: dict[str, Any]) -> None:
        sio = self.ctx.sio
        sio.attach(app, self.ctx.path)
        self.ctx.channel.app = app

        async def subscribe(app: Sanic, loop) -> None:
            start_message_queue(sio)

        async def unsubscribe(app: Sanic, loop) -> None:
            await stop_message_queue(sio)

        app.register_listener(subscribe, "after_server_start")
        app.register_listener(unsubscribe, "before_server_stop")
        super().register(app, options)
