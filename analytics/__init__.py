"""Service analytics: what happened in every conversation, read from Rasa's events only.

The consumer turns Rasa's event dicts (``Event.as_dict()``, as the masking tracker store writes
them and the broker publishes them) into analytics tables beside the commerce data; the metrics
and the report are queries over those tables.

- :mod:`analytics.events` — checks one event dict, gives it its identity (what makes a
  redelivered event recognisable) and keeps only what analytics reads (no texts; order numbers
  masked and keyed); malformed events raise ``MalformedEvent``.
- :mod:`analytics.facts` — pure: a conversation's events → its turns, tasks and facts.
- :mod:`analytics.models` — the tables (``analytics_*``); :mod:`analytics.db` — their database
  (``$KEFU_ANALYTICS_DATABASE_URL``, else the commerce database) and their own Alembic history
  under ``analytics/migrations`` with the version table ``analytics_alembic_version``.
- :mod:`analytics.store` — one transaction per batch: new events, the recomputed facts of the
  conversations they touch and the source's high-water mark commit together.
- :mod:`analytics.sources` — the SQL tracker store read by ``events.id``, RabbitMQ, and files
  of broker bodies (replays).
- :mod:`analytics.metrics` — the one module of queries (containment, handoffs, CSAT, ...).
- :mod:`analytics.report` — ``report.json`` and ``report.html`` with charts; the agent
  console's dashboard tab serves the same report.
- :mod:`analytics.prometheus` — the ``/metrics`` gauges (``/webhooks/agent/metrics``) from
  :mod:`analytics.metrics`.
- :mod:`analytics.misses` — ``export-misses``: messages that fell to fallback, were rephrased or
  ended in a handoff, as a Rasa NLU YAML draft grouped by the nearest intent.
- :mod:`analytics.simulate` and :mod:`analytics.risk` — simulated labelled conversations, and the
  complaint-risk model trained and evaluated on them (figures in docs/BENCHMARKS.md are from
  simulated data), with the late-orders-with-contacts list for outreach.

Command line: ``python -m analytics {upgrade,consume,report,export-misses,simulate,risk-eval,
risk-train,risk-outreach}`` (see :mod:`analytics.__main__`).
"""
