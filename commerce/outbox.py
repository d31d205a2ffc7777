"""Outbox: messages to customers (email, SMS) written in the caller's transaction, sent after.

A service that must tell a customer something (a one-time code) calls :func:`enqueue` inside its
own transaction, so the message exists exactly when the change it announces was committed. A
sender delivers it afterwards: :func:`deliver` right away for one message, :func:`deliver_pending`
for everything still pending or failed (``python -m commerce outbox`` retries them).

Senders have one method, ``send(recipient, subject, body)``:

- email: :class:`EmailSender` (smtplib, ``KEFU_SMTP_*``) when ``KEFU_SMTP_HOST`` is set, else
  :class:`LogSender`, which appends the message to ``var/log/outbox.log`` (``KEFU_OUTBOX_LOG``),
  where the demo reads its code;
- sms: the class named by ``KEFU_SMS_SENDER`` (a dotted path), else :class:`LogSender`;
- chat: a notice for a customer's open web chat, ``recipient`` being their email on file;
  :class:`commerce.notify.LiveChatSender` pushes it live and falls back to email. Any other
  drainer (``python -m commerce outbox``) sends it by email.

A message nobody should receive any more (an alert whose subscription was removed) is
``cancelled``: never sent, body removed.

Once delivered (or given up on), a row's body is replaced by a masked summary, so a code never
rests in the database in clear.
"""

from __future__ import annotations

import importlib
import logging
import os
import smtplib
import ssl
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import formataddr, parseaddr

from sqlalchemy import and_, insert, or_, select, update

from commerce.config import outbox_log_path, sms_sender_path, smtp_settings
from commerce.db import begin_write
from commerce.errors import ConfigurationError, InvalidInput
from commerce.models import OutboxMessage
from commerce.privacy import mask_email, mask_phone
from commerce.services._common import utcnow

logger = logging.getLogger(__name__)

CHANNELS = ("email", "sms", "chat")
STATUS_PENDING = "pending"
STATUS_SENDING = "sending"
STATUS_SENT = "sent"
STATUS_FAILED = "failed"
STATUS_CANCELLED = "cancelled"
#: A message that failed this often stays failed (and loses its body): five tries spread over
#: the operator's retries is plenty for a transient SMTP outage, and a code is dead after 10 min.
MAX_DELIVERY_ATTEMPTS = 5
#: A message claimed for sending longer ago than this (its sender crashed) is claimed again.
STALE_CLAIM = timedelta(minutes=5)
SMTP_TIMEOUT_S = 10


def mask_recipient(channel: str, recipient: str) -> str:
    """``a***@example.com`` for an email, ``***0101`` for a phone (commerce.privacy's masking)."""
    return mask_phone(recipient) if channel == "sms" else mask_email(recipient)


def enqueue(
    session,
    *,
    kind: str,
    channel: str,
    recipient: str,
    subject: str,
    body: str,
    dedupe_key: str | None = None,
) -> int:
    """Add a message inside the caller's transaction; returns its id.

    Args:
        session: the caller's session, inside its ``begin()`` block.
        kind: what the message is for (``verification_code``), for logs and summaries.
        channel: ``"email"``, ``"sms"`` or ``"chat"`` (live web chat, else email).
        recipient: an email address (email, chat) or a phone number (``+`` and digits).
        subject: the subject line (ignored by SMS senders that have none).
        body: the text; replaced by a masked summary once delivered.
        dedupe_key: optional; a second message with the same key is refused by the database.

    Raises:
        InvalidInput: unknown channel or empty recipient.
    """
    if channel not in CHANNELS:
        raise InvalidInput("channel", f"expected one of {CHANNELS}, got {channel!r}")
    if not isinstance(recipient, str) or not recipient.strip():
        raise InvalidInput("recipient", "must not be empty")
    result = session.execute(
        insert(OutboxMessage).values(
            kind=kind,
            channel=channel,
            recipient=recipient.strip(),
            subject=subject[:200],
            body=body,
            dedupe_key=dedupe_key,
            status=STATUS_PENDING,
            attempts=0,
            created_at=utcnow(),
        )
    )
    return int(result.inserted_primary_key[0])


class LogSender:
    """Appends each message to a log file (``$KEFU_OUTBOX_LOG``, else ``var/log/outbox.log``).

    The development default for email and SMS: the demo reads its one-time code here. The file
    holds codes in clear, so it is created readable by its owner only.
    """

    def __init__(self, channel: str = "email", path=None) -> None:
        self.channel = channel
        self.path = path

    def send(self, recipient: str, subject: str, body: str) -> None:
        path = self.path or outbox_log_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(f"--- {stamp} {self.channel} to {recipient}\nSubject: {subject}\n\n{body}\n\n")


class EmailSender:
    """Sends email over SMTP with the ``KEFU_SMTP_*`` settings (STARTTLS and login optional)."""

    def __init__(self, settings: dict | None = None) -> None:
        settings = settings or smtp_settings()
        if settings is None:
            raise ConfigurationError("set KEFU_SMTP_HOST to send email over SMTP")
        self.settings = settings

    def send(self, recipient: str, subject: str, body: str) -> None:
        s = self.settings
        message = EmailMessage()
        name, address = parseaddr(s["sender"])
        message["From"] = formataddr((name, address)) if name else address
        message["To"] = recipient
        message["Subject"] = subject
        message.set_content(body)
        with smtplib.SMTP(s["host"], s["port"], timeout=SMTP_TIMEOUT_S) as smtp:
            if s["starttls"]:
                smtp.starttls(context=ssl.create_default_context())
            if s["user"]:
                smtp.login(s["user"], s["password"] or "")
            smtp.send_message(message)


def _load_class(dotted: str):
    module_name, sep, attr = dotted.partition(":")
    if not sep:
        module_name, _, attr = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigurationError(f"KEFU_SMS_SENDER={dotted!r} names no importable class") from e


def sender_for(channel: str):
    """The configured sender for a channel (see the module docstring)."""
    if channel in ("email", "chat"):  # without a live sender, a chat notice goes by email
        return EmailSender() if smtp_settings() is not None else LogSender("email")
    dotted = sms_sender_path()
    return _load_class(dotted)() if dotted else LogSender("sms")


def _summary(row, outcome: str) -> str:
    return f"[{row.kind} {outcome} to {mask_recipient(row.channel, row.recipient)}; body removed]"


def _deliverable(now: datetime):
    """Pending or failed messages with tries left, and claims whose sender died (stale)."""
    return and_(
        OutboxMessage.attempts < MAX_DELIVERY_ATTEMPTS,
        or_(
            OutboxMessage.status.in_((STATUS_PENDING, STATUS_FAILED)),
            and_(
                OutboxMessage.status == STATUS_SENDING,
                OutboxMessage.claimed_at < now - STALE_CLAIM,
            ),
        ),
    )


def _deliver_one(session_factory, message_id: int, senders: dict | None) -> bool:
    # Claim first (pending/failed → sending) so two drainers never send the same message.
    with session_factory.begin() as session:
        begin_write(session)
        claimed = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, _deliverable(now := utcnow()))
            .values(status=STATUS_SENDING, attempts=OutboxMessage.attempts + 1, claimed_at=now)
        ).rowcount
        if not claimed:
            return False
        row = session.execute(select(OutboxMessage).where(OutboxMessage.id == message_id)).one()[0]
    error: str | None = None
    try:
        sender = (senders or {}).get(row.channel) or sender_for(row.channel)
        sender.send(row.recipient, row.subject, row.body)
    except Exception as e:  # noqa: BLE001 - any sender failure is recorded and retried
        # The type and SMTP code only: messages of SMTP errors can quote the recipient.
        error = f"{type(e).__name__} {getattr(e, 'smtp_code', '')}".strip()[:200]
        logger.warning("outbox message %s (%s) not delivered: %s", row.id, row.kind, error)
    with session_factory.begin() as session:
        begin_write(session)
        if error is None:
            values = {"status": STATUS_SENT, "sent_at": utcnow(), "last_error": None}
            values["body"] = _summary(row, "delivered")
        else:
            values = {"status": STATUS_FAILED, "last_error": error}
            if row.attempts >= MAX_DELIVERY_ATTEMPTS:
                values["body"] = _summary(row, "undeliverable")
        session.execute(update(OutboxMessage).where(OutboxMessage.id == row.id).values(**values))
    return error is None


def deliver(session_factory, message_id: int, *, senders: dict | None = None) -> bool:
    """Deliver one message now; True when it was sent (False: failed, or not pending).

    Args:
        senders: optional ``{channel: sender}`` overriding the configured senders.
    """
    return _deliver_one(session_factory, message_id, senders)


def deliver_pending(session_factory, *, limit: int = 50, senders: dict | None = None) -> int:
    """Deliver pending and failed messages (oldest first, at most ``limit``); returns how many.

    Args:
        senders: optional ``{channel: sender}`` overriding the configured senders.
    """
    with session_factory() as session:
        ids = (
            session.execute(
                select(OutboxMessage.id)
                .where(_deliverable(utcnow()))
                .order_by(OutboxMessage.created_at, OutboxMessage.id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
    return sum(_deliver_one(session_factory, i, senders) for i in ids)
