"""``python -m analytics export-misses``: customer messages Kefu did not serve well, as a Rasa
NLU YAML draft for conversation designers to review.

A message is exported when it fell to a fallback, was rephrased (the customer's next request
was a fallback or the same intent again) or was followed by a handoff — the turns
:func:`analytics.metrics.intents_needing_data` counts. The facts tables select them (the
window's conversations, :class:`analytics.metrics.Window`); the analytics store keeps no
message texts (:mod:`analytics.events`), so the texts are read from the tracker store's
``events`` table (already masked by ``MaskingSQLTrackerStore``), matched by conversation and
the message's timestamp.

Nearest intent: the NLU's own ranking as the facts store it (``nearest_intent``: the intent,
or for ``nlu_fallback`` the runner-up of ``intent_ranking``). Re-ranking with the encoder is
not done: loading the trained model costs ~20 s per export and the ranking the NLU logged is
what the model thought at the time.

The draft is ``version: "3.1"`` NLU data: one ``- intent:`` block per nearest intent, its
examples in an ``examples: |`` block, and above it one comment per example saying why it was
exported (comments inside the block scalar would become example lines).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from analytics.metrics import Window, senders
from analytics.models import TurnRow
from analytics.sources import TRACKER_EVENTS

#: The YAML format version of the draft (Rasa 3.x NLU data).
NLU_VERSION = "3.1"
#: Timestamps in the tracker store and the facts are the same float; allow rounding.
TIMESTAMP_TOLERANCE_S = 0.001
UNKNOWN_INTENT = "unknown"


@dataclass
class Miss:
    """One exported customer message."""

    sender_id: str
    position: int
    timestamp: float
    intent: str | None
    confidence: float | None
    nearest_intent: str
    reasons: list[str]
    text: str | None = None


@dataclass
class Draft:
    """The exported messages grouped by nearest intent, and what could not be exported."""

    groups: dict[str, list[Miss]] = field(default_factory=dict)
    without_text: int = 0

    @property
    def examples(self) -> int:
        return sum(len(v) for v in self.groups.values())


def select_misses(conn: Connection, window: Window) -> list[Miss]:
    """The window's customer turns that fell to a fallback, were rephrased or handed off."""
    t = TurnRow.__table__.c
    stmt = (
        sa.select(
            t.sender_id,
            t.position,
            t.timestamp,
            t.intent,
            t.confidence,
            t.nearest_intent,
            t.fallback,
            t.rephrased,
            t.followed_by_handoff,
        )
        .where(
            t.kind == "user",
            t.sender_id.in_(senders(window)),
            sa.or_(t.fallback, t.rephrased, t.followed_by_handoff),
        )
        .order_by(t.sender_id, t.position)
    )
    misses = []
    for row in conn.execute(stmt):
        reasons = [
            name
            for name, flag in (
                ("fallback", row.fallback),
                ("rephrased", row.rephrased),
                ("handoff", row.followed_by_handoff),
            )
            if flag
        ]
        misses.append(
            Miss(
                sender_id=row.sender_id,
                position=row.position,
                timestamp=row.timestamp,
                intent=row.intent,
                confidence=row.confidence,
                nearest_intent=row.nearest_intent or row.intent or UNKNOWN_INTENT,
                reasons=reasons,
            )
        )
    return misses


def attach_texts(misses: list[Miss], tracker_engine: Engine) -> None:
    """Fill each miss's ``text`` from the tracker store's (masked) ``user`` events."""
    by_sender: dict[str, list[Miss]] = {}
    for miss in misses:
        by_sender.setdefault(miss.sender_id, []).append(miss)
    e = TRACKER_EVENTS.c
    with tracker_engine.connect() as conn:
        for sender, wanted in by_sender.items():
            stmt = sa.select(e.timestamp, e.data).where(
                e.sender_id == sender, e.type_name == "user"
            )
            rows = list(conn.execute(stmt))
            for miss in wanted:
                for ts, data in rows:
                    if ts is not None and abs(ts - miss.timestamp) <= TIMESTAMP_TOLERANCE_S:
                        miss.text = _text_of(data)
                        break


def _text_of(data: str | None) -> str | None:
    try:
        event = json.loads(data or "")
    except ValueError:
        return None
    text = event.get("text") if isinstance(event, dict) else None
    if not isinstance(text, str):
        return None
    return text


def is_payload(text: str) -> bool:
    """A button payload (``/intent{...}``) is no training example."""
    return text.startswith("/")


def group(misses: list[Miss]) -> Draft:
    """The misses with a text, grouped by nearest intent (texts deduplicated per intent,
    their reasons merged), intents and examples in a stable order."""
    draft = Draft()
    seen: dict[tuple[str, str], Miss] = {}
    for miss in misses:
        # One line: the examples block holds one example a line.
        miss.text = " ".join((miss.text or "").split()) or None
        if not miss.text or is_payload(miss.text):
            draft.without_text += 1
            continue
        key = (miss.nearest_intent, miss.text)
        if key in seen:
            merged = seen[key]
            merged.reasons = sorted(set(merged.reasons) | set(miss.reasons))
            continue
        seen[key] = miss
        draft.groups.setdefault(miss.nearest_intent, []).append(miss)
    draft.groups = dict(sorted(draft.groups.items()))
    return draft


def _why(miss: Miss) -> str:
    what = ", ".join(miss.reasons)
    if miss.intent and miss.intent != miss.nearest_intent:
        what += f"; classified {miss.intent}"
    if miss.confidence is not None:
        what += f" ({miss.confidence:.2f})"
    return f"{what}; conversation {miss.sender_id} event {miss.position}"


def render_yaml(draft: Draft, header: str = "") -> str:
    """The draft as Rasa NLU YAML (what ``RasaYAMLReader`` reads)."""
    lines = []
    for line in header.splitlines():
        lines.append(f"# {line}".rstrip())
    lines += [f'version: "{NLU_VERSION}"', "", "nlu:"]
    if not draft.groups:
        lines[-1] = "nlu: []"
    for intent, misses in draft.groups.items():
        lines.append(f"- intent: {json.dumps(intent, ensure_ascii=False)}")
        for number, miss in enumerate(misses, 1):
            comment = " ".join(_why(miss).split())
            lines.append(f"  # {number}. {comment}")
        lines.append("  examples: |")
        for miss in misses:
            lines.append(f"    - {miss.text}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def export_misses(
    analytics_engine: Engine, tracker_engine: Engine, window: Window, header: str = ""
) -> tuple[str, dict[str, Any]]:
    """The YAML draft of the window's misses, and counts for the command line."""
    with analytics_engine.connect() as conn:
        misses = select_misses(conn, window)
    attach_texts(misses, tracker_engine)
    draft = group(misses)
    stats = {
        "selected": len(misses),
        "examples": draft.examples,
        "intents": len(draft.groups),
        "without_text": draft.without_text,
    }
    return render_yaml(draft, header), stats
