"""Identity: normalisers, order-ownership verification with rate limits, customer tokens."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest

from commerce.errors import (
    ConfigurationError,
    CustomerNotFound,
    InvalidInput,
    TokenExpired,
    TokenInvalid,
    TooManyAttempts,
    VerificationFailed,
)
from commerce.services import identity
from commerce.services.identity import (
    customer_from_token,
    issue_customer_token,
    normalize_email,
    normalize_order_number,
    normalize_phone,
    verify_order_owner,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("KF-100023", "KF-100023"),
        ("kf-100023", "KF-100023"),
        ("  #KF-100023 ", "KF-100023"),
        ("KF100023", "KF-100023"),
        ("kf 100023", "KF-100023"),
        ("100023", "KF-100023"),
        ("#100023", "KF-100023"),
        ("KF-1000230000", "KF-1000230000"),
        ("ＫＦ－１０００２３", "KF-100023"),
    ],
)
def test_normalize_order_number_accepts_variants(raw, expected):
    assert normalize_order_number(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "KF-123",
        "AB-100023",
        "KF-100023' OR '1'='1",
        "KF-100023; DROP TABLE orders;--",
        "١٢٣٤٥٦",
        "KF-" + "9" * 40,
        None,
        100023,
        "KF--",
    ],
)
def test_normalize_order_number_rejects_junk(raw):
    with pytest.raises(InvalidInput) as e:
        normalize_order_number(raw)
    assert e.value.code == "invalid_input" and e.value.field == "order_number"


def test_normalize_email_lowercases_and_rejects_junk():
    assert normalize_email("  Alice@Example.COM ") == "alice@example.com"
    for bad in ("", "alice", "a@b", "x@y.com' OR 1=1 --", None):
        with pytest.raises(InvalidInput):
            normalize_email(bad)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("+86 138 0013 8000", "8613800138000"),
        ("138-0013-8000", "8613800138000"),
        ("008613800138000", "8613800138000"),
        ("+1 (415) 555-0100", "14155550100"),
        ("415.555.0100", "14155550100"),
    ],
)
def test_normalize_phone(raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", ["", "12", "call me", "+86 138 0013 8000 ext 5", "1" * 20])
def test_normalize_phone_rejects_junk(raw):
    with pytest.raises(InvalidInput):
        normalize_phone(raw)


def test_verify_with_email_returns_customer(session_factory, world):
    v = verify_order_owner(
        session_factory, " #kf-100001", email="ALICE@example.com", conversation_id="c1"
    )
    assert v.customer_id == world.alice_id and v.order_number == "KF-100001"
    assert v.method == "email"


@pytest.mark.parametrize("phone", ["+86 138 0013 8000", "13800138000", "8613800138000"])
def test_verify_with_phone_in_any_form(session_factory, world, phone):
    v = verify_order_owner(session_factory, "KF-200001", phone=phone, conversation_id="c1")
    assert v.customer_id == world.wang_id and v.method == "phone"


def test_verify_with_us_phone(session_factory, world):
    v = verify_order_owner(
        session_factory, "KF-100001", phone="(415) 555-0100", conversation_id="c"
    )
    assert v.customer_id == world.alice_id


def test_wrong_email_fails(session_factory, world):
    with pytest.raises(VerificationFailed) as e:
        verify_order_owner(
            session_factory, "KF-100001", email="wang.fang@example.cn", conversation_id="c"
        )
    assert e.value.code == "verification_failed"


def test_unknown_order_fails_like_a_mismatch(session_factory, world):
    """An unknown order gives the same error as a wrong email: no existence oracle."""
    with pytest.raises(VerificationFailed):
        verify_order_owner(
            session_factory, "KF-999999", email="alice@example.com", conversation_id="c"
        )


def test_needs_email_or_phone(session_factory, world):
    with pytest.raises(InvalidInput):
        verify_order_owner(session_factory, "KF-100001", conversation_id="c")


@pytest.mark.parametrize(
    "number, email",
    [("KF-1' OR 1=1 --", "alice@example.com"), ("KF-100001", "' OR ''='"), ("", "a@b.co")],
)
def test_malformed_input_writes_nothing(session_factory, world, count_statements, number, email):
    with pytest.raises(InvalidInput):
        verify_order_owner(session_factory, number, email=email, conversation_id="c")
    assert count_statements == []


def test_rate_limit_per_conversation(session_factory, world):
    for _ in range(identity.MAX_FAILURES):
        with pytest.raises(VerificationFailed):
            verify_order_owner(
                session_factory, "KF-100001", email="x@example.com", conversation_id="bad"
            )
    with pytest.raises(TooManyAttempts) as e:
        # Even correct credentials are refused once the limit is hit.
        verify_order_owner(
            session_factory, "KF-100002", email=world.alice_email, conversation_id="bad"
        )
    assert e.value.code == "too_many_attempts" and 0 < e.value.retry_after_s <= 15 * 60
    # Another conversation with another order is not affected.
    assert verify_order_owner(
        session_factory, "KF-100002", email=world.alice_email, conversation_id="ok"
    )


def test_rate_limit_per_order_number_across_conversations(session_factory, world):
    for i in range(identity.MAX_FAILURES):
        with pytest.raises(VerificationFailed):
            verify_order_owner(
                session_factory, "KF-100001", email="x@example.com", conversation_id=f"c{i}"
            )
    with pytest.raises(TooManyAttempts):
        verify_order_owner(
            session_factory, "KF-100001", email=world.alice_email, conversation_id="fresh"
        )


def test_old_failures_leave_the_window(session_factory, world, monkeypatch):
    for _ in range(identity.MAX_FAILURES):
        with pytest.raises(VerificationFailed):
            verify_order_owner(
                session_factory, "KF-100001", email="x@example.com", conversation_id="c"
            )
    monkeypatch.setattr(identity, "FAILURE_WINDOW", timedelta(seconds=0))
    assert verify_order_owner(
        session_factory, "KF-100001", email=world.alice_email, conversation_id="c"
    )


def test_purge_verification_attempts(session_factory, world):
    verify_order_owner(session_factory, "KF-100001", email=world.alice_email, conversation_id="c")
    assert identity.purge_verification_attempts(session_factory, older_than=timedelta(0)) == 1


def test_token_round_trip(session_factory, world, token_secret):
    token = issue_customer_token(world.alice_id, ttl=60)
    v = customer_from_token(token, session_factory=session_factory)
    assert v.customer_id == world.alice_id and v.method == "token" and v.name == "Alice Smith"


def test_token_expired(token_secret):
    token = issue_customer_token(1, ttl=timedelta(seconds=1))
    time.sleep(1.1)
    with pytest.raises(TokenExpired) as e:
        customer_from_token(token)
    assert e.value.code == "token_expired"


@pytest.mark.parametrize(
    "make",
    [
        lambda: issue_customer_token(1, secret="another-secret-" + "y" * 32),
        lambda: jwt.encode(
            {"sub": "1", "exp": 9999999999, "iss": "kefu", "aud": "kefu-customer"},
            "",
            algorithm="none",
        ),
        lambda: jwt.encode(
            {"sub": "1", "exp": 9999999999}, "test-secret-" + "x" * 32, algorithm="HS256"
        ),
        lambda: "not-a-token",
        lambda: "",
    ],
    ids=["forged", "alg-none", "no-audience", "garbage", "empty"],
)
def test_bad_tokens_rejected(token_secret, make):
    with pytest.raises(TokenInvalid):
        customer_from_token(make())


def test_token_for_deleted_customer(session_factory, world, token_secret):
    with pytest.raises(CustomerNotFound):
        customer_from_token(issue_customer_token(9999), session_factory=session_factory)


def test_token_needs_secret(monkeypatch):
    monkeypatch.delenv("KEFU_CUSTOMER_TOKEN_SECRET", raising=False)
    with pytest.raises(ConfigurationError):
        issue_customer_token(1)
