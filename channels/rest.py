"""REST channel that validates requests before they reach the assistant.

Rasa's stock `RestInput` answers a body that is not JSON with a 500 and passes empty or
multi-megabyte texts straight into the NLU pipeline. `KefuRestInput` keeps the stock URL
(`/webhooks/rest/webhook`) and response format, and answers malformed requests with a 4xx
JSON error that says what was wrong, so one bad client never disturbs other conversations.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)

DEFAULT_MAX_MESSAGE_CHARS = 2000
DEFAULT_MAX_BODY_BYTES = 64 * 1024
# Sender ids become tracker keys and log fields: keep them short and printable.
SENDER_ID_PATTERN = re.compile(r"^[\w.:@\-]{1,128}$")


class RequestRejected(ValueError):
    """A REST request that cannot be processed, with an HTTP status and a stable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def as_response(self) -> HTTPResponse:
        return response.json({"error": self.code, "message": self.message}, status=self.status)


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
        `(sender_id, text, metadata)`.

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
    except json.JSONDecodeError as e:
        raise RequestRejected(
            400,
            "invalid_json",
            'The request body must be JSON like {"sender": "id", "message": "hi"}.',
        ) from e
    if not isinstance(payload, dict):
        raise RequestRejected(400, "invalid_json", "The request body must be a JSON object.")

    sender = payload.get("sender")
    if not isinstance(sender, str) or not SENDER_ID_PATTERN.match(sender):
        raise RequestRejected(
            400,
            "invalid_sender",
            "'sender' must be a string of 1-128 letters, digits or . : @ _ - characters.",
        )
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
    return sender, text, metadata


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
    ) -> None:
        self.max_message_chars = max_message_chars
        self.max_body_bytes = max_body_bytes

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[None]]) -> Blueprint:
        webhook = Blueprint("kefu_rest_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            try:
                sender_id, text, metadata = parse_rest_payload(
                    request.body or b"", self.max_message_chars, self.max_body_bytes
                )
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
            except Exception:  # the server keeps serving; the client gets a clear answer
                logger.exception("REST message from sender %s could not be processed", sender_id)
                return response.json(
                    {
                        "error": "processing_failed",
                        "message": "Sorry, something went wrong on our side. "
                        "Please try again in a moment.",
                    },
                    status=500,
                )
            return response.json(collector.messages)

        return webhook
