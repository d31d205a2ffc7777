"""Complaints (a ticket with category and severity) and the human handoff.

The handoff opens a ticket with the conversation's transcript, queues it for an agent and pauses
the bot (``ConversationPaused``) so the agent takes over the conversation.
"""

from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    ServiceUnavailable,
    call_service,
    error_params,
    lang,
    utter_for_exception,
)
from actions.forms import HUMAN_OFFERED, offer_human
from actions.session import CustomerAction, Identity, client_of
from commerce.errors import CommerceError, TooManyAttempts
from commerce.services import support

logger = logging.getLogger(__name__)

#: Frustration (0-1, from the SentimentAnalyzer) that counts as strongly negative.
STRONG_FRUSTRATION = 0.6
#: Strongly negative messages in a session before the bot apologises and offers a person.
REPEATED_FRUSTRATION = 2
MAX_TRANSCRIPT_CHARS = 20_000
SUBJECT_CHARS = 200

# First keyword found decides the category; English and Chinese.
_CATEGORY_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("refund", ("refund", "money back", "charged", "退款", "扣款")),
    ("payment", ("payment", "pay ", "card", "支付", "付款")),
    (
        "delivery",
        (
            "deliver",
            "courier",
            "parcel",
            "package",
            "late",
            "shipping",
            "快递",
            "物流",
            "配送",
            "送货",
            "包裹",
        ),
    ),
    ("return", ("return", "exchange", "退货", "换货")),
    (
        "product",
        (
            "broken",
            "damaged",
            "quality",
            "defect",
            "faulty",
            "wrong item",
            "wrong size",
            "质量",
            "破损",
            "坏",
            "发错",
        ),
    ),
    ("account", ("account", "password", "login", "账号", "密码")),
    ("order", ("order", "订单")),
)


def frustration_of(parse_data: dict[str, Any] | None) -> float:
    """The SentimentAnalyzer's frustration score of a message (0 when absent)."""
    sentiment = (parse_data or {}).get("sentiment") or {}
    try:
        return float(sentiment.get("frustration", 0.0))
    except (TypeError, ValueError):
        return 0.0


def frustrated_messages(tracker: Tracker) -> int:
    """Strongly negative customer messages since the session started."""
    count = 0
    for event in reversed(tracker.events):
        if event.get("event") == "session_started":
            break
        if event.get("event") == "user":
            count += frustration_of(event.get("parse_data")) >= STRONG_FRUSTRATION
    latest_counted = any(e.get("event") == "user" for e in tracker.events)
    if not latest_counted:
        count += frustration_of(tracker.latest_message) >= STRONG_FRUSTRATION
    return count


def severity_for(frustration: float, repeated: bool) -> str:
    if repeated and frustration >= 0.8:
        return "urgent"
    if frustration >= STRONG_FRUSTRATION or repeated:
        return "high"
    return "normal"


def category_for(text: str) -> str:
    lowered = text.casefold()
    for category, words in _CATEGORY_KEYWORDS:
        if any(w in lowered for w in words):
            return category
    return "complaint"


def transcript_of(tracker: Tracker) -> str:
    """The conversation so far as ``customer:`` / ``kefu:`` lines, newest kept when long."""
    lines = []
    for event in tracker.events:
        text = event.get("text")
        if not text:
            continue
        if event.get("event") == "user":
            lines.append(f"customer: {text}")
        elif event.get("event") == "bot":
            lines.append(f"kefu: {text}")
    return "\n".join(lines)[-MAX_TRANSCRIPT_CHARS:]


def _latest_text(tracker: Tracker) -> str:
    return ((tracker.latest_message or {}).get("text") or "").strip()


class ActionOpenComplaint(CustomerAction):
    """Logs a complaint ticket (category and severity from the words and the sentiment)."""

    def name(self) -> str:
        return "action_open_complaint"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
        identity: Identity | None,
    ) -> list[EventType]:
        text = _latest_text(tracker) or "complaint"
        repeated = frustrated_messages(tracker) >= REPEATED_FRUSTRATION
        frustration = frustration_of(tracker.latest_message)
        ticket = await call_service(
            support.open_ticket,
            text[:SUBJECT_CHARS],
            category=category_for(text),
            severity=severity_for(frustration, repeated),
            transcript=transcript_of(tracker),
            customer_id=identity.customer_id if identity else None,
            conversation_id=tracker.sender_id[:100],
            language=lang(tracker),
        )
        if repeated or frustration >= STRONG_FRUSTRATION:
            dispatcher.utter_message(response="utter_apology")
        dispatcher.utter_message(
            response="utter_complaint_logged", ticket_number=ticket.ticket_number
        )
        return [SlotSet(key, value) for key, value in offer_human(dispatcher).items()]


class ActionHandoff(CustomerAction):
    """Queues the conversation, with its transcript, for a human agent and pauses the bot."""

    def name(self) -> str:
        return "action_handoff"

    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
        identity: Identity | None,
    ) -> list[EventType]:
        repeated = frustrated_messages(tracker) >= REPEATED_FRUSTRATION
        try:
            handoff = await call_service(
                support.conversation_handoff,
                tracker.sender_id[:100],
                "frustrated customer" if repeated else "customer asked for a person",
                transcript=transcript_of(tracker),
                customer_id=identity.customer_id if identity else None,
                # Link the order only when this conversation proved it owns it.
                order_number=identity.order_number if identity else None,
                language=lang(tracker),
                category="complaint" if repeated else "other",
                severity=severity_for(frustration_of(tracker.latest_message), repeated),
                client=client_of(tracker),
            )
        except TooManyAttempts as e:
            # This client opened its hourly share of handoffs: the offer is used up.
            dispatcher.utter_message(response="utter_handoff_too_many", **error_params(e))
            # False, as after a handoff: the offer is used up and the handoff rule completes
            # (None would leave the rule unfinished and the fallback would speak next).
            return [SlotSet(HUMAN_OFFERED, False)]
        except (CommerceError, ServiceUnavailable) as e:
            utter_for_exception(dispatcher, e)
            return [SlotSet(HUMAN_OFFERED, False)]
        dispatcher.utter_message(
            response="utter_handoff_queued",
            ticket_number=handoff.ticket_number,
            position=handoff.position or 1,
        )
        return [SlotSet(HUMAN_OFFERED, False), ConversationPaused()]


class ActionDeclineHuman(Action):
    """The customer said no to a person: carry on with the bot."""

    def name(self) -> str:
        return "action_decline_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        dispatcher.utter_message(response="utter_human_declined")
        return [SlotSet(HUMAN_OFFERED, False)]


class ActionOfferHumanFrustrated(Action):
    """Apologises and offers a person; predicted by FrustrationPolicy for an angry customer."""

    def name(self) -> str:
        return "action_offer_human_frustrated"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        dispatcher.utter_message(response="utter_apology")
        return [SlotSet(key, value) for key, value in offer_human(dispatcher).items()]
