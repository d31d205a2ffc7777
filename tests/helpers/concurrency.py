"""Races: real threads released together by a barrier, for the concurrency tests."""

from __future__ import annotations

import threading


def race(fn, n: int = 4) -> tuple[list, list[Exception]]:
    """Run ``fn(i)`` in ``n`` threads released together; return (results, errors)."""
    barrier = threading.Barrier(n)
    results, errors = [], []
    lock = threading.Lock()

    def run(i):
        barrier.wait()
        try:
            r = fn(i)
            with lock:
                results.append(r)
        except Exception as e:  # noqa: BLE001 - collected and asserted on
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results, errors
