"""An event broker that keeps every event while RabbitMQ is away: Rasa's ``PikaEventBroker``
with an outbox table.

Rasa's ``PikaEventBroker`` keeps events it could not publish in memory (lost with the process)
and refuses to start the server when RabbitMQ is unreachable (20 attempts, then an error).
:class:`OutboxPikaEventBroker` instead:

- starts whether or not RabbitMQ answers, and keeps reconnecting in the background;
- publishes each event with a message id (AMQP ``message_id`` and header
  :data:`MESSAGE_ID_HEADER`, a UUID) and waits for RabbitMQ's confirm;
- writes an event it could not publish to the outbox table :data:`OUTBOX_TABLE` (in the
  database of ``outbox_url``, in production the tracker store's PostgreSQL), and from then on
  every event of this process goes there behind it, until the outbox is drained, oldest first,
  by one process at a time (a PostgreSQL advisory lock), each row deleted after its confirm.

Guarantees: turns never wait on RabbitMQ (``publish`` only queues); events are delivered **at
least once, in the order each process published them**, and a consumer that drops message ids
it has seen gets each exactly once (a redelivery happens only when a process dies between the
confirm and the row's delete). Every process checks the outbox every ``retry_interval_s`` and
sends behind it while it holds rows, so a conversation that moves to another replica during an
outage keeps its order except within that interval. Not covered: the events of a ``kill -9``
in the instant between a turn and the confirm of its events while RabbitMQ is healthy (the
same window as Rasa's own broker).

endpoints.yml::

    event_broker:
      type: channels.broker.OutboxPikaEventBroker
      url: ${KEFU_RABBITMQ_HOST}
      username: ${KEFU_RABBITMQ_USER}
      password: ${KEFU_RABBITMQ_PASSWORD}
      queues: [kefu_events]
      outbox_url: ${KEFU_TRACKER_DB_URL}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import sqlalchemy as sa
from pamqp.commands import Basic
from rasa.core.brokers.pika import PikaEventBroker
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

MESSAGE_ID_HEADER = "kefu_message_id"
OUTBOX_TABLE = "kefu_event_outbox"
DEFAULT_OUTBOX_URL = "sqlite:///var/event-outbox.db"
#: Rows published per drain transaction.
DRAIN_BATCH = 200
#: One key for "this process drains the outbox now" across replicas (PostgreSQL).
_DRAIN_LOCK_KEY = 0x6B6566754F42  # "kefuOB"

_metadata = sa.MetaData()
outbox_table = sa.Table(
    OUTBOX_TABLE,
    _metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("message_id", sa.String(36), nullable=False, unique=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("headers", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
)


class EventOutbox:
    """The outbox table: events waiting for RabbitMQ, oldest first.

    Args:
        url: SQLAlchemy URL of the database that holds the table (created if missing).
    """

    def __init__(self, url: str) -> None:
        parsed = sa.engine.make_url(url)
        connect_args = {}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database not in (None, ":memory:"):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # One drain's connection serves several worker threads, one after the other.
            connect_args = {"check_same_thread": False}
        # Pre-ping: a database restart during an outage must not lose the outbox's connection.
        self.engine = sa.create_engine(
            url,
            future=True,
            pool_pre_ping=True,
            hide_parameters=True,
            connect_args=connect_args,
        )
        try:
            _metadata.create_all(self.engine, checkfirst=True)
        except sa.exc.DBAPIError:
            # Replicas starting together race to create the table: the one that checked just
            # before another created it fails (PostgreSQL: DuplicateTable, or a unique
            # violation in pg_type), and finds the table there.
            if not sa.inspect(self.engine).has_table(OUTBOX_TABLE):
                raise

    def add(self, message_id: str, body: str, headers: dict[str, Any] | None) -> None:
        """Append one event."""
        with self.engine.begin() as conn:
            conn.execute(
                outbox_table.insert().values(
                    message_id=message_id,
                    body=body,
                    headers=json.dumps(headers) if headers else None,
                    created_at=time.time(),
                )
            )

    def count(self) -> int:
        """Events waiting."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(outbox_table)).scalar_one()

    def begin_drain(self) -> sa.engine.Connection | None:
        """A transaction that alone may drain now (None when another process drains)."""
        conn = self.engine.connect()
        conn.begin()
        if conn.dialect.name == "postgresql":
            got = conn.execute(
                sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _DRAIN_LOCK_KEY}
            ).scalar()
            if not got:
                conn.rollback()
                conn.close()
                return None
        elif conn.dialect.name == "sqlite":
            conn.exec_driver_sql("SELECT 1")  # the pysqlite driver begins lazily
        return conn

    @staticmethod
    def oldest(conn: sa.engine.Connection, limit: int) -> list[sa.engine.Row]:
        """The ``limit`` oldest events."""
        stmt = sa.select(outbox_table).order_by(outbox_table.c.id).limit(limit)
        return list(conn.execute(stmt))

    @staticmethod
    def delete(conn: sa.engine.Connection, row_id: int) -> None:
        conn.execute(outbox_table.delete().where(outbox_table.c.id == row_id))

    def dispose(self) -> None:
        self.engine.dispose()


class OutboxPikaEventBroker(PikaEventBroker):
    """Rasa's ``PikaEventBroker`` with an outbox: see the module docstring.

    Args:
        host, username, password, port, queues, exchange_name: as Rasa's ``PikaEventBroker``.
        outbox_url: SQLAlchemy URL of the outbox's database (``sqlite:///var/event-outbox.db``
            by default; the tracker store's database in production).
        retry_interval_s: seconds between reconnection and outbox checks.
        publish_timeout_s: seconds to wait for RabbitMQ's confirm of one event.
        connect_timeout_s: seconds one connection attempt may take.
    """

    def __init__(
        self,
        host: str,
        username: str,
        password: str,
        *,
        outbox_url: str | None = None,
        retry_interval_s: float = 2.0,
        publish_timeout_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        **kwargs: Any,
    ) -> None:
        # The outbox keeps what could not be published, on disk; Rasa's own retries would block
        # the server's start for minutes.
        kwargs["should_keep_unpublished_messages"] = False
        kwargs["raise_on_failure"] = False
        kwargs.setdefault("connection_attempts", 1)
        kwargs.setdefault("retry_delay_in_seconds", 0)
        super().__init__(host, username, password, **kwargs)
        self.outbox = EventOutbox(outbox_url or DEFAULT_OUTBOX_URL)
        self.retry_interval_s = float(retry_interval_s)
        self.publish_timeout_s = float(publish_timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self._pending: asyncio.Queue | None = None
        self._sender: asyncio.Task | None = None
        self._behind_outbox = False
        self._last_check = 0.0
        self._outage_logged = False

    @classmethod
    async def from_endpoint_config(
        cls, broker_config: EndpointConfig | None, event_loop=None
    ) -> OutboxPikaEventBroker | None:
        """Creates the broker and starts it; an unreachable RabbitMQ does not stop Rasa."""
        if broker_config is None:
            return None
        broker = cls(broker_config.url, **broker_config.kwargs, event_loop=event_loop)
        await broker.start()
        return broker

    async def start(self) -> None:
        """Connect if RabbitMQ answers, and start the sender either way."""
        self._loop = asyncio.get_running_loop()
        self._pending = asyncio.Queue()
        self._behind_outbox = await asyncio.to_thread(self.outbox.count) > 0
        await self._try_connect()
        self._sender = self._loop.create_task(self._send_forever())

    async def _try_connect(self) -> bool:
        if self._exchange is not None:
            return True
        try:
            await asyncio.wait_for(self.connect(), timeout=self.connect_timeout_s)
        except Exception as e:  # noqa: BLE001 - any failure: RabbitMQ is not there (yet)
            await self._drop_connection()
            if not self._outage_logged:
                logger.error(
                    "RabbitMQ at %s:%s unreachable (%s); events go to the outbox table %s "
                    "and are delivered when it is back",
                    self.host,
                    self.port,
                    e,
                    OUTBOX_TABLE,
                )
                self._outage_logged = True
            return False
        if self._outage_logged:
            logger.warning("RabbitMQ at %s:%s is back", self.host, self.port)
            self._outage_logged = False
        return True

    async def _drop_connection(self) -> None:
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    def publish(self, event: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        """Queue ``event`` for the sender; never blocks or fails a turn."""
        if self._pending is None:
            raise RuntimeError("OutboxPikaEventBroker.publish before start()")
        self._pending.put_nowait((str(uuid.uuid4()), event, headers))

    def is_ready(self) -> bool:
        """Ready to take events: always once started (the outbox keeps them)."""
        return self._sender is not None and not self._sender.done()

    async def _send_forever(self) -> None:
        assert self._pending is not None
        while True:
            try:
                item = await asyncio.wait_for(self._pending.get(), timeout=self.retry_interval_s)
            except asyncio.TimeoutError:
                item = None
            if item is not None:
                await self._send_until_kept(item)
                self._pending.task_done()
            try:
                await self._maintain()
            except Exception:  # noqa: BLE001 - the sender must outlive any one failure
                logger.exception("event outbox could not be drained; retrying")

    async def _send_until_kept(self, item: tuple) -> None:
        # Published or in the outbox, in order: the next event waits until this one is kept.
        while True:
            try:
                await self._send(*item)
                return
            except Exception:  # noqa: BLE001 - e.g. the outbox's database is down too
                logger.exception("event %s neither published nor kept; retrying", item[0])
                await asyncio.sleep(self.retry_interval_s)

    async def _send(self, message_id: str, event: dict[str, Any], headers) -> None:
        if not self._behind_outbox and await self._publish_one(message_id, event, headers):
            return
        # Behind the outbox: after older events, never before them.
        self._behind_outbox = True
        body = json.dumps(event)
        await asyncio.to_thread(self.outbox.add, message_id, body, headers)

    async def _publish_one(self, message_id: str, event: dict[str, Any], headers) -> bool:
        if self._exchange is None:
            return False
        try:
            confirm = await self._exchange.publish(
                self._message_with_id(message_id, json.dumps(event), headers),
                "",
                timeout=self.publish_timeout_s,
            )
        except Exception as e:  # noqa: BLE001 - any failure: keep the event in the outbox
            logger.warning("publishing event %s failed (%s); it goes to the outbox", message_id, e)
            await self._drop_connection()
            return False
        return not isinstance(confirm, (Basic.Nack, Basic.Reject))

    def _message_with_id(self, message_id: str, body: str, headers) -> aio_pika.Message:
        return aio_pika.Message(
            body.encode(),
            headers={**(headers or {}), MESSAGE_ID_HEADER: message_id},
            message_id=message_id,
            app_id=self.rasa_environment,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )

    async def _maintain(self) -> None:
        """Every ``retry_interval_s``: see other replicas' rows, reconnect, drain."""
        now = time.monotonic()
        if now - self._last_check < self.retry_interval_s:
            return
        self._last_check = now
        if not self._behind_outbox:
            # Rows another replica wrote: send behind them too.
            self._behind_outbox = await asyncio.to_thread(self.outbox.count) > 0
            if not self._behind_outbox:
                return
        if not await self._try_connect():
            return
        published, emptied = await self._drain()
        if published == DRAIN_BATCH:
            self._last_check = 0.0  # more waiting: the next batch at once
        if emptied and self._pending is not None and self._pending.empty():
            self._behind_outbox = await asyncio.to_thread(self.outbox.count) > 0

    async def _drain(self) -> tuple[int, bool]:
        """Publish the oldest rows in order.

        Returns:
            How many were published, and whether that emptied what this pass saw.
        """
        conn = await asyncio.to_thread(self.outbox.begin_drain)
        if conn is None:  # another replica drains now
            return 0, False
        published = 0
        try:
            rows = await asyncio.to_thread(self.outbox.oldest, conn, DRAIN_BATCH)
            for row in rows:
                headers = json.loads(row.headers) if row.headers else None
                if not await self._publish_one(row.message_id, json.loads(row.body), headers):
                    break
                await asyncio.to_thread(self.outbox.delete, conn, row.id)
                published += 1
            await asyncio.to_thread(conn.commit)
        finally:
            await asyncio.to_thread(conn.close)
        emptied = published == len(rows) < DRAIN_BATCH
        if published:
            logger.info("event outbox: %d events delivered", published)
        return published, emptied

    async def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued (or keep it in the outbox), then close the connection."""
        if self._pending is not None and self._sender is not None and not self._sender.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._pending.join(), timeout=timeout_s)
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sender
        # Whatever the sender did not get to is kept for the next start.
        while self._pending is not None and not self._pending.empty():
            message_id, event, headers = self._pending.get_nowait()
            self.outbox.add(message_id, json.dumps(event), headers)
        await self._drop_connection()
        self.outbox.dispose()
