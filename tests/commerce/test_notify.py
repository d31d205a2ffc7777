"""Notices: one per event, live to an open web chat or by email, retried, never after unsubscribe.

Email goes to a real SMTP server on 127.0.0.1 (aiosmtpd); the live-push route is a real aiohttp
server on 127.0.0.1 standing for the Rasa server's endpoint. Every test runs on SQLite and on
the local PostgreSQL (the ``session_factory`` fixture).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from datetime import date, timedelta
from email import message_from_bytes, policy
from urllib.parse import urlsplit

import commerce_factories as factories
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from commerce import notify
from commerce.__main__ import main as commerce_main
from commerce.db import make_engine, make_session_factory
from commerce.models import Base, Customer, Inventory, OutboxMessage, ProductVariant, Shipment
from commerce.notify import LiveChatSender, run_once, scan
from commerce.services.identity import verify_order_owner
from commerce.services.refunds import advance_refund, request_refund
from commerce.services.stock import subscribe_back_in_stock, unsubscribe_back_in_stock
from tests.helpers.concurrency import race
from tests.helpers.network import free_port

GUEST = "guest.shopper@example.org"
TOKEN = "live-push-token-for-tests"


class Inbox:
    """aiosmtpd handler that keeps every message it receives."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.rcpt_tos[0], message["Subject"], message.get_content()))
        return "250 OK"

    def to(self, address: str, about: str = "") -> list[tuple[str, str]]:
        """(subject, body) of the messages to ``address`` whose subject contains ``about``."""
        return [
            (subject, body)
            for rcpt, subject, body in self.messages
            if rcpt == address and about in subject
        ]


@pytest.fixture
def smtp(monkeypatch):
    """A real SMTP server on 127.0.0.1, with KEFU_SMTP_* pointing at it."""
    inbox = Inbox(free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    monkeypatch.setenv("KEFU_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("KEFU_SMTP_PORT", str(inbox.port))
    for name in ("KEFU_SMTP_STARTTLS", "KEFU_SMTP_USER", "KEFU_NOTIFY_LIVE_URL"):
        monkeypatch.delenv(name, raising=False)
    yield inbox
    controller.stop()


class LiveEndpoint:
    """The live-push route, as a real HTTP server: records requests, answers ``self.answer``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str | None, dict]] = []
        self.answer: tuple[int, dict] = (200, {"delivered": True})
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.headers.get("Authorization"), await request.json()))
        status, body = self.answer
        return web.json_response(body, status=status)


@pytest.fixture
def live():
    """An aiohttp server on 127.0.0.1 in its own thread, stopped after the test."""
    endpoint = LiveEndpoint()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/webhooks/live/notify", endpoint.handle)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    endpoint.url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks/live/notify"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield endpoint
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def live_sender(sf, endpoint: LiveEndpoint) -> dict:
    return {"chat": LiveChatSender(sf, endpoint.url, TOKEN, timeout_s=2)}


def restock(sf, sku: str, on_hand: int = 3) -> None:
    """Stock arrives at the warehouse (what the shop's inventory system writes)."""
    with sf.begin() as s:
        variant_id = s.execute(
            select(Inventory.variant_id)
            .join(ProductVariant, ProductVariant.id == Inventory.variant_id)
            .where(ProductVariant.sku == sku)
        ).scalars()
        s.execute(
            update(Inventory)
            .where(Inventory.variant_id.in_(list(variant_id)))
            .values(on_hand=on_hand, restock_date=None)
        )


def outbox(sf) -> list[OutboxMessage]:
    with sf() as s:
        return s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars().all()


@pytest.fixture
def subscribed(session_factory, world):
    """Alice (en), Wang (zh) and a guest wait for the sold-out Trail Runner 42 black."""
    sku = world.skus["runner-42-black"]
    subscribe_back_in_stock(session_factory, sku, world.alice_email, customer_id=world.alice_id)
    subscribe_back_in_stock(session_factory, sku, world.wang_email, customer_id=world.wang_id)
    subscribe_back_in_stock(session_factory, sku, GUEST)
    return sku


def restock_alerts(sf) -> list[OutboxMessage]:
    return [m for m in outbox(sf) if m.kind == notify.KIND_RESTOCK]


# ---- back in stock ----------------------------------------------------------------------------


def test_nothing_is_sent_while_the_variant_is_sold_out(session_factory, subscribed, smtp):
    assert scan(session_factory).back_in_stock == 0
    assert restock_alerts(session_factory) == []


def test_a_restock_alerts_each_subscriber_once_in_their_language(
    session_factory, world, subscribed, smtp
):
    restock(session_factory, subscribed)
    report = run_once(session_factory)
    assert report.queued.back_in_stock == 3
    [(subject, body)] = smtp.to(world.alice_email, "Back in stock")
    assert subject == "Back in stock: Trail Runner 2 running shoes"
    assert "Hello Alice Smith" in body and "(42, black)" in body
    [(subject, body)] = smtp.to(world.wang_email)
    assert subject == "到货通知：越野跑鞋 2代" and "越野跑鞋 2代（42，黑色）" in body
    [(subject, body)] = smtp.to(GUEST)  # nobody knows a guest's language: both
    assert "Back in stock" in subject and "到货通知" in subject
    assert "已经到货" in body and "available again" in body
    # A second pass (or a second worker) finds nothing new to say.
    again = run_once(session_factory)
    assert again.queued.total == 0 and again.delivered == 0
    assert len(smtp.to(world.alice_email, "Back in stock")) == 1
    keys = {m.dedupe_key for m in restock_alerts(session_factory)}
    assert len(keys) == 3 and all(k.endswith(date.today().isoformat()) for k in keys)


def test_two_workers_queue_one_alert_per_subscriber(session_factory, subscribed):
    restock(session_factory, subscribed)
    results, errors = race(lambda _: scan(session_factory), n=2)
    assert errors == []
    assert sum(r.back_in_stock for r in results) == 3
    assert len(restock_alerts(session_factory)) == 3


def test_stock_that_is_all_reserved_is_no_restock(session_factory, subscribed):
    with session_factory.begin() as s:
        s.execute(update(Inventory).values(on_hand=Inventory.reserved))
    assert scan(session_factory).back_in_stock == 0


def test_a_failed_send_is_retried_on_the_next_pass(
    session_factory, world, subscribed, smtp, monkeypatch
):
    restock(session_factory, subscribed)
    monkeypatch.setenv("KEFU_SMTP_PORT", str(free_port()))  # the SMTP server is down
    first = run_once(session_factory)
    assert first.queued.back_in_stock == 3 and first.delivered == 0
    assert {m.status for m in restock_alerts(session_factory)} == {"failed"}
    monkeypatch.setenv("KEFU_SMTP_PORT", str(smtp.port))  # it is back
    second = run_once(session_factory)
    assert second.queued.total == 0 and second.delivered == 5  # 3 alerts, 2 late notices
    assert [m.attempts for m in restock_alerts(session_factory)] == [2, 2, 2]
    assert len(smtp.to(world.alice_email, "Back in stock")) == 1


# ---- unsubscribe ------------------------------------------------------------------------------


def test_unsubscribed_before_the_restock_gets_nothing(session_factory, world, subscribed, smtp):
    assert unsubscribe_back_in_stock(session_factory, "  Alice@Example.com ", subscribed) == 1
    restock(session_factory, subscribed)
    assert run_once(session_factory).queued.back_in_stock == 2
    assert smtp.to(world.alice_email, "Back in stock") == []
    assert len(smtp.to(world.wang_email)) == 1


def test_unsubscribed_after_the_alert_was_queued_gets_nothing(
    session_factory, world, subscribed, smtp
):
    restock(session_factory, subscribed)
    assert scan(session_factory).back_in_stock == 3  # queued, not yet sent
    assert unsubscribe_back_in_stock(session_factory, GUEST) == 1
    assert run_once(session_factory).delivered == 2 + 2  # Alice's, Wang's; 2 late notices
    assert smtp.to(GUEST) == []
    [cancelled] = [m for m in restock_alerts(session_factory) if m.recipient == GUEST]
    assert cancelled.status == "cancelled" and "已经到货" not in cancelled.body
    assert run_once(session_factory).delivered == 0  # and never later either


def test_unsubscribing_a_failed_alert_stops_its_retries(
    session_factory, world, subscribed, smtp, monkeypatch
):
    restock(session_factory, subscribed)
    monkeypatch.setenv("KEFU_SMTP_PORT", str(free_port()))
    run_once(session_factory)
    unsubscribe_back_in_stock(session_factory, world.wang_email, subscribed)
    monkeypatch.setenv("KEFU_SMTP_PORT", str(smtp.port))
    assert run_once(session_factory).delivered == 2 + 2  # Alice's, the guest's; late notices
    assert smtp.to(world.wang_email) == []


def test_unsubscribe_takes_only_what_it_names(session_factory, world, subscribed):
    other = world.skus["runner-41-white"]
    subscribe_back_in_stock(session_factory, other, GUEST)
    # Another address, another product: nothing to remove, and said so.
    assert unsubscribe_back_in_stock(session_factory, "nobody@example.com") == 0
    assert unsubscribe_back_in_stock(session_factory, GUEST, "ROAD-RUNNER") == 0
    assert unsubscribe_back_in_stock(session_factory, GUEST, "TRAIL-RUNNER-2", size="41") == 1
    assert unsubscribe_back_in_stock(session_factory, GUEST) == 1  # the 42 black one


@pytest.mark.parametrize(
    "kwargs",
    [
        {"email": "not an email"},
        {"email": GUEST, "size": "42"},  # a size of which product?
    ],
)
def test_unsubscribe_refuses_bad_input_and_changes_nothing(
    session_factory, subscribed, count_statements, kwargs
):
    from commerce.errors import InvalidInput

    count_statements.clear()
    with pytest.raises(InvalidInput):
        unsubscribe_back_in_stock(session_factory, **kwargs)
    assert count_statements == []


# ---- late shipments ---------------------------------------------------------------------------


def late_notices(sf) -> list[OutboxMessage]:
    return [m for m in outbox(sf) if m.kind == notify.KIND_LATE_SHIPMENT]


def test_a_late_shipment_gives_one_notice(session_factory, world, smtp):
    # The world's shipped and out-for-delivery orders were expected 6 days ago.
    report = run_once(session_factory)
    assert report.queued.late_shipments == 2
    subjects = sorted(subject for subject, _ in smtp.to(world.alice_email))
    assert subjects == [
        f"Your order {world.orders['shipped']} is running late",
        f"Your order {world.orders['out_for_delivery']} is running late",
    ]
    body = dict(smtp.to(world.alice_email))[subjects[0]]
    assert "UPS, tracking number TRK190004" in body and "has not been delivered yet" in body
    assert run_once(session_factory).queued.total == 0
    assert len(smtp.messages) == 2


def test_delivered_on_time_and_long_forgotten_shipments_give_none(session_factory, world, smtp):
    with session_factory.begin() as s:
        # One arrives before the worker looks; the other was due long before the look-back.
        s.execute(
            update(Shipment)
            .where(Shipment.tracking_number == "TRK190004")
            .values(delivered_at=factories.now())
        )
        s.execute(
            update(Shipment)
            .where(Shipment.tracking_number == "TRK190005")
            .values(estimated_delivery=date.today() - notify.LOOKBACK - timedelta(days=1))
        )
    assert scan(session_factory).late_shipments == 0


def test_a_late_shipment_notice_is_in_the_customers_language(session_factory, world, smtp):
    with session_factory.begin() as s:
        wang = s.get(Customer, world.wang_id)
        factories.add_order(s, "KF-290009", wang, [], status="shipped", placed_days_ago=9)
    run_once(session_factory)
    [(subject, body)] = smtp.to(world.wang_email)
    assert subject == "您的订单 KF-290009 延迟送达"
    assert "SF Express，运单号 TRK290009" in body


# ---- refunds ----------------------------------------------------------------------------------


def test_a_completed_refund_gives_one_notice(session_factory, world, smtp):
    refund = request_refund(session_factory, world.alice_id, world.orders["cancelled"])
    for step in ("approved", "processing"):
        advance_refund(session_factory, refund.refund_number, step)
    assert scan(session_factory).refunds == 0  # not completed yet
    advance_refund(session_factory, refund.refund_number, "completed")
    assert run_once(session_factory).queued.refunds == 1
    [(subject, body)] = [m for m in smtp.to(world.alice_email) if "refund" in m[0]]
    assert subject == f"Your refund {refund.refund_number} is complete"
    assert "$20.00" in body and world.orders["cancelled"] in body
    assert run_once(session_factory).queued.refunds == 0
    assert len([m for m in smtp.to(world.alice_email) if "refund" in m[0]]) == 1


# ---- live delivery ----------------------------------------------------------------------------


def verify_in_chat(sf, world, conversation_id: str, *, customer: str = "alice") -> None:
    """The customer proves who they are in a web chat (what the identity form does)."""
    if customer == "alice":
        verify_order_owner(
            sf, world.orders["shipped"], email=world.alice_email, conversation_id=conversation_id
        )
    else:
        verify_order_owner(
            sf, world.orders["cn_paid"], email=world.wang_email, conversation_id=conversation_id
        )


def test_a_notice_reaches_the_customers_open_web_chat(session_factory, world, smtp, live):
    verify_in_chat(session_factory, world, "web-alice-tab")
    report = run_once(session_factory, senders=live_sender(session_factory, live))
    assert report.queued.late_shipments == 2 and report.delivered == 2
    assert smtp.to(world.alice_email) == []  # live, so no email
    for auth, payload in live.requests:
        assert auth == f"Bearer {TOKEN}"
        assert payload["sender"] == "web-alice-tab" and payload["customer_id"] == world.alice_id
        assert "is running late" not in payload["text"]  # the body, not the subject
        assert "has not been delivered yet" in payload["text"]


def test_not_connected_means_email(session_factory, world, smtp, live):
    verify_in_chat(session_factory, world, "web-alice-tab")
    live.answer = (404, {"delivered": False, "reason": "not_connected"})
    assert run_once(session_factory, senders=live_sender(session_factory, live)).delivered == 2
    assert len(live.requests) == 2 and len(smtp.to(world.alice_email)) == 2


def test_each_replica_is_asked_until_the_one_holding_the_chat_delivers(
    session_factory, world, smtp, live
):
    verify_in_chat(session_factory, world, "web-alice-tab")
    down = f"http://127.0.0.1:{free_port()}/webhooks/live/notify"  # a replica that is gone
    sender = LiveChatSender(session_factory, f"{down}, {live.url}", TOKEN, timeout_s=2)
    assert run_once(session_factory, senders={"chat": sender}).delivered == 2
    assert sender.delivered == {"live": 2, "email": 0}
    assert len(live.requests) == 2 and smtp.to(world.alice_email) == []


def test_a_push_that_reached_no_tab_means_email(session_factory, world, smtp, live):
    verify_in_chat(session_factory, world, "web-alice-tab")
    live.answer = (200, {"delivered": False})
    run_once(session_factory, senders=live_sender(session_factory, live))
    assert len(live.requests) == 2 and len(smtp.to(world.alice_email)) == 2


def test_a_chat_endpoint_nobody_answers_means_email(session_factory, world, smtp):
    verify_in_chat(session_factory, world, "web-alice-tab")
    refused = LiveChatSender(session_factory, f"http://127.0.0.1:{free_port()}/", TOKEN)
    assert run_once(session_factory, senders={"chat": refused}).delivered == 2
    assert len(smtp.to(world.alice_email)) == 2
    assert refused.delivered == {"live": 0, "email": 2}


def test_no_push_without_a_verified_web_chat(session_factory, world, smtp, live):
    # A REST conversation has no tab; nothing is pushed, the notice is emailed.
    verify_in_chat(session_factory, world, "rest-alice")
    run_once(session_factory, senders=live_sender(session_factory, live))
    assert live.requests == [] and len(smtp.to(world.alice_email)) == 2


def test_a_chat_someone_else_verified_on_since_gets_nothing(session_factory, world, smtp, live):
    verify_in_chat(session_factory, world, "web-shared-computer")
    verify_in_chat(session_factory, world, "web-shared-computer", customer="wang")
    run_once(session_factory, senders=live_sender(session_factory, live))
    assert live.requests == []  # never Alice's order in Wang's chat
    assert len(smtp.to(world.alice_email)) == 2


def test_live_sender_refuses_a_url_that_is_not_http(session_factory):
    from commerce.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        LiveChatSender(session_factory, "file:///etc/passwd", TOKEN)
    with pytest.raises(ConfigurationError):
        LiveChatSender(session_factory, "http://127.0.0.1:5005/x", None)


def test_a_dns_name_stands_for_every_replica_it_resolves_to_now(session_factory, world, smtp, live):
    """A headless Service's name: each push asks every pod address the resolver gives then."""
    verify_in_chat(session_factory, world, "web-alice-tab")
    port = urlsplit(live.url).port
    lookups = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append((host, port))
        return ["127.0.0.2", "127.0.0.1"]  # a replica that is gone, then the one with the tab

    url = f"dns+http://kefu-rasa-headless:{port}/webhooks/live/notify"
    sender = LiveChatSender(session_factory, url, TOKEN, timeout_s=2, resolve=resolve)
    assert run_once(session_factory, senders={"chat": sender}).delivered == 2
    assert sender.delivered == {"live": 2, "email": 0} and smtp.to(world.alice_email) == []
    assert lookups == [("kefu-rasa-headless", port)] * 2  # looked up again for each push


def test_a_dns_name_that_does_not_resolve_means_email(session_factory, world, smtp):
    verify_in_chat(session_factory, world, "web-alice-tab")

    def resolve(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    url = "dns+http://kefu-rasa-headless:5105/webhooks/live/notify"
    sender = LiveChatSender(session_factory, url, TOKEN, timeout_s=2, resolve=resolve)
    assert run_once(session_factory, senders={"chat": sender}).delivered == 2
    assert sender.delivered == {"live": 0, "email": 2}


def test_dns_urls_become_one_url_per_address_and_plain_urls_stay():
    addresses = {"rasa": ["10.1.0.7", "10.1.0.8", "10.1.0.7"], "rasa6": ["fd00::5"]}

    def resolve(host: str, port: int) -> list[str]:
        if host not in addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return addresses[host]

    urls = [
        "dns+http://rasa:5105/webhooks/live/notify",
        "dns+http://nobody:5105/webhooks/live/notify",
        "http://127.0.0.1:5005/webhooks/live/notify",
        "dns+http://rasa6/n?x=1",
    ]
    assert notify.expand_live_urls(urls, resolve) == [
        "http://10.1.0.7:5105/webhooks/live/notify",
        "http://10.1.0.8:5105/webhooks/live/notify",
        "http://127.0.0.1:5005/webhooks/live/notify",
        "http://[fd00::5]:80/n?x=1",
    ]


def test_the_real_resolver_gives_an_address_back_as_itself():
    assert "127.0.0.1" in notify.resolve_addresses("127.0.0.1", 5105)


@pytest.mark.parametrize(
    "url", ["dns+https://rasa:5105/x", "dns+http:///webhooks/live/notify", "http://rasa:x/"]
)
def test_live_sender_refuses_a_dns_url_it_cannot_expand(session_factory, url):
    from commerce.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        LiveChatSender(session_factory, url, TOKEN)


# ---- the command line -------------------------------------------------------------------------


def test_command_line_runs_one_pass_and_unsubscribes(tmp_path, capsys, smtp):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    sf = make_session_factory(engine)
    world = factories.build_world(sf)
    sku = world.skus["runner-42-black"]
    subscribe_back_in_stock(sf, sku, GUEST)
    subscribe_back_in_stock(sf, sku, world.alice_email, customer_id=world.alice_id)
    assert commerce_main(["notify", "unsubscribe", GUEST, "--product", sku, "--url", url]) == 0
    assert "removed 1 back-in-stock subscription(s)" in capsys.readouterr().out
    restock(sf, sku)
    assert commerce_main(["notify", "--once", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "queued 3 notice(s) (back in stock 1, late shipments 2, refunds 0)" in out
    assert "delivered 3 message(s)" in out
    assert smtp.to(GUEST) == [] and len(smtp.to(world.alice_email, "Back in stock")) == 1
    assert len(smtp.to(world.alice_email, "running late")) == 2
    assert commerce_main(["notify", "--max-seconds", "0.5", "--interval", "0.2", "--url", url]) == 0
    assert "stopped after" in capsys.readouterr().out
    assert len(smtp.messages) == 3
    engine.dispose()


def test_the_worker_outlives_a_failing_pass(tmp_path, caplog):
    # No schema at all: each pass fails, is logged, and the worker keeps its rhythm.
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    assert notify.run(make_session_factory(engine), interval_s=0.05, max_seconds=0.3) >= 2
    assert "notify: pass failed" in caplog.text
    engine.dispose()
