"""A SQL tracker store that never writes personal data in clear, and its retention helpers.

``MaskingSQLTrackerStore`` is Rasa's ``SQLTrackerStore`` with every event passed through
:func:`commerce.privacy.mask_value` before it is stored or published:

- ``save`` is Rasa's own loop over ``_additional_events`` with each event's dict masked before
  ``json.dumps`` (Rasa builds the row from ``event.as_dict()`` inside ``save``, so there is no
  narrower hook);
- ``stream_events`` computes the same new events as Rasa and publishes masked bodies, and the
  store's ``event_broker`` is wrapped in :class:`MaskingEventBroker`, so whatever publishes
  through it (Rasa's ``FailSafeTrackerStore`` fallback included) sends masked bodies too.

Masking keeps what the dialogue needs: slots in :data:`commerce.privacy.PII_SLOTS` are stored
sealed or as ``***``; the value of such a slot set anywhere in the tracker (the street address
the customer typed) is masked wherever it appears in texts; ``customer_token`` never enters a
row; the identity claim loses its signature and the client address is dropped.

Use it in endpoints.yml::

    tracker_store:
      type: channels.tracker_store.MaskingSQLTrackerStore
      dialect: sqlite
      db: var/tracker.db

The module also deletes conversations from a SQL tracker store (``scripts/privacy.py``):
:func:`delete_conversations`, :func:`delete_conversations_older_than`,
:func:`conversations_of_customer`, over an engine from :func:`tracker_store_engine`.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
from rasa.shared.core.trackers import DialogueStateTracker, TrackerEventDiffEngine
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from rasa.utils.endpoints import EndpointConfig
from sqlalchemy.orm import sessionmaker

from channels.faults import install_fault_answers
from channels.identity import CLIENT_KEY, IDENTITY_KEY, TOKEN_KEY
from commerce.privacy import MASK, PII_SLOTS, install_pii_masking, is_sealed, mask_value, pii_values
from contract import VERIFIED_CUSTOMER_SLOT

logger = logging.getLogger(__name__)

#: Metadata keys that must never be stored (the customer JWT; the channels strip it anyway).
DROPPED_METADATA_KEYS = (TOKEN_KEY, CLIENT_KEY)
#: Tracker store types this module can open for deletion (endpoints ``tracker_store.type``).
SQL_TYPES = ("sql", "channels.tracker_store.maskingsqltrackerstore")
SECONDS_PER_DAY = 86_400


# --- masking -----------------------------------------------------------------------------------


def known_pii(tracker: DialogueStateTracker) -> list[str]:
    """Clear-text values of the PII slots anywhere in ``tracker`` (sealed ones unsealed)."""
    slots = {name: tracker.get_slot(name) for name in PII_SLOTS if name in tracker.slots}
    return pii_values(
        (event.as_dict() for event in tracker.events if event.type_name == "slot"), slots
    )


def scrub_metadata(metadata: Any) -> Any:
    """Message metadata without the customer token, the client address or a claim's signature."""
    if isinstance(metadata, list):
        return [scrub_metadata(v) for v in metadata]
    if not isinstance(metadata, dict):
        return metadata
    clean: dict[str, Any] = {}
    for key, value in metadata.items():
        if key in DROPPED_METADATA_KEYS:
            continue
        if key == IDENTITY_KEY and isinstance(value, dict):
            # Who and until when is enough afterwards; the signature would only help a replay.
            value = {k: v for k, v in value.items() if k in ("customer_id", "exp", "sid")}
        clean[key] = scrub_metadata(value)
    return clean


def mask_event(data: dict[str, Any], known: Iterable[str] = ()) -> dict[str, Any]:
    """A serialised event (``event.as_dict()`` or a broker body) with its personal data masked.

    Slots in :data:`PII_SLOTS` keep a sealed value and become ``***`` otherwise; the whole
    event goes through :func:`scrub_metadata`, and every string through
    :func:`commerce.privacy.mask_value` with the ``known`` values.
    """
    # The token, the client address and the claim's signature go wherever they hide
    # (metadata, parse_data.metadata, the session_started_metadata slot).
    data = scrub_metadata(dict(data))
    sender_id = data.pop("sender_id", None)
    if data.get("event") == "slot":
        name, value = data.get("name"), data.get("value")
        if name in PII_SLOTS and value is not None and not is_sealed(value):
            data["value"] = MASK
    masked = mask_value(data, known)
    if sender_id is not None:
        # The conversation key stays as it is: consumers join on it.
        masked = {"sender_id": sender_id, **masked}
    return masked


class MaskingEventBroker(EventBroker):
    """Wraps an event broker so every body it publishes is masked by :func:`mask_event`."""

    def __init__(self, inner: EventBroker) -> None:
        self.inner = inner

    def publish(self, event: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        self.inner.publish(mask_event(event), *args, **kwargs)

    def publish_masked(self, event: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        """Publish a body :func:`mask_event` already masked (with the tracker's known values)."""
        self.inner.publish(event, *args, **kwargs)

    def is_ready(self) -> bool:
        return self.inner.is_ready()

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes this wrapper lacks (a broker's own settings).
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)


#: Set on a tracker this store read: how many of its events the store held then.
STORED_EVENTS = "_kefu_stored_events"


class MaskingSQLTrackerStore(SQLTrackerStore):
    """``SQLTrackerStore`` that masks personal data before it is stored or streamed.

    Takes Rasa's ``SQLTrackerStore`` settings (``dialect``, ``db``, ``url`` / ``host``, ...).
    Its engine hides query parameters in error messages and logs and pings pooled connections
    before use. Created by a Rasa server, it also installs the fault answers of
    :mod:`channels.faults`.
    """

    def __init__(self, *args: Any, event_broker: EventBroker | None = None, **kwargs: Any) -> None:
        if event_broker is not None and not isinstance(event_broker, MaskingEventBroker):
            event_broker = MaskingEventBroker(event_broker)
        super().__init__(*args, event_broker=event_broker, **kwargs)
        url = self.engine.url
        self.engine.dispose()
        # Rasa's own pool / schema settings (it tests the URL text for "postgresql").
        kwargs = create_engine_kwargs(url.render_as_string(hide_password=False))
        # A connection the database dropped (a restart, pg_terminate_backend) is replaced
        # before use instead of failing a customer's turn.
        kwargs.setdefault("pool_pre_ping", True)
        self.engine = sa.create_engine(url, hide_parameters=True, **kwargs)
        self.sessionmaker = sessionmaker(bind=self.engine)
        install_pii_masking()
        # Every Rasa server loads this store (endpoints.yml): there its remote actions answer
        # failures. A script or test that only opens the store has no agent loaded and need not
        # import Rasa's core (TensorFlow) for them.
        if "rasa.core.agent" in sys.modules:
            install_fault_answers()

    async def _retrieve(
        self, sender_id: str, fetch_events_from_all_sessions: bool
    ) -> DialogueStateTracker | None:
        """Rasa's read of a conversation, noting on the tracker how many events it holds."""
        tracker = await super()._retrieve(sender_id, fetch_events_from_all_sessions)
        if tracker is not None and not fetch_events_from_all_sessions:
            setattr(tracker, STORED_EVENTS, len(tracker.events))
        return tracker

    def _additional_events(self, session: Any, tracker: DialogueStateTracker) -> Iterator:
        """The tracker's events the store does not hold yet.

        Rasa counts the stored rows of the conversation session on every save (8% of a
        replica's main thread under load, docs/BENCHMARKS.md). A tracker this store read holds
        exactly those rows (the same query), and the conversation's lock keeps every other
        writer out until the turn is saved, so the count noted at the read is the same number.
        A tracker read some other way, or whose history is capped, is counted as Rasa does.
        """
        stored = getattr(tracker, STORED_EVENTS, None)
        if stored is None or tracker.events.maxlen is not None:
            return super()._additional_events(session, tracker)
        return itertools.islice(tracker.events, stored, len(tracker.events))

    async def stream_events(self, tracker: DialogueStateTracker) -> None:
        """Publish the events not stored yet, masked with the tracker's known values."""
        if self.event_broker is None:
            return
        old_tracker = await self.retrieve(tracker.sender_id)
        new_events = TrackerEventDiffEngine.event_difference(old_tracker, tracker)
        self._publish(tracker.sender_id, new_events, known_pii(tracker))

    def _publish(self, sender_id: str, events: list, known: list[str]) -> None:
        broker = self.event_broker
        if broker is None:
            return
        for event in events:
            body = mask_event({"sender_id": sender_id, **event.as_dict()}, known)
            if isinstance(broker, MaskingEventBroker):
                broker.publish_masked(body)
            else:  # someone replaced the attribute; mask again on the way
                broker.publish(body)

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Rasa's ``SQLTrackerStore.save`` with every new event masked before it is written.

        Rasa streams the new events first by reading the whole stored tracker back and
        diffing (``stream_events``); the new events are the same ones ``_additional_events``
        finds by counting the stored rows, so they are found once, published, then written:
        one read of the conversation per turn fewer.
        """
        known = known_pii(tracker)
        with self.session_scope() as session:
            new_events = list(self._additional_events(session, tracker))
            self._publish(tracker.sender_id, new_events, known)
            for event in new_events:
                data = mask_event(event.as_dict(), known)
                intent = (data.get("parse_data") or {}).get("intent", {}).get(INTENT_NAME_KEY)
                session.add(
                    self.SQLEvent(
                        sender_id=tracker.sender_id,
                        type_name=event.type_name,
                        timestamp=data.get("timestamp"),
                        intent_name=intent,
                        action_name=data.get("name"),
                        data=json.dumps(data),
                    )
                )
            session.commit()
        if hasattr(tracker, STORED_EVENTS):  # saved again in the same turn: from here on
            setattr(tracker, STORED_EVENTS, len(tracker.events))
        logger.debug("Tracker with sender_id '%s' stored (masked)", tracker.sender_id)


# --- retention ---------------------------------------------------------------------------------

_metadata = sa.MetaData()
#: The columns of Rasa's ``events`` table that deletion needs (see ``SQLTrackerStore.SQLEvent``).
events_table = sa.Table(
    "events",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255)),
    sa.Column("type_name", sa.String(255)),
    sa.Column("timestamp", sa.Float),
    sa.Column("data", sa.Text),
)


def _expand(value: Any, where: str) -> Any:
    if isinstance(value, str):
        expanded = os.path.expandvars(value)
        if "${" in expanded:
            raise ValueError(f"{where}: set the environment variables in {value!r}")
        return expanded
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}") for k, v in value.items()}
    return value


def tracker_store_config(endpoints: str | Path = "endpoints.yml") -> EndpointConfig | None:
    """The ``tracker_store`` section of an endpoints file, environment variables expanded.

    Only that section is read, so the other sections' variables (``KEFU_ACTION_TOKEN``, ...)
    need not be set.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a variable the section uses is not set.
    """
    with open(endpoints, encoding="utf-8") as f:
        content = yaml.safe_load(f) or {}
    section = content.get("tracker_store")
    if not isinstance(section, dict):
        return None
    return EndpointConfig.from_dict(_expand(section, "tracker_store"))


def tracker_store_engine(
    endpoints: str | Path = "endpoints.yml", *, base_dir: str | Path | None = None
) -> sa.engine.Engine | None:
    """An engine on the SQL tracker store configured in an endpoints file.

    Args:
        endpoints: the endpoints file ``rasa run`` uses.
        base_dir: where a relative SQLite ``db`` lies (the directory ``rasa run`` runs in);
            the current directory by default.

    Returns:
        The engine (parameters hidden in errors), or None when the file configures no SQL
        tracker store or the store has no ``events`` table yet.
    """
    config = tracker_store_config(endpoints)
    if config is None or (config.type or "").lower() not in SQL_TYPES:
        return None
    kwargs = config.kwargs
    dialect, db = kwargs.get("dialect", "sqlite"), kwargs.get("db", "rasa.db")
    if dialect == "sqlite" and not config.url and base_dir is not None and db != ":memory:":
        db = str(Path(base_dir) / db)  # an absolute db stays as it is
    url = SQLTrackerStore.get_db_url(
        dialect,
        config.url,
        kwargs.get("port"),
        db,
        kwargs.get("username"),
        kwargs.get("password"),
        None,
        kwargs.get("query"),
    )
    engine = sa.create_engine(url, hide_parameters=True)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and not Path(database).exists():
        engine.dispose()  # Rasa has not created it yet: nothing to delete (and no empty file)
        return None
    if not sa.inspect(engine).has_table("events"):
        engine.dispose()
        return None
    return engine


def delete_conversations(engine: sa.engine.Engine, sender_ids: Iterable[str]) -> int:
    """Delete every event of these conversations; returns the number of events deleted."""
    ids = sorted({s for s in sender_ids if s})
    deleted = 0
    with engine.begin() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            result = conn.execute(
                sa.delete(events_table).where(events_table.c.sender_id.in_(chunk))
            )
            deleted += result.rowcount or 0
    return deleted


def stale_conversations(
    engine: sa.engine.Engine, days: float, *, now: float | None = None
) -> list[str]:
    """Conversations whose last event is older than ``days``."""
    horizon = (time.time() if now is None else now) - days * SECONDS_PER_DAY
    stmt = (
        sa.select(events_table.c.sender_id)
        .group_by(events_table.c.sender_id)
        .having(sa.func.max(events_table.c.timestamp) < horizon)
    )
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(stmt)]


def delete_conversations_older_than(
    engine: sa.engine.Engine, days: float, *, now: float | None = None
) -> tuple[int, int]:
    """Delete whole conversations whose last event is older than ``days``.

    Returns:
        ``(conversations, events)`` deleted.
    """
    senders = stale_conversations(engine, days, now=now)
    return len(senders), delete_conversations(engine, senders)


def conversations_of_customer(engine: sa.engine.Engine, customer_id: int) -> list[str]:
    """Conversations whose tracker set ``verified_customer_id`` to ``customer_id``."""
    stmt = sa.select(events_table.c.sender_id, events_table.c.data).where(
        events_table.c.type_name == "slot",
        events_table.c.data.like(f'%"{VERIFIED_CUSTOMER_SLOT}"%'),
    )
    found: set[str] = set()
    with engine.connect() as conn:
        for sender_id, data in conn.execute(stmt):
            try:
                event = json.loads(data)
                value = event.get("value")
                if event.get("name") == VERIFIED_CUSTOMER_SLOT and value is not None:
                    if int(float(value)) == int(customer_id):
                        found.add(sender_id)
            except (TypeError, ValueError):
                continue
    return sorted(found)
