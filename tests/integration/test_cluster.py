"""The local cluster (scripts/cluster.py up): nginx in front of two Rasa replicas and two action
servers, trackers in PostgreSQL, locks in Redis, events to RabbitMQ.

It proves that a conversation belongs to no replica: turns sent to either replica directly or
through nginx continue one conversation, and after ``kill -9`` of the replica that served the
last turn the next turn through nginx is answered by the other one, with every event in the
tracker store once and in order. It also proves socket.io stays on one replica (what
engine.io's polling transport needs).

Started once for the module on ports of their own (``KEFU_TEST_CLUSTER_PORT``, default 18300:
balancer, +1 the action servers' balancer, +10.. the replicas, +20.. the action servers) with
test databases and state under a temporary folder; always stopped (``down``) at the end.
Needs the trained model, nginx (installed by ``up`` when root), PostgreSQL, Redis, RabbitMQ and
about 10 GB of free memory (a replica holds ~4 GB); skipped with the reason when one is absent.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from scripts.cluster import memory_available_gib
from tests.helpers import HAN, ROOT
from tests.helpers.kefu_server import MODEL
from tests.helpers.network import require_service, service_reachable
from tests.helpers.webchat_client import ChatClient
from tests.postgres import ensure_database

pytestmark = [pytest.mark.integration, pytest.mark.services]

PORT = int(os.environ.get("KEFU_TEST_CLUSTER_PORT", "18300"))
REPLICAS = 2
NEEDED_GIB = 10
TURN_TIMEOUT_S = 120
REST = "/webhooks/rest/webhook"


@dataclass
class Cluster:
    balancer: str
    replicas: list[str]
    pids: dict[str, int]
    tracker: sa.engine.Engine
    access_log: Path

    def say(self, base: str, sender: str, text: str) -> list[str]:
        """One REST turn against ``base`` (the balancer or a replica); the reply texts."""
        request = urllib.request.Request(
            base + REST,
            data=json.dumps({"sender": sender, "message": text}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=TURN_TIMEOUT_S) as reply:  # noqa: S310
            assert reply.status == 200
            return [message.get("text", "") for message in json.loads(reply.read())]

    def events(self, sender: str) -> list[tuple[str, float, str]]:
        """``(type_name, timestamp, data)`` of the conversation's stored events, in id order."""
        with self.tracker.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT type_name, timestamp, data FROM events"
                    " WHERE sender_id = :sender ORDER BY id"
                ),
                {"sender": sender},
            )
            return [tuple(row) for row in rows]

    def upstreams(self) -> list[str]:
        """The ``upstream=`` of each REST turn nginx logged, in order (``a, b`` when nginx
        tried ``a`` first and moved the turn to ``b``)."""
        lines = self.access_log.read_text().splitlines()
        return [
            re.search(r"upstream=(.*?) upstream_status=", line).group(1)
            for line in lines
            if f'"POST {REST}"' in line
        ]

    def say_through_nginx(self, sender: str, text: str) -> tuple[list[str], str]:
        """One REST turn through the balancer: the replies and the replica(s) nginx used."""
        before = len(self.upstreams())
        replies = self.say(self.balancer, sender, text)
        # nginx logs a request after answering it: wait for the line.
        deadline = time.monotonic() + 10
        while len(logged := self.upstreams()) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(logged) == before + 1, logged[before:]
        return replies, logged[-1]


def skip_unless_the_cluster_can_run() -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    require_service("RabbitMQ", "127.0.0.1", 5672)
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()) and os.geteuid() != 0:
        pytest.skip("nginx is not installed and installing it needs root (apt-get install nginx)")
    available = memory_available_gib()
    if available < NEEDED_GIB:
        pytest.skip(f"{REPLICAS} Rasa replicas need {NEEDED_GIB} GB free; {available:.1f} GB is")
    if not MODEL.exists():
        pytest.fail(f"no trained model at {MODEL}: run `make train` first")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    skip_unless_the_cluster_can_run()
    state = tmp_path_factory.mktemp("cluster")
    tracker_url = ensure_database("kefu_test_cluster_tracker")
    commerce_url = ensure_database("kefu_test_cluster_commerce")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KEFU_CLUSTER_BALANCER_PORT": str(PORT),
        "KEFU_CLUSTER_BALANCER_ACTIONS_PORT": str(PORT + 1),
        "KEFU_CLUSTER_RASA_FIRST_PORT": str(PORT + 10),
        "KEFU_CLUSTER_RASA_REPLICAS": str(REPLICAS),
        "KEFU_CLUSTER_RASA_MODEL": str(MODEL),
        "KEFU_CLUSTER_ACTIONS_FIRST_PORT": str(PORT + 20),
        "KEFU_CLUSTER_ACTIONS_REPLICAS": "2",
        "KEFU_CLUSTER_TRACKER_STORE_URL": tracker_url.replace("+psycopg2", ""),
        "KEFU_CLUSTER_COMMERCE_DB_URL": commerce_url,
        "KEFU_CLUSTER_FILES_RUN_DIR": str(state / "run"),
        "KEFU_CLUSTER_FILES_LOG_DIR": str(state / "log"),
        "KEFU_HASH_SECRET_FILE": str(state / "hash-secret"),
        "KEFU_OUTBOX_LOG": str(state / "outbox.log"),
        "KEFU_DEMO_LINKS": "0",
        # Every turn here comes from 127.0.0.1: the per-client limit is not what is tested.
        "KEFU_RATE_PER_CLIENT": "1000",
    }
    script = [sys.executable, str(ROOT / "scripts" / "cluster.py")]
    tracker = sa.create_engine(tracker_url)
    try:
        started = subprocess.run(
            [*script, "up", "--startup-timeout", "600"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert started.returncode == 0, started.stdout + started.stderr
        pids = json.loads((state / "run" / "pids.json").read_text())
        yield Cluster(
            balancer=f"http://127.0.0.1:{PORT}",
            replicas=[f"http://127.0.0.1:{PORT + 10 + i}" for i in range(REPLICAS)],
            pids={p["name"]: p["pid"] for p in pids["processes"]},
            tracker=tracker,
            access_log=state / "log" / "nginx.access.log",
        )
    finally:
        subprocess.run([*script, "down"], cwd=ROOT, env=env, timeout=120, check=False)
        tracker.dispose()


def assert_stored_once_in_order(events: list[tuple[str, float, str]], turns: list[str]) -> None:
    """Each message once, in the order sent; no event stored twice; timestamps in id order."""
    users = [json.loads(data) for kind, _, data in events if kind == "user"]
    assert len(users) == len(turns), [u.get("text") for u in users]
    for stored, sent in zip(users, turns, strict=True):
        if "@" not in sent:  # an email is stored masked
            assert stored["text"] == sent
    assert len(set(events)) == len(events), "an event was stored twice"
    stamps = [timestamp for _, timestamp, _ in events]
    assert stamps == sorted(stamps), "events out of order"


def test_the_replicas_and_the_balancer_are_ready(cluster):
    for base in [*cluster.replicas, cluster.balancer]:
        with urllib.request.urlopen(base + "/webhooks/health/ready", timeout=10) as reply:  # noqa: S310
            assert json.loads(reply.read())["checks"] == {
                "model": "ok",
                "tracker_store": "ok",
                "lock_store": "ok",
            }


def test_a_conversation_moves_between_replicas_intact(cluster):
    sender = f"cluster-{uuid.uuid4().hex[:10]}"
    first, second = cluster.replicas
    turns = [
        (first, "where is my order?"),
        (second, "KF-100004"),  # the form started on the other replica goes on here
        (cluster.balancer, "alice@example.com"),
    ]
    replies = [" ".join(cluster.say(base, sender, text)) for base, text in turns]

    assert "email" in replies[1].lower(), replies  # it asks for the next slot, not the first
    assert "KF-100004" in replies[2], replies  # both slots, set on two replicas, found the order
    assert_stored_once_in_order(cluster.events(sender), [text for _, text in turns])


def test_socketio_keeps_a_tab_on_one_replica(cluster):
    route = f"tab-{uuid.uuid4().hex[:8]}"

    async def chat() -> list[dict]:
        # The cookie nginx sets does the same for a browser; this client keeps no cookies for
        # an IP address, so it names its route itself.
        client = ChatClient(f"{cluster.balancer}/?kefu_route={route}")
        try:
            await client.open()
            return await client.say("hi")
        finally:
            await client.close()

    replies = asyncio.run(asyncio.wait_for(chat(), TURN_TIMEOUT_S))
    assert any(r["event"] == "bot_uttered" for r in replies), replies
    lines = [
        line for line in cluster.access_log.read_text().splitlines() if f"route={route}" in line
    ]
    served_by = {re.search(r"upstream=(\S+)", line).group(1) for line in lines}
    assert len(lines) >= 3 and len(served_by) == 1, lines  # polls and posts: one replica


def test_a_replica_killed_mid_conversation_the_next_turn_is_answered_by_the_other(cluster):
    sender = f"cluster-kill-{uuid.uuid4().hex[:10]}"
    turns = ["我的订单到哪了", "KF-200002", "wang.fang@example.cn"]
    _, served = cluster.say_through_nginx(sender, turns[0])
    victim = cluster.replicas.index(f"http://{served}")
    os.kill(cluster.pids[f"rasa-{victim}"], signal.SIGKILL)
    # The customer's next message comes seconds later, when the replica is gone. (A request
    # that reaches it in the milliseconds of dying gets 502: nginx does not send a POST that
    # reached a replica again, as it may have been processed.)
    host, port = served.split(":")
    deadline = time.monotonic() + 10
    while service_reachable(host, int(port), timeout=0.2) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivor = cluster.replicas[1 - victim].removeprefix("http://")

    replies, upstreams = [], []
    for text in turns[1:]:
        reply, upstream = cluster.say_through_nginx(sender, text)
        replies.append(" ".join(reply))
        upstreams.append(upstream)

    assert "KF-200002" in replies[-1] and HAN.search(replies[-1]), replies
    # Each turn ended on the survivor (after a refused try of the dead one, if nginx tried it).
    assert all(upstream.endswith(survivor) for upstream in upstreams), upstreams
    assert_stored_once_in_order(cluster.events(sender), turns)
