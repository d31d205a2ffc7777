"""Where the analytics tables live and how they are migrated.

The same conventions as the commerce backend: ``$KEFU_ANALYTICS_DATABASE_URL`` when set (a
separate reporting database), else the commerce database (``$KEFU_DATABASE_URL``, else
``var/kefu.db``), through :func:`commerce.db.make_engine` (SQLite pragmas, hidden parameters).
The tables have their own Alembic history with its own version table, so ``python -m analytics
upgrade`` and ``python -m commerce upgrade`` never touch each other's revisions.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from commerce.config import database_url as commerce_database_url
from commerce.db import make_engine

#: Env var naming a separate database for the analytics tables.
ANALYTICS_DATABASE_URL_ENV = "KEFU_ANALYTICS_DATABASE_URL"
#: Alembic's version table of the analytics history (commerce keeps ``alembic_version``).
VERSION_TABLE = "analytics_alembic_version"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Autogenerate sees only the analytics tables (the commerce tables share the database)."""
    return type_ != "table" or name.startswith("analytics_")


def database_url() -> str:
    """``$KEFU_ANALYTICS_DATABASE_URL``, else the commerce database's URL."""
    return os.environ.get(ANALYTICS_DATABASE_URL_ENV, "").strip() or commerce_database_url()


def engine(url: str | None = None) -> Engine:
    """An engine on the analytics database (:func:`database_url` by default)."""
    return make_engine(url or database_url())


def alembic_config(url: str) -> Config:
    """Alembic config of ``analytics/migrations`` for ``url`` (no ini file needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str | None = None) -> None:
    """Create or migrate the analytics tables to the newest revision."""
    command.upgrade(alembic_config(url or database_url()), "head")


def downgrade(url: str | None = None) -> None:
    """Drop the analytics tables (downgrade to base)."""
    command.downgrade(alembic_config(url or database_url()), "base")
