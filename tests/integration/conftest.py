"""Fixtures shared by the integration tests."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="module")
def commerce_db(seeded_db_file, tmp_path_factory):
    """A private, writable copy of the seeded commerce database for one test module."""
    path = tmp_path_factory.mktemp("commerce") / "kefu.db"
    shutil.copy(seeded_db_file, path)
    return path
