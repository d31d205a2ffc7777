"""SQLAlchemy 1.4 models (classic ``Column`` style; Rasa 3.6 pins SQLAlchemy 1.4).

Money is stored as integer minor units (``*_cents``) with an ISO currency, never as floats.
Timestamps are naive UTC. Status values are plain strings listed in the constants below so
migrations stay simple on both SQLite and PostgreSQL; what may happen in each status (cancel,
approve, claim ...) is in :mod:`commerce.lifecycles`.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import declarative_base, relationship

from contract import DEFAULT_LANGUAGE

# Deterministic constraint names so Alembic migrations are portable.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
Base = declarative_base(metadata=MetaData(naming_convention=NAMING_CONVENTION))

# Regions / stores.
REGION_CN = "CN"
REGION_US = "US"
REGION_INTL = "INTL"
REGIONS = (REGION_CN, REGION_US, REGION_INTL)

# Order lifecycle, in order of progress (cancelled / returned are terminal side branches).
ORDER_PLACED = "placed"
ORDER_PAID = "paid"
ORDER_PACKED = "packed"
ORDER_SHIPPED = "shipped"
ORDER_OUT_FOR_DELIVERY = "out_for_delivery"
ORDER_DELIVERED = "delivered"
ORDER_CANCELLED = "cancelled"
ORDER_RETURNED = "returned"
ORDER_STATUSES = (
    ORDER_PLACED,
    ORDER_PAID,
    ORDER_PACKED,
    ORDER_SHIPPED,
    ORDER_OUT_FOR_DELIVERY,
    ORDER_DELIVERED,
    ORDER_CANCELLED,
    ORDER_RETURNED,
)

# Returns (RMA) lifecycle.
RETURN_KIND_RETURN = "return"
RETURN_KIND_EXCHANGE = "exchange"
RETURN_REQUESTED = "requested"
RETURN_APPROVED = "approved"
RETURN_RECEIVED = "received"
RETURN_COMPLETED = "completed"  # refunded or exchange shipped
RETURN_REJECTED = "rejected"
RETURN_CANCELLED = "cancelled"
RETURN_STATUSES = (
    RETURN_REQUESTED,
    RETURN_APPROVED,
    RETURN_RECEIVED,
    RETURN_COMPLETED,
    RETURN_REJECTED,
    RETURN_CANCELLED,
)

# Refund lifecycle.
REFUND_REQUESTED = "requested"
REFUND_APPROVED = "approved"
REFUND_PROCESSING = "processing"
REFUND_COMPLETED = "completed"
REFUND_REJECTED = "rejected"
REFUND_FAILED = "failed"
REFUND_STATUSES = (
    REFUND_REQUESTED,
    REFUND_APPROVED,
    REFUND_PROCESSING,
    REFUND_COMPLETED,
    REFUND_REJECTED,
    REFUND_FAILED,
)

# Tickets and the handoff queue.
TICKET_OPEN = "open"
TICKET_IN_PROGRESS = "in_progress"
TICKET_RESOLVED = "resolved"
TICKET_CLOSED = "closed"
TICKET_STATUSES = (TICKET_OPEN, TICKET_IN_PROGRESS, TICKET_RESOLVED, TICKET_CLOSED)
TICKET_SEVERITIES = ("low", "normal", "high", "urgent")
TICKET_CATEGORIES = (
    "order",
    "delivery",
    "return",
    "refund",
    "product",
    "account",
    "payment",
    "complaint",
    "other",
)
HANDOFF_WAITING = "waiting"
HANDOFF_ASSIGNED = "assigned"
HANDOFF_CLOSED = "closed"
HANDOFF_STATUSES = (HANDOFF_WAITING, HANDOFF_ASSIGNED, HANDOFF_CLOSED)


class Customer(Base):
    __tablename__ = "customers"

    id = Column(Integer, primary_key=True)
    name = Column(String(120), nullable=False)
    email = Column(String(254), nullable=False, unique=True)  # stored lower-case
    phone = Column(String(20), nullable=True, index=True)  # digits with country code
    region = Column(String(8), nullable=False)
    language = Column(String(8), nullable=False, default=DEFAULT_LANGUAGE)
    created_at = Column(DateTime, nullable=False)

    orders = relationship("Order", back_populates="customer")


class Product(Base):
    __tablename__ = "products"

    id = Column(Integer, primary_key=True)
    code = Column(String(40), nullable=False, unique=True)  # e.g. "TRAIL-RUNNER-2"
    category = Column(String(40), nullable=False, index=True)
    name_en = Column(String(200), nullable=False)
    name_zh = Column(String(200), nullable=False)
    description_en = Column(Text, nullable=False, default="")
    description_zh = Column(Text, nullable=False, default="")
    # Comma-separated synonyms in both languages, for the catalog entity extractor.
    synonyms = Column(Text, nullable=False, default="")
    # Comma-separated attribute tags (material, style ...) used for "similar" recommendations.
    tags = Column(Text, nullable=False, default="")
    #: Mean review rating 1-5; None until the product has reviews.
    rating = Column(Float, nullable=True)
    review_count = Column(Integer, nullable=False, default=0)
    #: Units sold to date across stores ("best seller" ranks by it).
    sales_count = Column(Integer, nullable=False, default=0)
    #: The day it arrived in the shop ("new arrivals"); None for products older than the records.
    arrived_on = Column(Date, nullable=True)

    variants = relationship(
        "ProductVariant", back_populates="product", order_by="ProductVariant.id"
    )


class ProductVariant(Base):
    __tablename__ = "product_variants"

    id = Column(Integer, primary_key=True)
    product_id = Column(ForeignKey("products.id"), nullable=False, index=True)
    sku = Column(String(60), nullable=False, unique=True)
    size = Column(String(20), nullable=True)  # None for one-size items
    colour = Column(String(30), nullable=True)  # canonical English key, see commerce.catalog
    price_cents = Column(Integer, nullable=False)
    currency = Column(String(3), nullable=False)
    final_sale = Column(Boolean, nullable=False, default=False)

    product = relationship("Product", back_populates="variants")
    prices = relationship("VariantPrice", order_by="VariantPrice.store")


# Stores: which prices and currency a shopper sees (commerce.services.products.store_for).
STORE_CN = "CN"
STORE_INTL = "INTL"
STORES = (STORE_CN, STORE_INTL)
STORE_CURRENCIES = {STORE_CN: "CNY", STORE_INTL: "USD"}


class VariantPrice(Base):
    """A variant's price in one store, in that store's currency (the catalog's price list)."""

    __tablename__ = "variant_prices"
    __table_args__ = (
        UniqueConstraint("variant_id", "store", name="uq_variant_prices_variant_store"),
    )

    id = Column(Integer, primary_key=True)
    variant_id = Column(ForeignKey("product_variants.id"), nullable=False)
    store = Column(String(8), nullable=False)  # one of STORES
    price_cents = Column(Integer, nullable=False)
    currency = Column(String(3), nullable=False)


class ProductAttribute(Base):
    """One structured fact about a product; keys are ``commerce.vocabulary.PRODUCT_ATTRIBUTES``."""

    __tablename__ = "product_attributes"
    __table_args__ = (
        UniqueConstraint("product_id", "key", name="uq_product_attributes_product_key"),
    )

    id = Column(Integer, primary_key=True)
    product_id = Column(ForeignKey("products.id"), nullable=False)
    key = Column(String(30), nullable=False)
    #: For yes/no attributes (waterproof, hood ...): the answer; None for descriptive ones.
    flag = Column(Boolean, nullable=True)
    value_en = Column(String(300), nullable=False)
    value_zh = Column(String(300), nullable=False)


class SizeGuide(Base):
    """Body or foot measurements behind one size of a category."""

    __tablename__ = "size_guides"
    __table_args__ = (UniqueConstraint("category", "size", name="uq_size_guides_category_size"),)

    id = Column(Integer, primary_key=True)
    category = Column(String(40), nullable=False)
    size = Column(String(20), nullable=False)
    position = Column(Integer, nullable=False)  # order of the sizes in the guide
    measurements_en = Column(String(200), nullable=False)
    measurements_zh = Column(String(200), nullable=False)


class Warehouse(Base):
    __tablename__ = "warehouses"

    id = Column(Integer, primary_key=True)
    code = Column(String(10), nullable=False, unique=True)
    name_en = Column(String(100), nullable=False)
    name_zh = Column(String(100), nullable=False)
    region = Column(String(8), nullable=False)


class Inventory(Base):
    __tablename__ = "inventory"
    __table_args__ = (
        UniqueConstraint("variant_id", "warehouse_id", name="uq_inventory_variant_wh"),
    )

    id = Column(Integer, primary_key=True)
    variant_id = Column(ForeignKey("product_variants.id"), nullable=False)
    warehouse_id = Column(ForeignKey("warehouses.id"), nullable=False)
    on_hand = Column(Integer, nullable=False, default=0)
    reserved = Column(Integer, nullable=False, default=0)
    restock_date = Column(Date, nullable=True)


class Order(Base):
    __tablename__ = "orders"

    id = Column(Integer, primary_key=True)
    number = Column(String(20), nullable=False, unique=True)  # "KF-100023"
    customer_id = Column(ForeignKey("customers.id"), nullable=False, index=True)
    region = Column(String(8), nullable=False)
    currency = Column(String(3), nullable=False)
    status = Column(String(20), nullable=False)
    total_cents = Column(Integer, nullable=False)
    placed_at = Column(DateTime, nullable=False)
    delivered_at = Column(DateTime, nullable=True)
    updated_at = Column(DateTime, nullable=False)

    customer = relationship("Customer", back_populates="orders")
    items = relationship("OrderItem", back_populates="order", order_by="OrderItem.id")
    history = relationship(
        "OrderStatusEvent", back_populates="order", order_by="OrderStatusEvent.id"
    )
    address = relationship("ShippingAddress", back_populates="order", uselist=False)
    shipments = relationship("Shipment", back_populates="order", order_by="Shipment.id")


class OrderStatusEvent(Base):
    __tablename__ = "order_status_events"

    id = Column(Integer, primary_key=True)
    order_id = Column(ForeignKey("orders.id"), nullable=False, index=True)
    status = Column(String(20), nullable=False)
    at = Column(DateTime, nullable=False)
    note = Column(String(200), nullable=True)

    order = relationship("Order", back_populates="history")


class OrderItem(Base):
    __tablename__ = "order_items"

    id = Column(Integer, primary_key=True)
    order_id = Column(ForeignKey("orders.id"), nullable=False, index=True)
    variant_id = Column(ForeignKey("product_variants.id"), nullable=False, index=True)
    warehouse_id = Column(ForeignKey("warehouses.id"), nullable=True)  # fulfilment warehouse
    quantity = Column(Integer, nullable=False)
    unit_price_cents = Column(Integer, nullable=False)
    final_sale = Column(Boolean, nullable=False, default=False)  # snapshot at purchase time

    order = relationship("Order", back_populates="items")
    variant = relationship("ProductVariant")


class ShippingAddress(Base):
    __tablename__ = "shipping_addresses"

    id = Column(Integer, primary_key=True)
    order_id = Column(ForeignKey("orders.id"), nullable=False, unique=True)
    recipient = Column(String(120), nullable=False)
    phone = Column(String(20), nullable=True)
    line1 = Column(String(200), nullable=False)
    line2 = Column(String(200), nullable=True)
    city = Column(String(100), nullable=False)
    province = Column(String(100), nullable=True)
    postcode = Column(String(20), nullable=True)
    country = Column(String(2), nullable=False)
    updated_at = Column(DateTime, nullable=False)

    order = relationship("Order", back_populates="address")


class Shipment(Base):
    __tablename__ = "shipments"

    id = Column(Integer, primary_key=True)
    order_id = Column(ForeignKey("orders.id"), nullable=False, index=True)
    carrier = Column(String(40), nullable=False)
    tracking_number = Column(String(60), nullable=False, unique=True)
    shipped_at = Column(DateTime, nullable=True)
    estimated_delivery = Column(Date, nullable=True)
    delivered_at = Column(DateTime, nullable=True)

    order = relationship("Order", back_populates="shipments")
    events = relationship("TrackingEvent", back_populates="shipment", order_by="TrackingEvent.at")


class TrackingEvent(Base):
    __tablename__ = "tracking_events"

    id = Column(Integer, primary_key=True)
    shipment_id = Column(ForeignKey("shipments.id"), nullable=False, index=True)
    at = Column(DateTime, nullable=False)
    status = Column(String(30), nullable=False)
    location = Column(String(100), nullable=True)
    description_en = Column(String(300), nullable=False)
    description_zh = Column(String(300), nullable=False)

    shipment = relationship("Shipment", back_populates="events")


class ReturnPolicy(Base):
    """Return rule for a (region, category); ``category`` NULL is the region's default."""

    __tablename__ = "return_policies"
    __table_args__ = (UniqueConstraint("region", "category", name="uq_return_policies_region_cat"),)

    id = Column(Integer, primary_key=True)
    region = Column(String(8), nullable=False)
    category = Column(String(40), nullable=True)
    returnable = Column(Boolean, nullable=False, default=True)
    window_days = Column(Integer, nullable=False, default=30)
    no_reason = Column(Boolean, nullable=False, default=False)  # 七天无理由退货
    description_en = Column(String(300), nullable=False, default="")
    description_zh = Column(String(300), nullable=False, default="")


class Return(Base):
    """A return or exchange request, identified to the customer by its RMA number."""

    __tablename__ = "returns"

    id = Column(Integer, primary_key=True)
    rma_number = Column(String(20), nullable=False, unique=True)
    order_id = Column(ForeignKey("orders.id"), nullable=False, index=True)
    customer_id = Column(ForeignKey("customers.id"), nullable=False, index=True)
    kind = Column(String(10), nullable=False)  # return | exchange
    reason = Column(String(300), nullable=False)
    status = Column(String(20), nullable=False)
    idempotency_key = Column(String(100), nullable=True, unique=True)
    created_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime, nullable=False)

    items = relationship("ReturnItem", back_populates="ret", order_by="ReturnItem.id")


class ReturnItem(Base):
    """One returned order line; for exchanges it names the replacement variant."""

    __tablename__ = "return_items"

    id = Column(Integer, primary_key=True)
    return_id = Column(ForeignKey("returns.id"), nullable=False, index=True)
    order_item_id = Column(ForeignKey("order_items.id"), nullable=False, index=True)
    quantity = Column(Integer, nullable=False)
    exchange_variant_id = Column(ForeignKey("product_variants.id"), nullable=True)
    exchange_warehouse_id = Column(ForeignKey("warehouses.id"), nullable=True)

    ret = relationship("Return", back_populates="items")
    order_item = relationship("OrderItem")
    exchange_variant = relationship("ProductVariant")


class Refund(Base):
    __tablename__ = "refunds"

    id = Column(Integer, primary_key=True)
    refund_number = Column(String(20), nullable=False, unique=True)
    order_id = Column(ForeignKey("orders.id"), nullable=False, index=True)
    return_id = Column(ForeignKey("returns.id"), nullable=True, unique=True)
    amount_cents = Column(Integer, nullable=False)
    currency = Column(String(3), nullable=False)
    status = Column(String(20), nullable=False)
    reason = Column(String(300), nullable=False)
    idempotency_key = Column(String(100), nullable=True, unique=True)
    created_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime, nullable=False)

    events = relationship("RefundEvent", back_populates="refund", order_by="RefundEvent.id")


class RefundEvent(Base):
    __tablename__ = "refund_events"

    id = Column(Integer, primary_key=True)
    refund_id = Column(ForeignKey("refunds.id"), nullable=False, index=True)
    status = Column(String(20), nullable=False)
    at = Column(DateTime, nullable=False)
    note = Column(String(200), nullable=True)

    refund = relationship("Refund", back_populates="events")


class SupportTicket(Base):
    __tablename__ = "support_tickets"

    id = Column(Integer, primary_key=True)
    ticket_number = Column(String(20), nullable=False, unique=True)
    customer_id = Column(ForeignKey("customers.id"), nullable=True, index=True)
    order_id = Column(ForeignKey("orders.id"), nullable=True)
    conversation_id = Column(String(100), nullable=True, index=True)
    category = Column(String(20), nullable=False)
    severity = Column(String(10), nullable=False)
    subject = Column(String(200), nullable=False)
    transcript = Column(Text, nullable=False, default="")
    language = Column(String(8), nullable=False, default=DEFAULT_LANGUAGE)
    assignee = Column(String(100), nullable=True)
    status = Column(String(20), nullable=False)
    created_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime, nullable=False)


class HandoffRequest(Base):
    """An entry of the human-handoff queue an agent console polls."""

    __tablename__ = "handoff_queue"

    id = Column(Integer, primary_key=True)
    ticket_id = Column(ForeignKey("support_tickets.id"), nullable=False, unique=True)
    conversation_id = Column(String(100), nullable=False, index=True)
    language = Column(String(8), nullable=False, default=DEFAULT_LANGUAGE)
    reason = Column(String(200), nullable=False)
    #: Keyed hash of the client address that asked (per-client handoff limits).
    client_key = Column(String(64), nullable=True, index=True)
    priority = Column(Integer, nullable=False, default=2)  # 0 urgent .. 3 low
    #: The conversation's 0-1 complaint-risk score (``analytics.risk``) when it was queued or
    #: last asked again; None when the action server had no score. At
    #: ``contract.HIGH_COMPLAINT_RISK`` or above the entry is flagged "at risk" in the queue.
    risk = Column(Float, nullable=True)
    status = Column(String(20), nullable=False)
    assigned_to = Column(String(100), nullable=True)
    enqueued_at = Column(DateTime, nullable=False)
    assigned_at = Column(DateTime, nullable=True)
    closed_at = Column(DateTime, nullable=True)

    ticket = relationship("SupportTicket")


class BackInStockSubscription(Base):
    __tablename__ = "back_in_stock_subscriptions"
    __table_args__ = (
        UniqueConstraint("variant_id", "contact", name="uq_back_in_stock_variant_contact"),
    )

    id = Column(Integer, primary_key=True)
    variant_id = Column(ForeignKey("product_variants.id"), nullable=False)
    customer_id = Column(ForeignKey("customers.id"), nullable=True)
    contact = Column(String(254), nullable=False)  # normalized email
    created_at = Column(DateTime, nullable=False)
    notified_at = Column(DateTime, nullable=True)


class VerificationAttempt(Base):
    """One identity check; failures within a sliding window drive the rate limit."""

    __tablename__ = "verification_attempts"
    __table_args__ = (
        Index("ix_verification_attempts_conv_at", "conversation_id", "at"),
        Index("ix_verification_attempts_order_at", "order_number", "at"),
        Index("ix_verification_attempts_contact_at", "contact_key", "at"),
        Index("ix_verification_attempts_client_at", "client_key", "at"),
    )

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(100), nullable=False)
    order_number = Column(String(20), nullable=True)
    #: Keyed hash of the normalised email/phone that was tried (never the contact itself).
    contact_key = Column(String(64), nullable=True)
    #: Keyed hash of the client address the attempt came from (None when the channel gave none).
    client_key = Column(String(64), nullable=True)
    #: "order" (order number + email/phone) or "code" (a one-time code).
    kind = Column(String(10), nullable=False, default="order")
    success = Column(Boolean, nullable=False)
    at = Column(DateTime, nullable=False)


class VerificationCode(Base):
    """A one-time code sent to the email or phone on file; only its hash is stored."""

    __tablename__ = "verification_codes"
    __table_args__ = (Index("ix_verification_codes_conv_created", "conversation_id", "created_at"),)

    id = Column(Integer, primary_key=True)
    customer_id = Column(ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True)
    conversation_id = Column(String(100), nullable=False)
    channel = Column(String(10), nullable=False)  # email | sms
    code_hash = Column(String(128), nullable=False)
    attempts = Column(Integer, nullable=False, default=0)
    created_at = Column(DateTime, nullable=False)
    expires_at = Column(DateTime, nullable=False)
    used_at = Column(DateTime, nullable=True)


class ConversationIdentity(Base):
    """Who a conversation was verified as, by what, and until when (for audit and forgetting)."""

    __tablename__ = "conversation_identities"
    __table_args__ = (
        Index("ix_conversation_identities_conv_at", "conversation_id", "verified_at"),
    )

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(100), nullable=False)
    customer_id = Column(ForeignKey("customers.id", ondelete="CASCADE"), nullable=False, index=True)
    method = Column(String(10), nullable=False)  # email | phone | token | code
    order_number = Column(String(20), nullable=True)
    verified_at = Column(DateTime, nullable=False)
    expires_at = Column(DateTime, nullable=True)


class OutboxMessage(Base):
    """A message to a customer (email or SMS) written first, delivered by a sender after."""

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_status_created", "status", "created_at"),)

    id = Column(Integer, primary_key=True)
    kind = Column(String(40), nullable=False)  # verification_code, ...
    channel = Column(String(10), nullable=False)  # email | sms | chat (web chat, else email)
    recipient = Column(String(254), nullable=False)
    subject = Column(String(200), nullable=False, default="")
    #: Cleared to a masked summary once delivered, so a code never rests here in clear.
    body = Column(Text, nullable=False, default="")
    dedupe_key = Column(String(120), nullable=True, unique=True)
    status = Column(String(10), nullable=False)  # pending | sending | sent | failed | cancelled
    attempts = Column(Integer, nullable=False, default=0)
    last_error = Column(String(200), nullable=True)
    created_at = Column(DateTime, nullable=False)
    #: When a sender took it (status "sending"); a claim older than a few minutes is retried.
    claimed_at = Column(DateTime, nullable=True)
    sent_at = Column(DateTime, nullable=True)


class Agent(Base):
    """A human agent's console account; tokens and passwords are stored hashed."""

    __tablename__ = "agents"

    id = Column(Integer, primary_key=True)
    name = Column(String(40), nullable=False, unique=True)
    token_hash = Column(String(128), nullable=True, unique=True)
    password_hash = Column(String(200), nullable=True)
    created_at = Column(DateTime, nullable=False)
    disabled_at = Column(DateTime, nullable=True)


class AgentAuditEntry(Base):
    """What an agent did in the console (claims, replies, hand-backs, logins)."""

    __tablename__ = "agent_audit_log"
    __table_args__ = (Index("ix_agent_audit_log_action_at", "action", "at"),)

    id = Column(Integer, primary_key=True)
    agent_name = Column(String(40), nullable=True)  # None for a failed login
    action = Column(String(20), nullable=False)  # login_failed | claim | reply | handback
    handoff_id = Column(Integer, nullable=True)
    conversation_id = Column(String(100), nullable=True)
    client_key = Column(String(64), nullable=True)
    detail = Column(String(200), nullable=True)
    at = Column(DateTime, nullable=False)
