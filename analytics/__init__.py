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
- :mod:`analytics.report` — ``report.json`` and ``report.html`` with charts.

Command line: ``python -m analytics {upgrade,consume,report}`` (see :mod:`analytics.__main__`).
"""
