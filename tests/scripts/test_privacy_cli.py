"""scripts/privacy.py on real SQLite files: the seeded commerce database and a tracker store."""

from __future__ import annotations

import functools
import shutil
import sqlite3
import time
from datetime import timedelta

import pytest

from channels.tracker_store import MaskingSQLTrackerStore
from commerce.db import make_session_factory
from commerce.models import ConversationIdentity, Customer, VerificationAttempt
from commerce.services._common import utcnow
from commerce.services.support import conversation_handoff
from scripts.privacy import main
from tests.helpers import ROOT

ALICE = "alice@example.com"


@pytest.fixture
def files(tmp_path, seeded_db_file, monkeypatch):
    """A copy of the seeded commerce database and an endpoints file naming a tracker store."""
    db = tmp_path / "kefu.db"
    shutil.copy(seeded_db_file, db)
    tracker = tmp_path / "tracker.db"
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(
        "action_endpoint:\n  url: http://localhost:5055/webhook\n  token: ${KEFU_ACTION_TOKEN}\n"
        "tracker_store:\n  type: channels.tracker_store.MaskingSQLTrackerStore\n"
        f"  dialect: sqlite\n  db: {tracker}\n",
        encoding="utf-8",
    )
    monkeypatch.delenv("KEFU_ACTION_TOKEN", raising=False)  # only tracker_store is read
    monkeypatch.delenv("KEFU_RETENTION_DAYS", raising=False)
    return db, tracker, endpoints


@functools.lru_cache(maxsize=1)
def domain():
    from rasa.shared.core.domain import Domain

    return Domain.load(str(ROOT / "domain"))


async def save_conversation(tracker_db, sender, *, customer_id=None, days_ago=0):
    from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered

    store = MaskingSQLTrackerStore(domain(), dialect="sqlite", db=str(tracker_db))
    at = time.time() - days_ago * 86_400
    tracker = await store.get_or_create_tracker(sender, append_action_listen=False)
    tracker.update(ActionExecuted("action_listen", timestamp=at))
    tracker.update(UserUttered("where is my order", {"name": "order_status"}, timestamp=at))
    if customer_id is not None:
        tracker.update(SlotSet("verified_customer_id", float(customer_id), timestamp=at))
    await store.save(tracker)
    store.engine.dispose()


def senders(tracker_db) -> list[str]:
    with sqlite3.connect(tracker_db) as conn:
        return [r[0] for r in conn.execute("SELECT DISTINCT sender_id FROM events ORDER BY 1")]


def run(db, endpoints, *args) -> int:
    return main(["--database-url", f"sqlite:///{db}", "--endpoints", str(endpoints), *args])


async def test_forget_removes_the_customer_from_both_stores(files, capsys):
    db, tracker_db, endpoints = files
    sf = make_session_factory(f"sqlite:///{db}")
    with sf.begin() as s:
        s.add(
            ConversationIdentity(
                conversation_id="web-a1", customer_id=1, method="email", verified_at=utcnow()
            )
        )
    conversation_handoff(sf, "web-a2", "human", transcript="hi", customer_id=1)
    await save_conversation(tracker_db, "web-a1")
    await save_conversation(tracker_db, "web-a2")
    await save_conversation(tracker_db, "rest-a3", customer_id=1)  # known to the tracker only
    await save_conversation(tracker_db, "web-bob", customer_id=2)

    assert run(db, endpoints, "forget", "Alice@Example.com") == 0

    out = capsys.readouterr().out
    assert "customer 1 forgotten: conversations=3, tracker events=7" in out
    assert ALICE not in out and "Alice" not in out
    assert senders(tracker_db) == ["web-bob"]
    with sf() as s:
        assert s.get(Customer, 1).email == "forgotten-1@forgotten.invalid"
        assert s.get(Customer, 2).email == "bob@example.com"
    sf.kw["bind"].dispose()


async def test_purge_deletes_what_is_older_than_the_horizon(files, capsys):
    db, tracker_db, endpoints = files
    sf = make_session_factory(f"sqlite:///{db}")
    with sf.begin() as s:
        for days in (100, 1):
            s.add(
                VerificationAttempt(
                    conversation_id=f"c{days}", success=False, at=utcnow() - timedelta(days=days)
                )
            )
    sf.kw["bind"].dispose()
    await save_conversation(tracker_db, "old", days_ago=100)
    await save_conversation(tracker_db, "recent", days_ago=1)

    assert run(db, endpoints, "purge") == 0
    out = capsys.readouterr().out
    assert "commerce (older than 90 days): verification_attempts=1," in out
    assert "tracker store: conversations=1, events=2" in out
    assert senders(tracker_db) == ["recent"]

    assert run(db, endpoints, "purge", "--days", "0") == 0
    assert senders(tracker_db) == []


def test_unknown_customers_and_bad_emails_are_reported_without_echoing_them(files, capsys):
    db, _, endpoints = files
    assert run(db, endpoints, "forget", "nobody@example.com") == 1
    assert run(db, endpoints, "forget", "not-an-email") == 1
    err = capsys.readouterr().err
    assert "customer_not_found" in err and "invalid_input: email" in err
    assert "nobody" not in err and "not-an-email" not in err


def test_without_a_tracker_store_only_the_commerce_database_is_purged(files, tmp_path, capsys):
    db, _, _ = files
    endpoints = tmp_path / "memory.yml"
    endpoints.write_text("tracker_store:\n  type: in_memory\n", encoding="utf-8")
    assert run(db, endpoints, "purge", "--days", "30") == 0
    assert "nothing to delete" in capsys.readouterr().out
