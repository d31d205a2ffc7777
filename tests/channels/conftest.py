"""Fixtures for the channel tests."""

from types import SimpleNamespace

import pytest
from rasa.core.lock_store import InMemoryLockStore
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain

from commerce.config import DATABASE_URL_ENV, TOKEN_SECRET_ENV
from commerce.db import reset_shared_session_factory
from tests.helpers.channels import SECRET


@pytest.fixture
def customers(seeded_db_file, monkeypatch):
    """The seeded customers in the process-wide database, and tokens signed with SECRET."""
    monkeypatch.setenv(DATABASE_URL_ENV, f"sqlite:///{seeded_db_file}")
    monkeypatch.setenv(TOKEN_SECRET_ENV, SECRET)
    reset_shared_session_factory()
    yield
    reset_shared_session_factory()


def server_stores(domain: Domain | None = None) -> SimpleNamespace:
    """What a Rasa server's ``app.ctx.agent`` gives the channels: its tracker store, lock
    store and a processor that loads trackers (SQL and Redis in production)."""
    store = InMemoryTrackerStore(domain or Domain.empty())

    class Processor:
        async def get_tracker(self, sender_id: str):
            return await store.get_or_create_tracker(sender_id)

    return SimpleNamespace(
        tracker_store=store, lock_store=InMemoryLockStore(), processor=Processor()
    )


async def start_app(app) -> tuple[object, str]:
    """Serve ``app`` on a free loopback port in this event loop: its server and base URL."""
    from tests.helpers.network import free_port

    port = free_port()
    server = await app.create_server(
        host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False
    )
    await server.startup()
    await server.after_start()
    return server, f"http://127.0.0.1:{port}"


async def stop_server(server) -> None:
    """Stop what :func:`start_app` started, running the app's stop listeners."""
    await server.before_stop()
    server.close()
    await server.wait_closed()
    await server.after_stop()
