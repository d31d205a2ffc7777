"""Readiness of a Rasa replica, for a load balancer or an orchestrator.

``GET /webhooks/health/ready`` answers 200 ``{"status": "ready", "checks": {...}}`` only when
this replica can serve a turn: the model is loaded, the tracker store answers and the lock
store answers. Otherwise 503 ``{"status": "not_ready", "checks": {...}}`` with what failed,
e.g. ``{"model": "ok", "tracker_store": "unavailable (OperationalError)", "lock_store":
"ok"}``. Liveness is Rasa's own ``GET /`` (the process answers HTTP at all).

Why a separate readiness: Rasa wraps the configured tracker store in a ``FailSafeTrackerStore``
that quietly falls back to memory when the database fails, so ``/`` and even a successful turn
say nothing about whether conversations are being kept. This route probes the configured
(primary) stores themselves, each in a worker thread bounded by ``timeout_s``, so a hung
database makes the answer a prompt 503 instead of a hung probe. The answer names only the
exception's type; the details go to this server's log, never to the caller.

Register it in the credentials file (``deploy/credentials.cluster.yml``)::

    channels.health.HealthInput:
      timeout_s: 2
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 2.0
OK = "ok"


def primary_tracker_store(store: Any) -> Any:
    """The configured tracker store inside Rasa's wrappers (``FailSafeTrackerStore``,
    ``AwaitableTrackerStore``), which both keep it as ``_tracker_store``."""
    seen = 0
    while getattr(store, "_tracker_store", None) is not None and seen < 8:
        store = store._tracker_store
        seen += 1
    return store


def tracker_store_probe(store: Any) -> Callable[[], Any] | None:
    """A blocking call that fails unless ``store`` answers; None when it needs none (memory).

    SQL stores run ``SELECT 1`` on their engine and Redis stores ``PING``; other kinds are asked
    whether a conversation exists, which reads from them.
    """
    store = primary_tracker_store(store)
    engine = getattr(store, "engine", None)
    if isinstance(engine, sa.engine.Engine):

        def select_one() -> None:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))

        return select_one
    redis_client = getattr(store, "red", None)
    if redis_client is not None:
        return redis_client.ping
    if type(store).__name__ == "InMemoryTrackerStore":
        return None
    return lambda: asyncio.run(store.exists("kefu-readiness-probe"))


def lock_store_probe(store: Any) -> Callable[[], Any] | None:
    """A blocking call that fails unless the lock store answers; None for the in-memory one."""
    redis_client = getattr(store, "red", None)
    return redis_client.ping if redis_client is not None else None


async def run_check(probe: Callable[[], Any] | None, timeout_s: float) -> str:
    """``"ok"``, or why ``probe`` failed (its exception type, or the timeout)."""
    if probe is None:
        return OK
    try:
        await asyncio.wait_for(asyncio.to_thread(probe), timeout=timeout_s)
    except asyncio.TimeoutError:
        return f"timed out after {timeout_s:g}s"
    except Exception as e:  # noqa: BLE001 - any failure means "not ready"; logged below
        logger.warning("Readiness probe failed: %r", e)
        return f"unavailable ({type(e).__name__})"
    return OK


async def readiness(agent: Any, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, str]:
    """What each part of ``agent`` (Rasa's ``app.ctx.agent``) answered: ``"ok"`` or why not."""
    if agent is None or not agent.is_ready():
        return {"model": "not loaded", "tracker_store": "not loaded", "lock_store": "not loaded"}
    tracker, lock = await asyncio.gather(
        run_check(tracker_store_probe(agent.tracker_store), timeout_s),
        run_check(lock_store_probe(agent.lock_store), timeout_s),
    )
    return {"model": OK, "tracker_store": tracker, "lock_store": lock}


class HealthInput(InputChannel):
    """Serves ``/webhooks/health/ready``; it receives no messages."""

    @classmethod
    def name(cls) -> str:
        return "health"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> HealthInput:
        credentials = credentials or {}
        return cls(timeout_s=float(credentials.get("timeout_s", DEFAULT_TIMEOUT_S)))

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        """
        Args:
            timeout_s: how long each store may take to answer before the replica is not ready.
        """
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
        self.timeout_s = timeout_s

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        health = Blueprint("kefu_health", __name__)

        @health.route("/ready", methods=["GET"])
        async def ready(request: Request) -> HTTPResponse:
            agent = getattr(request.app.ctx, "agent", None)
            checks = await readiness(agent, self.timeout_s)
            ok = all(value == OK for value in checks.values())
            return response.json(
                {"status": "ready" if ok else "not_ready", "checks": checks},
                status=200 if ok else 503,
            )

        return health
