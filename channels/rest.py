"""REST channel that validates requests before they reach the assistant.

Rasa's stock `RestInput` answers a body that is not JSON with a 500 and passes empty or
multi-megabyte texts straight into the NLU pipeline. `KefuRestInput` keeps the stock URL
(`/webhooks/rest/webhook`) and response format, and answers malformed requests with a 4xx
JSON error that says what was wrong, so one bad client never disturbs other conversations.

Request: ``POST /webhooks/rest/webhook`` with
``{"sender": "id", "message": "text", "metadata": {"language": "zh", "customer_token": JWT}}``.

- ``sender`` names the conversation. Ids starting with ``web-`` belong to the web chat and are
  refused (400 ``reserved_sender``), so a REST caller cannot step into a web conversation.
- ``metadata.customer_token`` (optional): a signed customer token (``python -m commerce token``).
  It is checked here and never stored: the message carries only a signed ``kefu_identity``
  claim for this sender that expires with the token (see :mod:`channels.identity`). A token
  that does not check out is dropped and the customer is treated as anonymous.
  ``kefu_identity`` / ``kefu_client`` sent by a client are dropped.
- Rate limits per client address and per conversation (:mod:`channels.limits`): over them,
  429 ``rate_limited`` with ``retry_after_s`` and a ``Retry-After`` header.

Calling it server to server (a shop's backend relaying its customers' messages): set
``KEFU_REST_SECRET`` on the Kefu server and sign each request's sender:
``X-Kefu-Signature: hex(HMAC-SHA256(KEFU_REST_SECRET, sender))``, e.g. in Python
``hmac.new(secret.encode(), sender.encode(), hashlib.sha256).hexdigest()``. With the secret set,
a request without a valid signature gets 401 ``invalid_signature``, so nobody but the shop can
pick sender ids (and with them a conversation's verified identity). To have the limits count each
customer rather than the shop's server, list that server in ``KEFU_TRUSTED_PROXIES`` and send
the customer's address in ``X-Forwarded-For``.

Receiving agent replies (and the bot's notes no webhook call answered, such as "you are back
with Kefu"): poll ``GET /webhooks/rest/messages?sender=<id>&after=<cursor>[&limit=50]`` with the
same ``X-Kefu-Signature`` of the sender. It answers ``{"sender", "messages", "cursor"}``: the bot
and agent messages written to that conversation's tracker after ``cursor`` (omit it, or send
``0``, for all of them), oldest first, at most ``limit`` (1-100); each message has ``role``
(``bot`` or ``agent``; an agent's also ``agent``, their name), ``text``, ``timestamp`` and, when
present, ``quick_replies`` and ``custom``. Pass the answer's ``cursor`` as the next ``after``;
a page never skips a message. Bot replies the webhook already returned are listed too (the
poll reads the tracker). Polling needs ``KEFU_REST_SECRET`` (403 ``polling_disabled`` without
it): a sender id alone proves nothing, and a conversation's messages may hold a customer's
order details. Web chat conversations (``web-``) are never served.

Pushing instead of polling follows Rasa's ``CallbackInput`` convention
(``rasa.core.channels.callback``: bot messages are POSTed to one URL the operator configured, as
``{"recipient_id", "text", ...}``): set ``KEFU_REST_CALLBACK_URL`` and each message no webhook
call answered (an agent's reply, the console's notes) is POSTed there as ``{"recipient_id",
"text"[, "agent"]}`` with ``X-Kefu-Signature`` (the recipient, signed as above), one try of at
most 5 s; a failure is logged and the message stays in the tracker for polling. Rasa's own
``CallbackInput`` channel is not enabled: its webhook would bypass this channel's validation,
signatures and limits.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from channels.faults import RETRY_AFTER_FAULT_S, LockStoreUnavailable, fault_reply
from channels.identity import (
    TOKEN_KEY,
    channel_metadata,
    check_customer_token,
    client_address,
    trusted_proxies,
)
from channels.limits import MessageLimits, RateLimited
from channels.live import WEB_SENDER_PREFIX, messages_after

logger = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_CHARS = 2000
DEFAULT_MAX_BODY_BYTES = 64 * 1024
#: Deepest nesting accepted in ``metadata`` (deeper structures are refused, not stored).
MAX_METADATA_DEPTH = 8
# Sender ids become tracker keys and log fields: keep them short and printable.
SENDER_ID_PATTERN = re.compile(r"^[\w.:@\-]{1,128}$")
#: Sender ids of the web chat's conversations.
RESERVED_SENDER_PREFIX = WEB_SENDER_PREFIX
REST_SECRET_ENV = "KEFU_REST_SECRET"
SIGNATURE_HEADER = "X-Kefu-Signature"
#: Messages per polling answer: the default and the most a caller may ask for.
DEFAULT_POLL_LIMIT = 50
MAX_POLL_LIMIT = 100
MAX_CURSOR = 10**9


class RequestRejected(ValueError):
    """A REST request that cannot be processed, with an HTTP status and a stable code."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.extra: dict[str, Any] = {}

    def as_response(self) -> HTTPResponse:
        return response.json(
            {"error": self.code, "message": self.message, **self.extra},
            status=self.status,
            headers=self.headers,
        )

    @classmethod
    def rate_limited(cls, refused: RateLimited) -> RequestRejected:
        rejected = cls(
            429, "rate_limited", refused.message, {"Retry-After": str(refused.retry_after_s)}
        )
        rejected.extra = {"retry_after_s": refused.retry_after_s}
        return rejected


def nesting_exceeds(value: Any, max_depth: int) -> bool:
    """True when lists / dicts in ``value`` nest deeper than ``max_depth`` (checked without
    recursion, so any depth is safe to ask about)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= max_depth:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def check_sender(sender: Any) -> str:
    """``sender`` when it may name a REST conversation.

    Raises:
        RequestRejected: 400 ``invalid_sender`` (not a short printable id) or
            ``reserved_sender`` (a web chat conversation).
    """
    if not isinstance(sender, str) or not SENDER_ID_PATTERN.match(sender):
        raise RequestRejected(
            400,
            "invalid_sender",
            "'sender' must be a string of 1-128 letters, digits or . : @ _ - characters.",
        )
    if sender.lower().startswith(RESERVED_SENDER_PREFIX):
        raise RequestRejected(
            400,
            "reserved_sender",
            f"Sender ids starting with '{RESERVED_SENDER_PREFIX}' belong to the web chat; "
            "choose another.",
        )
    return sender


def _whole_number(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise RequestRejected(
            400, f"invalid_{name}", f"'{name}' must be a whole number from {low} to {high}."
        )
    return number


def parse_poll_query(args) -> tuple[str, int, int]:
    """``(sender_id, cursor, limit)`` of a polling request's query string.

    Args:
        args: the query arguments (``request.args``: name → list of values).

    Raises:
        RequestRejected: 400 with ``invalid_sender``, ``reserved_sender``, ``invalid_after``
            or ``invalid_limit``.
    """
    sender = check_sender(args.get("sender"))
    cursor = _whole_number(args.get("after"), "after", 0, 0, MAX_CURSOR)
    limit = _whole_number(args.get("limit"), "limit", DEFAULT_POLL_LIMIT, 1, MAX_POLL_LIMIT)
    return sender, cursor, limit


def parse_rest_payload(
    body: bytes,
    max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> tuple[str, str, dict[str, Any]]:
    """Validates a REST webhook body.

    Args:
        body: The raw request body.
        max_message_chars: Longest accepted message text.
        max_body_bytes: Largest accepted body.

    Returns:
        `(sender_id, text, metadata)`; metadata as sent (the channel strips reserved keys).

    Raises:
        RequestRejected: With the HTTP status and a code naming what was wrong.
    """
    if len(body) > max_body_bytes:
        raise RequestRejected(
            413, "body_too_large", f"The request body is larger than {max_body_bytes} bytes."
        )
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise RequestRejected(400, "invalid_encoding", "The request body must be UTF-8.") from e
    except (json.JSONDecodeError, RecursionError) as e:  # RecursionError: nested too deeply
        raise RequestRejected(
            400,
            "invalid_json",
            'The request body must be JSON like {"sender": "id", "message": "hi"}.',
        ) from e
    if not isinstance(payload, dict):
        raise RequestRejected(400, "invalid_json", "The request body must be a JSON object.")

    sender = check_sender(payload.get("sender"))
    text = payload.get("message")
    if not isinstance(text, str):
        raise RequestRejected(400, "invalid_message", "'message' must be a string.")
    text = text.replace("\x00", "").strip()
    if not text:
        raise RequestRejected(400, "empty_message", "'message' must not be empty.")
    if len(text) > max_message_chars:
        raise RequestRejected(
            413,
            "message_too_long",
            f"'message' is longer than {max_message_chars} characters; please shorten it.",
        )
    metadata = payload.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise RequestRejected(400, "invalid_metadata", "'metadata' must be a JSON object.")
    if nesting_exceeds(metadata, MAX_METADATA_DEPTH):
        raise RequestRejected(
            400,
            "invalid_metadata",
            f"'metadata' must not nest deeper than {MAX_METADATA_DEPTH} levels.",
        )
    return sender, text, metadata


def sender_signature(secret: str, sender: str) -> str:
    """``hex(HMAC-SHA256(secret, sender))``: what ``X-Kefu-Signature`` carries."""
    return hmac.new(secret.encode("utf-8"), sender.encode("utf-8"), hashlib.sha256).hexdigest()


def check_signature(secret: str | None, sender: str, signature: str | None) -> None:
    """Nothing to check without a secret; else the header must sign ``sender``.

    Raises:
        RequestRejected: 401 ``invalid_signature``.
    """
    if not secret:
        return
    if not signature or not hmac.compare_digest(
        signature.strip().lower(), sender_signature(secret, sender)
    ):
        raise RequestRejected(
            401,
            "invalid_signature",
            f"This server requires {SIGNATURE_HEADER}: hex HMAC-SHA256 of the sender "
            "with the shared secret.",
        )


class KefuRestInput(RestInput):
    """Rasa's REST channel with request validation (same URL and response format)."""

    @classmethod
    def name(cls) -> str:
        return "rest"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> KefuRestInput:
        credentials = credentials or {}
        return cls(
            max_message_chars=int(credentials.get("max_message_chars", DEFAULT_MAX_MESSAGE_CHARS)),
            max_body_bytes=int(credentials.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)),
        )

    def __init__(
        self,
        max_message_chars: int = DEFAULT_MAX_MESSAGE_CHARS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        *,
        limits: MessageLimits | None = None,
        proxies=None,
        secret: str | None = None,
    ) -> None:
        """
        Args:
            max_message_chars: longest accepted message.
            max_body_bytes: largest accepted body.
            limits: message rate limits; ``KEFU_RATE_*`` by default.
            proxies: trusted proxy networks; ``KEFU_TRUSTED_PROXIES`` by default.
            secret: the sender-signing secret; ``KEFU_REST_SECRET`` by default.
        """
        self.max_message_chars = max_message_chars
        self.max_body_bytes = max_body_bytes
        self.limits = limits if limits is not None else MessageLimits.from_env()
        self.proxies = tuple(proxies) if proxies is not None else trusted_proxies()
        self.secret = secret if secret is not None else os.environ.get(REST_SECRET_ENV) or None

    def _client(self, request: Request) -> str | None:
        return client_address(
            request.ip, ",".join(request.headers.getall("x-forwarded-for", [])), self.proxies
        )

    async def _message(self, request: Request) -> tuple[str, str, dict[str, Any]]:
        """``(sender_id, text, metadata)`` of an accepted request.

        Raises:
            RequestRejected: malformed, unsigned or over a rate limit.
        """
        client = self._client(request)
        refused = self.limits.check_client(client)
        if refused:
            raise RequestRejected.rate_limited(refused)
        sender_id, text, sent = parse_rest_payload(
            request.body or b"", self.max_message_chars, self.max_body_bytes
        )
        check_signature(self.secret, sender_id, request.headers.get(SIGNATURE_HEADER))
        refused = self.limits.check_conversation(sender_id)
        if refused:
            raise RequestRejected.rate_limited(refused)
        identity = await check_customer_token(sent.get(TOKEN_KEY))
        metadata = channel_metadata(sent, sender_id=sender_id, identity=identity, client=client)
        return sender_id, text, metadata

    async def _poll(self, request: Request) -> dict[str, Any]:
        """The answer to ``GET /messages`` (see the module docstring).

        Raises:
            RequestRejected: polling disabled, a bad query or signature, or no tracker store.
        """
        if not self.secret:
            raise RequestRejected(
                403,
                "polling_disabled",
                f"Polling for messages needs {REST_SECRET_ENV} on the server and "
                f"{SIGNATURE_HEADER} with each request.",
            )
        sender_id, cursor, limit = parse_poll_query(request.args)
        check_signature(self.secret, sender_id, request.headers.get(SIGNATURE_HEADER))
        agent = getattr(request.app.ctx, "agent", None)
        if agent is None or agent.tracker_store is None:
            raise RequestRejected(503, "not_ready", "The assistant is still loading.")
        try:
            # The full tracker: positions stay put when a new conversation session starts.
            tracker = await agent.tracker_store.retrieve_full_tracker(sender_id)
        except Exception as e:
            logger.exception("messages of sender %s could not be read", sender_id)
            raise RequestRejected(
                503, "unavailable", "Messages cannot be read right now; try again shortly."
            ) from e
        messages, after = messages_after(tracker.events if tracker else [], cursor, limit)
        return {"sender": sender_id, "messages": messages, "cursor": str(after)}

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]) -> Blueprint:
        webhook = Blueprint("kefu_rest_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/messages", methods=["GET"])
        async def poll(request: Request) -> HTTPResponse:
            try:
                return response.json(await self._poll(request))
            except RequestRejected as rejected:
                return rejected.as_response()

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            try:
                sender_id, text, metadata = await self._message(request)
            except RequestRejected as rejected:
                return rejected.as_response()
            collector = CollectingOutputChannel()
            try:
                await on_new_message(
                    UserMessage(
                        text,
                        collector,
                        sender_id,
                        input_channel=self.name(),
                        metadata=metadata,
                    )
                )
            except LockStoreUnavailable:  # refused before anything was read or written
                return response.json(
                    [{"recipient_id": sender_id, "text": fault_reply()}],
                    status=503,
                    headers={"Retry-After": str(RETRY_AFTER_FAULT_S)},
                )
            except Exception:  # the server keeps serving; the client gets a clear answer
                logger.exception("REST message from sender %s could not be processed", sender_id)
                return response.json(
                    {"error": "processing_failed", "message": fault_reply()}, status=500
                )
            return response.json(collector.messages)

        return webhook
