"""Helpers the tests import (conftest.py files hold fixtures and hooks only).

- ``ROOT``: the repository root.
- :mod:`tests.helpers.network`: free ports and whether a local service answers.
- :mod:`tests.helpers.actions`: trackers, identity slots and readers of what an action uttered.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
