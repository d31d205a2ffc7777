"""Fixtures for action tests: a seeded SQLite commerce database, an outbox, a dispatcher and
the complaint-risk model (none unless a test asks for ``risk_model``).

The database is migrated and seeded once per test session (``python -m commerce upgrade`` and
``seed`` into a tmp dir, docs/SEED.md lists the accounts); each test that changes data gets a
fresh copy of the seeded file, so tests never see each other's writes. Trackers and the readers
of what an action did are helpers in tests/helpers/actions.py.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import create_engine, text

import actions.common as common
import actions.support as support
from analytics import db as analytics_db
from analytics import risk
from analytics.risk import LiveRisk
from analytics.store import FactsStore
from commerce.config import DATABASE_URL_ENV, hash_secret
from tests.helpers.actions import user_event


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


@pytest.fixture(autouse=True)
def no_risk_model(tmp_path, monkeypatch) -> LiveRisk:
    """Conversations are not scored (no trained risk model) unless a test trains one."""
    live = LiveRisk(tmp_path / "no-risk-model.joblib")
    monkeypatch.setattr(support, "LIVE_RISK", live)
    return live


@pytest.fixture(scope="session")
def trained_risk_model(tmp_path_factory) -> Path:
    """The complaint-risk model ``make risk-model`` trains, on fewer simulated conversations."""
    path = tmp_path_factory.mktemp("risk") / "risk.joblib"
    risk.save(risk.train(conversations=600, seed=1), path)
    return path


@pytest.fixture
def risk_model(trained_risk_model, monkeypatch) -> LiveRisk:
    """The action server scores conversations with a trained model."""
    live = LiveRisk(trained_risk_model)
    monkeypatch.setattr(support, "LIVE_RISK", live)
    return live


@pytest.fixture
def late_order_asked_about_before(database):
    """KF-100004 (Alice's, shipped) is 9 days past its promised date, and two earlier
    conversations (read by the analytics consumer) were about it."""
    engine = create_engine(database)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE shipments SET estimated_delivery = :eta, delivered_at = NULL "
                "WHERE order_id = (SELECT id FROM orders WHERE number = 'KF-100004')"
            ),
            {"eta": time.strftime("%Y-%m-%d", time.gmtime(time.time() - 9 * 86_400))},
        )
    analytics_db.upgrade(database)
    store = FactsStore(analytics_db.engine(database), order_secret=hash_secret())
    earlier = []
    for n, days_ago in enumerate((3, 1)):
        sender, at = f"earlier-{n}", time.time() - days_ago * 86_400
        message = user_event("where is KF-100004", 0.3, at=at)
        message["parse_data"]["entities"] = [{"entity": "order_number", "value": "KF-100004"}]
        earlier += [({**message, "sender_id": sender}, None)]
    assert store.ingest("earlier", earlier).skipped == 0
    return "KF-100004"
