"""Personal data kept only as long as needed: a retention horizon and "forget this customer".

``KEFU_RETENTION_DAYS`` (default 90) is how long Kefu keeps what it wrote down about
conversations. :func:`purge_older_than` deletes verification attempts, one-time codes, delivered
outbox messages, notified back-in-stock subscriptions and conversation identities older than
that, and anonymises closed tickets and their handoffs (transcript cleared, free text masked,
links to the conversation dropped). :func:`forget_customer` does the same for one customer at
once, whatever their age, and anonymises the customer and the shipping addresses of their
orders. Orders, refunds and returns stay for the shop's accounting, without personal data.

The tracker store is cleaned by ``channels.tracker_store``; ``scripts/privacy.py`` runs both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, or_, select

from commerce.db import begin_write
from commerce.errors import ConfigurationError, CustomerNotFound, InvalidInput
from commerce.models import (
    HANDOFF_CLOSED,
    TICKET_CLOSED,
    TICKET_RESOLVED,
    BackInStockSubscription,
    ConversationIdentity,
    Customer,
    HandoffRequest,
    Order,
    OrderStatusEvent,
    OutboxMessage,
    Refund,
    RefundEvent,
    Return,
    ShippingAddress,
    SupportTicket,
    VerificationAttempt,
    VerificationCode,
)
from commerce.privacy import mask_pii
from commerce.services._common import check_customer_id, utcnow
from commerce.services.identity import contact_key, normalize_email

#: Env var: days Kefu keeps conversations, verification records and closed tickets.
RETENTION_DAYS_ENV = "KEFU_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 90
#: Outbox rows in these states are done with (delivered, given up on, or cancelled: a back-in-
#: stock alert whose subscriber unsubscribed before it went out).
FINISHED_OUTBOX = ("sent", "failed", "cancelled")
#: What an anonymised handoff keeps in its (required) conversation column.
FORGOTTEN_CONVERSATION = "forgotten"


def retention_days() -> int:
    """``$KEFU_RETENTION_DAYS`` (default 90).

    Raises:
        ConfigurationError: not a whole number of days, or below 1.
    """
    raw = os.environ.get(RETENTION_DAYS_ENV, "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    try:
        days = int(raw)
    except ValueError:
        days = 0
    if days < 1:
        raise ConfigurationError(
            f"{RETENTION_DAYS_ENV}={raw!r}: expected a whole number of days, at least 1"
        )
    return days


def _check_days(days: object) -> float:
    if isinstance(days, bool) or not isinstance(days, (int, float)) or days < 0:
        raise InvalidInput("days", f"expected a non-negative number of days, got {days!r}")
    return float(days)


def _anonymise_ticket(session, ticket: SupportTicket, known: tuple[str, ...] = ()) -> bool:
    """Clear a ticket's transcript and conversation link; True when something changed."""
    before = (ticket.transcript, ticket.conversation_id, ticket.subject)
    ticket.transcript = ""
    ticket.conversation_id = None
    ticket.subject = mask_pii(ticket.subject, known)
    changed = before != (ticket.transcript, ticket.conversation_id, ticket.subject)
    handoff = session.execute(
        select(HandoffRequest).where(HandoffRequest.ticket_id == ticket.id)
    ).scalar_one_or_none()
    if handoff is not None:
        before_h = (handoff.conversation_id, handoff.client_key, handoff.reason)
        handoff.conversation_id = FORGOTTEN_CONVERSATION
        handoff.client_key = None
        handoff.reason = mask_pii(handoff.reason, known)
        changed = changed or before_h != (handoff.conversation_id, None, handoff.reason)
    return changed


def purge_older_than(session_factory, days: float | None = None) -> dict[str, int]:
    """Delete or anonymise what is older than the retention horizon.

    Deletes verification attempts, verification codes, finished outbox messages, notified
    back-in-stock subscriptions and conversation identities older than ``days``; anonymises
    tickets resolved or closed (and their handoff closed) for longer than that.

    Args:
        days: the horizon; defaults to :func:`retention_days`.

    Returns:
        Rows affected per kind: ``verification_attempts``, ``verification_codes``,
        ``outbox_messages``, ``stock_subscriptions``, ``conversation_identities``,
        ``tickets_anonymised``.
    """
    horizon = utcnow() - timedelta(days=_check_days(retention_days() if days is None else days))
    counts: dict[str, int] = {}
    with session_factory.begin() as session:
        begin_write(session)
        for name, stmt in (
            (
                "verification_attempts",
                delete(VerificationAttempt).where(VerificationAttempt.at < horizon),
            ),
            (
                "verification_codes",
                delete(VerificationCode).where(VerificationCode.created_at < horizon),
            ),
            (
                "outbox_messages",
                delete(OutboxMessage).where(
                    OutboxMessage.status.in_(FINISHED_OUTBOX), OutboxMessage.created_at < horizon
                ),
            ),
            (
                "stock_subscriptions",
                delete(BackInStockSubscription).where(
                    BackInStockSubscription.notified_at < horizon
                ),
            ),
            (
                "conversation_identities",
                delete(ConversationIdentity).where(ConversationIdentity.verified_at < horizon),
            ),
        ):
            counts[name] = session.execute(
                stmt.execution_options(synchronize_session=False)
            ).rowcount
        open_handoff = select(HandoffRequest.ticket_id).where(
            HandoffRequest.status != HANDOFF_CLOSED
        )
        tickets = session.execute(
            select(SupportTicket).where(
                SupportTicket.status.in_((TICKET_RESOLVED, TICKET_CLOSED)),
                SupportTicket.updated_at < horizon,
                SupportTicket.id.not_in(open_handoff),
                or_(SupportTicket.transcript != "", SupportTicket.conversation_id.is_not(None)),
            )
        ).scalars()
        counts["tickets_anonymised"] = sum(_anonymise_ticket(session, t) for t in tickets)
    return counts


@dataclass(frozen=True)
class ForgetReport:
    """What :func:`forget_customer` did (counts only: never the personal data itself)."""

    customer_id: int
    #: Conversations the customer was bound to (identities, codes, tickets, handoffs), for
    #: deleting them from the tracker store.
    conversation_ids: tuple[str, ...]
    addresses: int
    tickets: int
    handoffs: int
    returns_and_refunds: int
    subscriptions: int
    codes: int
    identities: int
    attempts: int
    outbox_messages: int


def _placeholder_email(customer_id: int) -> str:
    # Unique (the column is) and undeliverable (.invalid is reserved, RFC 2606).
    return f"forgotten-{customer_id}@forgotten.invalid"


def _customer_records(session, customer_id: int):
    """The customer's tickets, their handoffs and every conversation id bound to the customer."""
    tickets = (
        session.execute(select(SupportTicket).where(SupportTicket.customer_id == customer_id))
        .scalars()
        .all()
    )
    ticket_ids = [t.id for t in tickets]
    handoffs = (
        session.execute(select(HandoffRequest).where(HandoffRequest.ticket_id.in_(ticket_ids)))
        .scalars()
        .all()
        if ticket_ids
        else []
    )
    conversations = {t.conversation_id for t in tickets}
    conversations |= {h.conversation_id for h in handoffs}
    for model in (ConversationIdentity, VerificationCode):
        conversations |= set(
            session.execute(
                select(model.conversation_id).where(model.customer_id == customer_id)
            ).scalars()
        )
    conversations = {c for c in conversations if c and c != FORGOTTEN_CONVERSATION}
    return tickets, handoffs, conversations


def customer_conversations(session_factory, customer_id: int) -> tuple[str, ...]:
    """Conversation ids bound to a customer (identities, codes, tickets, handoffs), sorted.

    Raises:
        InvalidInput: not a positive customer id.
    """
    check_customer_id(customer_id)
    with session_factory() as session:
        return tuple(sorted(_customer_records(session, customer_id)[2]))


def forget_customer(session_factory, customer_id: int) -> ForgetReport:
    """Anonymise a customer everywhere in the commerce database, in one transaction.

    The customer row keeps its id, region and language (orders point at it) but gets a
    placeholder email and loses name and phone; shipping addresses lose recipient, phone,
    street lines and postcode (city and country stay for accounting); tickets lose transcript
    and conversation; handoffs are closed and unlinked; free text of returns, refunds and order
    notes is masked; subscriptions, codes, identities, verification attempts (by conversation
    and by contact) and outbox messages to the customer are deleted. Orders and refunds stay.

    Raises:
        InvalidInput: not a positive customer id.
        CustomerNotFound: unknown id.
    """
    check_customer_id(customer_id)
    now = utcnow()
    with session_factory.begin() as session:
        begin_write(session)
        customer = session.get(Customer, customer_id)
        if customer is None:
            raise CustomerNotFound(f"no customer {customer_id}")
        email, phone, name = customer.email, customer.phone, customer.name
        order_ids = select(Order.id).where(Order.customer_id == customer_id)
        addresses = (
            session.execute(select(ShippingAddress).where(ShippingAddress.order_id.in_(order_ids)))
            .scalars()
            .all()
        )
        known = tuple(
            v
            for a in addresses
            for v in (a.recipient, a.phone, a.line1, a.line2)
            if v and not v.startswith("***")
        ) + tuple(v for v in (email, phone, name) if v)

        tickets, handoffs, conversations = _customer_records(session, customer_id)

        for h in handoffs:
            if h.status != HANDOFF_CLOSED:
                h.status, h.closed_at = HANDOFF_CLOSED, now
        for t in tickets:
            _anonymise_ticket(session, t, known)
            t.updated_at = now

        for a in addresses:
            a.recipient, a.phone, a.line1, a.line2, a.postcode = "", None, "", None, None
            a.updated_at = now

        free_text = 0
        for model, column in ((Return, "reason"), (Refund, "reason")):
            rows = session.execute(select(model).where(model.order_id.in_(order_ids))).scalars()
            for row in rows:
                setattr(row, column, mask_pii(getattr(row, column), known))
                free_text += 1
        refund_ids = select(Refund.id).where(Refund.order_id.in_(order_ids))
        for model, parent in (
            (OrderStatusEvent, OrderStatusEvent.order_id.in_(order_ids)),
            (RefundEvent, RefundEvent.refund_id.in_(refund_ids)),
        ):
            for row in session.execute(select(model).where(parent)).scalars():
                if row.note:
                    row.note = mask_pii(row.note, known)

        subscriptions = session.execute(
            delete(BackInStockSubscription)
            .where(
                or_(
                    BackInStockSubscription.customer_id == customer_id,
                    BackInStockSubscription.contact == email,
                )
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        codes = session.execute(
            delete(VerificationCode)
            .where(VerificationCode.customer_id == customer_id)
            .execution_options(synchronize_session=False)
        ).rowcount
        identities = session.execute(
            delete(ConversationIdentity)
            .where(ConversationIdentity.customer_id == customer_id)
            .execution_options(synchronize_session=False)
        ).rowcount
        keys = [contact_key(email)] + ([contact_key(phone)] if phone else [])
        attempt_filter = [VerificationAttempt.contact_key.in_(keys)]
        if conversations:
            attempt_filter.append(VerificationAttempt.conversation_id.in_(sorted(conversations)))
        attempts = session.execute(
            delete(VerificationAttempt)
            .where(or_(*attempt_filter))
            .execution_options(synchronize_session=False)
        ).rowcount
        recipients = [email] + ([phone, f"+{phone}"] if phone else [])
        outbox = session.execute(
            delete(OutboxMessage)
            .where(OutboxMessage.recipient.in_(recipients))
            .execution_options(synchronize_session=False)
        ).rowcount

        customer.email = _placeholder_email(customer_id)
        customer.name = ""
        customer.phone = None
        return ForgetReport(
            customer_id=customer_id,
            conversation_ids=tuple(sorted(conversations)),
            addresses=len(addresses),
            tickets=len(tickets),
            handoffs=len(handoffs),
            returns_and_refunds=free_text,
            subscriptions=subscriptions,
            codes=codes,
            identities=identities,
            attempts=attempts,
            outbox_messages=outbox,
        )


def find_customer_id(session_factory, email: str) -> int:
    """The id of the customer with this email.

    Raises:
        InvalidInput: not an email address.
        CustomerNotFound: nobody has it.
    """
    normalized = normalize_email(email)
    with session_factory() as session:
        found = session.execute(
            select(Customer.id).where(Customer.email == normalized)
        ).scalar_one_or_none()
    if found is None:
        raise CustomerNotFound("no customer with that email")
    return found
