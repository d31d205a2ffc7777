"""Handoffs per client: a script with fresh conversation ids cannot flood the human queue."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from commerce.errors import TooManyAttempts
from commerce.models import HandoffRequest
from commerce.services.identity import client_key
from commerce.services.support import conversation_handoff

FLOODER = "203.0.113.50"


def test_handoffs_per_client_are_limited(session_factory, world, monkeypatch):
    monkeypatch.delenv("KEFU_HANDOFFS_PER_CLIENT_PER_HOUR", raising=False)
    for i in range(3):
        conversation_handoff(session_factory, f"flood-{i}", "URGENT", client=FLOODER)
    with pytest.raises(TooManyAttempts) as e:
        conversation_handoff(session_factory, "flood-new", "URGENT", client=FLOODER)
    assert e.value.code == "too_many_attempts" and 0 < e.value.retry_after_s <= 3600
    # Other clients, and channels that give no address, still reach a human.
    assert conversation_handoff(session_factory, "real-customer", "help", client="198.51.100.1")
    assert conversation_handoff(session_factory, "no-address", "help")


def test_repeating_a_waiting_handoff_does_not_count(session_factory, world):
    for _ in range(5):
        h = conversation_handoff(session_factory, "same", "human please", client=FLOODER)
    assert h.created is False
    # Only the first one counted: two more conversations from the same address get through.
    for i in range(2):
        assert conversation_handoff(session_factory, f"other-{i}", "help", client=FLOODER).created


def test_handoff_stores_the_client_key_not_the_address(session_factory, world):
    conversation_handoff(session_factory, "c", "help", client=FLOODER)
    with session_factory() as s:
        stored = s.execute(select(HandoffRequest.client_key)).scalar_one()
    assert stored == client_key(FLOODER) and "203" not in stored


def test_limit_is_configurable(session_factory, world, monkeypatch):
    monkeypatch.setenv("KEFU_HANDOFFS_PER_CLIENT_PER_HOUR", "1")
    conversation_handoff(session_factory, "a", "help", client=FLOODER)
    with pytest.raises(TooManyAttempts):
        conversation_handoff(session_factory, "b", "help", client=FLOODER)
