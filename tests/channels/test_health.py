"""The readiness route a balancer and an orchestrator poll (channels/health.py)."""

from __future__ import annotations

import socket
import uuid
from types import SimpleNamespace

import pytest
import yaml
from rasa.core.lock_store import InMemoryLockStore, RedisLockStore
from rasa.core.tracker_store import FailSafeTrackerStore, InMemoryTrackerStore, SQLTrackerStore
from sanic import Sanic

from channels.health import HealthInput, primary_tracker_store
from tests.helpers import ROOT
from tests.helpers.network import free_port, require_service

READY = "/webhooks/health/ready"


def replica(tracker_store, lock_store, *, loaded: bool = True) -> Sanic:
    """A Sanic app serving the health channel, with what it reads of Rasa's agent."""
    app = Sanic(f"health_{uuid.uuid4().hex[:8]}")
    app.blueprint(HealthInput(timeout_s=0.5).blueprint(None), url_prefix="/webhooks/health")
    app.ctx.agent = SimpleNamespace(
        is_ready=lambda: loaded, tracker_store=tracker_store, lock_store=lock_store
    )
    return app


async def ready(app: Sanic) -> tuple[int, dict]:
    _, reply = await app.asgi_client.get(READY)
    return reply.status, reply.json


@pytest.fixture
def sql_store(tmp_path):
    """Rasa's SQL tracker store on a SQLite file, wrapped as ``rasa run`` wraps it."""
    (tmp_path / "db").mkdir()
    store = SQLTrackerStore(dialect="sqlite", db=str(tmp_path / "db" / "tracker.db"))
    return FailSafeTrackerStore(store)


async def test_ready_when_the_model_is_loaded_and_both_stores_answer(sql_store):
    status, body = await ready(replica(sql_store, InMemoryLockStore()))
    assert status == 200
    assert body == {
        "status": "ready",
        "checks": {"model": "ok", "tracker_store": "ok", "lock_store": "ok"},
    }


async def test_ready_with_the_redis_lock_store_of_production():
    require_service("Redis", "127.0.0.1", 6379)
    store = RedisLockStore(host="127.0.0.1", port=6379, db=1, key_prefix="kefuhealth")
    status, body = await ready(replica(InMemoryTrackerStore(None), store))
    assert (status, body["checks"]["lock_store"]) == (200, "ok")


async def test_not_ready_before_the_model_is_loaded():
    status, body = await ready(replica(None, None, loaded=False))
    assert status == 503
    assert body["status"] == "not_ready"
    assert body["checks"]["model"] == "not loaded"


async def test_a_tracker_database_that_is_gone_makes_the_replica_not_ready(sql_store, tmp_path):
    # Rasa's fail-safe wrapper would keep turns "succeeding" in memory: the probe must not.
    primary_tracker_store(sql_store).engine.dispose()
    (tmp_path / "db").rename(tmp_path / "moved")
    status, body = await ready(replica(sql_store, InMemoryLockStore()))
    assert status == 503
    assert body["checks"] == {
        "model": "ok",
        "tracker_store": "unavailable (OperationalError)",
        "lock_store": "ok",
    }


async def test_a_lock_store_nobody_answers_makes_the_replica_not_ready():
    store = RedisLockStore(host="127.0.0.1", port=free_port(), socket_timeout=1)
    status, body = await ready(replica(InMemoryTrackerStore(None), store))
    assert status == 503
    assert body["checks"]["lock_store"] == "unavailable (ConnectionError)"


async def test_a_hung_lock_store_answers_not_ready_within_the_timeout():
    with socket.socket() as silent:  # accepts connections (the kernel does) and never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        store = RedisLockStore(host="127.0.0.1", port=silent.getsockname()[1], socket_timeout=1.5)
        status, body = await ready(replica(InMemoryTrackerStore(None), store))
    assert status == 503
    assert body["checks"]["lock_store"] == "timed out after 0.5s"


def test_a_timeout_must_be_positive():
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        HealthInput.from_credentials({"timeout_s": 0})


def test_the_cluster_credentials_are_the_local_channels_plus_the_readiness_route():
    local = yaml.safe_load((ROOT / "credentials.yml").read_text(encoding="utf-8"))
    cluster = yaml.safe_load(
        (ROOT / "deploy" / "credentials.cluster.yml").read_text(encoding="utf-8")
    )
    health = cluster.pop("channels.health.HealthInput")
    assert cluster == local
    assert HealthInput.from_credentials(health).timeout_s > 0


def test_rasa_builds_every_cluster_channel_from_the_file():
    from rasa.core.run import create_http_input_channels

    local = create_http_input_channels(None, str(ROOT / "credentials.yml"))
    cluster = create_http_input_channels(None, str(ROOT / "deploy" / "credentials.cluster.yml"))
    assert sorted(channel.name() for channel in cluster) == sorted(
        [*(channel.name() for channel in local), "health"]
    )
