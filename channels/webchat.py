"""Kefu's web chat: the chat page and a socket.io channel with Rasa's conventions.

The page (``GET /webhooks/webchat/``) talks socket.io at ``/socket.io`` with Rasa's events:
``session_request`` → ``session_confirm``, ``user_uttered`` → ``bot_uttered``, so Rasa's own
web chat widgets also work against it. On top of Rasa's ``SocketIOInput`` it:

- keeps a conversation across page reloads and server restarts: the page stores the session id
  the server issued and asks for it again; the server answers with ``history`` (the
  conversation's messages from the tracker store) and puts every tab of a session in one room;
- checks a signed customer token (HS256 JWT, ``KEFU_CUSTOMER_TOKEN_SECRET``) sent with
  ``session_request``; a valid one is attached to each message's metadata as
  ``customer_token`` so the actions skip re-verification; a forged, expired or unknown one is
  dropped and the customer is told they chat anonymously (``identity`` event);
- refuses malformed, oversized or session-less messages with an ``kefu_error`` event to that
  socket only, and keeps serving everyone else;
- sends cards (product, order tracking) as ``{"custom": {...}}`` messages, and lets the agent
  console push an agent's replies into the conversation (:mod:`channels.live`).

Rasa 3.6's stock channel awaits nothing when it joins a room, which python-socketio 5.18 needs,
so its session persistence silently drops replies; this channel does not share that problem.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse
from socketio import AsyncServer

from channels.live import BOT_EVENT, WEB_SENDER_PREFIX, chat_history, live_chat
from channels.rest import DEFAULT_MAX_MESSAGE_CHARS

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
SESSION_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_METADATA_BYTES = 4096
MAX_FRAME_BYTES = 64 * 1024
HISTORY_LIMIT = 100
LANGUAGES = ("en", "zh")
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

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_event(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


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
        except json.JSONDecodeError as e:
            raise MessageRejected("invalid_metadata", "'customData' must be an object.") from e
    if not isinstance(custom, dict) or len(json.dumps(custom, default=str)) > MAX_METADATA_BYTES:
        raise MessageRejected("invalid_metadata", "'customData' must be a small object.")
    metadata: dict[str, Any] = {}
    if custom.get("language") in LANGUAGES:
        metadata["language"] = custom["language"]
    return text, metadata


async def check_customer_token(token: Any) -> dict[str, Any]:
    """``{"verified": True, "customer_id", "name"}`` or ``{"verified": False, "reason"}``.

    Checks signature, expiry, issuer and audience, and that the customer exists.
    """
    from commerce.db import shared_session_factory
    from commerce.errors import CommerceError, ConfigurationError, TokenExpired
    from commerce.services.identity import customer_from_token

    if not token:
        return {"verified": False, "reason": "no_token"}
    if not isinstance(token, str) or len(token) > 4096:
        return {"verified": False, "reason": "invalid"}
    try:
        customer = await asyncio.to_thread(
            customer_from_token, token, session_factory=shared_session_factory()
        )
    except ConfigurationError:
        logger.warning("a customer token arrived but KEFU_CUSTOMER_TOKEN_SECRET is not set")
        return {"verified": False, "reason": "not_configured"}
    except CommerceError as e:  # forged, expired, unknown customer
        logger.info("web chat customer token refused: %s", e.code)
        return {
            "verified": False,
            "reason": "expired" if isinstance(e, TokenExpired) else "invalid",
        }
    except Exception:  # database down: anonymous for now, the actions will ask
        logger.exception("customer token could not be checked")
        return {"verified": False, "reason": "unavailable"}
    return {"verified": True, "customer_id": customer.customer_id, "name": customer.name}


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
            allowed_origins=credentials.get("allowed_origins"),
        )

    def __init__(
        self,
        socketio_path: str = "/socket.io",
        max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
        allowed_origins: list[str] | None = None,
    ) -> None:
        """
        Args:
            socketio_path: where socket.io listens.
            max_message_chars: longest accepted customer message.
            allowed_origins: web origins (``https://shop.example``) whose pages may open the
                socket besides the chat page's own; None allows only the same origin.
        """
        self.socketio_path = socketio_path
        self.max_message_chars = max_message_chars
        self.allowed_origins = list(allowed_origins) if allowed_origins else None
        self.app: Sanic | None = None

    def get_output_channel(self) -> OutputChannel | None:
        return None  # replies go to a conversation's room, see WebChatOutput

    async def _history(self, sender_id: str) -> list[dict[str, Any]]:
        agent = getattr(self.app.ctx, "agent", None) if self.app else None
        if agent is None or agent.tracker_store is None:
            return []
        tracker = await agent.tracker_store.retrieve(sender_id)
        return chat_history(tracker.events, HISTORY_LIMIT) if tracker else []

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        sio = AsyncServer(
            async_mode="sanic",
            # None: only pages of this server's own origin (engine.io checks the Origin header).
            cors_allowed_origins=self.allowed_origins,
            max_http_buffer_size=MAX_FRAME_BYTES,
        )
        live_chat.attach(sio)
        channel = self
        webhook = _SocketBlueprint(sio, self.socketio_path, channel, "kefu_webchat", __name__)

        @webhook.route("/", methods=["GET"])
        async def page(request: Request) -> HTTPResponse:
            return static_file("webchat/index.html")

        @webhook.route("/health", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/static/<folder:str>/<name:str>", methods=["GET"])
        async def static(request: Request, folder: str, name: str) -> HTTPResponse:
            return static_file(f"{folder}/{name}")

        @sio.on("connect")
        async def connect(sid: str, environ: dict, auth: Any = None) -> bool:
            await sio.save_session(sid, {})
            return True

        @sio.on("session_request")
        async def session_request(sid: str, data: Any = None) -> None:
            data = data if isinstance(data, dict) else {}
            session_id = data.get("session_id")
            if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
                session_id = uuid.uuid4().hex
            sender_id = WEB_SENDER_PREFIX + session_id
            custom = data.get("customData") if isinstance(data.get("customData"), dict) else {}
            identity = await check_customer_token(custom.get("customer_token"))
            previous = (await sio.get_session(sid)).get("sender_id")
            if previous and previous != sender_id:
                await sio.leave_room(sid, previous)
            await sio.save_session(
                sid,
                {
                    "sender_id": sender_id,
                    "customer_token": custom["customer_token"] if identity["verified"] else None,
                },
            )
            await sio.enter_room(sid, sender_id)
            await sio.emit("session_confirm", session_id, room=sid)
            await sio.emit(
                "identity",
                {k: v for k, v in identity.items() if k != "customer_id"},
                room=sid,
            )
            try:
                history = await channel._history(sender_id)
            except Exception:  # tracker store down: the chat still works
                logger.exception("history of %s could not be read", sender_id)
                history = []
            await sio.emit("history", {"messages": history}, room=sid)

        @sio.on("user_uttered")
        async def user_uttered(sid: str, data: Any = None) -> None:
            session = await sio.get_session(sid)
            sender_id = session.get("sender_id")
            if not sender_id:
                await _refuse(sid, MessageRejected("no_session", "Send session_request first."))
                return
            try:
                text, metadata = parse_user_message(data, channel.max_message_chars)
            except MessageRejected as rejected:
                await _refuse(sid, rejected)
                return
            if session.get("customer_token"):
                metadata["customer_token"] = session["customer_token"]
            message = UserMessage(
                text,
                WebChatOutput(sio, sender_id),
                sender_id,
                input_channel=channel.name(),
                metadata=metadata,
            )
            try:
                await on_new_message(message)
            except Exception:
                logger.exception("web chat message of %s could not be processed", sender_id)
                await _refuse(
                    sid,
                    MessageRejected(
                        "processing_failed",
                        "Sorry, something went wrong on our side. Please try again in a moment.",
                    ),
                )

        async def _refuse(sid: str, rejected: MessageRejected) -> None:
            await sio.emit("kefu_error", rejected.as_event(), room=sid)

        return webhook


class _SocketBlueprint(Blueprint):
    """Attaches the socket.io server to the app and remembers the app (for the tracker store)."""

    def __init__(self, sio: AsyncServer, path: str, channel: WebChatInput, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ctx.sio = sio
        self.ctx.path = path
        self.ctx.channel = channel

    def register(self, app: Sanic, options: dict[str, Any]) -> None:
        self.ctx.sio.attach(app, self.ctx.path)
        self.ctx.channel.app = app
        super().register(app, options)
