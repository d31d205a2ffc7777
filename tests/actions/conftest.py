"""Fixtures for action tests: a seeded SQLite commerce database, an outbox and a dispatcher.

The database is migrated and seeded once per test session (``python -m commerce upgrade`` and
``seed`` into a tmp dir, docs/SEED.md lists the accounts); each test that changes data gets a
fresh copy of the seeded file, so tests never see each other's writes. Trackers and the readers
of what an action did are helpers in tests/helpers/actions.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rasa_sdk.executor import CollectingDispatcher

import actions.common as common
from commerce.config import DATABASE_URL_ENV


@pytest.fixture
def database(seeded_db_file, tmp_path, monkeypatch):
    """A private copy of the seeded database; ``actions.common`` points at it."""
    path = tmp_path / "kefu.db"
    shutil.copy(seeded_db_file, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv(DATABASE_URL_ENV, url)
    common.reset_session_factory()
    yield url
    common.reset_session_factory()


@pytest.fixture
def database_down(tmp_path, monkeypatch):
    """A database URL nothing answers on (a PostgreSQL port with no server)."""
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql+psycopg2://kefu@127.0.0.1:9/kefu")
    monkeypatch.setenv(common.SERVICE_TIMEOUT_ENV, "5")
    common.reset_session_factory()
    yield
    common.reset_session_factory()


@pytest.fixture
def outbox_log(tmp_path, monkeypatch) -> Path:
    """Where one-time codes go in tests: the outbox's LogSender writes them to this file."""
    path = tmp_path / "outbox.log"
    monkeypatch.setenv("KEFU_OUTBOX_LOG", str(path))
    monkeypatch.delenv("KEFU_SMTP_HOST", raising=False)
    monkeypatch.delenv("KEFU_SMS_SENDER", raising=False)
    return path


@pytest.fixture
def token_secret(monkeypatch) -> str:
    """The secret the channels sign identity claims with."""
    monkeypatch.setenv("KEFU_CUSTOMER_TOKEN_SECRET", "s3cret-for-tests")
    return "s3cret-for-tests"


@pytest.fixture
def dispatcher() -> CollectingDispatcher:
    return CollectingDispatcher()
