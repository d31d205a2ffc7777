"""Command line: ``python -m commerce {upgrade,seed,reset,downgrade}``.

upgrade    alembic upgrade head (creates the SQLite file under var/ when needed)
seed       empty the commerce tables and load the deterministic demo data (idempotent);
           with --if-empty, only when the database holds no customers yet (what `make run` does,
           so orders changed in earlier chats are kept)
reset      drop everything (downgrade base), upgrade head, seed
token      print a signed customer token for EMAIL (KEFU_CUSTOMER_TOKEN_SECRET), as a shop's
           site would hand one to the web chat: /webhooks/webchat/#token=<token>
"""

from __future__ import annotations

import argparse
import sys

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


def _print_token(parser: argparse.ArgumentParser, url: str, email: str | None, ttl: int) -> int:
    from sqlalchemy import select

    from commerce.db import make_session_factory
    from commerce.errors import CommerceError
    from commerce.models import Customer
    from commerce.services.identity import issue_customer_token, normalize_email

    if not email:
        parser.error("token needs the customer's email")
    factory = make_session_factory(url)
    try:
        with factory() as session:
            customer_id = session.execute(
                select(Customer.id).where(Customer.email == normalize_email(email))
            ).scalar_one_or_none()
        if customer_id is None:
            print(f"error: no customer with email {email}", file=sys.stderr)
            return 1
        print(issue_customer_token(customer_id, ttl))
    except CommerceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        factory.kw["bind"].dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m commerce", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("upgrade", "seed", "reset", "downgrade", "token"))
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
