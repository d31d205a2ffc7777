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

The exposition is kept for ``$KEFU_METRICS_CACHE_S`` seconds (default 15, ``0``: none), per
analytics database: several Prometheus servers scraping every few seconds then run the queries
once per period between them. The numbers move slowly (the consumer reads settled events every
few seconds, the window is a day), so a scrape may be that much older. Concurrent scrapes (the
console computes in worker threads) wait for the one computing instead of each running the
queries.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
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
#: Env var: seconds a computed exposition is served again (0: compute on every scrape).
CACHE_ENV = "KEFU_METRICS_CACHE_S"
DEFAULT_CACHE_S = 15.0
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


def cache_seconds() -> float:
    """``$KEFU_METRICS_CACHE_S`` (default 15; a negative or unreadable value: the default)."""
    raw = os.environ.get(CACHE_ENV, "").strip()
    if not raw:
        return DEFAULT_CACHE_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if value >= 0:  # False for NaN too
        return value
    logger.warning("%s=%r is not a number of seconds: using %s", CACHE_ENV, raw, DEFAULT_CACHE_S)
    return DEFAULT_CACHE_S


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


def render(engine: Engine, until: float, window_s: float = DEFAULT_WINDOW_S) -> bytes:
    """The text exposition of the gauges of the window ending at ``until``, computed now
    (``kefu_analytics_up 0`` when the tables are absent or the database is down)."""
    try:
        summaries: dict[str, Any] | None = collect(engine, until, window_s)
    except sa.exc.SQLAlchemyError as e:
        logger.warning("analytics unavailable for /metrics: %s", type(e).__name__)
        summaries = None
    return generate_latest(registry_of(summaries, window_s))


def render_now(engine: Engine, window_s: float = DEFAULT_WINDOW_S) -> bytes:
    """:func:`render` of the window ending now."""
    return render(engine, time.time(), window_s)


class ExpositionCache:
    """The exposition of each analytics database and window, kept for a while.

    Args:
        ttl_s: seconds an exposition is served again; None: :func:`cache_seconds` at each
            scrape (so the environment decides); 0: computed on every scrape.
        clock: monotonic seconds (tests pass their own instead of sleeping).
        compute: what makes an exposition of the window ending now (:func:`render_now`).
    """

    def __init__(
        self,
        ttl_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        compute: Callable[[Engine, float], bytes] = render_now,
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self.compute = compute
        self._entries: dict[tuple[str, float], tuple[float, bytes]] = {}
        # One lock for all: a scrape that finds the entry stale computes it while the others
        # wait and then take its result. The console computes in worker threads
        # (asyncio.to_thread), so the event loop itself never waits on it.
        self._lock = threading.Lock()

    def get(self, engine: Engine, window_s: float = DEFAULT_WINDOW_S) -> bytes:
        """The exposition of ``engine``'s last ``window_s``, recomputed once it is too old."""
        ttl = cache_seconds() if self.ttl_s is None else self.ttl_s
        if ttl <= 0:
            return self.compute(engine, window_s)
        key = (engine.url.render_as_string(hide_password=False), window_s)
        with self._lock:
            now = self.clock()
            entry = self._entries.get(key)
            if entry is not None and now < entry[0]:
                return entry[1]
            body = self.compute(engine, window_s)
            # Forget the stale entries of other databases (a test session makes many).
            self._entries = {k: v for k, v in self._entries.items() if now < v[0]}
            self._entries[key] = (now + ttl, body)
            return body


#: The cache :func:`exposition` serves scrapes from.
CACHE = ExpositionCache()


def exposition(
    engine: Engine, until: float | None = None, window_s: float = DEFAULT_WINDOW_S
) -> bytes:
    """The text exposition of the gauges: of the window ending now through :data:`CACHE`
    (what a scrape gets), or of the one ending at ``until``, computed."""
    if until is not None:
        return render(engine, until, window_s)
    return CACHE.get(engine, window_s)
