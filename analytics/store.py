"""Events in, facts out: one transaction per batch.

:meth:`FactsStore.ingest` takes a batch of raw events from one source and, in one transaction,
stores the new ones (an event already stored — a redelivery, a re-read after a crash — is
counted as a duplicate and left alone), recomputes the facts of every conversation the batch
touched from all of that conversation's stored events, and moves the source's high-water mark.
A crash anywhere rolls all of it back, so the next run reads the same events again and ends
with the same rows: idempotent and resumable without a separate log of what was done.

An event that cannot be used is logged and skipped, never raised: a malformed one
(:class:`analytics.events.MalformedEvent`), and one that arrives out of order — older than
what its conversation already holds by more than :data:`OUT_OF_ORDER_TOLERANCE_S` (the order a
conversation's events are read in is the order they arrived, which for the tracker store is
Rasa's own order).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from analytics.events import CheckedEvent, MalformedEvent, check_event
from analytics.facts import ConversationFacts, conversation_facts
from analytics.models import Conversation, Source, StoredEvent, TaskRow, TurnRow

logger = logging.getLogger(__name__)

#: Rasa stamps some events of one update a few microseconds out of order (the agent console's
#: hand-back); anything older than this is out of order.
OUT_OF_ORDER_TOLERANCE_S = 1.0
_CHUNK = 500


@dataclass
class IngestResult:
    """What one batch did."""

    accepted: int = 0
    duplicates: int = 0
    skipped: int = 0
    conversations: int = 0
    high_water: int = 0


def _join(items: Iterable[Any]) -> str:
    return ",".join(str(i) for i in items)


class FactsStore:
    """The analytics tables of one database.

    Args:
        engine: the database (tables made by ``python -m analytics upgrade``).
        order_secret: key of the order-number hashes (``commerce.config.hash_secret()``).
        clock: the current time (tests fix it).
    """

    def __init__(self, engine: Engine, *, order_secret: str = "", clock=time.time) -> None:
        self.engine = engine
        self.order_secret = order_secret
        self.clock = clock
        self.sessions = sessionmaker(bind=engine, future=True)

    def high_water(self, source: str) -> int:
        """The last position read from ``source`` (0 before the first batch)."""
        with self.sessions() as session:
            row = session.get(Source, source)
            return int(row.high_water) if row else 0

    def ingest(
        self,
        source: str,
        items: Iterable[tuple[Any, str | None]],
        *,
        high_water: int | None = None,
    ) -> IngestResult:
        """Store a batch and recompute what it touched, in one transaction.

        Args:
            source: the source's name (its high-water mark and counters are kept under it).
            items: ``(raw event, sender_id)`` pairs, in the order they arrived; ``sender_id``
                is None when the event carries its own (broker bodies).
            high_water: the source's position after this batch (tracker store ``events.id``).
        """
        result = IngestResult()
        now = self.clock()
        checked: list[CheckedEvent] = []
        for raw, sender_id in items:
            try:
                checked.append(check_event(raw, sender_id, now=now, order_secret=self.order_secret))
            except MalformedEvent as e:
                result.skipped += 1
                logger.warning("analytics: skipped a malformed event from %s: %s", source, e)
        with self.sessions.begin() as session:
            row = session.get(Source, source)
            if row is None:
                row = Source(name=source, high_water=0, accepted=0, duplicates=0, skipped=0)
                session.add(row)
            new = self._new_events(session, checked, result)
            latest = self._latest(session, {e.sender_id for e in new})
            for event in new:
                last = latest.get(event.sender_id)
                if last is not None and event.timestamp < last - OUT_OF_ORDER_TOLERANCE_S:
                    result.skipped += 1
                    logger.warning(
                        "analytics: skipped an out-of-order %s event of %s (%.3f s before the "
                        "conversation's latest)",
                        event.type_name,
                        event.sender_id,
                        last - event.timestamp,
                    )
                    continue
                latest[event.sender_id] = max(event.timestamp, last or event.timestamp)
                session.add(
                    StoredEvent(
                        event_key=event.key,
                        sender_id=event.sender_id,
                        timestamp=event.timestamp,
                        type_name=event.type_name,
                        data=json.dumps(event.data, ensure_ascii=False),
                        source=source,
                    )
                )
                result.accepted += 1
            session.flush()
            touched = sorted({e.sender_id for e in new})
            for sender_id in touched:
                self._recompute(session, sender_id)
            result.conversations = len(touched)
            if high_water is not None:
                row.high_water = max(int(row.high_water or 0), int(high_water))
            row.accepted = (row.accepted or 0) + result.accepted
            row.duplicates = (row.duplicates or 0) + result.duplicates
            row.skipped = (row.skipped or 0) + result.skipped
            row.updated_at = now
            result.high_water = int(row.high_water or 0)
        return result

    @staticmethod
    def _new_events(
        session: Session, checked: list[CheckedEvent], result: IngestResult
    ) -> list[CheckedEvent]:
        """The batch's events not stored yet, each once, in arrival order."""
        keys = list(dict.fromkeys(e.key for e in checked))
        stored: set[str] = set()
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            stmt = sa.select(StoredEvent.event_key).where(StoredEvent.event_key.in_(chunk))
            stored.update(session.execute(stmt).scalars())
        new, seen = [], set(stored)
        for event in checked:
            if event.key in seen:
                result.duplicates += 1
                continue
            seen.add(event.key)
            new.append(event)
        return new

    @staticmethod
    def _latest(session: Session, senders: set[str]) -> dict[str, float]:
        latest: dict[str, float] = {}
        ordered = sorted(senders)
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            stmt = (
                sa.select(StoredEvent.sender_id, sa.func.max(StoredEvent.timestamp))
                .where(StoredEvent.sender_id.in_(chunk))
                .group_by(StoredEvent.sender_id)
            )
            latest.update({s: float(ts) for s, ts in session.execute(stmt)})
        return latest

    def _recompute(self, session: Session, sender_id: str) -> ConversationFacts:
        stmt = (
            sa.select(StoredEvent.data)
            .where(StoredEvent.sender_id == sender_id)
            .order_by(StoredEvent.id)
        )
        events = [json.loads(data) for data in session.execute(stmt).scalars()]
        facts = conversation_facts(sender_id, events, order_secret=self.order_secret)
        session.execute(sa.delete(TurnRow).where(TurnRow.sender_id == sender_id))
        session.execute(sa.delete(TaskRow).where(TaskRow.sender_id == sender_id))
        session.merge(conversation_row(facts))
        for turn in facts.turns:
            values = asdict(turn)
            values["responses"] = _join(values["responses"])
            session.add(TurnRow(sender_id=sender_id, **values))
        for task in facts.tasks:
            session.add(TaskRow(sender_id=sender_id, **asdict(task)))
        return facts


def conversation_row(facts: ConversationFacts) -> Conversation:
    values = asdict(facts)
    values.pop("turns")
    values.pop("tasks")
    for key in ("flows", "order_numbers", "order_keys"):
        values[key] = _join(values[key])
    return Conversation(**values)
