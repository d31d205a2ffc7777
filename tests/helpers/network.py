"""Local ports and services for the tests that start or talk to servers."""

from __future__ import annotations

import socket

import pytest


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
