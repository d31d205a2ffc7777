"""commerce.lifecycles: the steps each record may take, and the services that follow them."""

from __future__ import annotations

import pytest

from commerce.errors import InvalidInput, InvalidTransition
from commerce.lifecycles import (
    CANCEL,
    CHANGE_ADDRESS,
    HANDOFF,
    LIFECYCLES,
    ORDER,
    REFUND,
    REFUND_COUNTED_STATUSES,
    REQUEST_RETURN,
    RETURN,
    TICKET,
    Lifecycle,
    transition,
)
from commerce.services.orders import get_order
from commerce.services.support import (
    close_handoff,
    conversation_handoff,
    get_ticket,
    update_ticket,
)


@pytest.mark.parametrize("lifecycle", list(LIFECYCLES.values()), ids=list(LIFECYCLES))
def test_every_status_is_reachable_from_the_first(lifecycle: Lifecycle):
    seen, todo = {lifecycle.statuses[0]}, [lifecycle.statuses[0]]
    while todo:
        for target in lifecycle.steps[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    assert seen == set(lifecycle.statuses)


def test_a_table_naming_an_unknown_status_is_refused():
    with pytest.raises(ValueError, match="unknown"):
        Lifecycle("x", ("a", "b"), {"a": ("c",), "b": ()})
    with pytest.raises(ValueError, match="missing"):
        Lifecycle("x", ("a", "b"), {"a": ("b",)})


@pytest.mark.parametrize(
    "status, cancel, change_address, request_return",
    [
        ("placed", True, True, False),
        ("paid", True, True, False),
        ("packed", True, False, False),
        ("shipped", False, False, False),
        ("out_for_delivery", False, False, False),
        ("delivered", False, False, True),
        ("cancelled", False, False, False),
        ("returned", False, False, False),
    ],
)
def test_what_a_customer_may_do_with_an_order(status, cancel, change_address, request_return):
    assert ORDER.can(status, CANCEL) is cancel
    assert ORDER.can(status, CHANGE_ADDRESS) is change_address
    assert ORDER.can(status, REQUEST_RETURN) is request_return


def test_an_unknown_operation_is_a_programming_error():
    with pytest.raises(KeyError):
        ORDER.can("placed", "teleport")


@pytest.mark.parametrize(
    "entity, current, target",
    [
        ("refund", "requested", "approved"),
        ("refund", "failed", "processing"),
        ("return", "approved", "received"),
        ("order", "delivered", "returned"),
        ("handoff", "waiting", "assigned"),
        ("ticket", "resolved", "open"),
    ],
)
def test_allowed_steps(entity, current, target):
    transition(entity, current, target)
    assert LIFECYCLES[entity].allows(current, target)


@pytest.mark.parametrize(
    "entity, current, target",
    [
        ("refund", "completed", "processing"),
        ("refund", "requested", "completed"),
        ("return", "received", "cancelled"),
        ("order", "shipped", "cancelled"),
        ("handoff", "assigned", "assigned"),  # staying put is not a step
        ("handoff", "closed", "waiting"),
        ("ticket", "closed", "open"),
    ],
)
def test_forbidden_steps_raise_a_typed_error(entity, current, target):
    with pytest.raises(InvalidTransition) as e:
        transition(entity, current, target)
    assert (e.value.current, e.value.target) == (current, target)
    assert str(e.value) == f"{entity} cannot go from {current} to {target}"


def test_statuses_from_outside_are_checked():
    assert RETURN.check_status("approved") == "approved"
    with pytest.raises(InvalidInput, match="to_status"):
        REFUND.check_status("refunded")


def test_open_and_terminal_statuses():
    assert REFUND.open_statuses == ("requested", "approved", "processing", "failed")
    assert HANDOFF.open_statuses == ("waiting", "assigned")
    assert TICKET.is_terminal("closed") and not TICKET.is_terminal("resolved")
    assert "rejected" not in REFUND_COUNTED_STATUSES and "failed" in REFUND_COUNTED_STATUSES


@pytest.mark.parametrize("label", ["placed", "paid", "packed", "shipped", "delivered"])
def test_order_details_say_what_the_lifecycle_allows(session_factory, world, label):
    details = get_order(session_factory, world.alice_id, world.orders[label])
    assert details.can_cancel is ORDER.can(details.status, CANCEL)
    assert details.can_change_address is ORDER.can(details.status, CHANGE_ADDRESS)


def test_a_closed_ticket_stays_closed(session_factory, world):
    handoff = conversation_handoff(session_factory, "conv-lc", "wants a human")
    update_ticket(session_factory, handoff.ticket_number, status="closed")
    with pytest.raises(InvalidTransition):
        update_ticket(session_factory, handoff.ticket_number, status="open")
    # Closing the handoff afterwards does not reopen (or resolve) the closed ticket.
    assert close_handoff(session_factory, handoff.handoff_id).status == "closed"
    assert get_ticket(session_factory, handoff.ticket_number).status == "closed"
