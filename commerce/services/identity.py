"""Identity: normalising identifiers, verifying order ownership, one-time codes, signed claims.

An order's details go only to a customer who proved they own it: the order number plus the email
or phone on the order (enough to read a status), or possession of the email / phone on file (a
one-time code) or a signed customer token (needed to change an order).

Failed checks are counted on keys the attacker cannot choose freely: the keyed hash of the
contact tried (across all order numbers), the keyed hash of the client address and the
conversation. There is deliberately no lock-out per order number: that key is the victim's, and
five wrong emails from a stranger would lock the owner out for free.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
import unicodedata
from datetime import datetime, timedelta, timezone

import jwt
from sqlalchemy import delete, func, insert, select, update

from commerce import outbox
from commerce.config import hash_secret, token_secret
from commerce.db import begin_write, is_postgres
from commerce.dto import CodeSent, VerifiedCustomer
from commerce.errors import (
    CodeExpired,
    ConfigurationError,
    CustomerNotFound,
    InvalidInput,
    TokenExpired,
    TokenInvalid,
    TooManyAttempts,
    VerificationFailed,
)
from commerce.models import (
    ConversationIdentity,
    Customer,
    Order,
    VerificationAttempt,
    VerificationCode,
)
from commerce.services._common import check_customer_id, check_text, utcnow
from contract import DEFAULT_LANGUAGE, LANGUAGES

logger = logging.getLogger(__name__)

ORDER_NUMBER_PREFIX = "KF-"
TOKEN_ISSUER = "kefu"
TOKEN_AUDIENCE = "kefu-customer"
DEFAULT_TOKEN_TTL_S = 3600

# Failure caps, each over its own sliding window (read at call time, so tests can shrink them).
#: Per conversation: a person retrying a typo gets five tries per quarter hour.
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
#: Per contact (keyed hash of the normalised email / phone), across all order numbers and
#: conversations: a real customer mistypes an order number a few times, an attacker holding a
#: known email gets 10 order numbers a day instead of all of them.
CONTACT_MAX_FAILURES = 10
CONTACT_FAILURE_WINDOW = timedelta(hours=24)
#: Per client address: one address can be an office or a carrier-grade NAT with many customers,
#: so it gets more than one person, yet a script on it stays under 20 guesses an hour.
CLIENT_MAX_FAILURES = 20
CLIENT_FAILURE_WINDOW = timedelta(hours=1)
#: Global alarm for operators: this many failures over all keys within the window is an attack
#: (the seeded shop sees a handful a day); logged once per window and process.
ALARM_FAILURES = 50
ALARM_WINDOW = timedelta(minutes=5)

KIND_ORDER = "order"
KIND_CODE = "code"

# One-time codes.
CODE_DIGITS = 6
#: Short enough that a code read over a shoulder is soon useless, long enough for slow mail.
CODE_TTL = timedelta(minutes=10)
#: Tries per code: with 6 digits, 5 tries guess a code with probability 5e-6.
CODE_MAX_TRIES = 5
#: Codes per conversation / per customer per window: a customer whose mail is slow asks again
#: once or twice; the caps bound mailbox flooding and the guess budget (5 codes x 5 tries an hour).
CODES_PER_CONVERSATION = 3
CODES_PER_CONVERSATION_WINDOW = timedelta(minutes=15)
CODES_PER_CUSTOMER = 5
CODES_PER_CUSTOMER_WINDOW = timedelta(hours=1)
CODE_CHANNELS = ("email", "sms")

_CLAIM_DOMAIN = "kefu-identity-claim:v1"

_ORDER_NUMBER = re.compile(r"^(?:KF)?[\s\-_]*([0-9]{6,12})$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+$")


def _keyed_hash(purpose: str, value: str) -> str:
    key = hash_secret().encode()
    return hmac.new(key, f"{purpose}\n{value}".encode(), hashlib.sha256).hexdigest()[:64]


def client_key(address: str | None) -> str | None:
    """Keyed hash (HMAC-SHA256, hex) of a client address; None when there is none.

    Stored instead of the address, so limits hold without keeping IP addresses.
    """
    if not isinstance(address, str) or not address.strip():
        return None
    return _keyed_hash("client", address.strip().lower())


def contact_key(normalized_contact: str) -> str:
    """Keyed hash (HMAC-SHA256, hex) of a normalised email or phone (digits with country code)."""
    return _keyed_hash("contact", normalized_contact)


def _claim_sig(secret: str, sender_id: str, customer_id: int, exp: int) -> str:
    message = f"{_CLAIM_DOMAIN}\n{sender_id}\n{customer_id}\n{exp}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_identity_claim(
    sender_id: str, customer_id: int, exp: int, *, secret: str | None = None
) -> dict:
    """The claim a channel attaches (as ``kefu_identity``) once it checked a customer JWT.

    Args:
        sender_id: the conversation the claim is for (a claim never works for another one).
        customer_id: the token's subject.
        exp: the token's expiry (epoch seconds).
        secret: defaults to ``$KEFU_CUSTOMER_TOKEN_SECRET`` (domain-separated from the JWTs).

    Returns:
        ``{"customer_id", "exp", "sid", "sig"}``.

    Raises:
        ConfigurationError: no secret configured.
    """
    check_customer_id(customer_id)
    if isinstance(exp, bool) or not isinstance(exp, int):
        raise InvalidInput("exp", f"expected epoch seconds, got {exp!r}")
    if not isinstance(sender_id, str) or not sender_id or len(sender_id) > 255:
        # Not stripped: the claim must name exactly the sender id the channel will check.
        raise InvalidInput("sender_id", "expected the conversation's sender id")
    sig = _claim_sig(_secret(secret), sender_id, customer_id, exp)
    return {"customer_id": customer_id, "exp": exp, "sid": sender_id, "sig": sig}


def check_identity_claim(
    claim: object, sender_id: str, *, now: float | None = None, secret: str | None = None
) -> tuple[int, int] | None:
    """``(customer_id, exp)`` for a valid, unexpired claim made for ``sender_id``; else None.

    Anything malformed, forged, expired, for another conversation, or unverifiable because no
    secret is configured gives None: callers treat that as "no token".
    """
    if not isinstance(claim, dict):
        return None
    customer_id, exp, sid, sig = (claim.get(k) for k in ("customer_id", "exp", "sid", "sig"))
    if (
        isinstance(customer_id, bool)
        or not isinstance(customer_id, int)
        or customer_id <= 0
        or isinstance(exp, bool)
        or not isinstance(exp, int)
        or not isinstance(sid, str)
        or not isinstance(sig, str)
        or not isinstance(sender_id, str)
        or sid != sender_id
    ):
        return None
    secret = secret or token_secret()
    if not secret:
        return None
    if not hmac.compare_digest(sig, _claim_sig(secret, sid, customer_id, exp)):
        return None
    if exp <= (time.time() if now is None else now):
        return None
    return customer_id, exp


def normalize_order_number(raw: object) -> str:
    """Normalise an order number to ``KF-<digits>``.

    Accepts any case, full-width characters and stray spaces / ``#`` around it: ``" #kf-100023 "``, ``"KF100023"``,
    ``"100023"`` all give ``"KF-100023"``.

    Raises:
        InvalidInput: for anything that is not a KF- number with 6-12 digits.
    """
    if not isinstance(raw, str):
        raise InvalidInput("order_number", f"expected text, got {type(raw).__name__}")
    # NFKC folds full-width input (ＫＦ－１０００２３) typed on Chinese keyboards.
    text = unicodedata.normalize("NFKC", raw).strip().strip("#").strip().upper()
    match = _ORDER_NUMBER.match(text) if len(text) <= 24 else None
    if match is None:
        raise InvalidInput("order_number", f"{raw!r} is not an order number like KF-100023")
    return ORDER_NUMBER_PREFIX + match.group(1)


def normalize_email(raw: object) -> str:
    """Lower-case and validate an email address.

    Raises:
        InvalidInput: when it does not look like ``name@domain.tld``.
    """
    if not isinstance(raw, str):
        raise InvalidInput("email", f"expected text, got {type(raw).__name__}")
    email = raw.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise InvalidInput("email", f"{raw!r} is not an email address")
    return email


def normalize_phone(raw: object) -> str:
    """Normalise a phone number to digits with country code (``+86 138-0013-8000`` → ``8613800138000``).

    Without a ``+``/``00`` prefix, an 11-digit number starting with 1 is read as a Chinese mobile
    (86 added) and a 10-digit number as a US number (1 added). With a ``+`` the digits are kept,
    so the function is idempotent on ``"+" + normalize_phone(x)``, the form actions store.

    Raises:
        InvalidInput: for fewer than 7 or more than 15 digits or stray letters.
    """
    if not isinstance(raw, str):
        raise InvalidInput("phone", f"expected text, got {type(raw).__name__}")
    text = raw.strip()
    if not text or len(text) > 32 or re.search(r"[^\d\s()+.\-]", text):
        raise InvalidInput("phone", f"{raw!r} is not a phone number")
    international = text.startswith("+") or text.startswith("00")
    digits = re.sub(r"\D", "", text)
    if text.startswith("00"):
        digits = digits[2:]
    if not international:
        if len(digits) == 11 and digits.startswith("1") and digits[1] in "3456789":
            digits = "86" + digits
        elif len(digits) == 10:
            digits = "1" + digits
    if not 7 <= len(digits) <= 15:
        raise InvalidInput("phone", f"{raw!r} has {len(digits)} digits")
    return digits


def _phone_candidates(raw: str) -> set[str]:
    """Stored forms a typed phone may match: its normalised form, and for a national number
    (no ``+`` / ``00``) both readings, so ``4155550101``, ``14155550101`` and ``13800138001``
    all find theirs whichever country the heuristic guessed."""
    normalized = normalize_phone(raw)
    candidates = {normalized}
    if not raw.strip().startswith(("+", "00")):
        digits = re.sub(r"\D", "", raw)
        candidates |= {digits, "1" + digits, "86" + digits}
    return candidates


def _limits(conversation_id: str, contact: str | None, client: str | None):
    """(label, column, value, cap, window) of every limit that applies to one attempt."""
    limits = [
        (
            "conversation",
            VerificationAttempt.conversation_id,
            conversation_id,
            MAX_FAILURES,
            FAILURE_WINDOW,
        )
    ]
    if contact is not None:
        limits.append(
            (
                "contact",
                VerificationAttempt.contact_key,
                contact,
                CONTACT_MAX_FAILURES,
                CONTACT_FAILURE_WINDOW,
            )
        )
    if client is not None:
        limits.append(
            (
                "client",
                VerificationAttempt.client_key,
                client,
                CLIENT_MAX_FAILURES,
                CLIENT_FAILURE_WINDOW,
            )
        )
    return limits


def _lock_keys(session, *keys: str) -> None:
    """Serialise count-and-insert on PostgreSQL: one advisory lock per key, in sorted order.

    SQLite needs nothing: ``begin_write`` already holds the database's single write lock.
    """
    if not is_postgres(session):
        return
    ids = {
        int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "big", signed=True) for k in keys
    }
    # Sorted by the lock id itself, so two transactions never wait on each other in a cycle.
    for lock_id in sorted(ids):
        session.execute(select(func.pg_advisory_xact_lock(lock_id)))


def _check_limits(session, limits, now: datetime) -> None:
    for label, column, value, cap, window in limits:
        row = session.execute(
            select(func.count(VerificationAttempt.id), func.min(VerificationAttempt.at)).where(
                column == value,
                VerificationAttempt.success.is_(False),
                VerificationAttempt.at >= now - window,
            )
        ).one()
        if int(row[0]) >= cap:
            retry = int(((row[1] or now) + window - now).total_seconds()) + 1
            raise TooManyAttempts(
                f"too many failed verification attempts for this {label}", max(retry, 1)
            )


_alarm_lock = threading.Lock()
_alarm_last: float | None = None


def _check_alarm(session, now: datetime) -> None:
    """Warn operators once per window when failures over all keys pass :data:`ALARM_FAILURES`."""
    global _alarm_last
    with _alarm_lock:
        if (
            _alarm_last is not None
            and time.monotonic() - _alarm_last < ALARM_WINDOW.total_seconds()
        ):
            return
    failures = session.execute(
        select(func.count(VerificationAttempt.id)).where(
            VerificationAttempt.success.is_(False), VerificationAttempt.at >= now - ALARM_WINDOW
        )
    ).scalar_one()
    if failures < ALARM_FAILURES:
        return
    by = session.execute(
        select(
            func.count(func.distinct(VerificationAttempt.contact_key)),
            func.count(func.distinct(VerificationAttempt.client_key)),
            func.count(func.distinct(VerificationAttempt.conversation_id)),
        ).where(
            VerificationAttempt.success.is_(False), VerificationAttempt.at >= now - ALARM_WINDOW
        )
    ).one()
    with _alarm_lock:
        if (
            _alarm_last is not None
            and time.monotonic() - _alarm_last < ALARM_WINDOW.total_seconds()
        ):
            return
        _alarm_last = time.monotonic()
    logger.warning(
        "verification failure alarm: %d failed verifications in the last %d s "
        "(%d contacts, %d clients, %d conversations; threshold %d); possible enumeration",
        failures,
        int(ALARM_WINDOW.total_seconds()),
        by[0],
        by[1],
        by[2],
        ALARM_FAILURES,
    )


def _record_identity(
    session, conversation_id, customer_id, method, order_number, now, expires_at=None
):
    session.execute(
        insert(ConversationIdentity).values(
            conversation_id=conversation_id,
            customer_id=customer_id,
            method=method,
            order_number=order_number,
            verified_at=now,
            expires_at=expires_at,
        )
    )


def verify_order_owner(
    session_factory,
    order_number: str,
    email: str | None = None,
    phone: str | None = None,
    *,
    conversation_id: str,
    client: str | None = None,
) -> VerifiedCustomer:
    """Check that whoever gave ``email`` or ``phone`` owns ``order_number``.

    Unknown order numbers and mismatches raise the same error, so the check never reveals
    whether an order exists. Every attempt is recorded (with the order number, for audit). Failures
    are capped per contact tried (:data:`CONTACT_MAX_FAILURES` a day, across all order numbers),
    per client address (:data:`CLIENT_MAX_FAILURES` an hour) and per conversation
    (:data:`MAX_FAILURES` per 15 minutes); never per order number, which would let anyone lock
    the owner out. A success is recorded as the conversation's identity.

    Args:
        session_factory: a sessionmaker.
        order_number: as typed by the user (normalised here).
        email: the email on the order, or
        phone: the phone on the order (either is enough; email wins when both are given).
        conversation_id: the chat conversation (sender) id.
        client: the client address the channel saw (``kefu_client``), when it gave one.

    Returns:
        The verified customer, to pass as ``customer_id`` to order services.

    Raises:
        InvalidInput: malformed order number / email / phone, or neither email nor phone.
        TooManyAttempts: a cap is hit (checked before the credentials, so even the right ones
            are refused until the window moves on).
        VerificationFailed: unknown order or credentials that do not match.
    """
    conversation_id = check_text(conversation_id, "conversation_id", max_len=100)
    number = normalize_order_number(order_number)
    if email is None and phone is None:
        raise InvalidInput("email", "give the email or phone used for the order")
    email_n = normalize_email(email) if email is not None else None
    phone_c = _phone_candidates(phone) if phone is not None and email_n is None else None
    contact = contact_key(email_n if email_n is not None else normalize_phone(phone))
    client_k = client_key(client)
    limits = _limits(conversation_id, contact, client_k)

    now = utcnow()
    failure: Exception | None = None
    result: VerifiedCustomer | None = None
    with session_factory.begin() as session:
        begin_write(session)
        _lock_keys(session, *(f"kefu:verify:{label}:{value}" for label, _, value, _, _ in limits))
        _check_limits(session, limits, now)
        row = session.execute(
            select(Order.id, Order.customer_id, Customer.email, Customer.phone, Customer.name)
            .join(Customer, Customer.id == Order.customer_id)
            .where(Order.number == number)
        ).one_or_none()
        ok = False
        method = "email" if email_n is not None else "phone"
        if row is not None:
            if email_n is not None:
                ok = row.email == email_n
            else:
                ok = row.phone is not None and row.phone in phone_c
        session.execute(
            insert(VerificationAttempt).values(
                conversation_id=conversation_id,
                order_number=number,
                contact_key=contact,
                client_key=client_k,
                kind=KIND_ORDER,
                success=ok,
                at=now,
            )
        )
        if ok:
            _record_identity(session, conversation_id, row.customer_id, method, number, now)
            result = VerifiedCustomer(
                customer_id=row.customer_id, name=row.name, order_number=number, method=method
            )
        else:
            _check_alarm(session, now)
            failure = VerificationFailed(f"could not verify ownership of {number}")
    # Raised after commit so the failed attempt stays counted.
    if failure is not None:
        raise failure
    return result


def bind_token_identity(
    session_factory, conversation_id: str, customer_id: int, expires_at: datetime
) -> None:
    """Record that a signed customer token verified the conversation until ``expires_at``.

    Idempotent: the same binding (conversation, customer, expiry) seen again adds no row.
    """
    conversation_id = check_text(conversation_id, "conversation_id", max_len=100)
    check_customer_id(customer_id)
    if not isinstance(expires_at, datetime):
        raise InvalidInput("expires_at", f"expected a datetime, got {expires_at!r}")
    if expires_at.tzinfo is not None:
        expires_at = expires_at.astimezone(timezone.utc).replace(tzinfo=None)
    expires_at = expires_at.replace(microsecond=0)
    now = utcnow()
    with session_factory.begin() as session:
        begin_write(session)
        _lock_keys(session, f"kefu:identity:{conversation_id}")
        latest = session.execute(
            select(ConversationIdentity)
            .where(ConversationIdentity.conversation_id == conversation_id)
            .order_by(ConversationIdentity.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if (
            latest is not None
            and latest.method == "token"
            and latest.customer_id == customer_id
            and latest.expires_at == expires_at
        ):
            return
        if session.get(Customer, customer_id) is None:
            raise CustomerNotFound(f"no customer {customer_id}")
        _record_identity(session, conversation_id, customer_id, "token", None, now, expires_at)


def _code_hash(customer_id: int, conversation_id: str, code: str) -> str:
    return _keyed_hash("code", f"{customer_id}\n{conversation_id}\n{code}")


def _code_message(language: str, name: str, code: str) -> tuple[str, str]:
    minutes = int(CODE_TTL.total_seconds() // 60)
    if language == "zh":
        return (
            "您的 Kefu 验证码",
            f"{name}，您好：\n\n您的验证码是 {code}，{minutes} 分钟内有效，只能使用一次。\n"
            "请在聊天窗口输入此验证码。客服人员不会向您索要验证码，请勿告诉他人。\n"
            "如果这不是您本人的操作，请忽略本邮件。\n",
        )
    return (
        "Your Kefu verification code",
        f"Hello {name},\n\nYour verification code is {code}. It expires in {minutes} minutes "
        "and works once.\nType it into the chat. Nobody from the shop will ever ask you for it.\n"
        "If you did not ask for a code, ignore this message.\n",
    )


def _count_since(session, *where) -> tuple[int, datetime | None]:
    row = session.execute(
        select(func.count(VerificationCode.id), func.min(VerificationCode.created_at)).where(*where)
    ).one()
    return int(row[0]), row[1]


def send_verification_code(
    session_factory,
    customer_id: int,
    *,
    conversation_id: str,
    client: str | None = None,
    language: str = DEFAULT_LANGUAGE,
    channel: str = "email",
) -> CodeSent:
    """Send a one-time code to the email (or phone) on file for ``customer_id``.

    The code (6 digits from :mod:`secrets`) is stored as an HMAC only; the message is written to
    the outbox in the same transaction and delivered right away. A newer code replaces older
    ones of the conversation. If delivery fails the message stays in the outbox for
    ``python -m commerce outbox`` to retry, and the failure is logged.

    Args:
        customer_id: the customer the conversation was identified as (order number + contact).
        conversation_id: the conversation the code will be typed into (a code works only there).
        client: the client address, for the audit trail of the send.
        language: ``"en"`` or ``"zh"``, the message's language.
        channel: ``"email"`` or ``"sms"``.

    Raises:
        InvalidInput: bad arguments, or no phone on file for ``channel="sms"``.
        CustomerNotFound: no such customer.
        TooManyAttempts: :data:`CODES_PER_CONVERSATION` / :data:`CODES_PER_CUSTOMER` reached.
    """
    check_customer_id(customer_id)
    conversation_id = check_text(conversation_id, "conversation_id", max_len=100)
    if channel not in CODE_CHANNELS:
        raise InvalidInput("channel", f"expected one of {CODE_CHANNELS}, got {channel!r}")
    if language not in LANGUAGES:
        raise InvalidInput("language", f"expected one of {LANGUAGES}, got {language!r}")
    now = utcnow()
    with session_factory.begin() as session:
        begin_write(session)
        _lock_keys(
            session, f"kefu:code:customer:{customer_id}", f"kefu:code:conv:{conversation_id}"
        )
        customer = session.get(Customer, customer_id)
        if customer is None:
            raise CustomerNotFound(f"no customer {customer_id}")
        if channel == "email":
            recipient = customer.email
        elif customer.phone:
            recipient = "+" + customer.phone
        else:
            raise InvalidInput("channel", "no phone number on file for this customer")
        for where, cap, window in (
            (
                VerificationCode.conversation_id == conversation_id,
                CODES_PER_CONVERSATION,
                CODES_PER_CONVERSATION_WINDOW,
            ),
            (
                VerificationCode.customer_id == customer_id,
                CODES_PER_CUSTOMER,
                CODES_PER_CUSTOMER_WINDOW,
            ),
        ):
            count, oldest = _count_since(
                session, where, VerificationCode.created_at >= now - window
            )
            if count >= cap:
                retry = int(((oldest or now) + window - now).total_seconds()) + 1
                raise TooManyAttempts("too many verification codes requested", max(retry, 1))
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        code_id = session.execute(
            insert(VerificationCode).values(
                customer_id=customer_id,
                conversation_id=conversation_id,
                channel=channel,
                code_hash=_code_hash(customer_id, conversation_id, code),
                attempts=0,
                created_at=now,
                expires_at=now + CODE_TTL,
            )
        ).inserted_primary_key[0]
        subject, body = _code_message(language, customer.name, code)
        message_id = outbox.enqueue(
            session,
            kind="verification_code",
            channel=channel,
            recipient=recipient,
            subject=subject,
            body=body,
            dedupe_key=f"verification_code:{code_id}",
        )
    if not outbox.deliver(session_factory, message_id):
        logger.error("verification code message %s not delivered; it stays queued", message_id)
    return CodeSent(
        channel=channel,
        destination=outbox.mask_recipient(channel, recipient),
        expires_in_s=int(CODE_TTL.total_seconds()),
    )


def _normalize_code(code: object) -> str | None:
    if not isinstance(code, str) or len(code) > 40:
        return None
    text = re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", code))
    return text if re.fullmatch(rf"[0-9]{{{CODE_DIGITS}}}", text) else None


def check_verification_code(
    session_factory,
    customer_id: int,
    code: str,
    *,
    conversation_id: str,
    client: str | None = None,
) -> VerifiedCustomer:
    """Check a one-time code typed into ``conversation_id``; proves possession of the contact.

    Only the newest code sent to this conversation for this customer counts. A wrong code uses
    one of its :data:`CODE_MAX_TRIES` tries and counts as a failed verification for the
    conversation and client caps. The right code is used up and recorded as the conversation's
    identity (method ``"code"``).

    Raises:
        CodeExpired: no live code (never sent, expired, already used); ask for a new one.
        TooManyAttempts: the code's tries are used up, or a conversation / client cap is hit.
        VerificationFailed: the code is wrong (or malformed).
        InvalidInput: bad customer or conversation id.
    """
    check_customer_id(customer_id)
    conversation_id = check_text(conversation_id, "conversation_id", max_len=100)
    typed = _normalize_code(code)
    client_k = client_key(client)
    limits = _limits(conversation_id, None, client_k)
    now = utcnow()
    failure: Exception | None = None
    with session_factory.begin() as session:
        begin_write(session)
        _lock_keys(
            session,
            f"kefu:code:customer:{customer_id}",
            *(f"kefu:verify:{label}:{value}" for label, _, value, _, _ in limits),
        )
        _check_limits(session, limits, now)
        row = session.execute(
            select(VerificationCode)
            .where(
                VerificationCode.customer_id == customer_id,
                VerificationCode.conversation_id == conversation_id,
            )
            .order_by(VerificationCode.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if row is None or row.used_at is not None or row.expires_at <= now:
            raise CodeExpired("no live verification code for this conversation")
        if row.attempts >= CODE_MAX_TRIES:
            raise TooManyAttempts("this code's tries are used up; ask for a new one", 1)
        ok = typed is not None and hmac.compare_digest(
            row.code_hash, _code_hash(customer_id, conversation_id, typed)
        )
        values = {"used_at": now} if ok else {"attempts": VerificationCode.attempts + 1}
        session.execute(
            update(VerificationCode).where(VerificationCode.id == row.id).values(**values)
        )
        session.execute(
            insert(VerificationAttempt).values(
                conversation_id=conversation_id,
                order_number=None,
                contact_key=None,
                client_key=client_k,
                kind=KIND_CODE,
                success=ok,
                at=now,
            )
        )
        if ok:
            _record_identity(session, conversation_id, customer_id, "code", None, now)
            name = session.execute(
                select(Customer.name).where(Customer.id == customer_id)
            ).scalar_one()
            result = VerifiedCustomer(
                customer_id=customer_id, name=name, order_number=None, method="code"
            )
        else:
            _check_alarm(session, now)
            failure = VerificationFailed("wrong verification code")
    if failure is not None:
        raise failure
    return result


def _secret(secret: str | None) -> str:
    secret = secret or token_secret()
    if not secret:
        raise ConfigurationError("set KEFU_CUSTOMER_TOKEN_SECRET to issue or check customer tokens")
    return secret


def issue_customer_token(
    customer_id: int,
    ttl: int | timedelta = DEFAULT_TOKEN_TTL_S,
    *,
    secret: str | None = None,
    now: datetime | None = None,
) -> str:
    """Sign an HS256 customer token (what a logged-in channel hands to the bot).

    Args:
        customer_id: the customer the token speaks for.
        ttl: lifetime in seconds or as a timedelta.
        secret: HS256 secret; defaults to ``$KEFU_CUSTOMER_TOKEN_SECRET``.
        now: when the token is issued (aware datetime); defaults to the current time.

    Raises:
        ConfigurationError: no secret configured.
    """
    check_customer_id(customer_id)
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        raise InvalidInput("ttl", "must be positive")
    now = now or datetime.now(timezone.utc)
    payload = {
        "sub": str(customer_id),
        "iss": TOKEN_ISSUER,
        "aud": TOKEN_AUDIENCE,
        "iat": now,
        "exp": now + timedelta(seconds=seconds),
    }
    return jwt.encode(payload, _secret(secret), algorithm="HS256")


def customer_from_token(
    token: str, *, session_factory=None, secret: str | None = None
) -> VerifiedCustomer:
    """Check a signed customer token and return who it speaks for.

    Args:
        token: the JWT.
        session_factory: when given, also check the customer still exists and fill in the name.
        secret: HS256 secret; defaults to ``$KEFU_CUSTOMER_TOKEN_SECRET``.

    Raises:
        TokenExpired: past ``exp``.
        TokenInvalid: malformed, forged, wrong algorithm / issuer / audience.
        CustomerNotFound: (with ``session_factory``) the customer no longer exists.
    """
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise TokenInvalid("no token")
    try:
        payload = jwt.decode(
            token,
            _secret(secret),
            algorithms=["HS256"],
            audience=TOKEN_AUDIENCE,
            issuer=TOKEN_ISSUER,
            options={"require": ["exp", "sub", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError as e:
        raise TokenExpired("customer token expired") from e
    except jwt.PyJWTError as e:
        raise TokenInvalid(f"customer token rejected: {e}") from e
    try:
        customer_id = int(payload["sub"])
    except (TypeError, ValueError) as e:
        raise TokenInvalid("customer token subject is not a customer id") from e
    name = ""
    if session_factory is not None:
        with session_factory() as session:
            customer = session.get(Customer, customer_id)
            if customer is None:
                raise CustomerNotFound(f"no customer {customer_id}")
            name = customer.name
    return VerifiedCustomer(customer_id=customer_id, name=name, order_number=None, method="token")


def purge_verification_attempts(session_factory, older_than: timedelta = timedelta(days=1)) -> int:
    """Delete attempt rows older than ``older_than`` (housekeeping); returns rows deleted."""
    with session_factory.begin() as session:
        begin_write(session)
        result = session.execute(
            delete(VerificationAttempt).where(VerificationAttempt.at < utcnow() - older_than)
        )
        return result.rowcount or 0
