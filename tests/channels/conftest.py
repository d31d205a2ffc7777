"""Fixtures for the channel tests."""

import pytest

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
