"""Helpers for action tests: real ``rasa_sdk`` trackers, identity slots, and readers of what an
action uttered or set (the fixtures are in tests/actions/conftest.py)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher


def latest_code(outbox: Path) -> str:
    """The 6-digit code of the latest message in the outbox log, as the customer reads it."""
    blocks = outbox.read_text(encoding="utf-8").split("\n--- ")
    [code] = re.findall(r"(?<!\d)\d{6}(?!\d)", blocks[-1].split("\n", 1)[1])
    return code


def verified(
    customer_id: float,
    method: str = "email",
    *,
    second_factor: bool = False,
    order: str | None = None,
    until: float | None = None,
) -> dict[str, Any]:
    """Identity slots of a conversation verified a moment ago by ``method``.

    ``second_factor=True`` with an email check means the one-time code was confirmed too.
    """
    now = time.time()
    if second_factor and method in ("email", "phone"):
        method = "code"
    return {
        "verified_customer_id": float(customer_id),
        "verified_method": method,
        "verified_order": order,
        "verified_at": now - 5,
        "verified_until": now + 600 if until is None else until,
        "second_factor": second_factor or None,
    }


def slot_events(events) -> dict[str, Any]:
    """The slots the events set, last value wins."""
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def survey_asked(task: str, *, before: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The slot events of a satisfaction survey asked about ``task`` (``track:KF-100004``)
    after the tasks ``before`` were asked about in the same session."""
    return [SlotSet("surveyed_tasks", [*before, task]), SlotSet("survey_pending", task)]


def without_refresh(events) -> list[dict[str, Any]]:
    """The events less the idle-TTL refresh of ``verified_until`` every use brings."""
    return [e for e in events if not (e.get("event") == "slot" and e["name"] == "verified_until")]


def make_tracker(
    slots: dict[str, Any] | None = None,
    *,
    text: str = "",
    intent: str = "inform",
    entities: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
    sentiment: dict[str, Any] | None = None,
    sender_id: str = "test-user",
    active_loop: str | None = None,
    requested_slot: str | None = None,
    events: list[dict[str, Any]] | None = None,
) -> Tracker:
    """A real ``rasa_sdk.Tracker`` whose latest message and slots are the given ones.

    Slots passed here count as set by the latest message (a ``SlotSet`` after the ``user``
    event), which is what a form validation action validates.
    """
    slots = {"language": "en", **(slots or {})}
    if requested_slot is not None:
        slots["requested_slot"] = requested_slot
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 1.0},
        "entities": entities or [],
        "metadata": metadata or {},
        "message_id": "m1",
    }
    if sentiment is not None:
        latest["sentiment"] = sentiment
    history = list(events or [])
    history.append(
        {
            "event": "user",
            "timestamp": time.time(),
            "text": text,
            "parse_data": latest,
            "metadata": metadata or {},
        }
    )
    history += [
        {"event": "slot", "timestamp": time.time(), "name": name, "value": value}
        for name, value in slots.items()
        if name not in ("language", "requested_slot") and value is not None
    ]
    return Tracker(
        sender_id=sender_id,
        slots=slots,
        latest_message=latest,
        events=history,
        paused=False,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name="action_listen",
    )


def responses(dispatcher: CollectingDispatcher) -> list[str]:
    """The response names the action uttered, in order (cards are not responses)."""
    return [m["response"] for m in dispatcher.messages if m.get("response")]


def cards(dispatcher: CollectingDispatcher) -> list[dict[str, Any]]:
    """The cards (custom JSON payloads) the action sent, in order."""
    return [m["custom"] for m in dispatcher.messages if m.get("custom")]


def kwargs_of(dispatcher: CollectingDispatcher, response: str) -> dict[str, Any]:
    """The parameters passed with ``response`` (first occurrence)."""
    for message in dispatcher.messages:
        if message["response"] == response:
            return message
    raise AssertionError(f"{response} not uttered; got {responses(dispatcher)}")


def domain_for(form: str, required: list[str]) -> dict[str, Any]:
    """The slice of the domain a FormValidationAction reads."""
    return {"forms": {form: {"required_slots": required}}, "slots": {}}


def user_event(text: str, frustration: float, *, at: float, intent: str = "order_status"):
    """A customer message as the tracker holds it, with the SentimentAnalyzer's score."""
    return {
        "event": "user",
        "timestamp": at,
        "text": text,
        "parse_data": {
            "text": text,
            "intent": {"name": intent, "confidence": 0.9},
            "entities": [],
            "sentiment": {"frustration": frustration},
        },
    }


def angry_history(now: float) -> list[dict]:
    """A customer who grew angrier, one message Kefu did not understand (the latest message,
    :data:`ANGRY_LATEST`, comes next)."""
    return [
        {"event": "action", "timestamp": now - 60, "name": "action_session_start"},
        user_event("where is my parcel??", 0.5, at=now - 50),
        user_event("this is ridiculous, still nothing", 0.85, at=now - 30),
        {"event": "action", "timestamp": now - 29, "name": "action_default_fallback"},
    ]


ANGRY_LATEST = {
    "text": "I have asked about this order three times",
    "intent": "order_status",
    "sentiment": {"frustration": 0.9},
}
