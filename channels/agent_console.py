"""The human-agent console: the handoff queue, the conversation, the customer, and replies.

``GET /webhooks/agent/`` serves the console page. Its JSON API needs the agent's own token
(made by ``python -m commerce agent add NAME``) as ``Authorization: Bearer …``; the agent's name
is the account's, whatever the request says (an ``X-Kefu-Agent`` header is ignored):

- ``GET  api/me`` — who is signed in;
- ``GET  api/queue`` — waiting and assigned handoffs in queue order (most urgent first, then
  the ones at high complaint risk), each with its ``risk`` score and ``at_risk`` flag;
- ``GET  api/handoffs/<id>`` — the handoff, the conversation (from the tracker store) with the
  frustration score of each customer message, the customer's recent orders and open tickets;
- ``POST api/handoffs/<id>/claim`` — the agent takes the conversation (the customer is told);
- ``POST api/handoffs/<id>/reply`` ``{"text": …}`` — the reply goes into the tracker and, live,
  into the customer's web chat on whichever replica holds the tab (:mod:`channels.live`), or
  for a REST conversation to ``KEFU_REST_CALLBACK_URL`` when set (REST callers can also poll
  ``/webhooks/rest/messages``); ``delivered_live`` says whether a push went out; only the agent
  the handoff is assigned to may reply;
- ``POST api/handoffs/<id>/handback`` — (the assignee only) the handoff is closed, its ticket
  resolved, the bot is resumed and the customer is told they are back with Kefu;
- ``GET  api/dashboard?since=7d[&until=ISO]`` — the service numbers of the conversations started
  in the window (:func:`analytics.report.build`: the report's queries); 503
  ``analytics_unavailable`` when the analytics tables are absent or their database is down;
- ``GET  api/outreach[?min_contacts=1]`` — late orders (undelivered shipments past their promised
  date) that customers already contacted Kefu about at least ``min_contacts`` times, most days
  late first (:func:`analytics.risk.late_orders_with_contacts`); 503 ``analytics_unavailable``
  as for the dashboard.

``GET /webhooks/agent/metrics`` needs no agent: it is the operators' Prometheus endpoint
(:mod:`analytics.prometheus`), behind ``Authorization: Bearer $KEFU_METRICS_TOKEN`` when that
variable is set, and open to loopback clients only when it is not.

Claims, replies, hand-backs and refused attempts go to the agent audit log
(:mod:`commerce.services.agents`); failed logins are recorded and throttled per client (429).

Customer data shown here comes from the commerce services; a conversation's customer is known
only when the conversation proved it (order + email/phone, or a signed token).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, ConversationResumed, Event, SlotSet
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from channels.identity import client_address, trusted_proxies
from channels.live import (
    AGENT_KEY,
    append_bot_message,
    chat_history,
    live_chat,
)
from channels.rest import RequestRejected
from channels.webchat import static_file
from commerce.dto import AgentAccount, HandoffView
from contract import SURVEY_PENDING_SLOT, frustration_label

logger = logging.getLogger(__name__)

MAX_REPLY_CHARS = 2000
#: What an agent reads when their token is refused.
SIGN_IN_HINT = (
    "A valid agent token is required (an operator makes one: python -m commerce agent add NAME)."
)

Handler = Callable[..., Awaitable[dict[str, Any]]]


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> HTTPResponse:
    return response.json(value, status=status, default=str, headers=headers)


def _handoff_json(view: HandoffView) -> dict[str, Any]:
    """A queue entry for the page: ``risk`` rounded to 2 places (or null), ``at_risk`` from the
    contract's cut-off (the page badges those entries "at risk")."""
    data = asdict(view)
    data.pop("created", None)
    # Two places are all an agent reads; the flag is computed on the full score, not this one.
    data["risk"] = round(view.risk, 2) if view.risk is not None else None
    return data


def _outreach_json(row: dict[str, Any]) -> dict[str, Any]:
    """An outreach entry for the page: what an agent acts on. The conversation ids and the
    order's keyed hash stay server-side (the page opens no conversation by id; the hash only
    joins the two databases)."""
    last = row["last_contact_at"]
    return {
        "number": row["number"],
        "status": row["status"],
        "estimated_delivery": row["estimated_delivery"],
        "days_late": row["days_late"],
        "carrier": row["carrier"],
        "contacts": row["contacts"],
        "last_contact_at": (
            datetime.fromtimestamp(last, timezone.utc).isoformat(timespec="seconds")
            if last is not None
            else None
        ),
    }


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


class AgentConsole:
    """The console's API, one method per route; each gets the signed-in account.

    Args:
        session_factory: the commerce database; by default the process-wide one, looked up per
            call (so a process starts even when the database is down).
        proxies: trusted proxy networks; ``KEFU_TRUSTED_PROXIES`` by default.
    """

    def __init__(self, session_factory=None, proxies=None, analytics_url=None) -> None:
        self._session_factory = session_factory
        self.proxies = tuple(proxies) if proxies is not None else trusted_proxies()
        self._analytics_url = analytics_url
        self._analytics_engine = None

    def analytics_engine(self):
        """The analytics database (``analytics.db`` conventions), made on first use."""
        if self._analytics_engine is None:
            from analytics import db

            self._analytics_engine = db.engine(self._analytics_url)
        return self._analytics_engine

    def client(self, request: Request) -> str | None:
        """The client's address (the peer, or what a trusted proxy says it forwarded)."""
        return client_address(
            request.ip, ",".join(request.headers.getall("x-forwarded-for", [])), self.proxies
        )

    # ---- plumbing ------------------------------------------------------------------------

    async def _service(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        factory = self._session_factory
        if factory is None:
            from commerce.db import shared_session_factory

            factory = shared_session_factory()
        return await asyncio.to_thread(fn, factory, *args, **kwargs)

    async def _audit(
        self, request: Request, account: AgentAccount, action: str, view: HandoffView, **kw: Any
    ) -> None:
        from commerce.services import agents

        await self._service(
            agents.record_audit,
            account.name,
            action,
            handoff_id=view.handoff_id,
            conversation_id=view.conversation_id,
            client=self.client(request),
            **kw,
        )

    async def _sign_in(self, request: Request) -> AgentAccount:
        from commerce.errors import NotAuthorized, TooManyAttempts
        from commerce.services import agents

        token = _bearer(request)
        if not token:
            raise RequestRejected(401, "unauthorised", SIGN_IN_HINT)
        try:
            return await self._service(agents.authenticate, token, client=self.client(request))
        except TooManyAttempts as e:
            raise _Throttled(e.retry_after_s) from e
        except NotAuthorized as e:
            raise RequestRejected(401, "unauthorised", SIGN_IN_HINT) from e

    def api(self, handler: Handler) -> Callable[..., Awaitable[HTTPResponse]]:
        """Signs the agent in, maps domain errors to JSON errors, never leaks a traceback."""
        from commerce.errors import CommerceError, HandoffNotFound, InvalidTransition

        async def route(request: Request, **kwargs: Any) -> HTTPResponse:
            try:
                account = await self._sign_in(request)
                return _json(await handler(request, account, **kwargs))
            except _Throttled as throttled:
                return throttled.as_response()
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

        route.__name__ = handler.__name__
        return route

    def rasa_agent(self, request: Request):
        agent = getattr(request.app.ctx, "agent", None)
        if agent is None or agent.tracker_store is None:
            raise RequestRejected(503, "not_ready", "The assistant is still loading.")
        return agent

    async def assigned_handoff(
        self, request: Request, account: AgentAccount, handoff_id: int, action: str
    ) -> HandoffView:
        """The handoff, when it is assigned to ``account``; else refused (and audited)."""
        from commerce.services import agents, support

        view = await self._service(support.get_handoff, handoff_id)
        if view.status == "assigned" and view.assigned_to == account.name:
            return view
        await self._audit(request, account, agents.ACTION_DENIED, view, detail=action)
        if view.status == "closed" and view.assigned_to == account.name:
            raise RequestRejected(409, "closed", "This conversation was handed back already.")
        raise RequestRejected(
            403, "not_assignee", "Only the agent who took this conversation can do that."
        )

    async def say(
        self,
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
        agent = self.rasa_agent(request)
        tracker = await agent.tracker_store.retrieve(sender_id)
        if tracker is None:
            return None
        rendered = await agent.nlg.generate(response_name, tracker, "webchat", **kwargs)
        text = (rendered or {}).get("text") or ""
        message = await append_bot_message(agent, sender_id, text, before=before, after=after)
        if text:
            await live_chat.push(sender_id, {"text": text})
        return message

    def blueprint(self) -> Blueprint:
        console = Blueprint("kefu_agent_console", __name__)

        async def page(request: Request) -> HTTPResponse:  # Sanic tags handlers: no bound methods
            return await self.page(request)

        console.add_route(page, "/", methods=["GET"])

        async def metrics(request: Request) -> HTTPResponse:
            return await self.metrics(request)

        console.add_route(metrics, "/metrics", methods=["GET"])
        routes: list[tuple[Handler, str, str]] = [
            (self.me, "/api/me", "GET"),
            (self.queue, "/api/queue", "GET"),
            (self.detail, "/api/handoffs/<handoff_id:int>", "GET"),
            (self.claim, "/api/handoffs/<handoff_id:int>/claim", "POST"),
            (self.reply, "/api/handoffs/<handoff_id:int>/reply", "POST"),
            (self.handback, "/api/handoffs/<handoff_id:int>/handback", "POST"),
            (self.dashboard, "/api/dashboard", "GET"),
            (self.outreach, "/api/outreach", "GET"),
        ]
        for handler, uri, method in routes:
            console.add_route(self.api(handler), uri, methods=[method])
        return console

    # ---- routes --------------------------------------------------------------------------

    async def page(self, request: Request) -> HTTPResponse:
        return static_file("agent/index.html")

    async def me(self, request: Request, account: AgentAccount) -> dict[str, Any]:
        return {"agent": account.name, "agent_id": account.agent_id}

    async def queue(self, request: Request, account: AgentAccount) -> dict[str, Any]:
        from commerce.services import support

        waiting = await self._service(support.list_handoff_queue, "waiting")
        assigned = await self._service(support.list_handoff_queue, "assigned")
        return {
            "agent": account.name,
            "waiting": [_handoff_json(v) for v in waiting],
            "assigned": [_handoff_json(v) for v in assigned],
        }

    async def detail(
        self, request: Request, account: AgentAccount, handoff_id: int
    ) -> dict[str, Any]:
        from commerce.services import orders, support

        view = await self._service(support.get_handoff, handoff_id)
        tracker = await self.rasa_agent(request).tracker_store.retrieve(view.conversation_id)
        messages = chat_history(tracker.events, 200) if tracker else []
        for message in messages:
            if message["role"] == "user":
                message["mood"] = frustration_label(message["frustration"])
        scores = [m["frustration"] for m in messages if m["role"] == "user"]
        latest = scores[-1] if scores else 0.0
        customer: dict[str, Any] | None = None
        if view.customer_id is not None:
            recent = await self._service(orders.list_orders, view.customer_id, 5)
            tickets = await self._service(support.list_tickets, view.customer_id)
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
                "label": frustration_label(latest),
            },
            "customer": customer,
            "paused": bool(tracker and tracker.is_paused()),
        }

    async def claim(
        self, request: Request, account: AgentAccount, handoff_id: int
    ) -> dict[str, Any]:
        from commerce.services import agents, support

        view = await self._service(support.claim_handoff, handoff_id, account.name)
        if view.created:  # first claim: tell the customer who is with them
            await self._audit(request, account, agents.ACTION_CLAIM, view)
            await self.say(request, view.conversation_id, "utter_agent_joined", agent=account.name)
        return {"handoff": _handoff_json(view)}

    async def reply(
        self, request: Request, account: AgentAccount, handoff_id: int
    ) -> dict[str, Any]:
        from commerce.services import agents

        body = request.json if request.body else None
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise RequestRejected(400, "empty_reply", 'Send {"text": "your reply"}.')
        text = text.strip()
        if len(text) > MAX_REPLY_CHARS:
            raise RequestRejected(413, "reply_too_long", f"At most {MAX_REPLY_CHARS} characters.")
        view = await self.assigned_handoff(request, account, handoff_id, "reply")
        message = await append_bot_message(
            self.rasa_agent(request),
            view.conversation_id,
            text,
            metadata={AGENT_KEY: account.name},
        )
        # The log keeps who replied where and how much, not what (the text is in the tracker).
        await self._audit(request, account, agents.ACTION_REPLY, view, detail=f"{len(text)} chars")
        delivered = await live_chat.push(
            view.conversation_id, {"text": text, "agent": account.name}
        )
        return {"message": message, "delivered_live": delivered}

    async def handback(
        self, request: Request, account: AgentAccount, handoff_id: int
    ) -> dict[str, Any]:
        from commerce.services import agents, support

        view = await self.assigned_handoff(request, account, handoff_id, "handback")
        closed = await self._service(support.close_handoff, handoff_id, True)
        await self._audit(request, account, agents.ACTION_HANDBACK, view)
        # The paused conversation stopped without listening; resume it in the state a bot
        # turn ends in, so the next message is predicted as at any other turn. The customer
        # is asked to rate the help (typed "5" / "五星" works: the text carries no buttons);
        # the rating lands on this conversation and, through it, on the agent.
        await self.say(
            request, view.conversation_id, "utter_back_to_bot", before=(ConversationResumed(),)
        )
        await self.say(
            request,
            view.conversation_id,
            "utter_ask_rating",
            after=(
                SlotSet(SURVEY_PENDING_SLOT, f"agent:{handoff_id}"),
                ActionExecuted(ACTION_LISTEN_NAME),
            ),
        )
        return {"handoff": _handoff_json(closed)}

    # ---- service numbers (analytics) -----------------------------------------------------

    async def dashboard(self, request: Request, account: AgentAccount) -> dict[str, Any]:
        import sqlalchemy as sa

        from analytics.report import build, parse_since

        now = time.time()
        try:
            until_arg = request.args.get("until")
            until = parse_since(until_arg, now) if until_arg else now
            since = parse_since(request.args.get("since") or "7d", until)
        except ValueError as e:
            raise RequestRejected(400, "bad_window", str(e)) from e
        try:
            data = await asyncio.to_thread(build, self.analytics_engine(), since, until)
        except sa.exc.SQLAlchemyError as e:
            logger.warning("dashboard: analytics unavailable (%s)", type(e).__name__)
            raise RequestRejected(
                503,
                "analytics_unavailable",
                "The service numbers are unavailable: the analytics tables are missing or their "
                "database is down (an operator runs python -m analytics upgrade / consume).",
            ) from e
        return {"agent": account.name, **data}

    def commerce_engine(self):
        """The engine of the commerce session factory (its pool, not a second one)."""
        factory = self._session_factory
        if factory is None:
            from commerce.db import shared_session_factory

            factory = shared_session_factory()
        with factory() as session:  # a session opens no connection until it is used
            return session.get_bind()

    async def outreach(self, request: Request, account: AgentAccount) -> dict[str, Any]:
        """Late orders customers already asked about: whom to contact before they complain."""
        import sqlalchemy as sa

        from analytics.risk import late_orders_with_contacts
        from commerce.config import hash_secret

        raw = request.args.get("min_contacts", "1")
        try:
            min_contacts = int(raw)
            if min_contacts < 0:
                raise ValueError(raw)
        except ValueError as e:
            raise RequestRejected(
                400, "bad_min_contacts", "min_contacts is a whole number, 0 or more."
            ) from e

        def listed() -> list[dict[str, Any]]:
            return late_orders_with_contacts(
                self.commerce_engine(),
                self.analytics_engine(),
                # The consumer's key: the stored order keys were hashed with it.
                order_secret=hash_secret(),
                min_contacts=min_contacts,
            )

        try:
            rows = await asyncio.to_thread(listed)
        except sa.exc.SQLAlchemyError as e:
            logger.warning("outreach: list unavailable (%s)", type(e).__name__)
            raise RequestRejected(
                503,
                "analytics_unavailable",
                "The outreach list is unavailable: the analytics tables are missing or a "
                "database is down (an operator runs python -m analytics upgrade / consume).",
            ) from e
        return {"agent": account.name, "orders": [_outreach_json(row) for row in rows]}

    async def metrics(self, request: Request) -> HTTPResponse:
        """Prometheus text exposition; ``$KEFU_METRICS_TOKEN`` as a bearer token when set.

        Without a token only this machine may scrape (the client, as :meth:`client` resolves it
        through trusted proxies, is a loopback address): the shop's numbers are not public.
        """
        from analytics.prometheus import CONTENT_TYPE, exposition, metrics_token

        token = metrics_token()
        if token and not hmac.compare_digest(_bearer(request).encode(), token.encode()):
            return _json({"error": "unauthorised", "message": "Send the metrics token."}, 401)
        if not token and not _is_loopback(self.client(request)):
            return _json(
                {
                    "error": "forbidden",
                    "message": "Set KEFU_METRICS_TOKEN to scrape from another machine.",
                },
                403,
            )
        try:
            body = await asyncio.to_thread(exposition, self.analytics_engine())
        except Exception:
            logger.exception("/metrics failed")
            return _json({"error": "unavailable", "message": "Try again shortly."}, 503)
        return response.raw(body, content_type=CONTENT_TYPE)


class _Throttled(Exception):
    """Too many failed logins from this client: 429 with ``Retry-After``."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s

    def as_response(self) -> HTTPResponse:
        return _json(
            {
                "error": "too_many_attempts",
                "message": f"Too many failed sign-ins; try again in {self.retry_after_s} s.",
                "retry_after_s": self.retry_after_s,
            },
            429,
            headers={"Retry-After": str(self.retry_after_s)},
        )


class AgentConsoleInput(InputChannel):
    """Serves the console; it receives no customer messages itself."""

    @classmethod
    def name(cls) -> str:
        return "agent"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> AgentConsoleInput:
        return cls()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        return AgentConsole().blueprint()
