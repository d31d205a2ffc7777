"""Outbox: codes reach a real local SMTP server, the log sender, a plugged-in SMS sender; retries."""

from __future__ import annotations

import re
import socket
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from commerce import outbox
from commerce.__main__ import main as commerce_main
from commerce.db import make_engine, make_session_factory
from commerce.models import Base, OutboxMessage
from commerce.outbox import LogSender, deliver, deliver_pending, enqueue
from commerce.services.identity import check_verification_code, send_verification_code


class Inbox:
    """aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            (envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default))
        )
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server(monkeypatch):
    """A real SMTP server on 127.0.0.1, with KEFU_SMTP_* pointing at it."""
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("KEFU_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("KEFU_SMTP_PORT", str(port))
    monkeypatch.setenv("KEFU_SMTP_FROM", "Kefu Shop <shop@example.com>")
    monkeypatch.delenv("KEFU_SMTP_STARTTLS", raising=False)
    monkeypatch.delenv("KEFU_SMTP_USER", raising=False)
    yield inbox
    controller.stop()


@pytest.fixture
def outbox_log(tmp_path, monkeypatch):
    path = tmp_path / "log" / "outbox.log"
    monkeypatch.setenv("KEFU_OUTBOX_LOG", str(path))
    monkeypatch.delenv("KEFU_SMTP_HOST", raising=False)
    monkeypatch.delenv("KEFU_SMS_SENDER", raising=False)
    return path


def rows(sf):
    with sf() as s:
        return s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars().all()


def queue(sf, body="Your code is 123456.", channel="email", recipient="alice@example.com"):
    with sf.begin() as s:
        return enqueue(
            s,
            kind="verification_code",
            channel=channel,
            recipient=recipient,
            subject="Your Kefu verification code",
            body=body,
        )


def test_code_email_arrives_over_smtp_and_leaves_no_code_at_rest(
    session_factory, world, smtp_server
):
    sent = send_verification_code(session_factory, world.alice_id, conversation_id="c")
    assert sent.destination == "a***@example.com"
    [(recipients, message)] = smtp_server.messages
    assert recipients == ["alice@example.com"]
    assert message["Subject"] == "Your Kefu verification code"
    assert message["From"] == "Kefu Shop <shop@example.com>"
    code = re.search(r"\b(\d{6})\b", message.get_content()).group(1)
    [row] = rows(session_factory)
    assert row.status == "sent" and row.sent_at is not None and row.attempts == 1
    assert code not in row.body and "a***@example.com" in row.body
    # The emailed code is the one the conversation can use.
    v = check_verification_code(session_factory, world.alice_id, code, conversation_id="c")
    assert v.method == "code"


def test_chinese_code_email_over_smtp(session_factory, world, smtp_server):
    send_verification_code(session_factory, world.wang_id, conversation_id="c", language="zh")
    [(_, message)] = smtp_server.messages
    assert message["Subject"] == "您的 Kefu 验证码"
    assert "验证码是" in message.get_content()


def test_log_sender_writes_the_outbox_log(session_factory, world, outbox_log):
    send_verification_code(session_factory, world.alice_id, conversation_id="c")
    text = outbox_log.read_text(encoding="utf-8")
    assert "email to alice@example.com" in text and "Subject: Your Kefu verification code" in text
    assert re.search(r"verification code is \d{6}\.", text)
    assert outbox_log.stat().st_mode & 0o077 == 0  # codes in clear: owner only
    [row] = rows(session_factory)
    assert row.status == "sent" and not re.search(r"\d{6}", row.body)


class RecordingSms:
    sent: list = []

    def send(self, recipient, subject, body):
        RecordingSms.sent.append((recipient, body))


def test_sms_goes_through_the_configured_sender(session_factory, world, outbox_log, monkeypatch):
    monkeypatch.setenv("KEFU_SMS_SENDER", f"{__name__}.RecordingSms")
    RecordingSms.sent = []
    sent = send_verification_code(
        session_factory, world.wang_id, conversation_id="c", channel="sms"
    )
    assert sent.destination == "***8000"
    [(recipient, body)] = RecordingSms.sent
    assert recipient == "+8613800138000" and re.search(r"\d{6}", body)
    assert not outbox_log.exists()


def test_failed_delivery_is_kept_and_retried(session_factory, monkeypatch, tmp_path):
    monkeypatch.setenv("KEFU_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("KEFU_SMTP_PORT", str(_free_port()))  # nobody listens
    message_id = queue(session_factory)
    assert deliver(session_factory, message_id) is False
    [row] = rows(session_factory)
    assert row.status == "failed" and row.attempts == 1 and row.last_error
    assert "alice" not in row.last_error and "123456" in row.body  # kept for the retry
    # The SMTP server is back (here: the log sender); the drain delivers it.
    monkeypatch.delenv("KEFU_SMTP_HOST")
    monkeypatch.setenv("KEFU_OUTBOX_LOG", str(tmp_path / "outbox.log"))
    assert deliver_pending(session_factory) == 1
    [row] = rows(session_factory)
    assert row.status == "sent" and row.attempts == 2 and "123456" not in row.body
    assert deliver_pending(session_factory) == 0  # nothing sent twice


class Broken:
    def send(self, recipient, subject, body):
        raise ConnectionRefusedError("smtp down")


def test_undeliverable_message_gives_up_and_drops_its_body(session_factory):
    queue(session_factory)
    for _ in range(outbox.MAX_DELIVERY_ATTEMPTS):
        assert deliver_pending(session_factory, senders={"email": Broken()}) == 0
    [row] = rows(session_factory)
    assert row.status == "failed" and row.attempts == outbox.MAX_DELIVERY_ATTEMPTS
    assert "123456" not in row.body and "undeliverable" in row.body
    assert deliver_pending(session_factory, senders={"email": Broken()}) == 0


def test_a_message_whose_sender_died_mid_send_is_sent_again_later(session_factory, outbox_log):
    queue(session_factory)
    [row] = rows(session_factory)
    with session_factory.begin() as session:  # a drainer claimed it, then crashed
        session.get(OutboxMessage, row.id).status = "sending"
        session.get(OutboxMessage, row.id).claimed_at = outbox.utcnow()
    assert deliver_pending(session_factory) == 0  # a fresh claim: someone may still be sending
    with session_factory.begin() as session:
        session.get(OutboxMessage, row.id).claimed_at = (
            outbox.utcnow() - outbox.STALE_CLAIM - outbox.timedelta(seconds=1)
        )
    assert deliver_pending(session_factory) == 1
    assert [r.status for r in rows(session_factory)] == ["sent"]


def test_deliver_pending_respects_the_limit(session_factory, outbox_log):
    for i in range(3):
        queue(session_factory, body=f"message {i}")
    assert deliver_pending(session_factory, limit=2) == 2
    assert [r.status for r in rows(session_factory)] == ["sent", "sent", "pending"]


def test_enqueue_is_part_of_the_callers_transaction(session_factory):
    with pytest.raises(RuntimeError):
        with session_factory.begin() as s:
            enqueue(s, kind="k", channel="email", recipient="a@example.com", subject="", body="b")
            raise RuntimeError("the caller's change failed")
    assert rows(session_factory) == []


def test_enqueue_refuses_unknown_channels(session_factory):
    from commerce.errors import InvalidInput

    with pytest.raises(InvalidInput):
        with session_factory.begin() as s:
            enqueue(s, kind="k", channel="fax", recipient="x", subject="", body="b")


def test_log_sender_creates_its_folder(tmp_path):
    path = tmp_path / "deep" / "outbox.log"
    LogSender("sms", path=path).send("+8613800138000", "", "hello")
    assert "sms to +8613800138000" in path.read_text(encoding="utf-8")


def test_command_line_drains_the_outbox(tmp_path, monkeypatch, capsys, smtp_server):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    sf = make_session_factory(engine)
    queue(sf)
    queue(sf, recipient="bob@example.com")
    assert commerce_main(["outbox", "--url", url]) == 0
    assert "delivered 2 message(s)" in capsys.readouterr().out
    assert sorted(r[0][0] for r in smtp_server.messages) == ["alice@example.com", "bob@example.com"]
    assert all(r.status == "sent" for r in rows(sf))
    engine.dispose()


def test_a_chat_notice_without_a_live_sender_goes_by_email(session_factory, smtp_server):
    queue(session_factory, body="Your order is running late.", channel="chat")
    assert deliver_pending(session_factory) == 1  # e.g. `python -m commerce outbox`
    [(recipients, message)] = smtp_server.messages
    assert recipients == ["alice@example.com"]
    assert "running late" in message.get_content()
    [row] = rows(session_factory)
    assert row.status == "sent" and "a***@example.com" in row.body


def test_a_cancelled_message_is_never_sent(session_factory, outbox_log):
    message_id = queue(session_factory)
    with session_factory.begin() as session:
        session.get(OutboxMessage, message_id).status = outbox.STATUS_CANCELLED
    assert deliver(session_factory, message_id) is False
    assert deliver_pending(session_factory) == 0
    assert not outbox_log.exists()
