"""Message rate limits of the channels: an in-process sliding window per client and per
conversation.

Each channel (REST, web chat) counts the messages of one client address and of one
conversation over the last ``KEFU_RATE_WINDOW_S`` seconds and refuses the message that would
exceed the limit, with how long to wait. Refused messages are not counted, so a client that
backs off gets through again when its oldest message leaves the window.

Settings (environment, read when a channel starts; ``0`` turns a limit off):

- ``KEFU_RATE_PER_CONVERSATION``: messages per conversation per window (default 20);
- ``KEFU_RATE_PER_CLIENT``: messages per client address per window (default 60). Behind a
  reverse proxy every client has the proxy's address: list the proxy in
  ``KEFU_TRUSTED_PROXIES`` (see :mod:`channels.identity`) so each customer is counted alone;
- ``KEFU_RATE_WINDOW_S``: the window in seconds (default 60).

Memory is bounded: a key keeps at most ``limit`` timestamps, and at most ``max_keys`` keys are
kept (the least recently used go first). IPv6 clients are counted per /64 network, the block
one subscriber usually holds, so rotating addresses within it does not reset the count. The counts live in one process: with several Rasa
workers or servers each counts its own share.
"""

from __future__ import annotations

import ipaddress
import math
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

PER_CONVERSATION_ENV = "KEFU_RATE_PER_CONVERSATION"
PER_CLIENT_ENV = "KEFU_RATE_PER_CLIENT"
WINDOW_ENV = "KEFU_RATE_WINDOW_S"
DEFAULT_PER_CONVERSATION = 20
DEFAULT_PER_CLIENT = 60
DEFAULT_WINDOW_S = 60.0
DEFAULT_MAX_KEYS = 10_000

#: What a refused customer reads (the channels answer in both languages).
RATE_LIMITED_MESSAGE = (
    "You are sending messages too quickly; please wait {seconds} s and try again. "
    "您发送消息太频繁了，请等待 {seconds} 秒后再试。"
)


class SlidingWindowLimiter:
    """At most ``limit`` hits per key within any ``window_s`` seconds.

    Thread-safe; ``clock`` is injectable for tests (monotonic seconds).
    """

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 0 or window_s <= 0 or max_keys < 1:
            raise ValueError(
                f"limit must be >= 0, window_s > 0 and max_keys >= 1; got limit={limit}, "
                f"window_s={window_s}, max_keys={max_keys}"
            )
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str) -> float | None:
        """Count one hit for ``key``; None when allowed, else the seconds until it would be.

        A limit of 0 allows everything (the limit is off).
        """
        if self.limit == 0:
            return None
        with self._lock:
            now = self._clock()
            hits = self._hits.get(key)
            if hits is None:
                hits = self._hits[key] = deque(maxlen=self.limit)
                while len(self._hits) > self.max_keys:
                    self._hits.popitem(last=False)
            else:
                self._hits.move_to_end(key)
            while hits and hits[0] <= now - self.window_s:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(hits[0] + self.window_s - now, 0.001)
            hits.append(now)
            return None

    def __len__(self) -> int:
        return len(self._hits)


@dataclass(frozen=True)
class RateLimited:
    """A refused message: which limit it hit and how long to wait."""

    scope: str  # "client" or "conversation"
    retry_after_s: int

    @property
    def message(self) -> str:
        return RATE_LIMITED_MESSAGE.format(seconds=self.retry_after_s)


class MessageLimits:
    """The per-client and per-conversation limits of one channel."""

    def __init__(
        self,
        per_conversation: int = DEFAULT_PER_CONVERSATION,
        per_client: int = DEFAULT_PER_CLIENT,
        window_s: float = DEFAULT_WINDOW_S,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conversations = SlidingWindowLimiter(
            per_conversation, window_s, max_keys=max_keys, clock=clock
        )
        self.clients = SlidingWindowLimiter(per_client, window_s, max_keys=max_keys, clock=clock)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MessageLimits:
        """Limits from ``KEFU_RATE_*`` (see the module docstring).

        Raises:
            ValueError: a setting that is not a non-negative number.
        """
        environ = os.environ if environ is None else environ
        return cls(
            per_conversation=int(_setting(environ, PER_CONVERSATION_ENV, DEFAULT_PER_CONVERSATION)),
            per_client=int(_setting(environ, PER_CLIENT_ENV, DEFAULT_PER_CLIENT)),
            window_s=_setting(environ, WINDOW_ENV, DEFAULT_WINDOW_S),
        )

    def check_client(self, client: str | None) -> RateLimited | None:
        """Count a message from ``client`` (an address; None counts as one unknown client)."""
        return _refusal("client", self.clients.hit(client_bucket(client)))

    def check_conversation(self, conversation_id: str) -> RateLimited | None:
        """Count a message of ``conversation_id``."""
        return _refusal("conversation", self.conversations.hit(conversation_id))


def client_bucket(client: str | None) -> str:
    """The key a client address is counted under: itself, or its /64 for IPv6."""
    try:
        address = ipaddress.ip_address(client or "")
    except ValueError:
        return client or "?"
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _refusal(scope: str, wait: float | None) -> RateLimited | None:
    return None if wait is None else RateLimited(scope, max(1, math.ceil(wait)))


def _setting(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0 or (name == WINDOW_ENV and value == 0):
        raise ValueError(f"{name}={raw!r}: expected a non-negative number (0 turns a limit off)")
    return value
