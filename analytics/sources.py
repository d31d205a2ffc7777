"""Where the events come from: the SQL tracker store, read by ``events.id``, or RabbitMQ.

Both feed :meth:`analytics.store.FactsStore.ingest` the same raw event dicts.

**Tracker store** (the embedded default, ``endpoints.yml``): rows after the source's
high-water mark, oldest first, a batch at a time; the mark moves in the batch's transaction.
Rows younger than ``settle_s`` wait for the next read: on PostgreSQL two Rasa instances can
commit their ids out of order, and a mark moved past an id not yet committed would skip it.

**A file** of broker bodies, one per line: replayed in batches (a recording, a queue export).

**RabbitMQ** (``deploy/endpoints.production.yml``'s pika broker and queue): messages are taken
in batches (``prefetch`` = batch size) and acknowledged only after their batch committed; a
crash leaves them unacknowledged, RabbitMQ redelivers them, and the duplicates are recognised
(:func:`analytics.events.event_key`). Malformed bodies are skipped inside the batch and
acknowledged, so they never come back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from analytics.store import FactsStore, IngestResult

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 500
#: How long a tracker store row must exist before it is read (see the module docstring).
DEFAULT_SETTLE_S = 5.0
DEFAULT_POLL_S = 2.0
#: Flush a partial RabbitMQ batch after this long without a new message.
IDLE_FLUSH_S = 1.0
AMQP_PORT = 5672

#: Rasa's SQL tracker store table, the columns analytics reads (the consumer and export-misses).
TRACKER_EVENTS = sa.table(
    "events",
    sa.column("id", sa.Integer),
    sa.column("sender_id", sa.String),
    sa.column("type_name", sa.String),
    sa.column("timestamp", sa.Float),
    sa.column("data", sa.Text),
)


@dataclass
class ConsumeStats:
    """Totals of a consumer run."""

    batches: int = 0
    accepted: int = 0
    duplicates: int = 0
    skipped: int = 0
    high_water: int = 0
    conversations: set[str] = field(default_factory=set)

    def add(self, result: IngestResult) -> None:
        self.batches += 1
        self.accepted += result.accepted
        self.duplicates += result.duplicates
        self.skipped += result.skipped
        self.high_water = result.high_water

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "high_water": self.high_water,
        }


def tracker_store_source(engine: Engine) -> str:
    """The source name of a tracker store: its URL without the password."""
    return "tracker_store:" + engine.url.render_as_string(hide_password=True)


def consume_tracker_store(
    store: FactsStore,
    tracker_engine: Engine,
    *,
    source: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    once: bool = True,
    settle_s: float = DEFAULT_SETTLE_S,
    poll_s: float = DEFAULT_POLL_S,
    max_seconds: float | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> ConsumeStats:
    """Read the tracker store's ``events`` after the high-water mark into the facts.

    Args:
        store: the facts.
        tracker_engine: an engine on the tracker store's database.
        source: the name the mark is kept under (:func:`tracker_store_source` by default).
        batch_size: rows per transaction.
        once: stop when nothing is left to read (else poll every ``poll_s``).
        settle_s: read only rows whose event is at least this old.
        max_seconds: stop after this long in any case.
    """
    source = source or tracker_store_source(tracker_engine)
    stats = ConsumeStats(high_water=store.high_water(source))
    started = clock()
    while max_seconds is None or clock() - started < max_seconds:
        mark = store.high_water(source)
        stmt = (
            sa.select(
                TRACKER_EVENTS.c.id,
                TRACKER_EVENTS.c.sender_id,
                TRACKER_EVENTS.c.timestamp,
                TRACKER_EVENTS.c.data,
            )
            .where(TRACKER_EVENTS.c.id > mark)
            .order_by(TRACKER_EVENTS.c.id)
            .limit(batch_size)
        )
        with tracker_engine.connect() as conn:
            rows = list(conn.execute(stmt))
        horizon = clock() - settle_s
        ready = []
        for row in rows:
            if row.timestamp is not None and row.timestamp > horizon:
                break  # too young: a lower id may still be committing
            ready.append(row)
        if ready:
            items = [(row.data, row.sender_id) for row in ready]
            stats.add(store.ingest(source, items, high_water=ready[-1].id))
            if len(ready) == batch_size:
                continue
        if once:
            break
        sleep(poll_s)
    return stats


def consume_jsonl(
    store: FactsStore, path: Path, *, batch_size: int = DEFAULT_BATCH
) -> ConsumeStats:
    """Replay broker bodies saved one per line (a recording, an export of a queue)."""
    stats = ConsumeStats()
    source = f"jsonl:{path.name}"
    with path.open(encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    for start in range(0, len(lines), batch_size):
        chunk = lines[start : start + batch_size]
        stats.add(store.ingest(source, [(line, None) for line in chunk]))
    return stats


# --- RabbitMQ ----------------------------------------------------------------------------------


def amqp_url(host: str, username: str | None, password: str | None, port: int | None) -> str:
    """An AMQP URL from the pika broker's settings (``url`` may be a host or a full URL)."""
    if host.startswith(("amqp://", "amqps://")):
        return host
    credentials = ""
    if username:
        credentials = quote(username, safe="")
        if password:
            credentials += ":" + quote(password, safe="")
        credentials += "@"
    return f"amqp://{credentials}{host}:{port or AMQP_PORT}/"


async def drain(
    store: FactsStore,
    source: str,
    messages: AsyncIterator[Any],
    *,
    batch_size: int = DEFAULT_BATCH,
    max_seconds: float,
) -> ConsumeStats:
    """Ingest messages (``.body``, ``await .ack()``, ``await .nack(requeue=True)``) in batches
    for at most ``max_seconds``.

    ``messages`` raises :class:`asyncio.TimeoutError` when it has been idle for a while (an
    aio-pika queue iterator made with ``timeout=``): the partial batch is written then, and the
    deadline checked. (Cancelling an aio-pika iterator's ``__anext__`` would close it, so the
    wait is never wrapped in ``asyncio.wait_for`` here.) Each batch is acknowledged after it
    committed, or returned to the queue when the commit failed (and the error raised).
    """
    stats = ConsumeStats()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds
    batch: list[Any] = []

    async def flush() -> None:
        if not batch:
            return
        items = [(message.body, None) for message in batch]
        try:
            result = await asyncio.to_thread(store.ingest, source, items)
        except Exception:
            for message in batch:
                await message.nack(requeue=True)
            raise
        for message in batch:
            await message.ack()
        stats.add(result)
        batch.clear()

    while loop.time() < deadline:
        try:
            message = await messages.__anext__()
        except asyncio.TimeoutError:
            await flush()
            continue
        except StopAsyncIteration:
            break
        batch.append(message)
        if len(batch) >= batch_size:
            await flush()
    await flush()
    return stats


async def consume_rabbitmq(
    store: FactsStore,
    *,
    url: str,
    queue: str,
    max_seconds: float,
    batch_size: int = DEFAULT_BATCH,
) -> ConsumeStats:
    """Consume ``queue`` (declared durable, as Rasa's pika broker declares it) for at most
    ``max_seconds``."""
    import aio_pika

    connection = await aio_pika.connect_robust(url, timeout=10)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=batch_size)
        declared = await channel.declare_queue(queue, durable=True)
        async with declared.iterator(timeout=IDLE_FLUSH_S) as messages:
            return await drain(
                store, f"rabbitmq:{queue}", messages, batch_size=batch_size, max_seconds=max_seconds
            )
    finally:
        await connection.close()
