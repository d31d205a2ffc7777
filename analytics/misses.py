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
or for ``nlu_fallback`` the runner-up of ``intent_ranking``), i.e. what the model thought at
the time. A message misread as ``complaint`` and then rephrased lands under ``complaint``,
exactly the wrong place, and one a retrained model now understands still shows up.

``--model models/kefu.tar.gz`` re-ranks with the current trained model instead
(:func:`model_parser`: ``Agent.load`` once, in-process, then ``Agent.parse_message`` per
distinct text). It costs the model's load, measured here (2 CPU cores, 2026-12) at 47-49 s:
``Agent.load``, the documented way ``rasa shell nlu`` uses too, loads the whole graph, the
fine-tuned encoder and the dialogue policies; the first parse then warms the graph up (~6 s)
and each further message takes ~0.1 s (the recording's 3 misses: 54 s in all).

Each message is then grouped under the model's best intent that is not ``nlu_fallback`` (a
FallbackClassifier verdict, no intent one can train); for the FAQ and chitchat retrieval
intents, under the full ``faq/<key>`` the response selector picked, the name ``data/nlu``
uses.
``out_of_scope`` is kept as a group: it is a trained intent (answered by
``utter_out_of_scope``), and "things the shop does not do" is exactly where a designer wants
such a message, or to see that something the shop does do is read as out of scope.
Each example's comment then adds ``logged: <intent> <conf> → now: <intent> <conf>``.

A message the current model classifies with at least ``covered_confidence`` (``--covered-
confidence``, 0.9) into another intent than was logged, and not as a fallback, is probably
covered since (a retrain learnt it): it is still exported, after the other examples under a
``# Probably covered since`` comment, so a reviewer can check the new reading and delete the
section without reading it line by line (the two sections may hold the same intent twice;
Rasa reads both blocks).

The draft is ``version: "3.1"`` NLU data: one ``- intent:`` block per nearest intent, its
examples in an ``examples: |`` block, and above it one comment per example saying why it was
exported (comments inside the block scalar would become example lines).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from analytics.facts import FALLBACK_INTENT
from analytics.metrics import Window, senders
from analytics.models import TurnRow
from analytics.sources import TRACKER_EVENTS
from contract import selected_response

#: The YAML format version of the draft (Rasa 3.x NLU data).
NLU_VERSION = "3.1"
#: Timestamps in the tracker store and the facts are the same float; allow rounding.
TIMESTAMP_TOLERANCE_S = 0.001
UNKNOWN_INTENT = "unknown"
#: From this confidence on, a message the current model reads as another intent than was
#: logged is listed as probably covered since (a retrain learnt it).
DEFAULT_COVERED_CONFIDENCE = 0.9
COVERED_COMMENT = "Probably covered since"

#: Parses texts with an NLU model, one Rasa ``parse_data`` dict per text (``intent``,
#: ``intent_ranking``, ``response_selector``), in order: :func:`model_parser` in production.
Parse = Callable[[Sequence[str]], list[Mapping[str, Any]]]


@dataclass(frozen=True)
class Reading:
    """What the current model makes of a message: its best trainable intent."""

    intent: str
    confidence: float | None
    #: The model's verdict was ``nlu_fallback`` (``intent`` is then its runner-up).
    fallback: bool


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
    #: The current model's reading (only when re-ranked with ``--model``).
    now: Reading | None = None
    #: The current model reads it confidently as another intent than was logged.
    covered: bool = False

    @property
    def group(self) -> str:
        """The intent the draft lists the message under."""
        return self.now.intent if self.now else self.nearest_intent


@dataclass
class Draft:
    """The exported messages grouped by nearest intent, and what could not be exported."""

    groups: dict[str, list[Miss]] = field(default_factory=dict)
    #: Messages the current model probably covers since, by its intent (re-ranked only).
    covered: dict[str, list[Miss]] = field(default_factory=dict)
    without_text: int = 0

    @property
    def examples(self) -> int:
        return sum(len(v) for v in self.groups.values()) + self.probably_covered

    @property
    def probably_covered(self) -> int:
        return sum(len(v) for v in self.covered.values())


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


def _one_line(text: str | None) -> str | None:
    # One line: the examples block holds one example a line.
    return " ".join((text or "").split()) or None


def model_parser(model_path: str | Path) -> Parse:
    """Load the trained Rasa model once (``Agent.load``, as ``rasa shell nlu`` does) and
    return a :data:`Parse` over it. The NLU pipeline's custom components are imported by
    Rasa from their names in the model, so the repository root must be on ``sys.path``
    (``PYTHONPATH=.``, as for every command here).

    Raises:
        FileNotFoundError: no model at ``model_path``.
    """
    if not Path(model_path).is_file():
        raise FileNotFoundError(f"{model_path}: no trained model (make train)")
    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    # As Rasa's own command line does: without it structlog prints every parse at debug
    # level, customer text included, whatever the logging level.
    configure_structlog(logging.getLogger().getEffectiveLevel())
    agent = Agent.load(str(model_path))

    def parse(texts: Sequence[str]) -> list[Mapping[str, Any]]:
        async def parse_all() -> list[Mapping[str, Any]]:
            # One after the other: parse_message runs the graph synchronously (CPU-bound,
            # nothing awaited), so gathering the coroutines would not overlap anything.
            return [await agent.parse_message(text) for text in texts]

        return asyncio.run(parse_all())

    return parse


def reading_of(parse_data: Mapping[str, Any]) -> Reading | None:
    """The best trainable intent in a parse: the verdict, or for ``nlu_fallback`` the
    runner-up; a retrieval intent (``faq``) as the full ``faq/<key>`` its response selector
    picked, when it picked one of that intent."""
    verdict = parse_data.get("intent") or {}
    ranking = [verdict, *(parse_data.get("intent_ranking") or [])]
    best = next((r for r in ranking if r.get("name") and r["name"] != FALLBACK_INTENT), None)
    if best is None:
        return None
    name = str(best["name"])
    full = _retrieval_intent(parse_data, name)
    confidence = best.get("confidence")
    return Reading(
        intent=full or name,
        confidence=float(confidence) if isinstance(confidence, (int, float)) else None,
        fallback=verdict.get("name") == FALLBACK_INTENT,
    )


def _retrieval_intent(parse_data: Mapping[str, Any], intent: str) -> str | None:
    verdict = parse_data.get("intent") or {}
    if verdict.get("name") == intent and verdict.get("full_retrieval_intent_name"):
        return str(verdict["full_retrieval_intent_name"])
    # Rasa does not copy the "default" selector's pick into ``full_retrieval_intent_name``.
    response = selected_response(parse_data.get("response_selector"), intent)
    return str(response["intent_response_key"]) if response else None


def rerank(
    misses: list[Miss],
    parse: Parse,
    covered_confidence: float = DEFAULT_COVERED_CONFIDENCE,
) -> None:
    """Set each miss's current :class:`Reading` (``now``) and whether it is probably covered
    since: read at least ``covered_confidence``, not as a fallback, and as another intent
    than was logged (a retrieval intent compared by its top-level name, as logged)."""
    texts = sorted({t for m in misses if (t := _one_line(m.text)) and not is_payload(t)})
    readings = dict(zip(texts, (reading_of(p) for p in parse(texts)), strict=True))
    for miss in misses:
        now = readings.get(_one_line(miss.text) or "")
        if now is None:
            continue
        miss.now = now
        miss.covered = (
            not now.fallback
            and now.confidence is not None
            and now.confidence >= covered_confidence
            and now.intent.split("/")[0] != miss.intent
        )


def group(misses: list[Miss]) -> Draft:
    """The misses with a text, grouped by nearest intent — the current model's reading when
    re-ranked (:func:`rerank`), the probably covered ones apart — texts deduplicated per
    intent (their reasons merged), intents and examples in a stable order."""
    draft = Draft()
    seen: dict[tuple[bool, str, str], Miss] = {}
    for miss in misses:
        miss.text = _one_line(miss.text)
        if not miss.text or is_payload(miss.text):
            draft.without_text += 1
            continue
        key = (miss.covered, miss.group, miss.text)
        if key in seen:
            merged = seen[key]
            merged.reasons = sorted(set(merged.reasons) | set(miss.reasons))
            continue
        seen[key] = miss
        section = draft.covered if miss.covered else draft.groups
        section.setdefault(miss.group, []).append(miss)
    draft.groups = dict(sorted(draft.groups.items()))
    draft.covered = dict(sorted(draft.covered.items()))
    return draft


def _confidence(value: float | None) -> str:
    return "" if value is None else f" {value:.2f}"


def _why(miss: Miss) -> str:
    what = ", ".join(miss.reasons)
    if miss.now is not None:
        logged = f"{miss.intent or UNKNOWN_INTENT}{_confidence(miss.confidence)}"
        if miss.intent == FALLBACK_INTENT:
            logged += f" (nearest {miss.nearest_intent})"
        now = f"{miss.now.intent}{_confidence(miss.now.confidence)}"
        if miss.now.fallback:
            now += f" ({FALLBACK_INTENT})"
        what += f"; logged: {logged} → now: {now}"
    else:
        if miss.intent and miss.intent != miss.nearest_intent:
            what += f"; classified {miss.intent}"
        if miss.confidence is not None:
            what += f" ({miss.confidence:.2f})"
    return f"{what}; conversation {miss.sender_id} event {miss.position}"


def _blocks(groups: dict[str, list[Miss]]) -> list[str]:
    lines = []
    for intent, misses in groups.items():
        lines.append(f"- intent: {json.dumps(intent, ensure_ascii=False)}")
        for number, miss in enumerate(misses, 1):
            comment = " ".join(_why(miss).split())
            lines.append(f"  # {number}. {comment}")
        lines.append("  examples: |")
        for miss in misses:
            lines.append(f"    - {miss.text}")
        lines.append("")
    return lines


def render_yaml(
    draft: Draft, header: str = "", covered_confidence: float = DEFAULT_COVERED_CONFIDENCE
) -> str:
    """The draft as Rasa NLU YAML (what ``RasaYAMLReader`` reads): the examples to review,
    then those probably covered since under a comment saying so."""
    lines = []
    for line in header.splitlines():
        lines.append(f"# {line}".rstrip())
    lines += [f'version: "{NLU_VERSION}"', "", "nlu:"]
    if not draft.groups and not draft.covered:
        lines[-1] = "nlu: []"
    lines += _blocks(draft.groups)
    if draft.covered:
        lines += [
            f"# {COVERED_COMMENT}: the current model reads these as another intent than was",
            f"# logged, with a confidence of {covered_confidence:.2f} or more. If the new "
            "intent is right,",
            "# they need no new example (delete this section); else move them where they belong.",
            "",
        ]
        lines += _blocks(draft.covered)
    return "\n".join(lines).rstrip("\n") + "\n"


def export_misses(
    analytics_engine: Engine,
    tracker_engine: Engine,
    window: Window,
    header: str = "",
    parse: Parse | None = None,
    covered_confidence: float = DEFAULT_COVERED_CONFIDENCE,
) -> tuple[str, dict[str, Any]]:
    """The YAML draft of the window's misses, and counts for the command line.

    Args:
        parse: the current model (:func:`model_parser`) to re-rank with; ``None`` keeps the
            intents the NLU logged.
        covered_confidence: with ``parse``, the confidence from which a message read as
            another intent than was logged is listed as probably covered since.
    """
    with analytics_engine.connect() as conn:
        misses = select_misses(conn, window)
    attach_texts(misses, tracker_engine)
    if parse is not None:
        rerank(misses, parse, covered_confidence)
    draft = group(misses)
    stats: dict[str, Any] = {
        "selected": len(misses),
        "examples": draft.examples,
        "intents": len(draft.groups.keys() | draft.covered.keys()),
        "without_text": draft.without_text,
    }
    if parse is not None:
        stats["probably_covered"] = draft.probably_covered
    return render_yaml(draft, header, covered_confidence), stats
