"""Typed domain errors of the commerce backend.

Every error carries a stable, short snake_case ``code``; the action server maps the code to a
bilingual answer, so a code is part of the public API and must never be renamed. Errors dual-inherit
from the builtin that fits (``LookupError``, ``ValueError``, ``PermissionError``) so generic callers
can still catch them sensibly.

All codes (also in :data:`ERROR_CODES`)::

    commerce_error               base class, never raised directly
    invalid_input                malformed order number, email, phone, quantity, status ...
    configuration_error          e.g. KEFU_CUSTOMER_TOKEN_SECRET missing
    order_not_found              unknown order, or one that belongs to someone else
    product_not_found            no product matches the name / SKU
    variant_not_found            the product exists but not in that size / colour
    customer_not_found           token or id names no customer
    return_not_found             unknown RMA number (or not the customer's)
    refund_not_found             unknown refund (or not the customer's)
    ticket_not_found             unknown ticket number
    handoff_not_found            unknown handoff queue entry
    not_authorized               base of the identity errors
    verification_failed          order number + email / phone do not match
    token_invalid                customer token malformed, forged or for another audience
    token_expired                customer token past its expiry
    too_many_attempts            verification rate limit hit (``retry_after_s``)
    code_expired                 one-time code past its expiry, already used, or never sent
    order_not_cancellable        order already shipped / delivered / returned (``status``)
    address_change_not_allowed   order already packed or further (``status``)
    not_eligible_for_return      see ``reason`` (one of :data:`RETURN_REASON_CODES`)
    out_of_stock                 requested exchange / reservation cannot be served
    refund_not_allowed           nothing refundable, or a refund already open (``reason``)
    invalid_transition           a lifecycle step that is not allowed from the current status
"""

from __future__ import annotations

# Machine-readable reasons of NotEligibleForReturn; the action server words them.
REASON_NOT_DELIVERED = "not_delivered"  # suggest cancelling instead
REASON_WINDOW_EXPIRED = "window_expired"
REASON_FINAL_SALE = "final_sale"
REASON_NON_RETURNABLE_CATEGORY = "non_returnable_category"
REASON_ALREADY_RETURNED = "already_returned"
REASON_ORDER_CANCELLED = "order_cancelled"
RETURN_REASON_CODES = (
    REASON_NOT_DELIVERED,
    REASON_WINDOW_EXPIRED,
    REASON_FINAL_SALE,
    REASON_NON_RETURNABLE_CATEGORY,
    REASON_ALREADY_RETURNED,
    REASON_ORDER_CANCELLED,
)

# Machine-readable reasons of RefundNotAllowed.
REFUND_NOTHING_REFUNDABLE = "nothing_refundable"
REFUND_ALREADY_OPEN = "refund_already_open"
REFUND_ORDER_NOT_REFUNDABLE = "order_not_refundable"
REFUND_REASON_CODES = (
    REFUND_NOTHING_REFUNDABLE,
    REFUND_ALREADY_OPEN,
    REFUND_ORDER_NOT_REFUNDABLE,
)


class CommerceError(Exception):
    """Base of every commerce error.

    Args:
        message: English text for logs; users see the bilingual text the action server picks
            from ``code``.
    """

    code = "commerce_error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code


class InvalidInput(CommerceError, ValueError):
    """Input that cannot be valid (malformed order number, absurd quantity ...)."""

    code = "invalid_input"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class ConfigurationError(CommerceError, RuntimeError):
    """The backend is misconfigured (e.g. no token secret)."""

    code = "configuration_error"


class OrderNotFound(CommerceError, LookupError):
    """No such order for this customer (also raised for other customers' orders)."""

    code = "order_not_found"


class ProductNotFound(CommerceError, LookupError):
    """No product matches the query."""

    code = "product_not_found"


class VariantNotFound(ProductNotFound):
    """The product is not offered in the requested size / colour."""

    code = "variant_not_found"


class CustomerNotFound(CommerceError, LookupError):
    """No customer with that id."""

    code = "customer_not_found"


class ReturnNotFound(CommerceError, LookupError):
    """Unknown RMA number for this customer."""

    code = "return_not_found"


class RefundNotFound(CommerceError, LookupError):
    """Unknown refund for this customer."""

    code = "refund_not_found"


class TicketNotFound(CommerceError, LookupError):
    """Unknown support ticket."""

    code = "ticket_not_found"


class HandoffNotFound(CommerceError, LookupError):
    """Unknown handoff queue entry."""

    code = "handoff_not_found"


class NotAuthorized(CommerceError, PermissionError):
    """Base of identity failures."""

    code = "not_authorized"


class VerificationFailed(NotAuthorized):
    """Order number and email / phone do not belong together (or the order is unknown)."""

    code = "verification_failed"


class TokenInvalid(NotAuthorized):
    """A customer token that is malformed, forged or otherwise unusable."""

    code = "token_invalid"


class TokenExpired(TokenInvalid):
    """A customer token past its expiry time."""

    code = "token_expired"


class TooManyAttempts(NotAuthorized):
    """Too many failed verifications (per contact, client or conversation), codes or handoffs.

    Args:
        retry_after_s: seconds until the oldest counted failure leaves the window.
    """

    code = "too_many_attempts"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class CodeExpired(NotAuthorized):
    """The one-time code is past its expiry, already used or superseded; ask for a new one."""

    code = "code_expired"


class OrderNotCancellable(CommerceError):
    """The order has shipped (or is otherwise past cancelling)."""

    code = "order_not_cancellable"

    def __init__(self, order_number: str, status: str) -> None:
        super().__init__(
            f"order {order_number} is {status}; only unshipped orders can be cancelled"
        )
        self.order_number = order_number
        self.status = status


class AddressChangeNotAllowed(CommerceError):
    """The order is packed or further along; the address is fixed."""

    code = "address_change_not_allowed"

    def __init__(self, order_number: str, status: str) -> None:
        super().__init__(
            f"order {order_number} is {status}; the address can change only before packing"
        )
        self.order_number = order_number
        self.status = status


class NotEligibleForReturn(CommerceError):
    """The order or item cannot be returned; ``reason`` says why.

    Args:
        reason: one of :data:`RETURN_REASON_CODES`.
        detail: English explanation for logs.
    """

    code = "not_eligible_for_return"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


class OutOfStock(CommerceError):
    """Not enough available stock for the requested variant."""

    code = "out_of_stock"

    def __init__(self, sku: str, requested: int, available: int) -> None:
        super().__init__(f"{sku}: requested {requested}, available {available}")
        self.sku = sku
        self.requested = requested
        self.available = available


class RefundNotAllowed(CommerceError):
    """No refund can be opened; ``reason`` is one of :data:`REFUND_REASON_CODES`."""

    code = "refund_not_allowed"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


class InvalidTransition(CommerceError):
    """A lifecycle step not allowed from the current status."""

    code = "invalid_transition"

    def __init__(self, entity: str, current: str, target: str) -> None:
        super().__init__(f"{entity} cannot go from {current} to {target}")
        self.current = current
        self.target = target


def _all_error_classes() -> list[type[CommerceError]]:
    seen: list[type[CommerceError]] = []
    stack: list[type[CommerceError]] = [CommerceError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


#: Every error code, mapped to its class; the action server's response table must cover all.
ERROR_CODES: dict[str, type[CommerceError]] = {c.code: c for c in _all_error_classes()}
