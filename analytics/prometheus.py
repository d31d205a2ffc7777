"""The operators' ``/metrics``: :mod:`analytics.metrics` numbers as Prometheus gauges.

Served by the agent console's blueprint at ``/webhooks/agent/metrics`` (the Rasa server's own
port: no second listener to run, secure or proxy), without an agent's sign-in; when
``$KEFU_METRICS_TOKEN`` is set the scraper must send it as ``Authorization: Bearer …``.

Every scrape computes the numbers of the conversations started in the last
:data:`DEFAULT_WINDOW_S` (24 h) with :func:`analytics.metrics.summary` — the queries the report
and the console's dashboard use — overall (``language="all"``) and per language. A number
without data (no CSAT answer yet, no agent reply) is left out rather than reported as 0.
``kefu_analytics_up`` is 0 when the analytics tables cannot be read (absent, or the database
down): the scrape still succeeds, so an alert can say so.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy.engine import Engine

from analytics.metrics import Window, summary
from contract import LANGUAGES

logger = logging.getLogger(__name__)

#: The window every scrape covers: conversations started in the last 24 hours.
DEFAULT_WINDOW_S = 86_400.0
#: Env var holding the bearer token a scraper must send (no token needed when unset).
METRICS_TOKEN_ENV = "KEFU_METRICS_TOKEN"
CONTENT_TYPE = CONTENT_TYPE_LATEST
ALL = "all"

#: name, help, where in a :func:`analytics.metrics.summary` the value is.
PER_LANGUAGE: tuple[tuple[str, str, tuple[str, str]], ...] = (
    ("kefu_conversations", "Conversations with a customer message", ("containment", "conversations")),
    ("kefu_containment_ratio", "Share handled without a person", ("containment", "rate")),
    ("kefu_resolved_ratio", "Share resolved without a person", ("containment", "resolved_rate")),
    ("kefu_handoff_ratio", "Share handed to a person", ("handoffs", "rate")),
    ("kefu_fallback_ratio", "Customer messages that fell to a fallback", ("fallbacks", "rate")),
    ("kefu_user_messages", "Customer messages", ("fallbacks", "user_messages")),
    ("kefu_csat_mean", "Mean satisfaction rating (1-5)", ("csat", "mean")),
    ("kefu_csat_answers", "Satisfaction answers", ("csat", "answers")),
    (
        "kefu_agent_wait_median_seconds",
        "Median wait from handoff to the agent's first reply",
        ("agent_wait", "median_s"),
    ),
)  # fmt: skip


def metrics_token() -> str:
    """The bearer token scrapers must send; empty when ``/metrics`` is open."""
    return os.environ.get(METRICS_TOKEN_ENV, "").strip()


def collect(engine: Engine, until: float, window_s: float = DEFAULT_WINDOW_S) -> dict[str, Any]:
    """The summaries of the window, overall and per language.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the analytics tables cannot be read.
    """
    window = Window(until - window_s, until)
    with engine.connect() as conn:
        result = {ALL: summary(conn, window)}
        for language in LANGUAGES:
            result[language] = summary(conn, window.of_language(language))
    return result


def registry_of(summaries: dict[str, Any] | None, window_s: float) -> CollectorRegistry:
    """A registry holding the gauges of ``summaries`` (None: analytics unavailable)."""
    registry = CollectorRegistry(auto_describe=True)
    up = Gauge("kefu_analytics_up", "1 when the analytics tables could be read", registry=registry)
    window = Gauge(
        "kefu_analytics_window_seconds", "The window the gauges cover", registry=registry
    )
    window.set(window_s)
    up.set(0 if summaries is None else 1)
    if summaries is None:
        return registry
    for name, text, (section, key) in PER_LANGUAGE:
        gauge = Gauge(name, text, ["language"], registry=registry)
        for language, data in summaries.items():
            value = data[section][key]
            if value is not None:
                gauge.labels(language=language).set(value)
    reasons = Gauge(
        "kefu_handoffs", "Handoffs to a person by reason", ["language", "reason"], registry=registry
    )
    tasks = Gauge(
        "kefu_task_completion_ratio", "Tasks completed / started per flow", ["flow"],
        registry=registry,
    )  # fmt: skip
    started = Gauge("kefu_tasks_started", "Tasks started per flow", ["flow"], registry=registry)
    for language, data in summaries.items():
        for reason, count in data["handoffs"]["reasons"].items():
            reasons.labels(language=language, reason=reason).set(count)
    for flow, task in summaries[ALL]["tasks"].items():
        started.labels(flow=flow).set(task["started"])
        if task["rate"] is not None:
            tasks.labels(flow=flow).set(task["rate"])
    return registry


def exposition(
    engine: Engine, until: float | None = None, window_s: float = DEFAULT_WINDOW_S
) -> bytes:
    """The text exposition of the gauges (``kefu_analytics_up 0`` when the tables are absent or
    the database is down)."""
    until = time.time() if until is None else until
    try:
        summaries: dict[str, Any] | None = collect(engine, until, window_s)
    except sa.exc.SQLAlchemyError as e:
        logger.warning("analytics unavailable for /metrics: %s", type(e).__name__)
        summaries = None
    return generate_latest(registry_of(summaries, window_s))
