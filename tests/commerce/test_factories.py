"""The test world and the demo seed never share an order number."""

from __future__ import annotations

import commerce_factories as factories

from commerce.seed import FILLER_ORDERS, SHOWCASE
from commerce.services.identity import normalize_order_number


def test_world_orders_are_numbered_apart_from_the_seed(session_factory):
    world = factories.build_world(session_factory)
    seeded = {number for number, *_ in SHOWCASE} | {
        f"KF-{300000 + i}" for i in range(1, FILLER_ORDERS + 1)
    }
    numbers = set(world.orders.values())
    assert numbers and not numbers & seeded
    assert all(n.startswith(("KF-19", "KF-29")) for n in numbers)
    assert all(normalize_order_number(n) == n for n in numbers)
