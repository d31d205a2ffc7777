"""Complaints (a ticket with category and severity), complaint risk and the human handoff.

The handoff opens a ticket with the conversation's transcript, queues it for an agent and pauses
the bot (``ConversationPaused``) so the agent takes over the conversation. Every handoff carries
the conversation's complaint-risk score (:func:`complaint_risk`), which flags it in the agent
queue when high.
"""

from __future__ import annotations

import asyncio
import logging

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ConversationPaused, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import (
    ServiceUnavailable,
    call_service,
    error_params,
    lang,
    service_timeout,
    utter_for_exception,
)
from actions.forms import HUMAN_OFFERED, offer_human
from actions.session import CustomerAction, Identity, client_of
from analytics.risk import LiveRisk, model_path
from commerce.errors import CommerceError, TooManyAttempts
from commerce.policies import complaint_category, complaint_severity
from commerce.services import support
from contract import (
    COMPLAINT_RISK_SLOT,
    REPEATED_FRUSTRATION,
    frustration_of,
    is_strongly_negative,
)

logger = logging.getLogger(__name__)

MAX_TRANSCRIPT_CHARS = 20_000
SUBJECT_CHARS = 200
#: Scores conversations with the model ``make risk-model`` trains (``$KEFU_RISK_MODEL``).
LIVE_RISK = LiveRisk(model_path())


def frustrated_messages(tracker: Tracker) -> int:
    """Strongly negative customer messages since the session started."""
    count = 0
    for event in reversed(tracker.events):
        if event.get("event") == "session_started":
            break
        if event.get("event") == "user":
            count += is_strongly_negative(frustration_of(event.get("parse_data")))
    latest_counted = any(e.get("event") == "user" for e in tracker.events)
    if not latest_counted:
        count += is_strongly_negative(frustration_of(tracker.latest_message))
    return count


def _repeatedly_frustrated(tracker: Tracker) -> bool:
    return frustrated_messages(tracker) >= REPEATED_FRUSTRATION


async def complaint_risk(tracker: Tracker, order_number: str | None = None) -> float | None:
    """The conversation's 0-1 risk of a complaint or a rating of 1-2; None when unknown.

    Scored by :data:`LIVE_RISK` (``analytics.risk.LiveRisk``) in a worker thread within the
    service timeout. Scoring is advice: without a model, or on any failure, it is unknown
    (logged), and the conversation goes on as if the risk were low.

    Args:
        order_number: the order the conversation is about, proven to be the customer's (its
            delay against the promised date is one of the features).
    """
    numbers = [order_number] if order_number else []
    try:
        score = await asyncio.wait_for(
            asyncio.to_thread(
                LIVE_RISK.score, tracker.sender_id, list(tracker.events), order_numbers=numbers
            ),
            timeout=service_timeout(),
        )
    except Exception:  # noqa: BLE001 - advice only: never fail the customer's task over it
        logger.exception("complaint risk of %s could not be scored", tracker.sender_id)
        return None
    return None if score is None else round(score, 3)


#: Who offered the person the customer accepted → the handoff's reason and ticket category
#: (others: "customer asked for a person", or a repeatedly frustrated customer's complaint).
OFFER_REASONS = {
    "action_payment_problem": ("payment problem", "payment"),
    "action_answer_product_question": ("product question", "product"),
    "action_answer_product_attribute": ("product question", "product"),
}


def offered_by(tracker: Tracker) -> str | None:
    """The action whose offer of a person is open (the latest action before this message)."""
    if not tracker.get_slot(HUMAN_OFFERED):
        return None
    for event in reversed(tracker.events):
        if event.get("event") == "action" and event.get("name") != "action_listen":
            return event.get("name")
    return None


def declined_or_handed_over(tracker: Tracker) -> bool:
    """Whether this session's customer already said no to a person or was handed over."""
    for event in reversed(tracker.events):
        if event.get("event") == "session_started":
            return False
        if event.get("event") == "action" and event.get("name") in (
            "action_decline_human",
            "action_handoff",
        ):
            return True
    return False


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
        repeated = _repeatedly_frustrated(tracker)
        frustration = frustration_of(tracker.latest_message)
        ticket = await call_service(
            support.open_ticket,
            text[:SUBJECT_CHARS],
            category=complaint_category(text),
            severity=complaint_severity(frustration, repeated),
            transcript=transcript_of(tracker),
            customer_id=identity.customer_id if identity else None,
            conversation_id=tracker.sender_id[:100],
            language=lang(tracker),
        )
        if repeated or is_strongly_negative(frustration):
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
        repeated = _repeatedly_frustrated(tracker)
        offer = OFFER_REASONS.get(offered_by(tracker) or "")
        if repeated:
            reason, category = "frustrated customer", "complaint"
        elif offer:
            reason, category = offer
        else:
            reason, category = "customer asked for a person", "other"
        risk = await complaint_risk(tracker, identity.order_number if identity else None)
        try:
            handoff = await call_service(
                support.conversation_handoff,
                tracker.sender_id[:100],
                reason,
                transcript=transcript_of(tracker),
                customer_id=identity.customer_id if identity else None,
                # Link the order only when this conversation proved it owns it.
                order_number=identity.order_number if identity else None,
                language=lang(tracker),
                category=category,
                severity=complaint_severity(frustration_of(tracker.latest_message), repeated),
                client=client_of(tracker),
                risk=risk,
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
        risk_events = [] if risk is None else [SlotSet(COMPLAINT_RISK_SLOT, risk)]
        return [SlotSet(HUMAN_OFFERED, False), *risk_events, ConversationPaused()]


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
