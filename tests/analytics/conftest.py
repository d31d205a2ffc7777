"""Fixtures of the analytics tests: the recorded conversations and a migrated facts database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from analytics import db
from analytics.store import FactsStore

RECORDING = Path(__file__).with_name("conversations.jsonl")
#: 2026-01-01T00:00Z, the recording's day (tests.analytics.record_conversations.BASE).
BASE = 1_767_225_600.0
#: "Now" for the tests: a day after the recorded conversations.
NOW = BASE + 86_400
ORDER_SECRET = "test-order-secret"
#: Rows compared between runs: everything but autoincrement ids and bookkeeping.
FACT_TABLES = {
    "analytics_events": ("id",),
    "analytics_conversations": (),
    "analytics_turns": ("id",),
    "analytics_tasks": ("id",),
}


@pytest.fixture(scope="session")
def recorded_lines() -> list[str]:
    """The recorded event bodies, one JSON text each, in broker order."""
    return RECORDING.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="session")
def recorded_bodies(recorded_lines) -> list[dict[str, Any]]:
    return [json.loads(line) for line in recorded_lines]


@pytest.fixture
def analytics_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'analytics.db'}"
    db.upgrade(url)
    return url


@pytest.fixture
def analytics_engine(analytics_url):
    engine = db.engine(analytics_url)
    yield engine
    engine.dispose()


@pytest.fixture
def facts_store(analytics_engine) -> FactsStore:
    return FactsStore(analytics_engine, order_secret=ORDER_SECRET, clock=lambda: NOW)


def broker_items(lines: list[str]) -> list[tuple[str, None]]:
    """Broker bodies as :meth:`FactsStore.ingest` takes them (the sender is inside)."""
    return [(line, None) for line in lines]


def snapshot(engine: sa.engine.Engine) -> dict[str, list[tuple]]:
    """The fact tables' rows, sorted, without autoincrement ids."""
    metadata = sa.MetaData()
    metadata.reflect(engine, only=list(FACT_TABLES))
    result = {}
    with engine.connect() as conn:
        for name, skipped in FACT_TABLES.items():
            table = metadata.tables[name]
            columns = [c for c in table.c if c.name not in skipped and c.name != "source"]
            rows = conn.execute(sa.select(*columns)).all()
            result[name] = sorted((tuple(r) for r in rows), key=repr)
    return result


@pytest.fixture
def tracker_store_engine(tmp_path, recorded_bodies):
    """A real Kefu tracker store (``MaskingSQLTrackerStore`` on SQLite) holding the recording,
    saved a few events at a time as Rasa saves trackers: retrieved, updated, saved."""
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import Event
    from rasa.shared.core.trackers import DialogueStateTracker

    from channels.tracker_store import MaskingSQLTrackerStore

    names = {b["name"] for b in recorded_bodies if b["event"] == "slot"}
    slots = {n: {"type": "any", "mappings": [{"type": "custom"}]} for n in sorted(names)}
    domain = Domain.from_dict({"slots": slots})
    store = MaskingSQLTrackerStore(domain, dialect="sqlite", db=str(tmp_path / "tracker.db"))
    by_sender: dict[str, list[dict]] = {}
    for body in recorded_bodies:
        event = {k: v for k, v in body.items() if k != "sender_id"}
        by_sender.setdefault(body["sender_id"], []).append(event)

    async def save_all() -> None:
        for sender, events in by_sender.items():
            for start in range(0, len(events), 7):
                tracker = await store.retrieve(sender) or DialogueStateTracker.from_dict(
                    sender, [], slots=domain.slots
                )
                for event in events[start : start + 7]:
                    tracker.update(Event.from_parameters(event))
                await store.save(tracker)

    asyncio.run(save_all())
    yield store.engine
    store.engine.dispose()


def tracker_store_endpoints(tmp_path, tracker_store_engine: sa.engine.Engine):
    """An endpoints.yml whose tracker store is ``tracker_store_engine``'s SQLite file, as the
    command line reads it."""
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(
        "tracker_store:\n  type: channels.tracker_store.MaskingSQLTrackerStore\n"
        f"  dialect: sqlite\n  db: {tracker_store_engine.url.database}\n",
        encoding="utf-8",
    )
    return endpoints
