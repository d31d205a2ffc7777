"""Shared pytest configuration: the `--slow` switch and service availability checks."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        default=False,
        help="also run tests marked slow (real encoder weights, long training)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow test: run with --slow (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


def service_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skips the calling test with a clear reason when a local service is absent."""
    if not service_reachable(host, port):
        pytest.skip(f"{name} is not reachable at {host}:{port}; start it to run this test")


def free_port() -> int:
    """A TCP port that was free a moment ago, for servers started by tests."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def seeded_db_file(tmp_path_factory):
    """A migrated SQLite commerce database with the demo seed (docs/SEED.md), shared read-only
    by the session; tests that write copy it first."""
    from commerce.__main__ import upgrade
    from commerce.db import make_engine
    from commerce.seed import seed

    path = tmp_path_factory.mktemp("commerce") / "seeded.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    seed(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="module")
def commerce_db(seeded_db_file, tmp_path_factory):
    """A private, writable copy of the seeded commerce database for one test module."""
    path = tmp_path_factory.mktemp("commerce") / "kefu.db"
    shutil.copy(seeded_db_file, path)
    return path
