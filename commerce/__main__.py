"""Command line: ``python -m commerce {upgrade,seed,reset,downgrade}``.

upgrade    alembic upgrade head (creates the SQLite file under var/ when needed)
seed       empty the commerce tables and load the deterministic demo data (idempotent);
           with --if-empty, only when the database holds no customers yet (what `make run` does,
           so orders changed in earlier chats are kept)
reset      drop everything (downgrade base), upgrade head, seed
token      print a signed customer token for EMAIL (KEFU_CUSTOMER_TOKEN_SECRET), as a shop's
           site would hand one to the web chat: /webhooks/webchat/#token=<token>
agent      agent console accounts: `agent add NAME [--token-file PATH] [--if-missing]` (prints
           the new token once, or writes it to PATH, mode 0600), `agent list`,
           `agent disable NAME`, `agent rotate NAME` (a new token; the old one stops working)
outbox     deliver pending and failed outbox messages (emails, SMS), e.g. after an SMTP outage
notify     the notice worker (commerce.notify): back in stock, late shipments, completed refunds,
           to the live web chat or by email; every --interval seconds until stopped, or --once;
           `notify unsubscribe EMAIL [--product P [--size S] [--colour C]]` stops alerts
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from alembic import command
from alembic.config import Config

from commerce.config import REPO_ROOT, database_url
from commerce.db import make_engine


def alembic_config(url: str) -> Config:
    """Alembic config pointing at commerce/migrations and the given database URL."""
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "commerce" / "migrations"))
    cfg.attributes["url"] = url
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade(url: str | None = None) -> None:
    """Migrate the database to the newest revision."""
    command.upgrade(alembic_config(url or database_url()), "head")


def downgrade(url: str | None = None) -> None:
    """Drop the whole schema (downgrade to base)."""
    command.downgrade(alembic_config(url or database_url()), "base")


def _has_customers(engine) -> bool:
    from sqlalchemy import func, select

    from commerce.models import Customer

    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(Customer)).scalar_one() > 0


def _with_factory(url: str, work: Callable) -> int:
    """Run ``work(session_factory)``; a CommerceError prints ``error: ...`` and exits 1.

    The engine is disposed afterwards either way.
    """
    from commerce.db import make_session_factory
    from commerce.errors import CommerceError

    factory = make_session_factory(url)
    try:
        return work(factory)
    except CommerceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        factory.kw["bind"].dispose()


def _print_token(parser: argparse.ArgumentParser, url: str, email: str | None, ttl: int) -> int:
    from sqlalchemy import select

    from commerce.models import Customer
    from commerce.services.identity import issue_customer_token, normalize_email

    if not email:
        parser.error("token needs the customer's email")

    def print_token(factory) -> int:
        with factory() as session:
            customer_id = session.execute(
                select(Customer.id).where(Customer.email == normalize_email(email))
            ).scalar_one_or_none()
        if customer_id is None:
            print(f"error: no customer with email {email}", file=sys.stderr)
            return 1
        print(issue_customer_token(customer_id, ttl))
        return 0

    return _with_factory(url, print_token)


def _write_token_file(path: str, token: str) -> None:
    """Write ``token`` to ``path`` readable by its owner only (0600, also when it existed)."""
    import os
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)


def agent_command(argv: list[str]) -> int:
    """``python -m commerce agent {add,list,disable,rotate}``: agent console accounts."""
    import os

    from commerce.services import agents

    parser = argparse.ArgumentParser(
        prog="python -m commerce agent", description="Agent console accounts."
    )
    parser.add_argument("action", choices=("add", "list", "disable", "rotate"))
    parser.add_argument("name", nargs="?", help="the agent's name (shown to customers)")
    parser.add_argument("--token-file", help="add/rotate: write the token here (0600), not stdout")
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="add: keep an existing agent whose token file exists (a new token when it does not)",
    )
    parser.add_argument("--url", help="database URL (default: $KEFU_DATABASE_URL or var/kefu.db)")
    args = parser.parse_args(argv)
    if args.action != "list" and not args.name:
        parser.error(f"agent {args.action} needs the agent's NAME")

    def hand_out(token: str) -> None:
        if args.token_file:
            _write_token_file(args.token_file, token)
            print(f"token for {args.name} written to {args.token_file}")
        else:
            print(token)

    def run(factory) -> int:
        if args.action == "list":
            for account in agents.list_agents(factory):
                state = (
                    f"disabled {account.disabled_at:%Y-%m-%d %H:%M}"
                    if account.disabled_at
                    else "active"
                )
                print(f"{account.name}\t{state}\tcreated {account.created_at:%Y-%m-%d %H:%M}")
        elif args.action == "add":
            existing = agents.get_agent(factory, args.name)
            if existing is not None and args.if_missing:
                if not args.token_file:
                    print(f"agent {args.name} exists already")
                elif os.path.exists(args.token_file):
                    print(f"agent {args.name} exists; token in {args.token_file}")
                else:  # the token cannot be recovered; a new one replaces it
                    hand_out(agents.rotate_token(factory, args.name))
            else:
                hand_out(agents.create_agent(factory, args.name)[1])
        elif args.action == "rotate":
            hand_out(agents.rotate_token(factory, args.name))
        else:
            agents.disable_agent(factory, args.name)
            print(f"agent {args.name} disabled")
        return 0

    return _with_factory(args.url or database_url(), run)


def _drain_outbox(url: str, limit: int) -> int:
    from commerce.db import make_session_factory
    from commerce.outbox import deliver_pending

    factory = make_session_factory(url)
    try:
        print(f"outbox: delivered {deliver_pending(factory, limit=limit)} message(s)")
    finally:
        factory.kw["bind"].dispose()
    return 0


def notify_command(argv: list[str]) -> int:
    """``python -m commerce notify [--once] ...`` and ``notify unsubscribe EMAIL``."""
    import logging
    import signal
    import threading

    from commerce import notify

    parser = argparse.ArgumentParser(
        prog="python -m commerce notify",
        description="Queue and deliver notices (back in stock, late shipments, refunds).",
    )
    parser.add_argument("action", nargs="?", choices=("run", "unsubscribe"), default="run")
    parser.add_argument("email", nargs="?", help="unsubscribe: the subscribed address")
    parser.add_argument("--product", help="unsubscribe: only this product (SKU, code or name)")
    parser.add_argument("--size", help="unsubscribe: only this size of --product")
    parser.add_argument("--colour", help="unsubscribe: only this colour of --product")
    parser.add_argument("--once", action="store_true", help="one pass, then exit (tests, cron)")
    parser.add_argument(
        "--interval", type=float, default=notify.DEFAULT_INTERVAL_S, help="seconds between passes"
    )
    parser.add_argument("--max-seconds", type=float, help="stop after about this many seconds")
    parser.add_argument(
        "--limit", type=int, default=notify.DEFAULT_LIMIT, help="events and sends per pass"
    )
    parser.add_argument("--url", help="database URL (default: $KEFU_DATABASE_URL or var/kefu.db)")
    args = parser.parse_args(argv)
    if args.action == "unsubscribe" and not args.email:
        parser.error("notify unsubscribe needs the subscribed EMAIL")
    if args.interval <= 0 or args.limit < 1:
        parser.error("--interval must be above 0 and --limit at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    def work(factory) -> int:
        if args.action == "unsubscribe":
            from commerce.services.stock import unsubscribe_back_in_stock

            removed = unsubscribe_back_in_stock(
                factory, args.email, args.product, size=args.size, colour=args.colour
            )
            print(f"notify: removed {removed} back-in-stock subscription(s)")
            return 0
        if args.once:
            report = notify.run_once(factory, limit=args.limit)
            q = report.queued
            print(
                f"notify: queued {q.total} notice(s) (back in stock {q.back_in_stock}, late"
                f" shipments {q.late_shipments}, refunds {q.refunds}); delivered"
                f" {report.delivered} message(s)"
            )
            return 0
        # SIGTERM (make run stopping) and Ctrl-C end the worker between two passes.
        stop = threading.Event()
        signals = (signal.SIGTERM, signal.SIGINT)
        previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in signals}
        try:
            passes = notify.run(
                factory, interval_s=args.interval, max_seconds=args.max_seconds, stop=stop
            )
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        print(f"notify: stopped after {passes} pass(es)")
        return 0

    return _with_factory(args.url or database_url(), work)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["agent"]:
        return agent_command(argv[1:])
    if argv[:1] == ["notify"]:
        return notify_command(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m commerce", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command",
        choices=("upgrade", "seed", "reset", "downgrade", "token", "outbox", "agent", "notify"),
    )
    parser.add_argument("email", nargs="?", help="token: the customer's email")
    parser.add_argument("--ttl", type=int, default=3600, help="token: lifetime in seconds")
    parser.add_argument("--url", help="database URL (default: $KEFU_DATABASE_URL or var/kefu.db)")
    parser.add_argument(
        "--if-empty", action="store_true", help="seed only a database without customers"
    )
    args = parser.parse_args(argv)
    url = args.url or database_url()
    shown = url.split("@")[-1]
    if args.command == "token":
        return _print_token(parser, url, args.email, args.ttl)
    if args.command == "outbox":
        return _drain_outbox(url, limit=500)
    if args.command in ("downgrade", "reset"):
        downgrade(url)
        print(f"dropped schema on {shown}")
    if args.command in ("upgrade", "reset"):
        upgrade(url)
        print(f"schema at head on {shown}")
    if args.command in ("seed", "reset"):
        from commerce.seed import seed

        engine = make_engine(url)
        try:
            if args.if_empty and _has_customers(engine):
                print(f"kept existing data on {shown} (seed without --if-empty to reload it)")
                return 0
            counts = seed(engine)
        finally:
            engine.dispose()
        print(f"seeded {shown}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
