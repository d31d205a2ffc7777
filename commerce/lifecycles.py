"""What may happen to an order, a return, a refund, a ticket and a handoff: the one home of the
lifecycle rules the services enforce.

Each entity has a :class:`Lifecycle`: its statuses, the steps allowed from each status, and the
named operations a customer or agent may start from which statuses (``ORDER.can(status,
CANCEL)``). Services call :meth:`Lifecycle.check` before they change a status, so a forbidden
step raises :class:`~commerce.errors.InvalidTransition` with the entity's name, and
:meth:`Lifecycle.check_status` for a status that comes from outside (an operator's command).

The status names themselves are the schema's (:mod:`commerce.models`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from commerce.errors import InvalidInput, InvalidTransition
from commerce.models import (
    HANDOFF_ASSIGNED,
    HANDOFF_CLOSED,
    HANDOFF_STATUSES,
    HANDOFF_WAITING,
    ORDER_CANCELLED,
    ORDER_DELIVERED,
    ORDER_OUT_FOR_DELIVERY,
    ORDER_PACKED,
    ORDER_PAID,
    ORDER_PLACED,
    ORDER_RETURNED,
    ORDER_SHIPPED,
    ORDER_STATUSES,
    REFUND_APPROVED,
    REFUND_COMPLETED,
    REFUND_FAILED,
    REFUND_PROCESSING,
    REFUND_REJECTED,
    REFUND_REQUESTED,
    REFUND_STATUSES,
    RETURN_APPROVED,
    RETURN_CANCELLED,
    RETURN_COMPLETED,
    RETURN_RECEIVED,
    RETURN_REJECTED,
    RETURN_REQUESTED,
    RETURN_STATUSES,
    TICKET_CLOSED,
    TICKET_IN_PROGRESS,
    TICKET_OPEN,
    TICKET_RESOLVED,
    TICKET_STATUSES,
)

#: Order operations (see :meth:`Lifecycle.can`).
CANCEL = "cancel"
CHANGE_ADDRESS = "change_address"
REQUEST_RETURN = "request_return"


@dataclass(frozen=True)
class Lifecycle:
    """The statuses of one kind of record and the steps allowed between them.

    Args:
        entity: the name errors use (``"refund"`` in "refund cannot go from ... to ...").
        statuses: every status, in order of progress.
        steps: for each status, the statuses it may move to (none: terminal).
        operations: named operations and the statuses they may start from.
    """

    entity: str
    statuses: tuple[str, ...]
    steps: Mapping[str, tuple[str, ...]]
    operations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = {s for targets in self.steps.values() for s in targets} | set(self.steps)
        unknown -= set(self.statuses)
        missing = set(self.statuses) - set(self.steps)
        if unknown or missing:
            raise ValueError(f"{self.entity} lifecycle: unknown {unknown}, missing {missing}")

    def allows(self, current: str, target: str) -> bool:
        """Whether one step may go from ``current`` to ``target``."""
        return target in self.steps.get(current, ())

    def check(self, current: str, target: str) -> None:
        """Raise unless one step may go from ``current`` to ``target``.

        Raises:
            InvalidTransition: the step is not allowed (staying put is not a step either).
        """
        if not self.allows(current, target):
            raise InvalidTransition(self.entity, current, target)

    def check_status(self, status: object, field_name: str = "to_status") -> str:
        """A status given from outside, checked to be one of this lifecycle's.

        Raises:
            InvalidInput: not a status of this entity.
        """
        if status not in self.statuses:
            raise InvalidInput(field_name, f"expected one of {sorted(self.statuses)}")
        return status  # type: ignore[return-value]

    def can(self, status: str, operation: str) -> bool:
        """Whether ``operation`` (e.g. :data:`CANCEL`) may start from ``status``."""
        if operation not in self.operations:
            raise KeyError(f"{self.entity} has no operation {operation!r}")
        return status in self.operations[operation]

    def is_terminal(self, status: str) -> bool:
        """Nothing more can happen from ``status``."""
        return not self.steps.get(status)

    @property
    def open_statuses(self) -> tuple[str, ...]:
        """Statuses something can still happen from, in order of progress."""
        return tuple(s for s in self.statuses if not self.is_terminal(s))


ORDER = Lifecycle(
    "order",
    ORDER_STATUSES,
    {
        ORDER_PLACED: (ORDER_PAID, ORDER_CANCELLED),
        ORDER_PAID: (ORDER_PACKED, ORDER_CANCELLED),
        ORDER_PACKED: (ORDER_SHIPPED, ORDER_CANCELLED),
        ORDER_SHIPPED: (ORDER_OUT_FOR_DELIVERY, ORDER_DELIVERED),
        ORDER_OUT_FOR_DELIVERY: (ORDER_DELIVERED,),
        # Once every unit is received back.
        ORDER_DELIVERED: (ORDER_RETURNED,),
        ORDER_CANCELLED: (),
        ORDER_RETURNED: (),
    },
    {
        # Cancel only before shipment; change the address only before packing.
        CANCEL: (ORDER_PLACED, ORDER_PAID, ORDER_PACKED),
        CHANGE_ADDRESS: (ORDER_PLACED, ORDER_PAID),
        # Items are returned once delivered (commerce.policies decides which, and until when).
        REQUEST_RETURN: (ORDER_DELIVERED,),
    },
)
#: Order statuses in which the customer has paid (a cancel then opens a refund).
ORDER_PAID_STATUSES = (
    ORDER_PAID,
    ORDER_PACKED,
    ORDER_SHIPPED,
    ORDER_OUT_FOR_DELIVERY,
    ORDER_DELIVERED,
)
#: Order statuses in which nothing was or will be delivered to keep: the whole total is owed back
#: (when it was paid).
ORDER_UNDONE_STATUSES = (ORDER_CANCELLED, ORDER_RETURNED)

RETURN = Lifecycle(
    "return",
    RETURN_STATUSES,
    {
        RETURN_REQUESTED: (RETURN_APPROVED, RETURN_REJECTED, RETURN_CANCELLED),
        RETURN_APPROVED: (RETURN_RECEIVED, RETURN_CANCELLED),
        RETURN_RECEIVED: (RETURN_COMPLETED,),
        RETURN_COMPLETED: (),
        RETURN_REJECTED: (),
        RETURN_CANCELLED: (),
    },
)
#: Returns whose items count as returned (cannot be returned again).
RETURN_COUNTED_STATUSES = (RETURN_REQUESTED, RETURN_APPROVED, RETURN_RECEIVED, RETURN_COMPLETED)
#: Returns whose items are back in the warehouse (and owed to the customer).
RETURN_RECEIVED_STATUSES = (RETURN_RECEIVED, RETURN_COMPLETED)
#: Steps after which an exchange's reserved replacement units go back on sale.
RETURN_RELEASING_STATUSES = (RETURN_CANCELLED, RETURN_REJECTED)

REFUND = Lifecycle(
    "refund",
    REFUND_STATUSES,
    {
        REFUND_REQUESTED: (REFUND_APPROVED, REFUND_REJECTED),
        REFUND_APPROVED: (REFUND_PROCESSING, REFUND_REJECTED),
        REFUND_PROCESSING: (REFUND_COMPLETED, REFUND_FAILED),
        REFUND_FAILED: (REFUND_PROCESSING,),  # retried
        REFUND_COMPLETED: (),
        REFUND_REJECTED: (),
    },
)
#: Refunds that count against what an order can still be refunded (all but rejected ones).
REFUND_COUNTED_STATUSES = tuple(s for s in REFUND_STATUSES if s != REFUND_REJECTED)

TICKET = Lifecycle(
    "ticket",
    TICKET_STATUSES,
    {
        # Agents move a ticket freely until it is closed; closed is final.
        TICKET_OPEN: (TICKET_IN_PROGRESS, TICKET_RESOLVED, TICKET_CLOSED),
        TICKET_IN_PROGRESS: (TICKET_OPEN, TICKET_RESOLVED, TICKET_CLOSED),
        TICKET_RESOLVED: (TICKET_OPEN, TICKET_IN_PROGRESS, TICKET_CLOSED),
        TICKET_CLOSED: (),
    },
)
#: Tickets still to be worked on.
TICKET_ACTIVE_STATUSES = (TICKET_OPEN, TICKET_IN_PROGRESS)

HANDOFF = Lifecycle(
    "handoff",
    HANDOFF_STATUSES,
    {
        HANDOFF_WAITING: (HANDOFF_ASSIGNED, HANDOFF_CLOSED),
        HANDOFF_ASSIGNED: (HANDOFF_CLOSED,),
        HANDOFF_CLOSED: (),
    },
)

LIFECYCLES: dict[str, Lifecycle] = {
    lc.entity: lc for lc in (ORDER, RETURN, REFUND, TICKET, HANDOFF)
}


def transition(entity: str, current: str, target: str) -> None:
    """Raise unless ``entity`` (``"order"``, ``"refund"`` ...) may go from ``current`` to ``target``.

    Raises:
        InvalidTransition: the step is not allowed.
    """
    LIFECYCLES[entity].check(current, target)
