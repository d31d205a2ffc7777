"""The simulator: deterministic for a seed, sane labels, events the consumer takes as Rasa's."""

from __future__ import annotations

import json
from collections import Counter

import sqlalchemy as sa

from analytics.models import Conversation
from analytics.simulate import DAY, labels_path, simulate, write
from tests.analytics.conftest import BASE, broker_items


def test_same_seed_same_files_other_seed_other_data(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write(simulate(60, seed=5), a)
    write(simulate(60, seed=5), b)
    assert a.read_bytes() == b.read_bytes()
    assert labels_path(a).read_bytes() == labels_path(b).read_bytes()
    assert simulate(60, seed=6).cases != simulate(60, seed=5).cases


def test_labels_follow_the_documented_drivers():
    cases = simulate(3000, seed=11).cases
    assert len(cases) == 3000
    rate = sum(c.label for c in cases) / len(cases)
    assert 0.08 < rate < 0.4

    def rate_of(selected):
        return sum(c.label for c in selected) / len(selected)

    late = [c for c in cases if c.delay_days >= 4]
    on_time = [c for c in cases if c.delay_days == 0]
    assert rate_of(late) > rate_of(on_time) + 0.1
    repeat = [c for c in cases if c.prior_contacts >= 1]
    first = [c for c in cases if c.prior_contacts == 0]
    assert rate_of(repeat) > rate_of(first) + 0.1
    # Repeated contacts are about one order: the same number, later conversations.
    per_order = Counter(c.order_number for c in cases)
    assert max(per_order.values()) > 1
    assert {c.language for c in cases} == {"en", "zh"}


def test_the_consumer_reads_simulated_conversations_like_recorded_ones(
    facts_store, analytics_engine
):
    # Before the store's "now" (a day after BASE): no event lies in the future.
    sim = simulate(40, seed=3, start=BASE - 40 * DAY)
    lines = [json.dumps(b) for b in sim.bodies]
    result = facts_store.ingest("sim", broker_items(lines))
    assert (result.skipped, result.duplicates) == (0, 0)
    assert result.accepted == len(lines)
    assert result.conversations == len(sim.cases)
    with analytics_engine.connect() as conn:
        rows = {r.sender_id: r for r in conn.execute(sa.select(Conversation))}
    for case in sim.cases:
        row = rows[case.sender_id]
        assert row.language == case.language
        assert row.fallbacks == case.fallbacks
        assert row.order_numbers == f"KF-****{case.order_number[-2:]}"
        assert row.frustration_max is not None
    # Contacts about one order share its key.
    keys = {c.order_number: set() for c in sim.cases}
    for case in sim.cases:
        keys[case.order_number].add(rows[case.sender_id].order_keys)
    assert all(len(k) == 1 for k in keys.values())
