"""Retention: purging what is older than KEFU_RETENTION_DAYS and forgetting one customer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from commerce.errors import ConfigurationError, CustomerNotFound, InvalidInput
from commerce.models import (
    HANDOFF_CLOSED,
    BackInStockSubscription,
    Base,
    ConversationIdentity,
    Customer,
    HandoffRequest,
    Order,
    OutboxMessage,
    ProductVariant,
    ShippingAddress,
    SupportTicket,
    VerificationAttempt,
    VerificationCode,
)
from commerce.services._common import utcnow
from commerce.services.identity import contact_key
from commerce.services.retention import (
    DEFAULT_RETENTION_DAYS,
    ForgetReport,
    find_customer_id,
    forget_customer,
    purge_older_than,
    retention_days,
)
from commerce.services.support import close_handoff, conversation_handoff, open_ticket

ALICE_ADDRESS = "12 Baker Street"


def test_retention_defaults_to_90_days(monkeypatch):
    monkeypatch.delenv("KEFU_RETENTION_DAYS", raising=False)
    assert retention_days() == DEFAULT_RETENTION_DAYS == 90
    monkeypatch.setenv("KEFU_RETENTION_DAYS", "30")
    assert retention_days() == 30


@pytest.mark.parametrize("value", ["0", "-3", "ninety", "1.5"])
def test_a_retention_that_is_not_a_whole_number_of_days_is_refused(monkeypatch, value):
    monkeypatch.setenv("KEFU_RETENTION_DAYS", value)
    with pytest.raises(ConfigurationError, match="KEFU_RETENTION_DAYS"):
        retention_days()


def add_trail(session, customer_id, conversation_id, *, days_ago=0, contact="alice@example.com"):
    """One of everything verification leaves behind, ``days_ago`` old."""
    at = utcnow() - timedelta(days=days_ago)
    session.add_all(
        [
            VerificationAttempt(
                conversation_id=conversation_id,
                order_number="KF-190001",
                contact_key=contact_key(contact),
                kind="order",
                success=True,
                at=at,
            ),
            VerificationCode(
                customer_id=customer_id,
                conversation_id=conversation_id,
                channel="email",
                code_hash="h" * 64,
                created_at=at,
                expires_at=at + timedelta(minutes=10),
            ),
            ConversationIdentity(
                conversation_id=conversation_id,
                customer_id=customer_id,
                method="code",
                verified_at=at,
            ),
            OutboxMessage(
                kind="verification_code",
                channel="email",
                recipient=contact,
                subject="Your code",
                body="code sent to a***@example.com",
                status="sent",
                created_at=at,
            ),
        ]
    )


def backdate_ticket(sf, ticket_number, days):
    with sf.begin() as s:
        t = s.execute(
            select(SupportTicket).where(SupportTicket.ticket_number == ticket_number)
        ).scalar_one()
        t.updated_at = t.created_at = utcnow() - timedelta(days=days)


def test_purge_deletes_and_anonymises_only_what_is_older_than_the_horizon(session_factory, world):
    with session_factory.begin() as s:
        add_trail(s, world.alice_id, "old-conv", days_ago=120)
        add_trail(s, world.alice_id, "new-conv", days_ago=1)
        variants = s.execute(select(ProductVariant)).scalars().all()[:3]
        for variant, (days, notified) in zip(
            variants, ((120, 100), (120, None), (1, 1)), strict=True
        ):
            s.add(
                BackInStockSubscription(
                    variant_id=variant.id,
                    contact="alice@example.com",
                    created_at=utcnow() - timedelta(days=days),
                    notified_at=None if notified is None else utcnow() - timedelta(days=notified),
                )
            )
    transcript = f"user: ship to {ALICE_ADDRESS}, mail alice@example.com"
    old_closed = conversation_handoff(
        session_factory, "old-conv", "wants a human", transcript=transcript
    )
    close_handoff(session_factory, old_closed.handoff_id)
    backdate_ticket(session_factory, old_closed.ticket_number, 120)
    old_open = open_ticket(session_factory, "still open", transcript=transcript)
    backdate_ticket(session_factory, old_open.ticket_number, 120)
    recent = conversation_handoff(session_factory, "new-conv", "human", transcript=transcript)
    close_handoff(session_factory, recent.handoff_id)

    counts = purge_older_than(session_factory, 90)

    assert counts == {
        "verification_attempts": 1,
        "verification_codes": 1,
        "outbox_messages": 1,
        "stock_subscriptions": 1,
        "conversation_identities": 1,
        "tickets_anonymised": 1,
    }
    with session_factory() as s:
        assert s.execute(select(ConversationIdentity.conversation_id)).scalars().all() == [
            "new-conv"
        ]
        assert len(s.execute(select(BackInStockSubscription)).scalars().all()) == 2
        tickets = {t.ticket_number: t for t in s.execute(select(SupportTicket)).scalars()}
        assert tickets[old_closed.ticket_number].transcript == ""
        assert tickets[old_closed.ticket_number].conversation_id is None
        kept = "user: ship to ***, mail a***@example.com"  # stored masked from the start
        assert tickets[old_open.ticket_number].transcript == kept
        assert tickets[recent.ticket_number].transcript == kept
        handoff = s.get(HandoffRequest, old_closed.handoff_id)
        assert (handoff.conversation_id, handoff.status) == ("forgotten", HANDOFF_CLOSED)
        assert s.get(HandoffRequest, recent.handoff_id).conversation_id == "new-conv"
    # Nothing is left to do a second time.
    assert set(purge_older_than(session_factory, 90).values()) == {0}


def test_purge_uses_the_configured_horizon(session_factory, world, monkeypatch):
    with session_factory.begin() as s:
        add_trail(s, world.alice_id, "conv", days_ago=10)
    monkeypatch.setenv("KEFU_RETENTION_DAYS", "30")
    assert purge_older_than(session_factory)["verification_attempts"] == 0
    monkeypatch.setenv("KEFU_RETENTION_DAYS", "7")
    assert purge_older_than(session_factory)["verification_attempts"] == 1


@pytest.mark.parametrize("days", [-1, "90", True])
def test_purge_refuses_a_nonsense_horizon(session_factory, days):
    with pytest.raises(InvalidInput):
        purge_older_than(session_factory, days)


def all_text(sf) -> str:
    """Every value in every commerce table, as one string."""
    with sf() as s:
        return "\n".join(
            repr(tuple(row))
            for table in Base.metadata.sorted_tables
            for row in s.execute(select(table))
        )


def test_forget_customer_leaves_no_personal_data_but_keeps_the_orders(session_factory, world):
    with session_factory.begin() as s:
        add_trail(s, world.alice_id, "web-alice-1", days_ago=1)
        add_trail(s, world.wang_id, "web-wang-1", days_ago=1, contact=world.wang_email)
        s.add(
            VerificationAttempt(
                conversation_id="rest-other",
                contact_key=contact_key(world.alice_phone),
                kind="order",
                success=False,
                at=utcnow(),
            )
        )
        for address in s.execute(
            select(ShippingAddress)
            .join(Order, Order.id == ShippingAddress.order_id)
            .where(Order.customer_id == world.alice_id)
        ).scalars():
            address.line1 = ALICE_ADDRESS
        orders_before = s.execute(select(Order.number, Order.total_cents)).all()
    transcript = f"Alice Smith: please use {ALICE_ADDRESS}, call +1 415 555 0100"
    waiting = conversation_handoff(
        session_factory,
        "web-alice-2",
        "human please",
        transcript=transcript,
        customer_id=world.alice_id,
        order_number=world.orders["paid"],
    )
    open_ticket(
        session_factory, "Alice Smith asks", transcript=transcript, customer_id=world.alice_id
    )
    assert "Alice Smith" in all_text(session_factory)

    report = forget_customer(session_factory, world.alice_id)

    assert isinstance(report, ForgetReport)
    assert report.conversation_ids == ("web-alice-1", "web-alice-2")
    assert (report.tickets, report.handoffs, report.identities, report.codes) == (2, 1, 1, 1)
    assert report.attempts == 2 and report.outbox_messages == 1
    assert report.addresses == 10
    text = all_text(session_factory)
    for clear in (world.alice_email, "Alice Smith", world.alice_phone, ALICE_ADDRESS, "web-alice"):
        assert clear not in text
    with session_factory() as s:
        alice = s.get(Customer, world.alice_id)
        assert (alice.email, alice.name, alice.phone) == (
            f"forgotten-{world.alice_id}@forgotten.invalid",
            "",
            None,
        )
        assert s.execute(select(Order.number, Order.total_cents)).all() == orders_before
        assert s.get(HandoffRequest, waiting.handoff_id).status == HANDOFF_CLOSED
        # The other customer is untouched.
        assert s.get(Customer, world.wang_id).email == world.wang_email
        wang_addresses = s.execute(
            select(ShippingAddress.line1)
            .join(Order, Order.id == ShippingAddress.order_id)
            .where(Order.customer_id == world.wang_id)
        ).scalars()
        assert set(wang_addresses) == {"1 Test Street"}
        assert s.execute(select(ConversationIdentity.conversation_id)).scalars().all() == [
            "web-wang-1"
        ]


def test_forgetting_twice_finds_nothing_more(session_factory, world):
    forget_customer(session_factory, world.alice_id)
    report = forget_customer(session_factory, world.alice_id)
    assert report.conversation_ids == ()
    assert (report.codes, report.identities, report.attempts) == (0, 0, 0)


def test_a_customer_is_found_by_email_and_unknown_ones_are_refused(session_factory, world):
    assert find_customer_id(session_factory, "  ALICE@example.com ") == world.alice_id
    with pytest.raises(CustomerNotFound):
        find_customer_id(session_factory, "nobody@example.com")
    with pytest.raises(CustomerNotFound):
        forget_customer(session_factory, 999_999)
    with pytest.raises(InvalidInput):
        forget_customer(session_factory, 0)
