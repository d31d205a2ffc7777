"""One Rasa event dict in: checked, given its identity, and reduced to what analytics keeps.

Both sources deliver the same thing: the dict of ``Event.as_dict()`` after Kefu's masking
(``channels.tracker_store.mask_event``). A broker body carries ``sender_id`` inside; a tracker
store row carries it in its own column. Everything after this module sees one shape.

Identity: an event is the same event when its conversation and its whole content are the same.
The store's row and the broker's body of one event are equal once ``sender_id`` is set aside
(both are masked with the same known values), and Rasa stamps every event with ``time.time()``,
so two different events of one conversation never have the same content. A redelivered body, a
re-read row or the same event from both sources therefore gets the same :func:`event_key`.

Kept, not copied (:func:`reduce_event`): message texts, button payloads and channel metadata
are dropped; slot and entity values are kept only where analytics reads them (language, rating,
the form's state), and an order number only as ``{"masked": "KF-****23", "key": <keyed hash>}``
— the key joins the contacts about one order without the number being stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from dataclasses import dataclass
from typing import Any


class AnalyticsError(Exception):
    """Base of the analytics package's errors."""


class MalformedEvent(AnalyticsError, ValueError):
    """An event dict the consumer cannot use; it is logged and skipped."""


#: The latest a timestamp may lie in the future (clock skew between hosts), in seconds.
MAX_FUTURE_S = 24 * 3600
MASK = "***"
#: Bot metadata worth keeping: the response's name, the agent who wrote it.
BOT_METADATA_KEYS = ("utter_action", "kefu_agent")
#: How many ranked intents a user event keeps (the runner-up names a fallback's nearest intent).
RANKING_KEPT = 3
ORDER_NUMBER = "order_number"
#: Slots whose values analytics reads; any other slot keeps its name only.
SLOT_VALUES_KEPT = frozenset(
    {"language", "rating", "form_stopped", "human_offered", "requested_slot"}
)
#: Entities whose values analytics reads (order numbers are kept masked and keyed).
ENTITY_VALUES_KEPT = frozenset({"rating"})
#: Entities the NLU components put on every message; their values are in the parse data.
ENTITIES_DROPPED = frozenset({"language", "sentiment"})

_ORDER_DIGITS = re.compile(r"^(?:KF)?[\s\-_]*([0-9]{6,12})$", re.IGNORECASE)


def mask_order_number(value: Any) -> str | None:
    """``KF-100023`` → ``KF-****23``; None when ``value`` is no order number."""
    match = _ORDER_DIGITS.match(str(value).strip()) if value is not None else None
    if not match:
        return None
    digits = match.group(1)
    return f"KF-{'*' * (len(digits) - 2)}{digits[-2:]}"


def order_key(value: Any, secret: str) -> str | None:
    """Keyed hash (16 hex) of an order number: joins conversations about one order, unreadable."""
    match = _ORDER_DIGITS.match(str(value).strip()) if value is not None else None
    if not match:
        return None
    digest = hmac.new(secret.encode(), f"order\n{match.group(1)}".encode(), hashlib.sha256)
    return digest.hexdigest()[:16]


def order_refs(value: Any, secret: str) -> list[dict[str, str]]:
    """The masked form and key of each order number in ``value`` (a number or a list)."""
    refs = []
    for item in value if isinstance(value, list) else [value]:
        masked, key = mask_order_number(item), order_key(item, secret)
        if masked and key:
            refs.append({"masked": masked, "key": key})
    return refs


@dataclass(frozen=True)
class CheckedEvent:
    """An event ready to store: its conversation, identity, time, type and reduced dict."""

    sender_id: str
    key: str
    timestamp: float
    type_name: str
    data: dict[str, Any]


def _timestamp(value: Any, now: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedEvent(f"timestamp must be a number, got {value!r}")
    ts = float(value)
    if not math.isfinite(ts) or ts <= 0:
        raise MalformedEvent(f"timestamp must be a positive finite number, got {value!r}")
    if now is not None and ts > now + MAX_FUTURE_S:
        raise MalformedEvent(f"timestamp {ts} lies more than a day in the future")
    return ts


def event_key(sender_id: str, event: dict[str, Any]) -> str:
    """SHA-256 (hex) of the conversation and the event's content, ``sender_id`` left out."""
    content = {k: v for k, v in event.items() if k != "sender_id"}
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{sender_id}\n{canonical}".encode()).hexdigest()


def check_event(
    raw: Any, sender_id: str | None = None, *, now: float | None = None, order_secret: str = ""
) -> CheckedEvent:
    """Check one event and reduce it.

    Args:
        raw: the event dict, or its JSON text (a broker body, a tracker store ``data`` column).
        sender_id: the conversation when it is not inside the event (tracker store rows).
        now: the current time; timestamps more than a day after it are refused.
        order_secret: key of the order-number hashes (``commerce.config.hash_secret()``).

    Raises:
        MalformedEvent: not a JSON object, no conversation, no event type, a timestamp that is
            not a positive finite number, or a user/bot/slot/action event of the wrong shape.
    """
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedEvent(f"not UTF-8: {e}") from e
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as e:
            raise MalformedEvent(f"not JSON: {e}") from e
    if not isinstance(raw, dict):
        raise MalformedEvent(f"an event is a JSON object, got {type(raw).__name__}")
    sender = raw.get("sender_id", sender_id)
    if not isinstance(sender, str) or not sender.strip():
        raise MalformedEvent("no sender_id")
    type_name = raw.get("event")
    if not isinstance(type_name, str) or not type_name:
        raise MalformedEvent("no event type")
    timestamp = _timestamp(raw.get("timestamp"), now)
    _check_shape(type_name, raw)
    return CheckedEvent(
        sender_id=sender,
        key=event_key(sender, raw),
        timestamp=timestamp,
        type_name=type_name,
        data=reduce_event(raw, order_secret),
    )


def _check_shape(type_name: str, raw: dict[str, Any]) -> None:
    if type_name == "user":
        parse_data = raw.get("parse_data")
        if parse_data is not None and not isinstance(parse_data, dict):
            raise MalformedEvent("user event: parse_data must be an object")
        intent = (parse_data or {}).get("intent")
        if intent is not None and not isinstance(intent, dict):
            raise MalformedEvent("user event: parse_data.intent must be an object")
    elif type_name in ("action", "slot"):
        if not isinstance(raw.get("name"), str) or not raw["name"]:
            raise MalformedEvent(f"{type_name} event without a name")
    elif type_name == "bot":
        metadata = raw.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise MalformedEvent("bot event: metadata must be an object")


def _entity(entity: dict[str, Any], secret: str) -> dict[str, Any]:
    name = entity.get("entity")
    if name == ORDER_NUMBER:
        return {"entity": name, "value": order_refs(entity.get("value"), secret)}
    if name in ENTITY_VALUES_KEPT:
        return {"entity": name, "value": entity.get("value")}
    return {"entity": name}


def _slot_value(name: Any, value: Any, secret: str) -> Any:
    if value is None or name in SLOT_VALUES_KEPT:
        return value
    if name == ORDER_NUMBER:
        return order_refs(value, secret)
    return MASK


def reduce_event(raw: dict[str, Any], order_secret: str = "") -> dict[str, Any]:
    """What analytics keeps of an event: no texts, no payloads, no channel metadata, only the
    values it reads (order numbers masked and keyed with ``order_secret``)."""
    type_name = raw.get("event")
    kept: dict[str, Any] = {"event": type_name, "timestamp": raw.get("timestamp")}
    if type_name == "user":
        parse_data = raw.get("parse_data") or {}
        intent = parse_data.get("intent") or {}
        kept["message_id"] = raw.get("message_id")
        kept["input_channel"] = raw.get("input_channel")
        kept["parse_data"] = {
            "intent": {"name": intent.get("name"), "confidence": intent.get("confidence")},
            "intent_ranking": [
                {"name": r.get("name"), "confidence": r.get("confidence")}
                for r in (parse_data.get("intent_ranking") or [])[:RANKING_KEPT]
                if isinstance(r, dict)
            ],
            "entities": [
                _entity(e, order_secret)
                for e in parse_data.get("entities") or []
                if isinstance(e, dict) and e.get("entity") not in ENTITIES_DROPPED
            ],
            "language": parse_data.get("language"),
            "sentiment": parse_data.get("sentiment"),
        }
    elif type_name == "bot":
        metadata = raw.get("metadata") or {}
        kept["metadata"] = {k: metadata[k] for k in BOT_METADATA_KEYS if k in metadata}
    elif type_name == "action":
        for key in ("name", "policy", "confidence"):
            kept[key] = raw.get(key)
    elif type_name == "slot":
        kept["name"] = raw.get("name")
        kept["value"] = _slot_value(raw.get("name"), raw.get("value"), order_secret)
    elif type_name == "active_loop":
        kept["name"] = raw.get("name")
    return kept
