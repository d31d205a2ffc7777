"""Proactive notices: find what a customer waits for, queue one notice per event, deliver them.

``python -m commerce notify`` runs :func:`run` (every ``--interval`` seconds until stopped;
``--once`` for tests and cron). Each pass has two steps:

1. :func:`scan` finds the events that deserve a notice and queues one outbox message for each,
   in the transaction that records it, under a unique ``dedupe_key``; a second pass, a second
   worker or a crash between the steps never queues it twice:

   - back in stock (``restock:<subscription id>:<date>``): a subscription not yet notified whose
     variant has stock available again (on hand above reserved in any warehouse); the
     subscription is marked notified in the same transaction, so a restock alerts each
     subscriber once. Unsubscribing (:func:`commerce.services.stock.unsubscribe_back_in_stock`)
     deletes the subscription and cancels a queued alert (:func:`cancel_restock_notices`);
   - a late shipment (``late:<shipment id>``): shipped or out for delivery, not delivered, and
     its expected delivery date has passed;
   - a completed refund (``refund:<refund id>``).

   Late shipments and refunds are looked for within :data:`LOOKBACK` only, well inside the
   retention horizon that deletes old outbox rows (and with them the dedupe keys), and so that
   a first run on an old database does not write to customers about last year.

2. :func:`commerce.outbox.deliver_pending` sends what is pending or failed (the outbox's own
   retries: up to ``MAX_DELIVERY_ATTEMPTS`` tries, one per pass), with :class:`LiveChatSender`
   for the ``chat`` channel: a notice for a known customer goes to their open web chat when
   there is one, else by email (the outbox's email sender: SMTP, or the log file).

Texts are in the customer's language (``customers.language``); a guest subscriber, whose
language nobody recorded, gets both.

Live delivery (``KEFU_NOTIFY_LIVE_URL``, ``KEFU_NOTIFY_TOKEN``): the worker POSTs
``{"sender": <conversation id>, "customer_id": <id>, "text": <notice>}`` with
``Authorization: Bearer <token>`` to Kefu's own live-push route in the Rasa server process,
which appends the message to the conversation's tracker and emits it to the socket.io room
(``channels.live``), answering ``200 {"delivered": true}`` when a tab of that conversation is
connected and ``404`` when none is. Anything else (refused, timed out, not delivered) falls back
to email. Rasa's ``trigger_intent`` API is not used: the web chat's input channel has no output
channel (replies go to the room), so Rasa would put the notice in the tracker but push it to no
tab, and answer 200 all the same, leaving no way to fall back to email; it also needs
``--enable-api``, which opens the whole HTTP API (model replacement, any tracker) behind one
token. Unset URL: every notice goes by email.

With several Rasa replicas the URL lists each one (comma-separated), since only the replica
holding the tab's socket delivers. Where the replicas come and go behind one DNS name (a
Kubernetes headless Service, a Compose service scaled with ``--scale``), a URL
``dns+http://<name>:<port>/<path>`` stands for ``http://<address>:<port>/<path>`` for every
address the name resolves to, looked up again at each push (:func:`expand_live_urls`), so a
replica added, moved or gone since the worker started is asked, or not, all the same. A name
that does not resolve adds no URL (the notice goes by email); a balancer's name must not be
used this way, as it would ask one replica at random.

The conversation comes from ``conversation_identities``: the customer's newest web chat
(``web-`` sender ids) verified within :data:`CONVERSATION_FRESH` and not expired, and only if
no one else was verified on it since.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import String, case, cast, exists, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from commerce.db import begin_write
from commerce.errors import ConfigurationError, InvalidInput
from commerce.models import (
    ORDER_OUT_FOR_DELIVERY,
    ORDER_SHIPPED,
    REFUND_COMPLETED,
    BackInStockSubscription,
    ConversationIdentity,
    Customer,
    Inventory,
    Order,
    OutboxMessage,
    Product,
    ProductVariant,
    Refund,
    Shipment,
)
from commerce.outbox import (
    STATUS_CANCELLED,
    STATUS_FAILED,
    STATUS_PENDING,
    deliver_pending,
    enqueue,
    sender_for,
)
from commerce.services._common import utcnow
from commerce.vocabulary import COLOURS
from contract import LANGUAGE_ZH

logger = logging.getLogger(__name__)

KIND_RESTOCK = "back_in_stock"
KIND_LATE_SHIPMENT = "late_shipment"
KIND_REFUND = "refund_completed"
#: Env var: URL of the live-push route (see the module docstring); unset: email only.
LIVE_URL_ENV = "KEFU_NOTIFY_LIVE_URL"
#: Env var: bearer token the live-push route expects.
LIVE_TOKEN_ENV = "KEFU_NOTIFY_TOKEN"
#: The scheme of a live URL that names every replica behind one DNS name (module docstring).
DNS_SCHEME = "dns+http"
#: How far back late shipments and completed refunds are looked for.
LOOKBACK = timedelta(days=14)
#: A web chat verified longer ago than this is not taken for the customer's current tab.
CONVERSATION_FRESH = timedelta(hours=24)
#: Sender ids of web chat conversations (``channels.live.WEB_SENDER_PREFIX``; commerce cannot
#: import the channels): only those have tabs to push to.
WEB_SENDER_PREFIX = "web-"
LIVE_TIMEOUT_S = 5.0
#: Events looked at per kind and pass; the rest wait for the next pass.
DEFAULT_LIMIT = 200
DEFAULT_INTERVAL_S = 30.0
_CURRENCY_SIGNS = {"USD": "$", "CNY": "¥", "EUR": "€", "GBP": "£"}


@dataclass(frozen=True)
class Notice:
    """One message to queue: what it is for, where it goes, and its dedupe key."""

    kind: str
    dedupe_key: str
    channel: str  # "chat" (live web chat, else email) or "email"
    recipient: str
    subject: str
    body: str


@dataclass(frozen=True)
class ScanReport:
    """How many notices one :func:`scan` queued, per kind."""

    back_in_stock: int = 0
    late_shipments: int = 0
    refunds: int = 0

    @property
    def total(self) -> int:
        return self.back_in_stock + self.late_shipments + self.refunds


def restock_key(subscription_id: int, day: date) -> str:
    """The dedupe key of a back-in-stock alert: ``restock:<subscription id>:<date>``."""
    return f"restock:{subscription_id}:{day.isoformat()}"


def _money(cents: int, currency: str) -> str:
    sign = _CURRENCY_SIGNS.get(currency)
    amount = f"{cents / 100:,.2f}"
    return f"{sign}{amount}" if sign else f"{currency} {amount}"


# ---- texts ------------------------------------------------------------------------------------


def _restock_text(language: str | None, name: str | None, product: Product, variant) -> tuple:
    en_variant = ", ".join(x for x in (variant.size, variant.colour) if x)
    zh_colour = COLOURS.get(variant.colour, variant.colour) if variant.colour else None
    zh_variant = "，".join(x for x in (variant.size, zh_colour) if x)
    en_item = f"{product.name_en} ({en_variant})" if en_variant else product.name_en
    zh_item = f"{product.name_zh}（{zh_variant}）" if zh_variant else product.name_zh
    en = (
        f"Back in stock: {product.name_en}",
        f"Hello{' ' + name if name else ''},\n\nYou asked us to tell you when {en_item} is back "
        "in stock: it is available again now. Ask Kefu in the chat about it, or order it on the "
        "shop's site.\nThis was a one-time alert; you will not hear about this item again.\n",
    )
    zh = (
        f"到货通知：{product.name_zh}",
        f"{name + '，' if name else ''}您好：\n\n您订阅的 {zh_item} 已经到货，现在可以购买了。"
        "欢迎在聊天窗口向 Kefu 询问，或在商城下单。\n本通知只发送一次，此商品不会再另行通知。\n",
    )
    return _pick(language, en, zh)


def _late_text(language: str, name: str, order: Order, shipment: Shipment) -> tuple[str, str]:
    expected = shipment.estimated_delivery.isoformat()
    number, carrier, tracking = order.number, shipment.carrier, shipment.tracking_number
    en = (
        f"Your order {number} is running late",
        f"Hello {name},\n\nYour order {number} ({carrier}, tracking number {tracking}) was "
        f"expected by {expected} and has not been delivered yet. We are sorry for the wait.\n"
        f'Ask Kefu "where is my order {number}?" in the chat for the latest tracking update, '
        "or ask for a person if you need help.\n",
    )
    zh = (
        f"您的订单 {number} 延迟送达",
        f"{name}，您好：\n\n您的订单 {number}（{carrier}，运单号 {tracking}）预计 {expected} "
        "送达，目前尚未签收，抱歉让您久等。\n"
        f"您可以在聊天窗口问 Kefu“订单 {number} 到哪了”查看最新物流，如需帮助也可以转人工客服。\n",
    )
    return _pick(language, en, zh)


def _refund_text(language: str, name: str, refund: Refund, order: Order) -> tuple[str, str]:
    amount = _money(refund.amount_cents, refund.currency)
    en = (
        f"Your refund {refund.refund_number} is complete",
        f"Hello {name},\n\nYour refund {refund.refund_number} of {amount} for order "
        f"{order.number} is complete. The money goes back the way you paid; your bank may take "
        "a few days to show it.\n",
    )
    zh = (
        f"退款 {refund.refund_number} 已完成",
        f"{name}，您好：\n\n订单 {order.number} 的退款 {refund.refund_number}（{amount}）已完成，"
        "款项将原路退回，银行入账可能需要几天时间。\n",
    )
    return _pick(language, en, zh)


def _pick(language: str | None, en: tuple[str, str], zh: tuple[str, str]) -> tuple[str, str]:
    if language is None:  # a guest: nobody recorded their language
        return f"{en[0]} / {zh[0]}", f"{zh[1]}\n---\n\n{en[1]}"
    return zh if language == LANGUAGE_ZH else en


# ---- finding events ---------------------------------------------------------------------------


def _queue_once(session_factory, build: Callable[[Session], Notice | None]) -> bool:
    """Queue the notice ``build`` makes (None: nothing to say), unless its key is queued already.

    One transaction per notice: a failure or a lost race costs that notice only.
    """
    try:
        with session_factory.begin() as session:
            begin_write(session)
            notice = build(session)
            if notice is None:
                return False
            taken = session.execute(
                select(OutboxMessage.id).where(OutboxMessage.dedupe_key == notice.dedupe_key)
            ).first()
            if taken is not None:
                return False
            enqueue(
                session,
                kind=notice.kind,
                channel=notice.channel,
                recipient=notice.recipient,
                subject=notice.subject,
                body=notice.body,
                dedupe_key=notice.dedupe_key,
            )
            return True
    except IntegrityError:
        # Another worker queued the same key between our check and our insert.
        return False


def _queued(prefix: str, column):
    """Whether an outbox message with key ``<prefix><column>`` exists (correlated)."""
    key = literal(prefix, String) + cast(column, String)
    return exists().where(OutboxMessage.dedupe_key == key)


def _available_variants():
    """Variant ids with stock on hand above what is reserved, in some warehouse."""
    free = case(
        (Inventory.on_hand > Inventory.reserved, Inventory.on_hand - Inventory.reserved), else_=0
    )
    return select(Inventory.variant_id).group_by(Inventory.variant_id).having(func.sum(free) > 0)


def _restock_notice(session: Session, subscription_id: int, now: datetime) -> Notice | None:
    # Marking it notified in this transaction, only if nobody did, is what makes it one alert.
    marked = session.execute(
        update(BackInStockSubscription)
        .where(
            BackInStockSubscription.id == subscription_id,
            BackInStockSubscription.notified_at.is_(None),
        )
        .values(notified_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not marked:
        return None  # notified meanwhile, or unsubscribed
    sub = session.get(BackInStockSubscription, subscription_id)
    variant = session.get(ProductVariant, sub.variant_id)
    product = session.get(Product, variant.product_id)
    customer = (
        session.get(Customer, sub.customer_id)
        if sub.customer_id is not None
        else session.execute(
            select(Customer).where(Customer.email == sub.contact)
        ).scalar_one_or_none()
    )
    language = customer.language if customer is not None else None
    name = customer.name if customer is not None else None
    subject, body = _restock_text(language, name, product, variant)
    return Notice(
        kind=KIND_RESTOCK,
        dedupe_key=restock_key(sub.id, now.date()),
        # The alert goes to the address subscribed; live only when it is a customer's own.
        channel="chat" if customer is not None and customer.email == sub.contact else "email",
        recipient=sub.contact,
        subject=subject,
        body=body,
    )


def _late_notice(session: Session, shipment_id: int) -> Notice | None:
    shipment = session.get(Shipment, shipment_id)
    order = session.get(Order, shipment.order_id)
    if shipment.delivered_at is not None or order.status not in (
        ORDER_SHIPPED,
        ORDER_OUT_FOR_DELIVERY,
    ):
        return None  # delivered meanwhile
    customer = session.get(Customer, order.customer_id)
    subject, body = _late_text(customer.language, customer.name, order, shipment)
    return Notice(KIND_LATE_SHIPMENT, f"late:{shipment.id}", "chat", customer.email, subject, body)


def _refund_notice(session: Session, refund_id: int) -> Notice | None:
    refund = session.get(Refund, refund_id)
    if refund.status != REFUND_COMPLETED:
        return None
    order = session.get(Order, refund.order_id)
    customer = session.get(Customer, order.customer_id)
    subject, body = _refund_text(customer.language, customer.name, refund, order)
    return Notice(KIND_REFUND, f"refund:{refund.id}", "chat", customer.email, subject, body)


def scan(session_factory, *, now: datetime | None = None, limit: int = DEFAULT_LIMIT) -> ScanReport:
    """Queue one notice for each event that deserves one and has none yet.

    Args:
        now: naive UTC "now" (tests move it); defaults to the clock.
        limit: events looked at per kind; more wait for the next pass.

    Returns:
        How many notices were queued, per kind.

    Raises:
        InvalidInput: ``limit`` is not a positive integer.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput("limit", f"expected a positive integer, got {limit!r}")
    now = now or utcnow()
    today = now.date()
    with session_factory() as session:
        restocks = (
            session.execute(
                select(BackInStockSubscription.id)
                .where(
                    BackInStockSubscription.notified_at.is_(None),
                    BackInStockSubscription.variant_id.in_(_available_variants()),
                )
                .order_by(BackInStockSubscription.id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
        late = (
            session.execute(
                select(Shipment.id)
                .join(Order, Order.id == Shipment.order_id)
                .where(
                    Shipment.delivered_at.is_(None),
                    Shipment.estimated_delivery < today,
                    Shipment.estimated_delivery >= today - LOOKBACK,
                    Order.status.in_((ORDER_SHIPPED, ORDER_OUT_FOR_DELIVERY)),
                    ~_queued("late:", Shipment.id),
                )
                .order_by(Shipment.id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
        refunds = (
            session.execute(
                select(Refund.id)
                .where(
                    Refund.status == REFUND_COMPLETED,
                    # Completed is final: its last change is the completion.
                    Refund.updated_at >= now - LOOKBACK,
                    ~_queued("refund:", Refund.id),
                )
                .order_by(Refund.id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
    return ScanReport(
        back_in_stock=sum(
            _queue_once(session_factory, lambda s, i=i: _restock_notice(s, i, now))
            for i in restocks
        ),
        late_shipments=sum(
            _queue_once(session_factory, lambda s, i=i: _late_notice(s, i)) for i in late
        ),
        refunds=sum(
            _queue_once(session_factory, lambda s, i=i: _refund_notice(s, i)) for i in refunds
        ),
    )


def cancel_restock_notices(session: Session, subscription_ids: list[int]) -> int:
    """Cancel queued, undelivered alerts of these subscriptions (inside the caller's transaction).

    A message a sender has already claimed is on its way and cannot be called back.

    Returns:
        How many messages were cancelled.
    """
    if not subscription_ids:
        return 0
    keys = or_(*(OutboxMessage.dedupe_key.like(f"restock:{i}:%") for i in subscription_ids))
    return session.execute(
        update(OutboxMessage)
        .where(keys, OutboxMessage.status.in_((STATUS_PENDING, STATUS_FAILED)))
        .values(
            status=STATUS_CANCELLED,
            body=f"[{KIND_RESTOCK} cancelled: unsubscribed; body removed]",
            last_error=None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount


# ---- live delivery ----------------------------------------------------------------------------


def live_conversation(session: Session, email: str, now: datetime) -> tuple[int, str] | None:
    """The customer (by email on file) and their current web chat conversation, or None.

    Only a web chat verified as this customer within :data:`CONVERSATION_FRESH`, not expired, and
    on which nobody else was verified since: a notice never lands in someone else's chat.
    """
    customer_id = session.execute(
        select(Customer.id).where(Customer.email == email)
    ).scalar_one_or_none()
    if customer_id is None:
        return None
    candidates = session.execute(
        select(ConversationIdentity.conversation_id)
        .where(
            ConversationIdentity.customer_id == customer_id,
            ConversationIdentity.conversation_id.startswith(WEB_SENDER_PREFIX, autoescape=True),
            ConversationIdentity.verified_at >= now - CONVERSATION_FRESH,
            or_(ConversationIdentity.expires_at.is_(None), ConversationIdentity.expires_at > now),
        )
        .order_by(ConversationIdentity.verified_at.desc(), ConversationIdentity.id.desc())
        .limit(5)
    ).scalars()
    for conversation_id in dict.fromkeys(candidates):
        newest_owner = session.execute(
            select(ConversationIdentity.customer_id)
            .where(ConversationIdentity.conversation_id == conversation_id)
            .order_by(ConversationIdentity.verified_at.desc(), ConversationIdentity.id.desc())
            .limit(1)
        ).scalar_one()
        if newest_owner == customer_id:
            return customer_id, conversation_id
    return None


def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), in the resolver's order, once each.

    Raises:
        OSError: the name does not resolve (``socket.gaierror``).
    """
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in found))


def _check_live_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", DNS_SCHEME):
        raise ConfigurationError(f"{LIVE_URL_ENV} must be http(s) URLs, got {url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise ConfigurationError(f"{LIVE_URL_ENV}: bad port in {url!r}") from None
    if parts.scheme == DNS_SCHEME and not parts.hostname:
        raise ConfigurationError(f"{LIVE_URL_ENV}: {url!r} names no host to resolve")


def expand_live_urls(
    urls: tuple[str, ...] | list[str],
    resolve: Callable[[str, int], list[str]] = resolve_addresses,
) -> list[str]:
    """``urls`` with each ``dns+http://name:port/path`` replaced by one ``http://`` URL per
    address ``name`` resolves to now (the replicas behind a headless Service); duplicates once.

    A name that does not resolve is logged and adds nothing: the others are still asked.
    """
    expanded: list[str] = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme != DNS_SCHEME:
            expanded.append(url)
            continue
        port = parts.port or 80
        try:
            addresses = resolve(parts.hostname, port)
        except OSError as e:
            logger.warning("live push: %s does not resolve (%s)", parts.hostname, e)
            continue
        for address in addresses:
            host = f"[{address}]" if ":" in address else address  # IPv6
            expanded.append(urlunsplit(("http", f"{host}:{port}", parts.path, parts.query, "")))
    return list(dict.fromkeys(expanded))


class LiveChatSender:
    """Outbox sender of the ``chat`` channel: the customer's open web chat, else email.

    Args:
        session_factory: to find the customer's conversation when a message is sent.
        url: the live-push route (``http://127.0.0.1:5005/webhooks/live/notify``), or one per
            Rasa replica, comma-separated: each is asked in turn and the one holding the
            conversation's socket delivers; ``dns+http://`` URLs stand for every address of
            their name (:func:`expand_live_urls`); None: email only.
        token: its bearer token.
        fallback: the email sender (default: the outbox's configured one).
        timeout_s: how long one push may take.
        resolve: ``(host, port) -> addresses`` for ``dns+http`` URLs (tests fake it).

    Raises:
        ConfigurationError: a URL that is neither http(s) nor dns+http, or has a bad port, or
            a URL without a token.
    """

    def __init__(
        self,
        session_factory,
        url: str | None,
        token: str | None,
        *,
        fallback=None,
        timeout_s: float = LIVE_TIMEOUT_S,
        resolve: Callable[[str, int], list[str]] = resolve_addresses,
    ) -> None:
        self.urls = tuple(u.strip() for u in (url or "").split(",") if u.strip())
        for one in self.urls:
            _check_live_url(one)
        if self.urls and not token:
            raise ConfigurationError(f"set {LIVE_TOKEN_ENV} with {LIVE_URL_ENV}")
        self.session_factory = session_factory
        self.token = token
        self.fallback = fallback
        self.timeout_s = timeout_s
        self.resolve = resolve
        #: How each message went, ``"live"`` or ``"email"`` (counts for logs and tests).
        self.delivered = {"live": 0, "email": 0}

    def send(self, recipient: str, subject: str, body: str) -> None:
        if self.urls and self._push(recipient, body):
            self.delivered["live"] += 1
            return
        (self.fallback or sender_for("email")).send(recipient, subject, body)
        self.delivered["email"] += 1

    def _push(self, email: str, text: str) -> bool:
        with self.session_factory() as session:
            target = live_conversation(session, email, utcnow())
        if target is None:
            return False
        customer_id, conversation_id = target
        body = json.dumps({"sender": conversation_id, "customer_id": customer_id, "text": text})
        # One replica holds the socket; the others answer 404 and change nothing. The names
        # are resolved per push, so the replicas asked are the ones there now.
        targets = expand_live_urls(self.urls, self.resolve)
        return any(self._push_to(url, body.encode("utf-8")) for url in targets)

    def _push_to(self, url: str, body: bytes) -> bool:
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            url,
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:  # noqa: S310
                answer = json.loads(reply.read(65536) or b"{}")
        except urllib.error.HTTPError as e:
            # 404: no tab of that conversation is connected; others: refused. Email either way.
            logger.info("live push not delivered (HTTP %s); sending by email", e.code)
            return False
        except (OSError, ValueError) as e:  # refused, timed out, not JSON
            logger.warning("live push failed (%s); sending by email", type(e).__name__)
            return False
        return isinstance(answer, dict) and answer.get("delivered") is True

    @classmethod
    def from_env(cls, session_factory, **kwargs) -> LiveChatSender:
        """Configured by ``KEFU_NOTIFY_LIVE_URL`` and ``KEFU_NOTIFY_TOKEN``."""
        url = os.environ.get(LIVE_URL_ENV, "").strip() or None
        token = os.environ.get(LIVE_TOKEN_ENV, "").strip() or None
        return cls(session_factory, url, token, **kwargs)


# ---- the worker -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PassReport:
    """What one pass of the worker did."""

    queued: ScanReport
    delivered: int


def run_once(
    session_factory,
    *,
    senders: dict | None = None,
    now: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
) -> PassReport:
    """One pass: :func:`scan`, then deliver what is pending or failed (at most ``limit``).

    Args:
        senders: ``{channel: sender}`` overriding the configured ones; the ``chat`` channel
            defaults to :meth:`LiveChatSender.from_env`.
    """
    queued = scan(session_factory, now=now, limit=limit)
    senders = dict(senders or {})
    senders.setdefault("chat", LiveChatSender.from_env(session_factory))
    delivered = deliver_pending(session_factory, limit=limit, senders=senders)
    return PassReport(queued=queued, delivered=delivered)


def run(
    session_factory,
    *,
    interval_s: float = DEFAULT_INTERVAL_S,
    max_seconds: float | None = None,
    senders: dict | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Run passes every ``interval_s`` seconds until ``stop`` is set or ``max_seconds`` passed.

    A pass that fails (the database is down) is logged and the next one tries again. ``stop``
    is looked at between passes, so a pass is never cut in the middle of a send.

    Returns:
        How many passes ran.
    """
    if not interval_s > 0:
        raise InvalidInput("interval_s", f"must be above 0, got {interval_s!r}")
    chat = LiveChatSender.from_env(session_factory)  # configuration errors stop the start
    senders = {"chat": chat, **(senders or {})}
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    stop = stop or threading.Event()
    passes = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            report = run_once(session_factory, senders=senders)
            if report.queued.total or report.delivered:
                logger.info(
                    "notify: queued %s (back in stock %s, late %s, refunds %s), delivered %s",
                    report.queued.total,
                    report.queued.back_in_stock,
                    report.queued.late_shipments,
                    report.queued.refunds,
                    report.delivered,
                )
        except Exception:  # noqa: BLE001 - the worker outlives a database outage
            logger.exception("notify: pass failed; trying again in %ss", interval_s)
        passes += 1
        if deadline is not None and time.monotonic() + interval_s > deadline:
            return passes
        stop.wait(max(0.0, interval_s - (time.monotonic() - started)))
    return passes
