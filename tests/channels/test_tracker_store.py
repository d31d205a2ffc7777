"""MaskingSQLTrackerStore on a real SQLite file, built by Rasa's factory from an endpoints file,
streaming to real event brokers; and deleting conversations for retention."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid

import pytest
import sqlalchemy as sa
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.core.utils import AvailableEndpoints
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.utils.endpoints import EndpointConfig

from channels.tracker_store import (
    STORED_EVENTS,
    MaskingEventBroker,
    MaskingSQLTrackerStore,
    conversations_of_customer,
    delete_conversations,
    delete_conversations_older_than,
    mask_event,
    stale_conversations,
    tracker_store_config,
    tracker_store_engine,
)
from commerce.privacy import seal, unseal
from tests.helpers import ROOT
from tests.helpers.network import service_reachable
from tests.postgres import ensure_database

EMAIL = "anna.lee@example.com"
PHONE = "+1 415 555 0101"
ADDRESS = "Flat 3, Rose Court, Leeds LS1 4AP"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxNCJ9.c2lnbmF0dXJlLXNpZw"
SIGNATURE = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
CLIENT = "203.0.113.77"
#: What must never appear in a stored row or a published body.
CLEAR_PII = (EMAIL, "anna.lee", "4155550101", "415 555 0101", "Rose Court", JWT, SIGNATURE, CLIENT)


@pytest.fixture(autouse=True)
def data_key(monkeypatch):
    monkeypatch.setenv("KEFU_DATA_KEY", "test-data-key")


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(ROOT / "domain"))


def endpoints_file(tmp_path, db_path, broker_db=None):
    text = (
        "tracker_store:\n"
        "  type: channels.tracker_store.MaskingSQLTrackerStore\n"
        "  dialect: sqlite\n"
        f"  db: {db_path}\n"
    )
    if broker_db is not None:
        text += f"event_broker:\n  type: sql\n  dialect: sqlite\n  db: {broker_db}\n"
    path = tmp_path / "endpoints.yml"
    path.write_text(text, encoding="utf-8")
    return path


async def store_from(endpoints_path, domain):
    """The store and broker exactly as `rasa run --endpoints` builds them."""
    endpoints = AvailableEndpoints.read_endpoints(str(endpoints_path))
    broker = await EventBroker.create(endpoints.event_broker)
    return TrackerStore.create(endpoints.tracker_store, domain, broker), broker


def conversation(sender: str) -> list:
    """A whole conversation: verification by email, a phone, a new address typed as free
    text (from_text slot) and sealed by the form, token metadata from a careless client."""
    metadata = {
        "language": "en",
        "customer_token": JWT,
        "kefu_client": CLIENT,
        "kefu_identity": {"customer_id": 14, "exp": 4102444800, "sid": sender, "sig": SIGNATURE},
    }
    parse = {
        "text": f"it's {EMAIL}",
        "intent": {"name": "inform", "confidence": 0.98},
        "entities": [{"entity": "email", "value": EMAIL, "start": 5, "end": 25}],
    }
    return [
        ActionExecuted("action_session_start"),
        SessionStarted(metadata=metadata),
        SlotSet("session_started_metadata", metadata),
        ActionExecuted("action_listen"),
        UserUttered(f"it's {EMAIL}", parse["intent"], parse["entities"], parse, metadata=metadata),
        SlotSet("verify_contact", EMAIL),  # Rasa's own slot mapping, in clear
        SlotSet("verify_contact", seal(EMAIL)),  # the form's validation seals it
        SlotSet("verified_customer_id", 14.0),
        BotUttered(f"Thanks, {EMAIL} is verified.", {"custom": {"contact": EMAIL}}),
        ActionExecuted("action_listen"),
        UserUttered(f"or call me on {PHONE}", {"name": "inform", "confidence": 0.9}),
        BotUttered("We will call ***0101 if needed."),
        ActionExecuted("action_listen"),
        UserUttered(ADDRESS, {"name": "inform", "confidence": 0.7}),
        SlotSet("new_address", ADDRESS),
        SlotSet("new_address", seal(ADDRESS)),
        BotUttered(f"Your parcel will go to {ADDRESS}.", {"custom": {"address": ADDRESS}}),
    ]


def assert_no_clear_pii(texts) -> None:
    blob = "\n".join(texts)
    for value in CLEAR_PII:
        assert value not in blob, f"{value!r} stored in clear"


def rows(db_path, sql="SELECT data FROM events ORDER BY id") -> list[str]:
    with sqlite3.connect(db_path) as conn:
        return [row[0] for row in conn.execute(sql)]


async def test_the_endpoints_type_builds_the_masking_store(tmp_path, domain):
    store, _ = await store_from(endpoints_file(tmp_path, tmp_path / "t.db"), domain)
    # Rasa falls back to an in-memory store, with a warning only, when a custom type fails.
    assert isinstance(store, MaskingSQLTrackerStore)
    assert store.engine.hide_parameters is True


def test_the_repository_endpoints_files_name_the_masking_store(monkeypatch):
    monkeypatch.setenv("KEFU_TRACKER_DB_URL", "postgresql://kefu@db/kefu")
    for path in (ROOT / "endpoints.yml", ROOT / "deploy" / "endpoints.production.yml"):
        config = tracker_store_config(path)
        assert config.type == "channels.tracker_store.MaskingSQLTrackerStore", path
    assert tracker_store_config(ROOT / "deploy" / "endpoints.production.yml").url == (
        "postgresql://kefu@db/kefu"
    )


def test_an_unset_variable_in_the_tracker_store_section_is_an_error(monkeypatch):
    monkeypatch.delenv("KEFU_TRACKER_DB_URL", raising=False)
    with pytest.raises(ValueError, match="KEFU_TRACKER_DB_URL"):
        tracker_store_config(ROOT / "deploy" / "endpoints.production.yml")


async def test_a_full_conversation_is_stored_and_published_masked(tmp_path, domain):
    db, broker_db = tmp_path / "tracker.db", tmp_path / "broker.db"
    store, broker = await store_from(endpoints_file(tmp_path, db, broker_db), domain)
    sender = "web-" + uuid.uuid4().hex[:8]
    tracker = await store.get_or_create_tracker(sender, append_action_listen=False)
    for event in conversation(sender):
        tracker.update(event)
    await store.save(tracker)

    stored = rows(db)
    assert len(stored) == len(tracker.events)
    assert_no_clear_pii(stored)
    published = rows(broker_db)
    assert len(published) == len(tracker.events)
    assert_no_clear_pii(published)
    assert all(json.loads(body)["sender_id"] == sender for body in published)

    events = [json.loads(data) for data in stored]
    user = next(e for e in events if e["event"] == "user")
    assert user["text"] == "it's a***@example.com"
    assert user["parse_data"]["entities"][0]["value"] == "a***@example.com"
    assert user["parse_data"]["intent"]["name"] == "inform"
    assert user["metadata"] == {
        "language": "en",
        "kefu_identity": {"customer_id": 14, "exp": 4102444800, "sid": sender},
    }
    texts = [e.get("text") for e in events]
    assert "or call me on ***0101" in texts and "***" in texts  # the address, as typed
    assert "Your parcel will go to ***." in texts
    raw_slots = [e["value"] for e in events if e["event"] == "slot" and e["name"] == "new_address"]
    assert raw_slots[0] == "***" and unseal(raw_slots[1]) == ADDRESS

    # A restarted server reads the conversation back; the sealed slots still unseal.
    fresh = TrackerStore.create(
        EndpointConfig(
            type=store.__module__ + ".MaskingSQLTrackerStore", dialect="sqlite", db=str(db)
        ),
        domain,
    )
    restored = await fresh.retrieve(sender)
    assert unseal(restored.get_slot("verify_contact")) == EMAIL
    assert unseal(restored.get_slot("new_address")) == ADDRESS
    assert restored.get_slot("verified_customer_id") == 14.0

    # The next message works on the stored (masked) tracker, as Rasa's processor does; only
    # its own events are appended and the address, known from the sealed slot, stays masked.
    tracker = await store.get_or_create_tracker(sender)
    tracker.update(ActionExecuted("action_listen"))
    tracker.update(UserUttered(f"is {ADDRESS.lower()} right?", {"name": "affirm"}))
    await store.save(tracker)
    assert len(rows(db)) == len(stored) + 2
    assert len(rows(broker_db)) == len(published) + 2
    stored = rows(db)
    assert json.loads(stored[-1])["text"] == "is *** right?"
    assert_no_clear_pii(stored + rows(broker_db))


async def test_a_turn_on_a_conversation_read_from_the_store_writes_its_events_without_a_count(
    tmp_path, domain, monkeypatch
):
    db = tmp_path / "tracker.db"
    store, _ = await store_from(endpoints_file(tmp_path, db), domain)
    counts = []
    rasas_count = SQLTrackerStore._additional_events
    monkeypatch.setattr(
        SQLTrackerStore,
        "_additional_events",
        lambda self, session, tracker: counts.append(1) or rasas_count(self, session, tracker),
    )
    sender = "web-" + uuid.uuid4().hex[:8]
    tracker = await store.get_or_create_tracker(sender, append_action_listen=False)
    for event in conversation(sender):
        tracker.update(event)
    await store.save(tracker)  # a new conversation: nothing was read, Rasa counts
    assert counts
    counted, stored = len(counts), len(rows(db))

    tracker = await store.get_or_create_tracker(sender)  # the next turn reads it back
    tracker.update(UserUttered("thanks", {"name": "thank_you"}))
    tracker.update(ActionExecuted("utter_welcome"))
    await store.save(tracker)
    tracker.update(ActionExecuted("action_listen"))
    await store.save(tracker)  # saved again in the same turn: only the newest event

    assert len(counts) == counted
    assert len(rows(db)) == stored + 3
    assert [json.loads(r).get("name") for r in rows(db)[-2:]] == ["utter_welcome", "action_listen"]

    # A tracker read across all sessions (the API's, the console's) holds more than the
    # session's rows: it is not marked, so a save would count as Rasa does.
    full = await store.retrieve_full_tracker(sender)
    assert not hasattr(full, STORED_EVENTS)


@pytest.mark.services
async def test_events_published_to_rabbitmq_are_masked(tmp_path, domain):
    if not service_reachable("127.0.0.1", 5672):
        pytest.skip("RabbitMQ is not reachable at 127.0.0.1:5672; start it to run this test")
    import aio_pika

    queue_name = f"kefu_privacy_{uuid.uuid4().hex[:8]}"
    broker = await EventBroker.create(
        EndpointConfig(
            url="127.0.0.1", type="pika", username="guest", password="guest", queues=[queue_name]
        )
    )
    connection = await aio_pika.connect_robust("amqp://guest:guest@127.0.0.1:5672/")
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, durable=True)
        store = MaskingSQLTrackerStore(
            domain=domain, dialect="sqlite", db=str(tmp_path / "t.db"), event_broker=broker
        )
        sender = "rest-" + uuid.uuid4().hex[:8]
        tracker = await store.get_or_create_tracker(sender, append_action_listen=False)
        for event in conversation(sender):
            tracker.update(event)
        await store.save(tracker)

        bodies: list[str] = []
        deadline = asyncio.get_running_loop().time() + 20
        while asyncio.get_running_loop().time() < deadline and len(bodies) < len(tracker.events):
            message = await queue.get(no_ack=True, fail=False)
            if message is None:
                await asyncio.sleep(0.1)
                continue
            bodies.append(message.body.decode())
        assert len(bodies) == len(tracker.events)
        assert_no_clear_pii(bodies)
        await channel.queue_delete(queue_name)
    finally:
        await connection.close()
        await broker.close()


def test_the_wrapped_broker_masks_whatever_publishes_through_it():
    published = []

    class ListBroker(EventBroker):
        def publish(self, event):
            published.append(event)

    broker = MaskingEventBroker(ListBroker())
    broker.publish(
        {
            "sender_id": "s1",
            "event": "user",
            "text": f"mail {EMAIL}",
            "metadata": {"customer_token": JWT},
        }
    )
    assert published == [
        {"sender_id": "s1", "event": "user", "text": "mail a***@example.com", "metadata": {}}
    ]


@pytest.mark.parametrize(
    "event, masked",
    [
        ({"event": "slot", "name": "verify_code", "value": "123456"}, "***"),
        ({"event": "slot", "name": "verify_contact", "value": None}, None),
        ({"event": "slot", "name": "order_number", "value": "KF-100023"}, "KF-100023"),
        ({"event": "slot", "name": "restock_email", "value": "bob@example.com"}, "***"),
        (
            {"event": "slot", "name": "email_note", "value": "write to bob@example.com"},
            "write to b***@example.com",
        ),
    ],
)
def test_slot_values(event, masked):
    assert mask_event(event)["value"] == masked


def test_query_parameters_stay_out_of_database_errors(tmp_path):
    store = MaskingSQLTrackerStore(dialect="sqlite", db=str(tmp_path / "t.db"))
    with pytest.raises(sa.exc.OperationalError) as caught:
        with store.engine.connect() as conn:
            conn.execute(sa.text("SELECT * FROM missing WHERE x = :x"), {"x": EMAIL})
    assert EMAIL not in str(caught.value)


# --- retention ---------------------------------------------------------------------------------


async def saved_conversation(store, sender, *, customer_id=None, at=None):
    tracker = await store.get_or_create_tracker(sender, append_action_listen=False)
    tracker.update(ActionExecuted("action_listen", timestamp=at))
    tracker.update(UserUttered("hello", {"name": "greet"}, timestamp=at))
    if customer_id is not None:
        tracker.update(SlotSet("verified_customer_id", float(customer_id), timestamp=at))
    await store.save(tracker)


async def test_conversations_are_deleted_by_sender_and_by_age(tmp_path, domain):
    db = tmp_path / "tracker.db"
    store, _ = await store_from(endpoints_file(tmp_path, db), domain)
    old = time.time() - 100 * 86_400
    await saved_conversation(store, "old-1", at=old)
    await saved_conversation(store, "anna-1", customer_id=14)
    await saved_conversation(store, "anna-2", customer_id=14)
    await saved_conversation(store, "bob-1", customer_id=15)

    engine = tracker_store_engine(tmp_path / "endpoints.yml")
    assert conversations_of_customer(engine, 14) == ["anna-1", "anna-2"]
    assert delete_conversations_older_than(engine, 90) == (1, 2)
    assert delete_conversations(engine, ["anna-1", "anna-2", "nobody"]) == 6
    assert rows(db, "SELECT DISTINCT sender_id FROM events") == ["bob-1"]
    assert await store.retrieve("anna-1") is None


def test_no_engine_without_a_sql_tracker_store(tmp_path):
    path = tmp_path / "endpoints.yml"
    path.write_text("tracker_store:\n  type: in_memory\n", encoding="utf-8")
    assert tracker_store_engine(path) is None
    assert tracker_store_engine(endpoints_file(tmp_path, tmp_path / "never-opened.db")) is None


async def test_rasa_run_loads_the_masking_store_and_its_fallback_publishes_masked(
    tmp_path, monkeypatch
):
    """`rasa run` builds the store through `load_agent` and wraps it in FailSafeTrackerStore,
    whose in-memory fallback (used while the database fails) publishes through our broker."""
    from rasa.core.agent import load_agent
    from rasa.core.tracker_store import FailSafeTrackerStore

    broker_db = tmp_path / "broker.db"
    endpoints = AvailableEndpoints.read_endpoints(
        str(endpoints_file(tmp_path, tmp_path / "tracker.db", broker_db))
    )
    agent = await load_agent(endpoints=endpoints)
    store = agent.tracker_store
    assert isinstance(store, FailSafeTrackerStore)
    assert isinstance(store._tracker_store, MaskingSQLTrackerStore)

    async def database_down(self, tracker):
        raise sa.exc.OperationalError("INSERT", {}, Exception("database is down"))

    monkeypatch.setattr(MaskingSQLTrackerStore, "save", database_down)
    tracker = await store.get_or_create_tracker("web-fallback", append_action_listen=False)
    tracker.update(UserUttered(f"mail {EMAIL} or {PHONE}", metadata={"customer_token": JWT}))
    await store.save(tracker)
    published = rows(broker_db)
    assert len(published) == 1
    assert_no_clear_pii(published)


@pytest.mark.postgres
async def test_deleting_conversations_on_postgresql(tmp_path, domain, monkeypatch):
    if not service_reachable("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432; start it to run this test")
    database = "kefu_test_privacy"
    ensure_database(database)
    monkeypatch.setenv("KEFU_TRACKER_DB_URL", f"postgresql://postgres@127.0.0.1:5432/{database}")
    path = tmp_path / "endpoints.yml"
    path.write_text(
        "tracker_store:\n  type: channels.tracker_store.MaskingSQLTrackerStore\n"
        "  url: ${KEFU_TRACKER_DB_URL}\n",
        encoding="utf-8",
    )
    store, _ = await store_from(path, domain)
    prefix = uuid.uuid4().hex[:8]
    await saved_conversation(store, f"{prefix}-old", at=time.time() - 100 * 86_400)
    await saved_conversation(store, f"{prefix}-anna", customer_id=991_001)

    engine = tracker_store_engine(path)
    assert engine.dialect.name == "postgresql"
    assert conversations_of_customer(engine, 991_001) == [f"{prefix}-anna"]
    assert f"{prefix}-old" in stale_conversations(engine, 90)
    assert delete_conversations(engine, [f"{prefix}-old", f"{prefix}-anna"]) == 5
    assert await store.retrieve(f"{prefix}-anna") is None
    engine.dispose()


async def test_a_rasa_server_loading_the_store_answers_action_failures(tmp_path, monkeypatch):
    """The store is the plugin every `rasa run` loads: it installs channels.faults' answers."""
    import rasa.core.actions.action as rasa_actions
    import rasa.core.actions.forms as rasa_forms
    from rasa.core.agent import load_agent

    from channels.fault_actions import KefuRemoteAction

    # Saved so that monkeypatch puts Rasa's own class back after the test.
    monkeypatch.setattr(rasa_actions, "RemoteAction", rasa_actions.RemoteAction)
    monkeypatch.setattr(rasa_forms, "RemoteAction", rasa_forms.RemoteAction)
    endpoints = AvailableEndpoints.read_endpoints(
        str(endpoints_file(tmp_path, tmp_path / "tracker.db"))
    )
    await load_agent(endpoints=endpoints)
    assert rasa_actions.RemoteAction is KefuRemoteAction
    assert rasa_forms.RemoteAction is KefuRemoteAction


@pytest.mark.postgres
async def test_the_store_recovers_from_killed_postgresql_connections(tmp_path, domain):
    if not service_reachable("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432; start it to run this test")
    database = "kefu_test_faults"
    url = ensure_database(database)
    store = MaskingSQLTrackerStore(domain=domain, host=url)  # Rasa reads a full URL in host
    sender = "pg-restart-" + uuid.uuid4().hex[:8]
    await saved_conversation(store, sender)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": database},
            ).scalar()
        assert killed >= 1  # the store's pooled connection was among them
        # No restart: the next turn reads and writes through fresh connections.
        tracker = await store.retrieve(sender)
        assert tracker is not None and tracker.events
        tracker.update(UserUttered("still there?"))
        await store.save(tracker)
        assert (await store.retrieve(sender)).latest_message.text == "still there?"
    finally:
        admin.dispose()
        store.engine.dispose()
