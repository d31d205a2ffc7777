"""Shared pytest configuration: the `--slow` switch and the seeded commerce database.

Helpers (the repository root, free ports, service checks) live in tests/helpers/.
"""

from __future__ import annotations

import os
import shutil

import pytest

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
