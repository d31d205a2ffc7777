"""Identity: normalising identifiers, verifying order ownership, signed customer tokens.

An order's details go only to a customer who proved they own it, either with the order number
plus the email or phone on the order, or with a signed customer token from the channel. Failed
attempts are rate-limited per conversation and per order number over a sliding window.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta, timezone

import jwt
from sqlalchemy import delete, func, insert, select

from commerce.config import token_secret
from commerce.db import begin_write
from commerce.dto import VerifiedCustomer
from commerce.errors import (
    ConfigurationError,
    CustomerNotFound,
    InvalidInput,
    TokenExpired,
    TokenInvalid,
    TooManyAttempts,
    VerificationFailed,
)
from commerce.models import Customer, Order, VerificationAttempt
from commerce.services._common import check_customer_id, check_text, utcnow

ORDER_NUMBER_PREFIX = "KF-"
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
TOKEN_ISSUER = "kefu"
TOKEN_AUDIENCE = "kefu-customer"
DEFAULT_TOKEN_TTL_S = 3600

_ORDER_NUMBER = re.compile(r"^(?:KF)?[\s\-_]*([0-9]{6,12})$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+$")


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
    (86 added) and a 10-digit number as a US number (1 added).

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
    normalized = normalize_phone(raw)
    candidates = {normalized}
    digits = re.sub(r"\D", "", raw)
    if not raw.strip().startswith(("+", "00")):
        # A user may type a national number the heuristic read the other way.
        candidates |= {"86" + digits, "1" + digits, digits}
    return candidates


def _recent_failures(session, column, value: str, since: datetime) -> tuple[int, datetime | None]:
    row = session.execute(
        select(func.count(VerificationAttempt.id), func.min(VerificationAttempt.at)).where(
            column == value,
            VerificationAttempt.success.is_(False),
            VerificationAttempt.at >= since,
        )
    ).one()
    return int(row[0]), row[1]


def verify_order_owner(
    session_factory,
    order_number: str,
    email: str | None = None,
    phone: str | None = None,
    *,
    conversation_id: str,
) -> VerifiedCustomer:
    """Check that whoever gave ``email`` or ``phone`` owns ``order_number``.

    Unknown order numbers and mismatches raise the same error, so the check never reveals
    whether an order exists. Every attempt is logged; more than ``MAX_FAILURES`` failures within
    ``FAILURE_WINDOW`` for this conversation or this order number block further attempts.

    Args:
        session_factory: a sessionmaker.
        order_number: as typed by the user (normalised here).
        email: the email on the order, or
        phone: the phone on the order (either is enough; email wins when both are given).
        conversation_id: the chat conversation (sender) id, for rate limiting.

    Returns:
        The verified customer, to pass as ``customer_id`` to order services.

    Raises:
        InvalidInput: malformed order number / email / phone, or neither email nor phone.
        TooManyAttempts: the rate limit is hit (checked before the credentials).
        VerificationFailed: unknown order or credentials that do not match.
    """
    conversation_id = check_text(conversation_id, "conversation_id", max_len=100)
    number = normalize_order_number(order_number)
    if email is None and phone is None:
        raise InvalidInput("email", "give the email or phone used for the order")
    email_n = normalize_email(email) if email is not None else None
    phone_c = _phone_candidates(phone) if phone is not None and email_n is None else None

    now = utcnow()
    since = now - FAILURE_WINDOW
    failure: Exception | None = None
    result: VerifiedCustomer | None = None
    with session_factory.begin() as session:
        begin_write(session)
        for column, value in (
            (VerificationAttempt.conversation_id, conversation_id),
            (VerificationAttempt.order_number, number),
        ):
            count, oldest = _recent_failures(session, column, value, since)
            if count >= MAX_FAILURES:
                retry = int(((oldest or now) + FAILURE_WINDOW - now).total_seconds()) + 1
                raise TooManyAttempts("too many failed verification attempts", max(retry, 1))
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
                conversation_id=conversation_id, order_number=number, success=ok, at=now
            )
        )
        if ok:
            result = VerifiedCustomer(
                customer_id=row.customer_id, name=row.name, order_number=number, method=method
            )
        else:
            failure = VerificationFailed(f"could not verify ownership of {number}")
    # Raised after commit so the failed attempt stays counted.
    if failure is not None:
        raise failure
    return result


def _secret(secret: str | None) -> str:
    secret = secret or token_secret()
    if not secret:
        raise ConfigurationError("set KEFU_CUSTOMER_TOKEN_SECRET to issue or check customer tokens")
    return secret


def issue_customer_token(
    customer_id: int, ttl: int | timedelta = DEFAULT_TOKEN_TTL_S, *, secret: str | None = None
) -> str:
    """Sign an HS256 customer token (what a logged-in channel hands to the bot).

    Args:
        customer_id: the customer the token speaks for.
        ttl: lifetime in seconds or as a timedelta.
        secret: HS256 secret; defaults to ``$KEFU_CUSTOMER_TOKEN_SECRET``.

    Raises:
        ConfigurationError: no secret configured.
    """
    check_customer_id(customer_id)
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        raise InvalidInput("ttl", "must be positive")
    now = datetime.now(timezone.utc)
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


__all__ = [
    "normalize_order_number",
    "normalize_email",
    "normalize_phone",
    "verify_order_owner",
    "issue_customer_token",
    "customer_from_token",
    "purge_verification_attempts",
]
