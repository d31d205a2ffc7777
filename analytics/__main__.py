"""Command line: ``python -m analytics {upgrade,consume,report,export-misses,simulate,risk-*}``.

upgrade
    Create or migrate the analytics tables (own version table ``analytics_alembic_version``)
    in ``$KEFU_ANALYTICS_DATABASE_URL``, else the commerce database (``$KEFU_DATABASE_URL``,
    else ``var/kefu.db``).
consume --from-tracker-store [--endpoints endpoints.yml] [--once] [--max-seconds N]
    Read the SQL tracker store configured in the endpoints file after its high-water mark.
    ``--once`` stops when nothing is left; otherwise it polls until ``--max-seconds``.
consume --from-rabbitmq [--endpoints deploy/endpoints.production.yml] --max-seconds N
    Consume the pika broker's queue (``event_broker.queues[0]``; ``KEFU_RABBITMQ_*``).
consume --from-jsonl FILE
    Replay broker bodies saved one per line (e.g. tests/analytics/conversations.jsonl).
report [--since 7d] [--until ISO] --out DIR
    Write ``DIR/report.json`` and ``DIR/report.html`` for conversations started in the window.
export-misses [--since 7d] [--until ISO] [--endpoints endpoints.yml] --out FILE.yml
        [--model models/kefu.tar.gz [--covered-confidence 0.9]]
    Write the messages that fell to a fallback, were rephrased or ended in a handoff, grouped
    by nearest intent, as a Rasa NLU YAML draft (texts from the tracker store, masked).
    ``--model`` groups them by what the current trained model reads instead (loads it once,
    ~50 s) and lists those it now reads confidently as another intent as probably covered.
simulate --conversations N --seed S --out FILE.jsonl
    Write simulated, labelled conversations (broker bodies; labels in FILE.labels.jsonl).
risk-eval [--conversations 2000] [--seed 7] [--out var/analytics/risk_eval.json]
    Complaint-risk model vs a sentiment-only baseline on simulated data (ROC-AUC, precision
    at the top 10 %); prints a table, writes JSON.
risk-train [--out var/analytics/risk.joblib]
    Train the complaint-risk model on simulated conversations and save it.
risk-outreach [--commerce-url URL] [--min-contacts 1] [--today ISO]
    Late orders (past their estimated delivery) customers already asked about, as JSON.

Every command but simulate / risk-eval / risk-train takes ``--database-url`` to override the
analytics database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from analytics import db
from analytics.misses import DEFAULT_COVERED_CONFIDENCE
from analytics.sources import (
    DEFAULT_BATCH,
    DEFAULT_SETTLE_S,
    amqp_url,
    consume_jsonl,
    consume_rabbitmq,
    consume_tracker_store,
)
from analytics.store import FactsStore

DEFAULT_ENDPOINTS = "endpoints.yml"
PRODUCTION_ENDPOINTS = "deploy/endpoints.production.yml"
DEFAULT_RABBITMQ_QUEUE = "rasa_core_events"  # Rasa's own default when the file names none


def _store(url: str | None) -> FactsStore:
    from commerce.config import hash_secret

    return FactsStore(db.engine(url), order_secret=hash_secret())


def broker_settings(endpoints: str | Path) -> dict[str, Any]:
    """The ``event_broker`` section of an endpoints file, environment variables expanded.

    Raises:
        ValueError: no pika broker in the file, or a variable it uses is not set.
    """
    with open(endpoints, encoding="utf-8") as f:
        section = (yaml.safe_load(f) or {}).get("event_broker")
    if not isinstance(section, dict) or section.get("type") != "pika":
        raise ValueError(f"{endpoints}: no event_broker of type pika")
    settings = {}
    for key, value in section.items():
        if isinstance(value, str):
            value = os.path.expandvars(value)
            if "${" in value:
                raise ValueError(f"{endpoints}: event_broker.{key}: set the variables in {value!r}")
        settings[key] = value
    return settings


def cmd_upgrade(args: argparse.Namespace) -> int:
    db.upgrade(args.database_url)
    print("analytics tables are at the newest revision")
    return 0


def cmd_consume(args: argparse.Namespace) -> int:
    store = _store(args.database_url)
    if args.from_rabbitmq:
        if args.max_seconds is None:
            print("--from-rabbitmq needs --max-seconds (a bounded run)", file=sys.stderr)
            return 2
        settings = broker_settings(args.endpoints or PRODUCTION_ENDPOINTS)
        queues = settings.get("queues") or [settings.get("queue") or DEFAULT_RABBITMQ_QUEUE]
        url = amqp_url(
            str(settings.get("url") or "localhost"),
            settings.get("username"),
            settings.get("password"),
            settings.get("port"),
        )
        stats = asyncio.run(
            consume_rabbitmq(
                store,
                url=url,
                queue=queues[0],
                max_seconds=args.max_seconds,
                batch_size=args.batch_size,
            )
        )
    elif args.from_jsonl:
        stats = consume_jsonl(store, Path(args.from_jsonl), batch_size=args.batch_size)
    else:
        from channels.tracker_store import tracker_store_engine

        tracker = tracker_store_engine(args.endpoints or DEFAULT_ENDPOINTS, base_dir=Path.cwd())
        if tracker is None:
            print("the tracker store has no events yet (or is not an SQL store): nothing to read")
            return 0
        stats = consume_tracker_store(
            store,
            tracker,
            batch_size=args.batch_size,
            once=args.once,
            settle_s=args.settle_seconds,
            max_seconds=args.max_seconds,
        )
    print(json.dumps(stats.as_dict()))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from analytics.report import parse_since, write_report

    now = time.time()
    until = parse_since(args.until, now) if args.until else now
    since = parse_since(args.since, until)
    data = write_report(db.engine(args.database_url), Path(args.out), since, until)
    c = data["containment"]
    print(
        f"{c['conversations']} conversations; containment {c['rate']}; "
        f"report in {Path(args.out) / 'report.html'}"
    )
    return 0


def cmd_export_misses(args: argparse.Namespace) -> int:
    from analytics.metrics import Window
    from analytics.misses import export_misses, model_parser
    from analytics.report import parse_since
    from channels.tracker_store import tracker_store_engine

    now = time.time()
    until = parse_since(args.until, now) if args.until else now
    since = parse_since(args.since, until)
    endpoints = args.endpoints or DEFAULT_ENDPOINTS
    tracker = tracker_store_engine(endpoints, base_dir=Path.cwd())
    if tracker is None:
        print(f"{endpoints}: no SQL tracker store with events: no texts to export", file=sys.stderr)
        return 1
    header = (
        "Draft NLU examples from production (python -m analytics export-misses "
        f"--since {args.since}): review before adding them to data/nlu/."
    )
    parse = None
    if args.model:
        if not Path(args.model).is_file():
            tracker.dispose()
            print(f"{args.model}: no trained model (make train)", file=sys.stderr)
            return 1
        header += f"\nGrouped by what {args.model} reads now, not by what the NLU logged."
        parse = model_parser(args.model)
    try:
        text, stats = export_misses(
            db.engine(args.database_url),
            tracker,
            Window(since, until),
            header,
            parse=parse,
            covered_confidence=args.covered_confidence,
        )
    finally:
        tracker.dispose()
    Path(args.out).write_text(text, encoding="utf-8")
    print(json.dumps({**stats, "out": str(args.out)}))
    return 0


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--database-url",
        help="analytics database (default: $KEFU_ANALYTICS_DATABASE_URL, "
        "else the commerce database)",
    )
    p = argparse.ArgumentParser(prog="python -m analytics", description="Kefu service analytics")
    sub = p.add_subparsers(dest="command", required=True)

    upgrade = sub.add_parser("upgrade", parents=[common], help="create or migrate the tables")
    upgrade.set_defaults(func=cmd_upgrade)

    consume = sub.add_parser(
        "consume", parents=[common], help="read Rasa's events into the facts tables"
    )
    where = consume.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--from-tracker-store", action="store_true", help="the SQL tracker store (endpoints.yml)"
    )
    where.add_argument(
        "--from-rabbitmq",
        action="store_true",
        help="the pika broker's queue (deploy/endpoints.production.yml); needs --max-seconds",
    )
    where.add_argument("--from-jsonl", metavar="FILE", help="broker bodies, one per line")
    consume.add_argument("--endpoints", help="endpoints file (default depends on the source)")
    consume.add_argument("--once", action="store_true", help="stop when nothing is left")
    consume.add_argument("--max-seconds", type=float, help="stop after this long")
    consume.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    consume.add_argument(
        "--settle-seconds",
        type=float,
        default=DEFAULT_SETTLE_S,
        help="read only tracker store rows at least this old",
    )
    consume.set_defaults(func=cmd_consume)

    report = sub.add_parser("report", parents=[common], help="write report.json and report.html")
    report.add_argument("--since", default="7d", help="7d, 12h, 30m or an ISO date")
    report.add_argument("--until", help="an ISO date (default: now)")
    report.add_argument("--out", required=True, help="directory for report.json / report.html")
    report.set_defaults(func=cmd_report)

    misses = sub.add_parser(
        "export-misses", parents=[common], help="write missed messages as an NLU YAML draft"
    )
    misses.add_argument("--since", default="7d", help="7d, 12h, 30m or an ISO date")
    misses.add_argument("--until", help="an ISO date (default: now)")
    misses.add_argument("--endpoints", help="endpoints file of the tracker store (endpoints.yml)")
    misses.add_argument("--out", required=True, help="the YAML file to write")
    misses.add_argument(
        "--model",
        help="re-rank with this trained model (e.g. models/kefu.tar.gz; loads it once, ~50 s)",
    )
    misses.add_argument(
        "--covered-confidence",
        type=float,
        default=DEFAULT_COVERED_CONFIDENCE,
        help="with --model: from this confidence a message read as another intent than was "
        "logged is listed as probably covered since (default %(default)s)",
    )
    misses.set_defaults(func=cmd_export_misses)

    from analytics import risk  # simulate, risk-eval, risk-train, risk-outreach

    risk.add_commands(sub, common)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
