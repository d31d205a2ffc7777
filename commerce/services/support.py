"""Support tickets and the human-handoff queue an agent console works from."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from numbers import Real

from sqlalchemy import case, func, select, tuple_

from commerce.config import handoffs_per_client_per_hour
from commerce.db import begin_write, is_postgres
from commerce.dto import HandoffView, TicketView
from commerce.errors import (
    HandoffNotFound,
    InvalidInput,
    TicketNotFound,
    TooManyAttempts,
)
from commerce.lifecycles import HANDOFF, TICKET, TICKET_ACTIVE_STATUSES
from commerce.models import (
    HANDOFF_ASSIGNED,
    HANDOFF_CLOSED,
    HANDOFF_STATUSES,
    HANDOFF_WAITING,
    TICKET_CATEGORIES,
    TICKET_IN_PROGRESS,
    TICKET_OPEN,
    TICKET_RESOLVED,
    TICKET_SEVERITIES,
    TICKET_STATUSES,
    HandoffRequest,
    Order,
    SupportTicket,
)
from commerce.privacy import mask_pii
from commerce.services._common import (
    check_customer_id,
    check_text,
    load_order,
    lock_key,
    new_reference,
    one_locked,
    utcnow,
)
from commerce.services.identity import client_key, normalize_order_number
from contract import DEFAULT_LANGUAGE, HIGH_COMPLAINT_RISK, LANGUAGES, is_high_risk

SEVERITY_PRIORITY = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
#: The least urgent priority a high complaint-risk handoff may have ("high").
AT_RISK_PRIORITY = SEVERITY_PRIORITY["high"]
MAX_TRANSCRIPT = 100_000
HANDOFF_CLIENT_WINDOW = timedelta(hours=1)


def _check_choice(value: str, field: str, choices) -> str:
    if value not in choices:
        raise InvalidInput(field, f"expected one of {', '.join(choices)}, got {value!r}")
    return value


def _ticket_view(session, t: SupportTicket) -> TicketView:
    number = session.get(Order, t.order_id).number if t.order_id else None
    return TicketView(
        ticket_number=t.ticket_number,
        status=t.status,
        category=t.category,
        severity=t.severity,
        subject=t.subject,
        language=t.language,
        assignee=t.assignee,
        conversation_id=t.conversation_id,
        order_number=number,
        created_at=t.created_at,
    )


@dataclass(frozen=True)
class _TicketArgs:
    """A ticket's fields, checked and normalised before the database is touched."""

    subject: str
    category: str
    severity: str
    transcript: str  # masked
    customer_id: int | None
    order_number: str | None
    conversation_id: str | None
    language: str


def _new_ticket(session, args: _TicketArgs, now) -> SupportTicket:
    order_id = None
    if args.order_number is not None:
        if args.customer_id is None:
            raise InvalidInput("order_number", "link an order only for a verified customer")
        order_id = load_order(session, args.customer_id, args.order_number).id
    ticket = SupportTicket(
        ticket_number=new_reference("TK"),
        customer_id=args.customer_id,
        order_id=order_id,
        conversation_id=args.conversation_id,
        category=args.category,
        severity=args.severity,
        subject=args.subject,
        transcript=args.transcript,
        language=args.language,
        status=TICKET_OPEN,
        created_at=now,
        updated_at=now,
    )
    session.add(ticket)
    session.flush()
    return ticket


def _check_ticket_args(
    subject, category, severity, transcript, customer_id, order_number, conversation_id, language
) -> _TicketArgs:
    subject = check_text(subject, "subject", max_len=200)
    _check_choice(category, "category", TICKET_CATEGORIES)
    _check_choice(severity, "severity", TICKET_SEVERITIES)
    _check_choice(language, "language", LANGUAGES)
    transcript = check_text(transcript, "transcript", required=False, max_len=MAX_TRANSCRIPT)
    if customer_id is not None:
        check_customer_id(customer_id)
    conv = (
        check_text(conversation_id, "conversation_id", max_len=100)
        if conversation_id is not None
        else None
    )
    return _TicketArgs(
        subject=subject,
        category=category,
        severity=severity,
        # Transcripts are stored masked (emails, phones, street addresses): see commerce.privacy.
        transcript=mask_pii(transcript),
        customer_id=customer_id,
        order_number=normalize_order_number(order_number) if order_number is not None else None,
        conversation_id=conv,
        language=language,
    )


def open_ticket(
    session_factory,
    subject: str,
    *,
    category: str = "other",
    severity: str = "normal",
    transcript: str = "",
    customer_id: int | None = None,
    order_number: str | None = None,
    conversation_id: str | None = None,
    language: str = DEFAULT_LANGUAGE,
) -> TicketView:
    """Open a support ticket (no handoff).

    Args:
        category: one of :data:`commerce.models.TICKET_CATEGORIES`.
        severity: low | normal | high | urgent.
        transcript: the conversation so far, as plain text.
        customer_id: verified customer, when known; required to link ``order_number``.

    Raises:
        InvalidInput: unknown category / severity / language, empty subject, over-long text,
            an order number without a verified customer.
        OrderNotFound: the order is not the customer's.
    """
    args = _check_ticket_args(
        subject,
        category,
        severity,
        transcript,
        customer_id,
        order_number,
        conversation_id,
        language,
    )
    with session_factory.begin() as session:
        begin_write(session)
        return _ticket_view(session, _new_ticket(session, args, utcnow()))


def get_ticket(session_factory, ticket_number: str) -> TicketView:
    """A ticket by number (agent console).

    Raises:
        TicketNotFound: unknown number.
    """
    number = check_text(ticket_number, "ticket_number", max_len=20).upper()
    with session_factory() as session:
        t = session.execute(
            select(SupportTicket).where(SupportTicket.ticket_number == number)
        ).scalar_one_or_none()
        if t is None:
            raise TicketNotFound(number)
        return _ticket_view(session, t)


def update_ticket(
    session_factory, ticket_number: str, *, status: str | None = None, assignee: str | None = None
) -> TicketView:
    """Change a ticket's status and / or assignee (agent console)."""
    number = check_text(ticket_number, "ticket_number", max_len=20).upper()
    if status is not None:
        _check_choice(status, "status", TICKET_STATUSES)
    if assignee is not None:
        assignee = check_text(assignee, "assignee", max_len=100)
    with session_factory.begin() as session:
        begin_write(session)
        t = session.execute(
            select(SupportTicket).where(SupportTicket.ticket_number == number)
        ).scalar_one_or_none()
        if t is None:
            raise TicketNotFound(number)
        if status is not None and status != t.status:
            TICKET.check(t.status, status)
            t.status = status
        if assignee is not None:
            t.assignee = assignee
        t.updated_at = utcnow()
        return _ticket_view(session, t)


# The queue's order, in one place so the listing, "claim next" and each entry's position agree:
# most urgent priority first; within a priority the conversations likely to complain (0 sorts
# before 1; ``risk >= HIGH_COMPLAINT_RISK`` is contract.is_high_risk in SQL, NULL is not at risk),
# because a few minutes saved there may prevent a complaint; then first come, first served.
_RISK_RANK = case((HandoffRequest.risk >= HIGH_COMPLAINT_RISK, 0), else_=1)
_QUEUE_ORDER = (HandoffRequest.priority, _RISK_RANK, HandoffRequest.enqueued_at, HandoffRequest.id)


def _queue_key(h: HandoffRequest) -> tuple:
    """``h``'s values of :data:`_QUEUE_ORDER`."""
    return (h.priority, 0 if is_high_risk(h.risk) else 1, h.enqueued_at, h.id)


def _position(session, h: HandoffRequest) -> int | None:
    if h.status != HANDOFF_WAITING:
        return None
    ahead = session.execute(
        select(func.count(HandoffRequest.id)).where(
            HandoffRequest.status == HANDOFF_WAITING,
            tuple_(*_QUEUE_ORDER) < _queue_key(h),
        )
    ).scalar_one()
    return int(ahead) + 1


def _check_risk(risk: object) -> float | None:
    """Validate a complaint-risk score: None, or a finite number in 0..1."""
    if risk is None:
        return None
    # bool is an int; a True/False here is a caller's bug, not a score.
    if isinstance(risk, bool) or not isinstance(risk, Real):
        raise InvalidInput("risk", f"expected a number between 0 and 1, got {risk!r}")
    if not math.isfinite(risk) or not 0 <= risk <= 1:
        raise InvalidInput("risk", f"must be between 0 and 1, got {risk!r}")
    return float(risk)


def _risk_priority(priority: int, risk: float | None) -> int:
    """``priority`` raised to at least "high" for a high-risk conversation, never lowered."""
    return min(priority, AT_RISK_PRIORITY) if is_high_risk(risk) else priority


def _handoff_view(session, h: HandoffRequest, *, created: bool = True) -> HandoffView:
    ticket = session.get(SupportTicket, h.ticket_id)
    return HandoffView(
        handoff_id=h.id,
        ticket_number=ticket.ticket_number,
        conversation_id=h.conversation_id,
        language=h.language,
        reason=h.reason,
        priority=h.priority,
        status=h.status,
        assigned_to=h.assigned_to,
        enqueued_at=h.enqueued_at,
        position=_position(session, h),
        created=created,
        customer_id=ticket.customer_id,
        risk=h.risk,
        at_risk=is_high_risk(h.risk),
    )


def conversation_handoff(
    session_factory,
    conversation_id: str,
    reason: str,
    *,
    transcript: str = "",
    customer_id: int | None = None,
    order_number: str | None = None,
    language: str = DEFAULT_LANGUAGE,
    category: str = "other",
    severity: str = "normal",
    client: str | None = None,
    risk: float | None = None,
) -> HandoffView:
    """Hand a conversation to a human: open a ticket and queue it; idempotent per conversation.

    While the conversation already waits or is being served, the existing entry is returned
    (``created=False``, with the latest transcript and risk score saved), so a user repeating
    "human please" does not queue twice. A client address (``client``, stored as a keyed hash)
    may open at most ``KEFU_HANDOFFS_PER_CLIENT_PER_HOUR`` (3) new handoffs an hour, so a script
    with fresh conversation ids cannot flood the queue.

    A conversation at high complaint risk (``contract.is_high_risk``) is served at least at
    ``high`` priority: an agent who reaches it soon may turn a likely complaint or 1-2 rating
    around, which a ``normal`` place in the queue would leave to chance. A more urgent priority
    is kept, and a later, lower score never lowers the priority again (the entry keeps its place;
    only the ``at_risk`` flag follows the latest score).

    Args:
        risk: the conversation's latest 0-1 complaint-risk score (``analytics.risk``, the
            ``complaint_risk`` slot); None when there is none, which leaves a waiting entry's
            stored score as it was.

    Raises:
        InvalidInput, OrderNotFound: as :func:`open_ticket`; ``risk`` not a number in 0..1.
        TooManyAttempts: the client's hourly handoff limit is reached.
    """
    conv = check_text(conversation_id, "conversation_id", max_len=100)
    reason = check_text(reason, "reason", max_len=200)
    args = _check_ticket_args(
        reason, category, severity, transcript, customer_id, order_number, conv, language
    )
    risk = _check_risk(risk)
    client_k = client_key(client)
    now = utcnow()
    with session_factory.begin() as session:
        begin_write(session)
        lock_key(session, f"handoff:{conv}")
        stmt = select(HandoffRequest).where(
            HandoffRequest.conversation_id == conv,
            HandoffRequest.status.in_(HANDOFF.open_statuses),
        )
        existing = session.execute(stmt).scalars().first()
        if existing is not None:
            if args.transcript:
                ticket = session.get(SupportTicket, existing.ticket_id)
                ticket.transcript = args.transcript
                ticket.updated_at = now
            if risk is not None:
                existing.risk = risk
                existing.priority = _risk_priority(existing.priority, risk)
                session.flush()
            return _handoff_view(session, existing, created=False)
        if client_k is not None:
            _check_client_handoffs(session, client_k, now)
        ticket = _new_ticket(session, args, now)
        h = HandoffRequest(
            ticket_id=ticket.id,
            conversation_id=conv,
            language=language,
            reason=reason,
            client_key=client_k,
            priority=_risk_priority(SEVERITY_PRIORITY[severity], risk),
            risk=risk,
            status=HANDOFF_WAITING,
            enqueued_at=now,
        )
        session.add(h)
        session.flush()
        return _handoff_view(session, h)


def _check_client_handoffs(session, client_k: str, now) -> None:
    lock_key(session, f"handoff-client:{client_k}")
    since = now - HANDOFF_CLIENT_WINDOW
    count, oldest = session.execute(
        select(func.count(HandoffRequest.id), func.min(HandoffRequest.enqueued_at)).where(
            HandoffRequest.client_key == client_k, HandoffRequest.enqueued_at >= since
        )
    ).one()
    if count >= handoffs_per_client_per_hour():
        retry = int(((oldest or now) + HANDOFF_CLIENT_WINDOW - now).total_seconds()) + 1
        raise TooManyAttempts("too many handoffs from this client", max(retry, 1))


def list_handoff_queue(
    session_factory, status: str = HANDOFF_WAITING, limit: int = 50
) -> tuple[HandoffView, ...]:
    """Queue entries in one status, in the order agents should take them.

    Most urgent priority first; within a priority, conversations at high complaint risk before
    the others (they are the ones likely to end in a complaint or a 1-2 rating if left waiting);
    then the longest-waiting first. ``claim_next_handoff`` and each entry's ``position`` follow
    the same order.
    """
    _check_choice(status, "status", HANDOFF_STATUSES)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
        raise InvalidInput("limit", "must be an integer between 1 and 500")
    with session_factory() as session:
        rows = session.execute(
            select(HandoffRequest)
            .where(HandoffRequest.status == status)
            .order_by(*_QUEUE_ORDER)
            .limit(limit)
        ).scalars()
        return tuple(_handoff_view(session, h) for h in rows)


def list_tickets(
    session_factory, customer_id: int, *, open_only: bool = True, limit: int = 10
) -> tuple[TicketView, ...]:
    """A customer's tickets, newest first (agent console); only open / in-progress by default."""
    check_customer_id(customer_id)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
        raise InvalidInput("limit", "must be an integer between 1 and 100")
    stmt = select(SupportTicket).where(SupportTicket.customer_id == customer_id)
    if open_only:
        stmt = stmt.where(SupportTicket.status.in_(TICKET_ACTIVE_STATUSES))
    stmt = stmt.order_by(SupportTicket.created_at.desc(), SupportTicket.id.desc()).limit(limit)
    with session_factory() as session:
        return tuple(_ticket_view(session, t) for t in session.execute(stmt).scalars())


def get_handoff(session_factory, handoff_id: int) -> HandoffView:
    """One queue entry by id.

    Raises:
        HandoffNotFound: unknown id.
    """
    _check_handoff_id(handoff_id)
    with session_factory() as session:
        h = session.get(HandoffRequest, handoff_id)
        if h is None:
            raise HandoffNotFound(str(handoff_id))
        return _handoff_view(session, h)


def open_handoff_for(session_factory, conversation_id: str) -> HandoffView | None:
    """The waiting or assigned entry of a conversation, if it has one."""
    conv = check_text(conversation_id, "conversation_id", max_len=100)
    with session_factory() as session:
        h = (
            session.execute(
                select(HandoffRequest).where(
                    HandoffRequest.conversation_id == conv,
                    HandoffRequest.status.in_(HANDOFF.open_statuses),
                )
            )
            .scalars()
            .first()
        )
        return _handoff_view(session, h) if h is not None else None


def claim_handoff(session_factory, handoff_id: int, agent: str) -> HandoffView:
    """Assign one waiting entry to ``agent`` (an agent picked it in the console).

    Claiming an entry one already holds is a no-op; one held by another agent or closed cannot
    be claimed.

    Raises:
        HandoffNotFound: unknown id.
        InvalidTransition: closed, or assigned to another agent.
    """
    _check_handoff_id(handoff_id)
    agent = check_text(agent, "agent", max_len=100)
    now = utcnow()
    with session_factory.begin() as session:
        begin_write(session)
        h = one_locked(session, select(HandoffRequest).where(HandoffRequest.id == handoff_id))
        if h is None:
            raise HandoffNotFound(str(handoff_id))
        if h.status == HANDOFF_ASSIGNED and h.assigned_to == agent:
            return _handoff_view(session, h, created=False)
        HANDOFF.check(h.status, HANDOFF_ASSIGNED)
        _assign(session, h, agent, now)
        return _handoff_view(session, h)


def _assign(session, h: HandoffRequest, agent: str, now) -> None:
    h.status = HANDOFF_ASSIGNED
    h.assigned_to = agent
    h.assigned_at = now
    ticket = session.get(SupportTicket, h.ticket_id)
    ticket.assignee = agent
    _move_ticket(ticket, TICKET_IN_PROGRESS, now)
    session.flush()


def _move_ticket(ticket: SupportTicket, status: str, now) -> None:
    """Follow the handoff: move its ticket too, unless the ticket is already there or closed."""
    if TICKET.allows(ticket.status, status):
        ticket.status = status
    ticket.updated_at = now


def _check_handoff_id(handoff_id) -> None:
    if isinstance(handoff_id, bool) or not isinstance(handoff_id, int):
        raise InvalidInput("handoff_id", "expected an integer")


def claim_next_handoff(
    session_factory, agent: str, language: str | None = None
) -> HandoffView | None:
    """Assign the first waiting entry in queue order (:func:`list_handoff_queue`) to ``agent``;
    None when the queue is empty.

    Two agents claiming at once never get the same entry (``FOR UPDATE SKIP LOCKED`` on
    PostgreSQL, the single writer on SQLite).
    """
    agent = check_text(agent, "agent", max_len=100)
    if language is not None:
        _check_choice(language, "language", LANGUAGES)
    now = utcnow()
    with session_factory.begin() as session:
        begin_write(session)
        stmt = (
            select(HandoffRequest)
            .where(HandoffRequest.status == HANDOFF_WAITING)
            .order_by(*_QUEUE_ORDER)
            .limit(1)
        )
        if language is not None:
            stmt = stmt.where(HandoffRequest.language == language)
        if is_postgres(session):
            stmt = stmt.with_for_update(skip_locked=True)
        h = session.execute(stmt).scalar_one_or_none()
        if h is None:
            return None
        _assign(session, h, agent, now)
        return _handoff_view(session, h)


def close_handoff(session_factory, handoff_id: int, resolved: bool = True) -> HandoffView:
    """Close a queue entry (the human conversation ended) and resolve its ticket.

    Raises:
        HandoffNotFound: unknown id.
    """
    _check_handoff_id(handoff_id)
    now = utcnow()
    with session_factory.begin() as session:
        begin_write(session)
        h = session.get(HandoffRequest, handoff_id)
        if h is None:
            raise HandoffNotFound(str(handoff_id))
        if HANDOFF.allows(h.status, HANDOFF_CLOSED):
            h.status = HANDOFF_CLOSED
            h.closed_at = now
            ticket = session.get(SupportTicket, h.ticket_id)
            _move_ticket(ticket, TICKET_RESOLVED if resolved else TICKET_OPEN, now)
        session.flush()
        return _handoff_view(session, h)
