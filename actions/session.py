"""Who the conversation speaks for, bound to what proved it, and a session start that forgets it.

An identity lives in the slots ``verified_customer_id``, ``verified_method`` (``email`` |
``phone`` | ``token`` | ``code``), ``verified_order``, ``verified_at``, ``verified_until`` and
``second_factor``. :func:`identify` (and :func:`current_identity` for read-only callers) is the
only way an action learns who the customer is; it re-checks the identity against its proof on
every turn:

- A signed claim from the channel (``metadata.kefu_identity`` of the latest user message, made by
  the channel after it checked the customer's token) is an identity with a second factor until the
  claim's ``exp``. It is recorded once per identity (``bind_token_identity``). A valid claim for
  another customer replaces whoever was verified before.
- A token identity whose latest message carries no valid claim (signed out, expired, another tab)
  is dropped.
- An email / phone / code identity lives ``KEFU_IDENTITY_IDLE_S`` seconds (900 by default) after
  its last use; each use extends it, idleness ends it.

A dropped identity is answered with ``SlotSet(<slot>, None)`` events the action returns.
:class:`ActionSessionStart` starts every new session with no identity, no pending contact and no
pending code; only harmless slots (the language ...) carry over.
"""

from __future__ import annotations

import logging
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.common import ServiceUnavailable, call_service, utter_for_exception
from commerce.errors import CommerceError
from commerce.services.identity import bind_token_identity, check_identity_claim
from contract import CLAIM_METADATA_KEY, CLIENT_METADATA_KEY, VERIFIED_CUSTOMER_SLOT

logger = logging.getLogger(__name__)

IDLE_ENV = "KEFU_IDENTITY_IDLE_S"
DEFAULT_IDLE_S = 900.0

VERIFIED_CUSTOMER_ID = VERIFIED_CUSTOMER_SLOT
VERIFIED_METHOD = "verified_method"
VERIFIED_ORDER = "verified_order"
VERIFIED_AT = "verified_at"
VERIFIED_UNTIL = "verified_until"
SECOND_FACTOR = "second_factor"
IDENTITY_SLOTS = (
    VERIFIED_CUSTOMER_ID,
    VERIFIED_METHOD,
    VERIFIED_ORDER,
    VERIFIED_AT,
    VERIFIED_UNTIL,
    SECOND_FACTOR,
)
VERIFY_CONTACT = "verify_contact"
VERIFY_CODE = "verify_code"
#: The one-time code on its way: ``{"customer_id", "destination", "channel", "expires_at"}``.
VERIFY_CODE_SENT = "verify_code_sent"
#: Never carried into a new session: identity, what proves it, personal data, half-done tasks.
NOT_CARRIED = frozenset(
    {
        *IDENTITY_SLOTS,
        VERIFY_CONTACT,
        VERIFY_CODE,
        VERIFY_CODE_SENT,
        "new_address",
        "restock_email",
        "cancel_confirmed",
        "failed_validations",
        "form_stopped",
        "human_offered",
        "requested_slot",
        "session_started_metadata",
        # A new session is asked for its own rating, and scored afresh.
        "surveyed_tasks",
        "survey_pending",
        "complaint_risk",
    }
)


def identity_idle_s() -> float:
    """Seconds an email / phone / code identity lives after its last use."""
    try:
        value = float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_S))
    except ValueError:
        return DEFAULT_IDLE_S
    return value if value > 0 else DEFAULT_IDLE_S


@dataclass(frozen=True)
class Identity:
    """Who the conversation speaks for, how that was proved and until when."""

    customer_id: int
    method: str  # email | phone | token | code
    verified_at: float
    verified_until: float
    #: A token claim or a one-time code proved possession (needed to change an order).
    second_factor: bool
    #: The order used to verify (None for a token).
    order_number: str | None = None

    def slot_events(self) -> list[EventType]:
        return [
            SlotSet(VERIFIED_CUSTOMER_ID, float(self.customer_id)),
            SlotSet(VERIFIED_METHOD, self.method),
            SlotSet(VERIFIED_ORDER, self.order_number),
            SlotSet(VERIFIED_AT, self.verified_at),
            SlotSet(VERIFIED_UNTIL, self.verified_until),
            SlotSet(SECOND_FACTOR, self.second_factor),
        ]


@dataclass(frozen=True)
class Resolved:
    """The identity for this turn and the slot events that bring the tracker up to date."""

    identity: Identity | None
    events: list[EventType] = field(default_factory=list)
    #: A token identity new to this conversation: record it (``bind_token_identity``).
    bind: bool = False


def clear_identity_events() -> list[EventType]:
    """Forget the identity and the code that was on its way for it."""
    return [*(SlotSet(slot, None) for slot in IDENTITY_SLOTS), SlotSet(VERIFY_CODE_SENT, None)]


def latest_metadata(tracker: Tracker) -> dict[str, Any]:
    """The channel's metadata of the latest user message (never of an older one)."""
    metadata = (tracker.latest_message or {}).get("metadata")
    if isinstance(metadata, dict) and metadata:
        return metadata
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            found = event.get("metadata")
            return found if isinstance(found, dict) else {}
    return {}


def client_of(tracker: Tracker) -> str | None:
    """The client address the channel saw (``metadata.kefu_client``), for rate limits."""
    value = latest_metadata(tracker).get(CLIENT_METADATA_KEY)
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def stored_identity(tracker: Tracker) -> Identity | None:
    """The identity as the slots hold it, unchecked (an incomplete one counts as expired)."""
    customer = _number(tracker.get_slot(VERIFIED_CUSTOMER_ID))
    if customer is None:
        return None
    order = tracker.get_slot(VERIFIED_ORDER)
    return Identity(
        customer_id=int(customer),
        method=str(tracker.get_slot(VERIFIED_METHOD) or ""),
        verified_at=_number(tracker.get_slot(VERIFIED_AT)) or 0.0,
        verified_until=_number(tracker.get_slot(VERIFIED_UNTIL)) or 0.0,
        second_factor=tracker.get_slot(SECOND_FACTOR) is True,
        order_number=order if isinstance(order, str) and order else None,
    )


def resolve_identity(tracker: Tracker, *, now: float | None = None) -> Resolved:
    """Check the stored identity against its proof in this turn (pure: no database)."""
    now = time.time() if now is None else now
    stored = stored_identity(tracker)
    claim = latest_metadata(tracker).get(CLAIM_METADATA_KEY)
    checked = check_identity_claim(claim, tracker.sender_id, now=now) if claim else None
    if checked is not None:
        customer_id, exp = int(checked[0]), float(checked[1])
        if stored is not None and stored.method == "token" and stored.customer_id == customer_id:
            identity = replace(stored, verified_until=exp, second_factor=True)
            events = [] if stored.verified_until == exp else [SlotSet(VERIFIED_UNTIL, exp)]
            return Resolved(identity, events)
        same = stored is not None and stored.customer_id == customer_id
        if stored is not None and not same:
            logger.info("identity replaced: a signed claim names another customer")
        identity = Identity(
            customer_id=customer_id,
            method="token",
            verified_at=now,
            verified_until=exp,
            second_factor=True,
            order_number=stored.order_number if same else None,
        )
        events = identity.slot_events()
        if not same:
            events.append(SlotSet(VERIFY_CODE_SENT, None))
        return Resolved(identity, events, bind=True)
    if stored is None:
        return Resolved(None)
    if stored.method == "token":
        logger.info("identity dropped: the token claim is missing, invalid or expired")
        return Resolved(None, clear_identity_events())
    if stored.verified_until <= now:
        logger.info("identity dropped: idle for longer than %ss", int(identity_idle_s()))
        return Resolved(None, clear_identity_events())
    refreshed = replace(stored, verified_until=now + identity_idle_s())
    return Resolved(refreshed, [SlotSet(VERIFIED_UNTIL, refreshed.verified_until)])


def current_identity(tracker: Tracker, *, now: float | None = None) -> Identity | None:
    """Who the customer is this turn, or None (read-only; :func:`identify` also records)."""
    return resolve_identity(tracker, now=now).identity


def _apply(tracker: Tracker, events: list[EventType]) -> None:
    # Slots only, not events: appended events would count as slots to validate in a form.
    for event in events:
        if event.get("event") == "slot":
            tracker.slots[event["name"]] = event["value"]


async def identify(tracker: Tracker) -> Resolved:
    """Resolve the identity for this turn, record a new token identity, update ``tracker``.

    Return ``resolved.events`` from the action so the stored slots follow.
    """
    resolved = resolve_identity(tracker)
    if resolved.bind and resolved.identity is not None:
        expires = datetime.fromtimestamp(resolved.identity.verified_until, tz=timezone.utc)
        try:
            await call_service(
                bind_token_identity,
                tracker.sender_id[:100],
                resolved.identity.customer_id,
                expires.replace(tzinfo=None),
            )
        except (CommerceError, ServiceUnavailable) as e:
            # The claim itself is the proof; the record is for audit and forgetting.
            logger.warning("could not record the token identity: %s", type(e).__name__)
    _apply(tracker, resolved.events)
    return resolved


def verified_slots(
    customer_id: int,
    method: str,
    *,
    order_number: str | None = None,
    second_factor: bool = False,
    now: float | None = None,
) -> dict[str, Any]:
    """Slot values for an identity proved just now by ``method`` (validators return these)."""
    now = time.time() if now is None else now
    identity = Identity(
        customer_id=customer_id,
        method=method,
        verified_at=now,
        verified_until=now + identity_idle_s(),
        second_factor=second_factor,
        order_number=order_number,
    )
    return {e["name"]: e["value"] for e in identity.slot_events()}


def has_second_factor(identity: Identity | None, dispatcher: CollectingDispatcher) -> bool:
    """True when ``identity`` may change an order; otherwise say why not (defence in depth:
    the forms already ask for the code, but an action never trusts that they did)."""
    if identity is not None and identity.second_factor:
        return True
    logger.warning("refused to change an order without proof of possession")
    dispatcher.utter_message(response="utter_second_factor_required")
    return False


class CustomerAction(Action, ABC):
    """An action that may act for the customer: the identity is resolved first, and commerce
    errors and outages become polite answers.

    Subclasses implement :meth:`act`; the events it returns follow the identity's, and
    :attr:`reset_slots` (the flow's used-up answers) are cleared whatever happens.
    """

    reset_slots: tuple[str, ...] = ()

    @abstractmethod
    def name(self) -> str:
        """Abstract so the action server does not register this base."""

    @abstractmethod
    async def act(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
        identity: Identity | None,
    ) -> list[EventType]:
        """Do the task for ``identity`` (None: nobody verified)."""

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        resolved = await identify(tracker)
        try:
            events = await self.act(dispatcher, tracker, domain, resolved.identity)
        except (CommerceError, ServiceUnavailable) as e:
            utter_for_exception(dispatcher, e)
            events = []
        return [*resolved.events, *events, *(SlotSet(slot, None) for slot in self.reset_slots)]


class ActionSessionStart(Action):
    """Starts a session that knows nobody: identity, contact and codes stay behind.

    Other slots (the language first of all) carry over as
    ``session_config.carry_over_slots_to_new_session`` asks.
    """

    def name(self) -> str:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        events: list[EventType] = [SessionStarted()]
        config = (domain or {}).get("session_config") or {}
        if config.get("carry_over_slots_to_new_session", True):
            events += [
                SlotSet(name, value)
                for name, value in (tracker.slots or {}).items()
                if value is not None and name not in NOT_CARRIED
            ]
        events.append(ActionExecuted("action_listen"))
        return events
