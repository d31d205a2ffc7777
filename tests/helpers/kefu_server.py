"""Kefu as a user starts it (scripts/serve.py: action server + Rasa) in a subprocess, for the
integration and security tests; it needs the trained model (``make train``)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.helpers.network import free_port

MODEL = ROOT / os.environ.get("KEFU_TEST_MODEL", "models/kefu.tar.gz")


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children first), read from Linux's /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], list(children.get(pid, []))
    while queue:
        child = queue.pop(0)
        found.append(child)
        queue.extend(children.get(child, []))
    return found


def code_sent_to(outbox: Path, recipient: str) -> str:
    """The 6-digit code of the latest message the outbox log holds for ``recipient``."""
    for block in reversed(outbox.read_text(encoding="utf-8").split("\n--- ")):
        header, _, body = block.partition("\n")
        if header.rstrip().endswith(f" to {recipient}"):
            [code] = re.findall(r"(?<!\d)\d{6}(?!\d)", body)
            return code
    raise AssertionError(f"no message to {recipient} in {outbox}")


class KefuProcess:
    """scripts/serve.py in a subprocess, on free ports, with its own tracker database (or the
    stores ``stores`` names: YAML endpoint sections other than ``action_endpoint``, e.g. a
    PostgreSQL tracker store and a Redis lock store that several replicas share)."""

    def __init__(self, tmp_path: Path, stores: str | None = None) -> None:
        self.port = free_port()
        self.actions_port = free_port()
        self.tracker_db = tmp_path / "tracker.db"
        self.broker_db = tmp_path / "broker.db"
        self.log_dir = tmp_path / "log"
        self.endpoints = tmp_path / "endpoints.yml"
        # The stores a shop deploys: the masking SQL tracker store (endpoints.yml) and an event
        # broker, here Rasa's SQL broker so tests can read what was published.
        action_endpoint = f"""
action_endpoint:
  url: "http://127.0.0.1:{self.actions_port}/webhook"
  token: ${{KEFU_ACTION_TOKEN}}
"""
        if stores is not None:
            self.endpoints.write_text(action_endpoint + stores)
        else:
            self.endpoints.write_text(
                action_endpoint
                + f"""tracker_store:
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
        self.launch()
        self.wait_started(timeout)

    def launch(self) -> None:
        """Start serve.py without waiting (several servers then load their models together)."""
        env = {
            # serve.py writes the demo agent's console token here, not to the developer's var/.
            "KEFU_AGENT_TOKEN_FILE": str(self.log_dir.parent / "agent-token"),
            "KEFU_DEMO_LINK_FILE": str(self.log_dir.parent / "demo-link"),
            # The analytics consumer serve.py starts writes here, not into var/kefu.db.
            "KEFU_ANALYTICS_DATABASE_URL": f"sqlite:///{self.log_dir.parent / 'analytics.db'}",
            "KEFU_HASH_SECRET_FILE": str(self.log_dir.parent / "hash-secret"),
            **os.environ,
            "KEFU_ACTION_TOKEN": "integration-test-token",
            "PYTHONPATH": str(ROOT),
        }
        # The log is appended across restarts: only what this start writes counts.
        self._offset = self.output.stat().st_size if self.output.exists() else 0
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

    def wait_started(self, timeout: float = 300) -> None:
        """Until serve.py says Kefu is running; fails the test when it exits or takes longer."""
        assert self.process is not None, "launch() first"
        offset = self._offset
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"serve.py exited early:\n{self.output.read_text()}")
            if b"Kefu is running" in self.output.read_bytes()[offset:]:
                return
            time.sleep(1)
        pytest.fail(f"Kefu did not start in {timeout}s:\n{self.output.read_text()}")

    def stop(self) -> int:
        """Ctrl-C, as a user would; returns serve.py's exit code.

        serve.py starts Rasa and the action server in sessions of their own, so killing it
        alone would orphan them: whatever of its process tree outlives it is killed too.
        """
        assert self.process is not None
        tree = descendants(self.process.pid)
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for pid in tree:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

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
