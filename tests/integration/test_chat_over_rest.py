"""Starts Kefu as a user would (scripts/serve.py: action server + Rasa), chats over REST in
English and Chinese, checks malformed requests, and checks that a conversation survives a
restart because trackers live in the SQL tracker store."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.helpers.network import free_port

pytestmark = pytest.mark.integration

MODEL = ROOT / os.environ.get("KEFU_TEST_MODEL", "models/kefu.tar.gz")
HAN = re.compile(r"[\u4e00-\u9fff]")


class KefuProcess:
    """scripts/serve.py in a subprocess, on free ports, with its own tracker database."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.actions_port = free_port()
        self.tracker_db = tmp_path / "tracker.db"
        self.broker_db = tmp_path / "broker.db"
        self.log_dir = tmp_path / "log"
        self.endpoints = tmp_path / "endpoints.yml"
        # The stores a shop deploys: the masking SQL tracker store (endpoints.yml) and an event
        # broker, here Rasa's SQL broker so tests can read what was published.
        self.endpoints.write_text(
            f"""
action_endpoint:
  url: "http://127.0.0.1:{self.actions_port}/webhook"
  token: ${{KEFU_ACTION_TOKEN}}
tracker_store:
  type: channels.tracker_store.MaskingSQLTrackerStore
  dialect: sqlite
  db: {self.tracker_db}
event_broker:
  type: sql
  dialect: sqlite
  db: {self.broker_db}
"""
        )
        self.process: subprocess.Popen | None = None
        self.output = tmp_path / "serve.out"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 300) -> None:
        env = {
            # serve.py writes the demo agent's console token here, not to the developer's var/.
            "KEFU_AGENT_TOKEN_FILE": str(self.log_dir.parent / "agent-token"),
            "KEFU_DEMO_LINK_FILE": str(self.log_dir.parent / "demo-link"),
            **os.environ,
            "KEFU_ACTION_TOKEN": "integration-test-token",
            "PYTHONPATH": str(ROOT),
        }
        # The log is appended across restarts: only what this start writes counts.
        offset = self.output.stat().st_size if self.output.exists() else 0
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "scripts" / "serve.py"),
                "--model",
                str(MODEL),
                "--endpoints",
                str(self.endpoints),
                "--port",
                str(self.port),
                "--actions-port",
                str(self.actions_port),
                "--log-dir",
                str(self.log_dir),
            ],
            cwd=ROOT,
            env=env,
            stdout=open(self.output, "ab"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"serve.py exited early:\n{self.output.read_text()}")
            if b"Kefu is running" in self.output.read_bytes()[offset:]:
                return
            time.sleep(1)
        pytest.fail(f"Kefu did not start in {timeout}s:\n{self.output.read_text()}")

    def stop(self) -> int:
        """Ctrl-C, as a user would; returns serve.py's exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()

    def post(self, data: bytes, path: str = "/webhooks/rest/webhook") -> tuple[int, object]:
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:  # noqa: S310
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def say(self, sender: str, text: str) -> list[str]:
        status, reply = self.post(json.dumps({"sender": sender, "message": text}).encode())
        assert status == 200, reply
        return [message.get("text", "") for message in reply]


@contextlib.contextmanager
def running_kefu(tmp_path: Path, **env: str):
    """Kefu (serve.py) started with extra environment for both servers, stopped afterwards."""
    if not MODEL.exists():
        pytest.fail(f"no trained model at {MODEL}: run `make train` first")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)  # KefuProcess hands its environment to both servers
        server = KefuProcess(tmp_path)
        try:
            server.start()
            yield server
        finally:
            if server.process is not None and server.process.poll() is None:
                server.stop()


@pytest.fixture(scope="module")
def kefu(tmp_path_factory):
    with running_kefu(tmp_path_factory.mktemp("kefu")) as server:
        yield server


def test_english_conversation(kefu):
    greeting = kefu.say("en-user", "hello")
    assert greeting and "Kefu" in greeting[0] and not HAN.search(greeting[0])
    help_reply = " ".join(kefu.say("en-user", "what can you do?"))
    assert "order" in help_reply.lower()
    assert kefu.say("en-user", "thanks a lot")[0].startswith("You're welcome")
    assert "outside what I can help" in " ".join(kefu.say("en-user", "book me a flight to Tokyo"))


def test_chinese_conversation(kefu):
    greeting = kefu.say("zh-user", "你好")
    assert greeting and HAN.search(greeting[0]) and "Kefu" in greeting[0]
    assert "订单" in " ".join(kefu.say("zh-user", "你能帮我做什么"))
    assert kefu.say("zh-user", "谢谢")[0].startswith("不客气")
    assert kefu.say("zh-user", "再见")[0].startswith("再见")


def test_language_follows_the_customer(kefu):
    assert HAN.search(kefu.say("switcher", "你好")[0])
    assert not HAN.search(kefu.say("switcher", "hello")[0])


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b"{not json", 400, "invalid_json"),
        (b"\xff\xfe\xfd", 400, "invalid_encoding"),
        (json.dumps({"sender": "a", "message": ""}).encode(), 400, "empty_message"),
        (json.dumps({"sender": "a", "message": "x" * 5000}).encode(), 413, "message_too_long"),
        (json.dumps({"message": "hi"}).encode(), 400, "invalid_sender"),
    ],
)
def test_malformed_requests_get_clear_errors_and_server_keeps_running(kefu, body, status, code):
    got_status, reply = kefu.post(body)
    assert (got_status, reply["error"]) == (status, code)
    assert kefu.say("still-alive", "hi")


def test_conversation_survives_restart(kefu):
    kefu.say("restart-user", "你好")
    assert kefu.stop() == 0
    kefu.start()
    reply = kefu.say("restart-user", "谢谢")
    assert reply and reply[0].startswith("不客气")
    with sqlite3.connect(kefu.tracker_db) as db:
        rows = db.execute(
            "SELECT type_name, data FROM events WHERE sender_id = ? ORDER BY id",
            ("restart-user",),
        ).fetchall()
    texts = [json.loads(data).get("text") for kind, data in rows if kind == "user"]
    assert texts == ["你好", "谢谢"]
    # The tracker was loaded, not recreated: still one session.
    starts = [data for kind, data in rows if kind == "session_started"]
    assert len(starts) == 1
