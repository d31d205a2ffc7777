"""The live-push route of proactive notices: ``POST /webhooks/live/notify``.

``python -m commerce notify`` (:class:`commerce.notify.LiveChatSender`) posts a notice for a
customer's open web chat here, with ``Authorization: Bearer <KEFU_NOTIFY_TOKEN>`` and the body
``{"sender": "web-…", "customer_id": 14, "text": "Good news: …"}``. This replica:

1. refuses without the token (401), or when no token is configured (404: the route is off);
2. answers ``404 {"delivered": false, "reason": "not_connected"}`` when no tab of that
   conversation is connected to *this* process. With several replicas the worker asks each
   (``KEFU_NOTIFY_LIVE_URL`` lists them); exactly one holds the conversation's socket, because
   socket.io is sticky, and only that one delivers. A notice nobody delivers goes by email;
3. answers ``409 {"delivered": false, "reason": "other_customer"}`` unless the conversation's
   tracker says the same customer is verified on it (``verified_customer_id``): the worker
   picked the conversation from the commerce records, and this checks it against the
   conversation itself, so a notice never lands in another customer's chat;
4. appends the notice to the transcript (``channels.live.append_bot_message``: a reload
   shows it, the event broker sees it) and emits it to the conversation's tabs, then answers
   ``200 {"delivered": true}``.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from channels.live import WEB_SENDER_PREFIX, append_bot_message, live_chat
from contract import VERIFIED_CUSTOMER_SLOT

logger = logging.getLogger(__name__)

#: The bearer token the notice worker sends (``make run`` makes one per run).
TOKEN_ENV = "KEFU_NOTIFY_TOKEN"
#: What this route marks its messages with (BotUttered metadata), for the transcript's readers.
NOTICE_KEY = "kefu_notice"
MAX_NOTICE_CHARS = 2000


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def _answer(status: int, delivered: bool, reason: str | None = None) -> HTTPResponse:
    body: dict[str, Any] = {"delivered": delivered}
    if reason:
        body["reason"] = reason
    return response.json(body, status=status)


def _same_customer(slot_value: Any, customer_id: int) -> bool:
    try:
        return slot_value is not None and int(float(slot_value)) == customer_id
    except (TypeError, ValueError):
        return False


class NoticeRoute:
    """Delivers one notice to a conversation's tabs on this replica (see the module docs)."""

    def __init__(self, token: str | None = None, chat=live_chat) -> None:
        self.token = token if token is not None else os.environ.get(TOKEN_ENV, "")
        self.chat = chat

    async def notify(self, request: Request) -> HTTPResponse:
        if not self.token:
            return _answer(404, False, "notices_disabled")
        if not hmac.compare_digest(_bearer(request).encode(), self.token.encode()):
            return _answer(401, False, "invalid_token")
        body = request.json if request.body else None
        if not isinstance(body, dict):
            return _answer(400, False, "expected_json_object")
        sender, customer_id, text = body.get("sender"), body.get("customer_id"), body.get("text")
        if not isinstance(sender, str) or not sender.startswith(WEB_SENDER_PREFIX):
            return _answer(400, False, "sender_must_be_a_web_chat")
        if isinstance(customer_id, bool) or not isinstance(customer_id, int):
            return _answer(400, False, "customer_id_must_be_an_integer")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_NOTICE_CHARS:
            return _answer(400, False, f"text_must_be_1_to_{MAX_NOTICE_CHARS}_characters")
        if not self.chat.has_local_tab(sender):
            return _answer(404, False, "not_connected")
        agent = getattr(request.app.ctx, "agent", None)
        if agent is None or agent.tracker_store is None:
            return _answer(503, False, "not_ready")
        tracker = await agent.tracker_store.retrieve(sender)
        slot = tracker.get_slot(VERIFIED_CUSTOMER_SLOT) if tracker is not None else None
        if not _same_customer(slot, customer_id):
            logger.warning("notice for customer %s refused: %s is not theirs", customer_id, sender)
            return _answer(409, False, "other_customer")
        message = await append_bot_message(agent, sender, text.strip(), metadata={NOTICE_KEY: True})
        await self.chat.push(sender, {"text": message["text"]})
        return _answer(200, True)


class NoticeInput(InputChannel):
    """Serves ``/webhooks/live/notify``; it receives no customer messages itself."""

    @classmethod
    def name(cls) -> str:
        return "live"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> NoticeInput:
        return cls()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        route = NoticeRoute()
        blueprint = Blueprint("kefu_notices", __name__)

        @blueprint.route("/notify", methods=["POST"])
        async def notify(request: Request) -> HTTPResponse:  # Sanic tags handlers
            return await route.notify(request)

        return blueprint
