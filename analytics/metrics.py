"""The one module of queries: every number the report (and later the console and /metrics)
shows comes from here.

A window selects conversations by when they started (``since <= started_at < until``).
Definitions (counts are over the window's conversations that have at least one customer
message, unless said otherwise):

- **containment**: share with no handoff to a person; **resolved**: no handoff *and* at
  least one task completed (the stricter "resolved without a person");
- **handoff rate**: share handed to a person; **reasons** as :mod:`analytics.facts` names them;
- **fallback rate**: customer messages that fell to a fallback / all customer messages;
- **task completion** per flow: tasks ``completed`` / tasks started (a form run or a one-shot
  flow; ``failed``, ``stopped``, ``abandoned`` and ``open`` count as not completed);
- **CSAT**: the mean of the conversations' last 1-5 ratings, and the share of 4s and 5s;
- **agent wait**: from the handoff to the agent's first message, median over conversations an
  agent answered;
- **by agent**: per agent who took part, the conversations, their CSAT and the median wait for
  that agent's first reply;
- **intents needing data**: per intent (an ``nlu_fallback`` counted under its nearest intent),
  customer messages that fell to a fallback, were rephrased (the next request was a fallback
  or the same intent again) or were followed by a handoff — where to add training examples.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from analytics.facts import FLOWS, HANDOFF_REASONS, TASK_COMPLETED
from analytics.models import Conversation, TaskRow, TurnRow
from contract import LANGUAGES

#: How many intents the "needing data" list shows.
TOP_INTENTS = 10


@dataclass(frozen=True)
class Window:
    """Conversations that started in ``[since, until)`` (epoch seconds), optionally of one
    language."""

    since: float
    until: float
    language: str | None = None

    def where(self) -> list[Any]:
        c = Conversation.__table__.c
        clauses = [c.started_at >= self.since, c.started_at < self.until, c.user_messages > 0]
        if self.language is not None:
            clauses.append(c.language == self.language)
        return clauses

    def of_language(self, language: str) -> Window:
        return Window(self.since, self.until, language)


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _conversations(conn: Connection, window: Window) -> list[Any]:
    c = Conversation.__table__.c
    stmt = sa.select(
        c.sender_id,
        c.user_messages,
        c.fallbacks,
        c.handoff,
        c.handoff_reason,
        c.agent_wait_s,
        c.agent,
        c.csat,
        c.contained,
        c.resolved,
    ).where(*window.where())
    return list(conn.execute(stmt))


def senders(window: Window):
    """A subquery of the window's conversations (their sender ids)."""
    c = Conversation.__table__.c
    return sa.select(c.sender_id).where(*window.where())


def containment(conn: Connection, window: Window) -> dict[str, Any]:
    rows = _conversations(conn, window)
    contained = sum(bool(r.contained) for r in rows)
    resolved = sum(bool(r.resolved) for r in rows)
    return {
        "conversations": len(rows),
        "contained": contained,
        "rate": _rate(contained, len(rows)),
        "resolved": resolved,
        "resolved_rate": _rate(resolved, len(rows)),
    }


def handoffs(conn: Connection, window: Window) -> dict[str, Any]:
    rows = _conversations(conn, window)
    handed = [r for r in rows if r.handoff]
    reasons = Counter(r.handoff_reason or "other" for r in handed)
    return {
        "conversations": len(rows),
        "handoffs": len(handed),
        "rate": _rate(len(handed), len(rows)),
        "reasons": {reason: reasons.get(reason, 0) for reason in HANDOFF_REASONS},
    }


def fallbacks(conn: Connection, window: Window) -> dict[str, Any]:
    rows = _conversations(conn, window)
    messages = sum(r.user_messages for r in rows)
    fell = sum(r.fallbacks for r in rows)
    return {"user_messages": messages, "fallbacks": fell, "rate": _rate(fell, messages)}


def task_completion(conn: Connection, window: Window) -> dict[str, dict[str, Any]]:
    t = TaskRow.__table__.c
    stmt = (
        sa.select(t.flow, t.outcome, sa.func.count())
        .where(t.sender_id.in_(senders(window)))
        .group_by(t.flow, t.outcome)
    )
    outcomes: dict[str, Counter] = {flow: Counter() for flow in FLOWS}
    for flow, outcome, count in conn.execute(stmt):
        outcomes.setdefault(flow, Counter())[outcome] = count
    result = {}
    for flow, counts in outcomes.items():
        started = sum(counts.values())
        completed = counts.get(TASK_COMPLETED, 0)
        result[flow] = {
            "started": started,
            "completed": completed,
            "rate": _rate(completed, started),
            "outcomes": dict(sorted(counts.items())),
        }
    return result


def csat(conn: Connection, window: Window) -> dict[str, Any]:
    ratings = [r.csat for r in _conversations(conn, window) if r.csat is not None]
    distribution = Counter(ratings)
    return {
        "answers": len(ratings),
        "mean": round(statistics.fmean(ratings), 3) if ratings else None,
        "satisfied_share": _rate(sum(r >= 4 for r in ratings), len(ratings)),
        "distribution": {str(score): distribution.get(score, 0) for score in range(1, 6)},
    }


def agent_wait(conn: Connection, window: Window) -> dict[str, Any]:
    waits = sorted(
        r.agent_wait_s for r in _conversations(conn, window) if r.agent_wait_s is not None
    )
    return {
        "answered": len(waits),
        "median_s": round(statistics.median(waits), 3) if waits else None,
        "max_s": waits[-1] if waits else None,
    }


def by_agent(conn: Connection, window: Window) -> list[dict[str, Any]]:
    """Per agent who took part: conversations, CSAT of those conversations and the median wait
    for the agent's first reply (agents by name, most conversations first)."""
    rows: dict[str, list[Any]] = {}
    for r in _conversations(conn, window):
        if r.agent:
            rows.setdefault(r.agent, []).append(r)
    result = []
    for agent, mine in rows.items():
        ratings = [r.csat for r in mine if r.csat is not None]
        waits = [r.agent_wait_s for r in mine if r.agent_wait_s is not None]
        result.append(
            {
                "agent": agent,
                "conversations": len(mine),
                "csat_answers": len(ratings),
                "csat_mean": round(statistics.fmean(ratings), 3) if ratings else None,
                "median_wait_s": round(statistics.median(waits), 3) if waits else None,
            }
        )
    result.sort(key=lambda a: (-a["conversations"], a["agent"]))
    return result


def intents_needing_data(
    conn: Connection, window: Window, limit: int = TOP_INTENTS
) -> list[dict[str, Any]]:
    t = TurnRow.__table__.c
    stmt = sa.select(t.nearest_intent, t.fallback, t.rephrased, t.followed_by_handoff).where(
        t.kind == "user", t.sender_id.in_(senders(window))
    )
    stats: dict[str, Counter] = {}
    for intent, fell, rephrased, handed in conn.execute(stmt):
        counts = stats.setdefault(intent or "unknown", Counter())
        counts["messages"] += 1
        counts["fallbacks"] += bool(fell)
        counts["rephrased"] += bool(rephrased)
        counts["handed_off"] += bool(handed)
        counts["troubled"] += bool(fell or rephrased or handed)
    rows = [
        {
            "intent": intent,
            "messages": c["messages"],
            "fallbacks": c["fallbacks"],
            "rephrased": c["rephrased"],
            "handed_off": c["handed_off"],
            "troubled": c["troubled"],
            "rate": _rate(c["troubled"], c["messages"]),
        }
        for intent, c in stats.items()
        if c["troubled"]
    ]
    rows.sort(key=lambda r: (-r["troubled"], -(r["rate"] or 0), r["intent"]))
    return rows[:limit]


def summary(conn: Connection, window: Window) -> dict[str, Any]:
    """Every headline number of one window (one language when the window says so)."""
    return {
        "containment": containment(conn, window),
        "handoffs": handoffs(conn, window),
        "fallbacks": fallbacks(conn, window),
        "tasks": task_completion(conn, window),
        "csat": csat(conn, window),
        "agent_wait": agent_wait(conn, window),
    }


def report_data(conn: Connection, window: Window) -> dict[str, Any]:
    """The whole report: the window, the summary, per-language summaries and intents."""
    return {
        "window": {"since": window.since, "until": window.until},
        **summary(conn, window),
        "languages": {lang: summary(conn, window.of_language(lang)) for lang in LANGUAGES},
        "agents": by_agent(conn, window),
        "intents_needing_data": intents_needing_data(conn, window),
    }
