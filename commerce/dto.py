"""Frozen dataclasses the services return; the action server never sees ORM objects.

Money is ``*_cents`` (integer minor units) plus an ISO ``currency``; datetimes are naive UTC.
Bilingual text comes as ``*_en`` / ``*_zh`` pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class VerifiedCustomer:
    """Proof that the conversation speaks for ``customer_id``."""

    customer_id: int
    name: str
    order_number: str | None  # the order used to verify, None for tokens
    method: str  # "email" | "phone" | "token" | "code"


@dataclass(frozen=True)
class CodeSent:
    """A one-time code is on its way; what the chat may tell the customer about it."""

    channel: str  # "email" | "sms"
    destination: str  # masked: "a***@example.com" / "***0101"
    expires_in_s: int


@dataclass(frozen=True)
class StatusChange:
    status: str
    at: datetime
    note: str | None = None


@dataclass(frozen=True)
class OrderItemView:
    order_item_id: int
    sku: str
    product_code: str
    name_en: str
    name_zh: str
    category: str
    size: str | None
    colour: str | None
    colour_zh: str | None
    quantity: int
    unit_price_cents: int
    final_sale: bool


@dataclass(frozen=True)
class AddressView:
    recipient: str
    phone: str | None
    line1: str
    line2: str | None
    city: str
    province: str | None
    postcode: str | None
    country: str


@dataclass(frozen=True)
class TrackingEventView:
    at: datetime
    status: str
    location: str | None
    description_en: str
    description_zh: str


@dataclass(frozen=True)
class ShipmentView:
    carrier: str
    tracking_number: str
    shipped_at: datetime | None
    estimated_delivery: date | None
    delivered_at: datetime | None
    events: tuple[TrackingEventView, ...]


@dataclass(frozen=True)
class OrderSummary:
    number: str
    status: str
    placed_at: datetime
    total_cents: int
    currency: str
    item_count: int


@dataclass(frozen=True)
class OrderDetails:
    number: str
    status: str
    region: str
    currency: str
    total_cents: int
    placed_at: datetime
    delivered_at: datetime | None
    items: tuple[OrderItemView, ...]
    address: AddressView | None
    history: tuple[StatusChange, ...]
    shipments: tuple[ShipmentView, ...]
    can_cancel: bool
    can_change_address: bool


@dataclass(frozen=True)
class TrackingInfo:
    order_number: str
    status: str
    carrier: str | None
    tracking_number: str | None
    shipped_at: datetime | None
    estimated_delivery: date | None
    delivered_at: datetime | None
    latest_event: TrackingEventView | None
    events: tuple[TrackingEventView, ...]


@dataclass(frozen=True)
class CancelResult:
    order_number: str
    status: str
    already_cancelled: bool  # True when a retry found it cancelled (idempotent)
    refund_number: str | None
    refund_amount_cents: int
    currency: str


@dataclass(frozen=True)
class PurchasedItem:
    order_number: str
    placed_at: datetime
    order_status: str
    sku: str
    product_code: str
    name_en: str
    name_zh: str
    category: str
    size: str | None
    colour: str | None
    quantity: int


@dataclass(frozen=True)
class WarehouseStock:
    warehouse_code: str
    name_en: str
    name_zh: str
    available: int
    restock_date: date | None


@dataclass(frozen=True)
class VariantStock:
    sku: str
    size: str | None
    colour: str | None
    colour_zh: str | None
    price_cents: int
    currency: str
    available: int
    restock_date: date | None  # earliest restock across warehouses, None if unknown
    warehouses: tuple[WarehouseStock, ...]

    @property
    def in_stock(self) -> bool:
        return self.available > 0


@dataclass(frozen=True)
class StockAlternative:
    kind: str  # "other_colour" | "other_size" | "other_variant" | "similar_product"
    product_code: str
    name_en: str
    name_zh: str
    sku: str
    size: str | None
    colour: str | None
    colour_zh: str | None
    available: int


@dataclass(frozen=True)
class StockReport:
    product_code: str
    name_en: str
    name_zh: str
    category: str
    size: str | None  # as requested (normalised)
    colour: str | None
    quantity: int
    variants: tuple[VariantStock, ...]  # variants matching size / colour
    in_stock: bool  # some matching variant has >= quantity available
    total_available: int
    next_restock_date: date | None
    alternatives: tuple[StockAlternative, ...]


@dataclass(frozen=True)
class ProductOptions:
    """The sizes and colours a product (or the one variant a SKU names) comes in."""

    product_code: str
    sizes: tuple[str | None, ...]  # None: one size
    colours: tuple[str | None, ...]  # None: no colour


@dataclass(frozen=True)
class ExchangeOffer:
    """What an exchange of ``sku`` for another size (and colour) would send back."""

    sku: str  # the variant returned
    size: str | None  # as requested (normalised)
    colour: str | None  # as requested (normalised); None when the customer named none
    replacement: VariantStock | None  # None: nothing suitable in stock


@dataclass(frozen=True)
class SubscriptionResult:
    sku: str
    contact: str
    created: bool  # False when the same contact was already subscribed


@dataclass(frozen=True)
class ItemEligibility:
    order_item_id: int
    sku: str
    name_en: str
    name_zh: str
    quantity: int
    returnable_quantity: int
    eligible: bool
    reason: str | None  # a commerce.errors.RETURN_REASON_CODES value when not eligible


@dataclass(frozen=True)
class ReturnEligibility:
    order_number: str
    eligible: bool  # at least one item can be returned
    reason: str | None  # order-level reason when nothing is returnable
    region: str
    window_days: int | None
    no_reason: bool  # 七天无理由退货 applies
    deadline: date | None
    items: tuple[ItemEligibility, ...]


@dataclass(frozen=True)
class ReturnItemView:
    sku: str
    name_en: str
    name_zh: str
    quantity: int
    exchange_sku: str | None


@dataclass(frozen=True)
class ReturnView:
    rma_number: str
    order_number: str
    kind: str  # "return" | "exchange"
    status: str
    reason: str
    created_at: datetime
    items: tuple[ReturnItemView, ...]
    refund_estimate_cents: int
    currency: str
    created: bool = True  # False when an idempotent retry returned the existing RMA


@dataclass(frozen=True)
class RefundView:
    refund_number: str
    order_number: str
    rma_number: str | None
    amount_cents: int
    currency: str
    status: str
    reason: str
    created_at: datetime
    updated_at: datetime
    history: tuple[StatusChange, ...]
    created: bool = True  # False when an idempotent retry returned the existing refund


@dataclass(frozen=True)
class TicketView:
    ticket_number: str
    status: str
    category: str
    severity: str
    subject: str
    language: str
    assignee: str | None
    conversation_id: str | None
    order_number: str | None
    created_at: datetime


@dataclass(frozen=True)
class HandoffView:
    handoff_id: int
    ticket_number: str
    conversation_id: str
    language: str
    reason: str
    priority: int
    status: str
    assigned_to: str | None
    enqueued_at: datetime
    position: int | None  # 1-based place among waiting entries, None when not waiting
    created: bool = True  # False when the conversation already had an open handoff
    customer_id: int | None = None  # set when the conversation proved who the customer is
    #: The conversation's 0-1 complaint-risk score when queued or last asked again (None: unknown).
    risk: float | None = None
    #: ``contract.is_high_risk(risk)``: flagged in the queue and served first within its priority.
    at_risk: bool = False


@dataclass(frozen=True)
class Recommendation:
    product_code: str
    name_en: str
    name_zh: str
    category: str
    price_cents: int
    currency: str
    score: float
    reason: str  # "co_purchase" | "similar" | "best_seller" | "new_arrival" | "top_rated"
    reason_en: str = ""  # one line the chat can show: "Because you bought the Basic cotton tee"
    reason_zh: str = ""


@dataclass(frozen=True)
class CatalogProduct:
    code: str
    category: str
    name_en: str
    name_zh: str
    synonyms: tuple[str, ...]


@dataclass(frozen=True)
class CatalogTerms:
    products: tuple[CatalogProduct, ...]
    sizes: tuple[str, ...]
    colours: tuple[tuple[str, str], ...]  # (english, chinese)
    categories: tuple[tuple[str, str], ...]  # (english, chinese)


@dataclass(frozen=True)
class AgentAccount:
    """A human agent's console account (its token is never part of it)."""

    agent_id: int
    name: str
    created_at: datetime
    disabled_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True)
class AgentAuditView:
    """One line of the agent audit log."""

    audit_id: int
    agent_name: str | None  # None for a login with an unknown token
    action: str  # one of commerce.services.agents.AUDIT_ACTIONS
    handoff_id: int | None
    conversation_id: str | None
    client_key: str | None
    detail: str | None
    at: datetime


@dataclass(frozen=True)
class Money:
    """An amount in integer minor units of ``currency`` (ISO 4217)."""

    amount_cents: int
    currency: str


@dataclass(frozen=True)
class ProductFacts:
    """What the shop states about one product, priced for one store."""

    code: str
    category: str
    name_en: str
    name_zh: str
    description_en: str  # passages separated by blank lines
    description_zh: str
    attributes: tuple[tuple[str, str, str], ...]  # (attribute key, value_en, value_zh)
    price_min: Money
    price_max: Money
    sizes: tuple[str, ...]
    colours: tuple[str, ...]
    in_stock: bool
    rating: float | None
    review_count: int
    sales_count: int


@dataclass(frozen=True)
class ProductAnswer:
    """An answer to a product question in both languages, and where it came from.

    ``code`` / ``name_*`` are empty when the answer is one of the shop's FAQ answers.
    """

    code: str
    name_en: str
    name_zh: str
    text_en: str
    text_zh: str
    source: str  # "attribute" | "passage" | "price"
    score: float  # 1.0 for facts read from the catalog, the match score for passages, 0: not listed
    #: What answered: the attribute key ("waterproof"), the passage key ("description/1",
    #: "faq/shipping_time"), "price", or "" for a comparison.
    ref: str = ""


@dataclass(frozen=True)
class ProductLookup:
    """The product a text names; when none or several, the nearest ``candidates``."""

    found: ProductFacts | None
    candidates: tuple[ProductFacts, ...]
