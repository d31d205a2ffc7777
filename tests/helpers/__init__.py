"""Helpers the tests import (conftest.py files hold fixtures and hooks only).

- ``ROOT``: the repository root; ``HAN`` matches a Han character (a Chinese reply).
- :mod:`tests.helpers.network`: free ports and whether a local service answers.
- :mod:`tests.helpers.actions`: trackers, identity slots and readers of what an action uttered.
- :mod:`tests.helpers.concurrency`: ``race``, threads released together by a barrier.
- :mod:`tests.helpers.kefu_server`: Kefu started as a user would (serve.py), for integration tests.
- :mod:`tests.helpers.webchat_client`: a socket.io client of the web chat.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HAN = re.compile(r"[\u4e00-\u9fff]")  # a Han character: the reply is (partly) Chinese
