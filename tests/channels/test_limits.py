"""The channels' sliding-window message limits, on a fake clock."""

from __future__ import annotations

import pytest

from channels.limits import (
    DEFAULT_PER_CLIENT,
    DEFAULT_PER_CONVERSATION,
    MessageLimits,
    RateLimited,
    SlidingWindowLimiter,
    client_bucket,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def test_the_window_slides(clock):
    limiter = SlidingWindowLimiter(3, 60, clock=clock)
    for _ in range(3):
        assert limiter.hit("a") is None
        clock.now += 10
    assert limiter.hit("a") == pytest.approx(30)  # the first hit leaves the window in 30 s
    assert limiter.hit("b") is None  # other keys are counted alone
    clock.now += 30
    assert limiter.hit("a") is None  # the first hit left: one place free
    assert limiter.hit("a") == pytest.approx(10)


def test_refused_hits_are_not_counted(clock):
    limiter = SlidingWindowLimiter(1, 60, clock=clock)
    assert limiter.hit("a") is None
    for _ in range(100):
        clock.now += 0.5
        assert limiter.hit("a") is not None
    clock.now = 1060.0
    assert limiter.hit("a") is None  # a flood did not extend the wait


def test_memory_is_bounded(clock):
    limiter = SlidingWindowLimiter(5, 60, max_keys=100, clock=clock)
    for i in range(10_000):
        limiter.hit(f"client-{i}")
    assert len(limiter) == 100
    assert all(len(hits) <= 5 for hits in limiter._hits.values())
    # The least recently seen keys went first: the newest are still counted.
    assert limiter.hit("client-9999") is None and len(limiter._hits["client-9999"]) == 2


def test_a_zero_limit_is_off(clock):
    limiter = SlidingWindowLimiter(0, 60, clock=clock)
    assert all(limiter.hit("a") is None for _ in range(1000))


def test_client_and_conversation_limits(clock):
    limits = MessageLimits(per_conversation=2, per_client=3, window_s=60, clock=clock)
    assert limits.check_client("203.0.113.7") is None
    assert limits.check_conversation("web-1") is None
    assert limits.check_conversation("web-1") is None
    refused = limits.check_conversation("web-1")
    assert refused == RateLimited("conversation", 60)
    assert "60 s" in refused.message and "60 秒" in refused.message
    assert limits.check_client("203.0.113.7") is None
    assert limits.check_client("203.0.113.7") is None
    assert limits.check_client("203.0.113.7").scope == "client"
    assert limits.check_client("198.51.100.1") is None


def test_settings_come_from_the_environment():
    defaults = MessageLimits.from_env({})
    assert defaults.conversations.limit == DEFAULT_PER_CONVERSATION == 20
    assert defaults.clients.limit == DEFAULT_PER_CLIENT == 60
    assert defaults.clients.window_s == 60
    custom = MessageLimits.from_env(
        {"KEFU_RATE_PER_CONVERSATION": "5", "KEFU_RATE_PER_CLIENT": "0", "KEFU_RATE_WINDOW_S": "30"}
    )
    assert (custom.conversations.limit, custom.clients.limit) == (5, 0)
    assert custom.conversations.window_s == 30


@pytest.mark.parametrize(
    "name, value",
    [
        ("KEFU_RATE_PER_CLIENT", "many"),
        ("KEFU_RATE_PER_CLIENT", "-1"),
        ("KEFU_RATE_PER_CONVERSATION", "nan"),
        ("KEFU_RATE_WINDOW_S", "0"),
    ],
)
def test_bad_settings_are_refused_by_name(name, value):
    with pytest.raises(ValueError, match=name):
        MessageLimits.from_env({name: value})


@pytest.mark.parametrize(
    "client, bucket",
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        (None, "?"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_ipv6_clients_are_counted_per_64(client, bucket):
    assert client_bucket(client) == bucket


def test_rotating_ipv6_addresses_share_one_count(clock):
    limits = MessageLimits(per_conversation=0, per_client=2, clock=clock)
    assert limits.check_client("2001:db8::1") is None
    assert limits.check_client("2001:db8::2") is None
    assert limits.check_client("2001:db8::3") is not None
