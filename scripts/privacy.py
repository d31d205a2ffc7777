"""Retention and "forget this customer" over the commerce database and the tracker store.

    python scripts/privacy.py purge [--days N]     # what `make retention` runs
    python scripts/privacy.py forget EMAIL

``purge`` deletes verification attempts, one-time codes, finished outbox messages, notified
back-in-stock subscriptions and conversation identities older than ``--days`` (default
``KEFU_RETENTION_DAYS``, 90), anonymises tickets closed for that long, and deletes tracker-store
conversations whose last event is older than that. ``forget`` deletes every conversation the
customer was bound to from the tracker store and anonymises the customer in the commerce
database (orders and refunds stay, without personal data).

The commerce database is ``--database-url`` (default ``KEFU_DATABASE_URL`` / var/kefu.db); the
tracker store is the ``tracker_store`` section of ``--endpoints`` (default endpoints.yml; a
relative SQLite path is relative to the repository, where ``make run`` starts Rasa). Only counts
are printed, never the personal data itself. Run it from cron, e.g. daily.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python scripts/privacy.py` without PYTHONPATH
    sys.path.insert(0, str(ROOT))


def _tracker_engine(args):
    from channels.tracker_store import tracker_store_engine

    endpoints = Path(args.endpoints)
    if not endpoints.is_absolute() and not endpoints.exists():
        endpoints = ROOT / endpoints
    return tracker_store_engine(endpoints, base_dir=ROOT)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name}={value}" for name, value in counts.items())


def purge(args, session_factory) -> int:
    from channels.tracker_store import delete_conversations_older_than
    from commerce.services.retention import purge_older_than, retention_days

    days = retention_days() if args.days is None else args.days
    print(f"commerce (older than {days} days): {_counts(purge_older_than(session_factory, days))}")
    engine = _tracker_engine(args)
    if engine is None:
        print("tracker store: no SQL tracker store with conversations; nothing to delete")
        return 0
    try:
        conversations, events = delete_conversations_older_than(engine, days)
    finally:
        engine.dispose()
    print(f"tracker store: conversations={conversations}, events={events}")
    return 0


def forget(args, session_factory) -> int:
    from channels.tracker_store import conversations_of_customer, delete_conversations
    from commerce.services.retention import (
        customer_conversations,
        find_customer_id,
        forget_customer,
    )

    customer_id = find_customer_id(session_factory, args.email)
    conversations = set(customer_conversations(session_factory, customer_id))
    # The tracker store first: should the commerce step fail, a rerun still finds the customer.
    engine = _tracker_engine(args)
    events = 0
    if engine is not None:
        try:
            conversations |= set(conversations_of_customer(engine, customer_id))
            events = delete_conversations(engine, conversations)
        finally:
            engine.dispose()
    report = forget_customer(session_factory, customer_id)
    print(
        f"customer {customer_id} forgotten: conversations={len(conversations)}, "
        f"tracker events={events}, addresses={report.addresses}, tickets={report.tickets}, "
        f"handoffs={report.handoffs}, returns_and_refunds={report.returns_and_refunds}, "
        f"subscriptions={report.subscriptions}, codes={report.codes}, "
        f"identities={report.identities}, attempts={report.attempts}, "
        f"outbox_messages={report.outbox_messages}"
        + ("" if engine is not None else " (no SQL tracker store configured)")
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="commerce database (default: KEFU_DATABASE_URL)")
    parser.add_argument("--endpoints", default="endpoints.yml", help="endpoints file of Rasa")
    commands = parser.add_subparsers(dest="command", required=True)
    purge_parser = commands.add_parser("purge", help="delete / anonymise data past retention")
    purge_parser.add_argument("--days", type=int, help="horizon (default KEFU_RETENTION_DAYS)")
    forget_parser = commands.add_parser("forget", help="forget one customer everywhere")
    forget_parser.add_argument("email")
    args = parser.parse_args(argv)
    if getattr(args, "days", None) is not None and args.days < 0:
        parser.error("--days must not be negative")

    from commerce.db import make_session_factory
    from commerce.errors import CommerceError, InvalidInput
    from commerce.privacy import install_pii_masking

    install_pii_masking()
    session_factory = make_session_factory(args.database_url)
    try:
        return (purge if args.command == "purge" else forget)(args, session_factory)
    except InvalidInput as e:
        print(f"error: {e.code}: {e.field}", file=sys.stderr)  # the message echoes the input
        return 1
    except CommerceError as e:
        # The retention services' messages name no personal data.
        print(f"error: {e.code}: {e.message}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        session_factory.kw["bind"].dispose()


if __name__ == "__main__":
    sys.exit(main())
