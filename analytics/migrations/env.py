"""Alembic environment of the analytics tables (version table ``analytics_alembic_version``)."""

from __future__ import annotations

from alembic import context

from analytics.db import VERSION_TABLE, database_url, include_object
from analytics.models import Base
from commerce.db import make_engine

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.attributes.get("url") or database_url()


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_object=include_object,
        render_as_batch=True,
        **kwargs,
    )


if context.is_offline_mode():
    _configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(_url())
    with engine.connect() as connection:
        _configure(connection=connection, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
