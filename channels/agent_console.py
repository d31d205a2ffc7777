"""The human-agent console: the handoff queue, the conversation, the customer, and replies.

``GET /webhooks/agent/`` serves the console page; its JSON API needs the agent token
(``KEFU_AGENT_TOKEN``) as ``Authorization: Bearer …`` and names the agent with ``X-Kefu-Agent``:

- ``GET  api/queue`` — waiting and assigned handoffs, most urgent first;
- ``GET  api/handoffs/<id>`` — the handoff, the conversation (from the tracker store) with the
  frustration score of each customer message, the customer's recent orders and open tickets;
- ``POST api/handoffs/<id>/claim`` — the agent takes the conversation (the customer is told);
- ``POST api/handoffs/<id>/reply`` ``{"text": …}`` — the reply goes into the tracker and, live,
  into the customer's web chat;
- ``POST api/handoffs/<id>/handback`` — the handoff is closed, its ticket resolved, the bot is
  resumed and the customer is told they are back with Kefu.

Customer data shown here comes from the commerce services; a conversation's customer is known
only when the conversation proved it (order + email/phone, or a signed token).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, ConversationResumed, Event
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from channels.live import (
    AGENT_KEY,
    append_bot_message,
    chat_history,
    live_chat,
)
from channels.rest import RequestRejected
from channels.webchat import static_file

logger = logging.getLogger(__name__)

AGENT_TOKEN_ENV = "KEFU_AGENT_TOKEN"
AGENT_NAME = re.compile(r"^[\w .'\-]{1,40}$")
MAX_REPLY_CHARS = 2000


def _json(value: Any, status: int = 200) -> HTTPResponse:
    return response.json(value, status=status, default=str)


def _authorise(request: Request) -> str:
    """The agent's name, once the bearer token matches ``KEFU_AGENT_TOKEN``."""
    expected = os.environ.get(AGENT_TOKEN_ENV, "")
    if not expected:
        raise RequestRejected(
            503, "console_disabled", f"Set {AGENT_TOKEN_ENV} to enable the console."
        )
    header = request.headers.get("authorization", "")
    given = header[7:] if header.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise RequestRejected(401, "unauthorised", "A valid agent token is required.")
    name = (request.headers.get("x-kefu-agent") or "agent").strip()
    if not AGENT_NAME.match(name):
        raise RequestRejected(400, "invalid_agent", "X-Kefu-Agent: 1-40 letters, digits, spaces.")
    return name


async def _service(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    from commerce.db import shared_session_factory

    return await asyncio.to_thread(fn, shared_session_factory(), *args, **kwargs)


def _handoff_json(view) -> dict[str, Any]:
    data = asdict(view)
    data.pop("created", None)
    return data


class AgentConsoleInput(InputChannel):
    """Serves the console; it receives no customer messages itself."""

    @classmethod
    def name(cls) -> str:
        return "agent"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> AgentConsoleInput:
        return cls()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        from commerce.errors import CommerceError, HandoffNotFound, InvalidTransition
        from commerce.services import orders, support

        console = Blueprint("kefu_agent_console", __name__)

        def api(handler):
            """Authorises, maps domain errors to JSON errors, and never leaks a traceback."""

            async def wrapped(request: Request, **kwargs: Any) -> HTTPResponse:
                try:
                    agent_name = _authorise(request)
                    return _json(await handler(request, agent_name, **kwargs))
                except RequestRejected as rejected:
                    return rejected.as_response()
                except HandoffNotFound:
                    return _json({"error": "not_found", "message": "No such handoff."}, 404)
                except InvalidTransition as e:
                    return _json({"error": "conflict", "message": str(e)}, 409)
                except CommerceError as e:
                    return _json({"error": getattr(e, "code", "invalid"), "message": str(e)}, 400)
                except Exception:
                    logger.exception("agent console request failed")
                    return _json({"error": "unavailable", "message": "Try again shortly."}, 503)

            wrapped.__name__ = handler.__name__
            return wrapped

        def rasa_agent(request: Request):
            agent = getattr(request.app.ctx, "agent", None)
            if agent is None or agent.tracker_store is None:
                raise RequestRejected(503, "not_ready", "The assistant is still loading.")
            return agent

        async def handoff_for(handoff_id: int, agent_name: str, *, assigned: bool):
            view = await _service(support.get_handoff, handoff_id)
            if assigned and (view.status != "assigned" or view.assigned_to != agent_name):
                raise RequestRejected(409, "not_yours", "Claim this conversation first.")
            return view

        async def say(
            request: Request,
            sender_id: str,
            response_name: str,
            *,
            before: tuple[Event, ...] = (),
            after: tuple[Event, ...] = (),
            **kwargs: Any,
        ):
            """Utter a domain response (in the conversation's language) outside a prediction,
            with the events that must surround it in the same tracker update."""
            agent = rasa_agent(request)
            tracker = await agent.tracker_store.retrieve(sender_id)
            if tracker is None:
                return None
            rendered = await agent.nlg.generate(response_name, tracker, "webchat", **kwargs)
            text = (rendered or {}).get("text") or ""
            message = await append_bot_message(agent, sender_id, text, before=before, after=after)
            if text:
                await live_chat.push(sender_id, {"text": text})
            return message

        @console.route("/", methods=["GET"])
        async def page(request: Request) -> HTTPResponse:
            return static_file("agent/index.html")

        @console.route("/api/queue", methods=["GET"])
        @api
        async def queue(request: Request, agent_name: str) -> dict[str, Any]:
            waiting = await _service(support.list_handoff_queue, "waiting")
            assigned = await _service(support.list_handoff_queue, "assigned")
            return {
                "agent": agent_name,
                "waiting": [_handoff_json(v) for v in waiting],
                "assigned": [_handoff_json(v) for v in assigned],
            }

        @console.route("/api/handoffs/<handoff_id:int>", methods=["GET"])
        @api
        async def detail(request: Request, agent_name: str, handoff_id: int) -> dict[str, Any]:
            view = await handoff_for(handoff_id, agent_name, assigned=False)
            tracker = await rasa_agent(request).tracker_store.retrieve(view.conversation_id)
            messages = chat_history(tracker.events, 200) if tracker else []
            scores = [m["frustration"] for m in messages if m["role"] == "user"]
            latest = scores[-1] if scores else 0.0
            customer: dict[str, Any] | None = None
            if view.customer_id is not None:
                recent = await _service(orders.list_orders, view.customer_id, 5)
                tickets = await _service(support.list_tickets, view.customer_id)
                customer = {
                    "customer_id": view.customer_id,
                    "orders": [asdict(o) for o in recent],
                    "open_tickets": [asdict(t) for t in tickets],
                }
            return {
                "handoff": _handoff_json(view),
                "messages": messages,
                "sentiment": {
                    "latest": latest,
                    "peak": max(scores, default=0.0),
                    "label": _sentiment_label(latest),
                },
                "customer": customer,
                "paused": bool(tracker and tracker.is_paused()),
            }

        @console.route("/api/handoffs/<handoff_id:int>/claim", methods=["POST"])
        @api
        async def claim(request: Request, agent_name: str, handoff_id: int) -> dict[str, Any]:
            view = await _service(support.claim_handoff, handoff_id, agent_name)
            if view.created:  # first claim: tell the customer who is with them
                await say(request, view.conversation_id, "utter_agent_joined", agent=agent_name)
            return {"handoff": _handoff_json(view)}

        @console.route("/api/handoffs/<handoff_id:int>/reply", methods=["POST"])
        @api
        async def reply(request: Request, agent_name: str, handoff_id: int) -> dict[str, Any]:
            body = request.json if request.body else None
            text = body.get("text") if isinstance(body, dict) else None
            if not isinstance(text, str) or not text.strip():
                raise RequestRejected(400, "empty_reply", 'Send {"text": "your reply"}.')
            text = text.strip()
            if len(text) > MAX_REPLY_CHARS:
                raise RequestRejected(
                    413, "reply_too_long", f"At most {MAX_REPLY_CHARS} characters."
                )
            view = await handoff_for(handoff_id, agent_name, assigned=True)
            message = await append_bot_message(
                rasa_agent(request),
                view.conversation_id,
                text,
                metadata={AGENT_KEY: agent_name},
            )
            delivered = await live_chat.push(
                view.conversation_id, {"text": text, "agent": agent_name}
            )
            return {"message": message, "delivered_live": delivered}

        @console.route("/api/handoffs/<handoff_id:int>/handback", methods=["POST"])
        @api
        async def handback(request: Request, agent_name: str, handoff_id: int) -> dict[str, Any]:
            view = await handoff_for(handoff_id, agent_name, assigned=True)
            closed = await _service(support.close_handoff, handoff_id, True)
            # The paused conversation stopped without listening; resume it in the state a bot
            # turn ends in, so the next message is predicted as at any other turn.
            await say(
                request,
                view.conversation_id,
                "utter_back_to_bot",
                before=(ConversationResumed(),),
                after=(ActionExecuted(ACTION_LISTEN_NAME),),
            )
            return {"handoff": _handoff_json(closed)}

        return console


def _sentiment_label(score: float) -> str:
    if score >= 0.7:
        return "angry"
    if score >= 0.4:
        return "frustrated"
    return "calm"
