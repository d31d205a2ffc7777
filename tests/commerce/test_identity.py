"""Identity: normalisers, ownership checks and their limits, claims, one-time codes, tokens."""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from sqlalchemy import func, select

from commerce.config import DEV_HASH_SECRET, hash_secret
from commerce.db import make_engine, make_session_factory
from commerce.dto import CodeSent
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
    Base,
    ConversationIdentity,
    Customer,
    Order,
    OutboxMessage,
    VerificationAttempt,
    VerificationCode,
)
from commerce.seed import CUSTOMERS, seed
from commerce.services import identity
from commerce.services.identity import (
    bind_token_identity,
    check_identity_claim,
    check_verification_code,
    client_key,
    contact_key,
    customer_from_token,
    issue_customer_token,
    normalize_email,
    normalize_order_number,
    normalize_phone,
    send_verification_code,
    sign_identity_claim,
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
        session_factory, " #kf-190001", email="ALICE@example.com", conversation_id="c1"
    )
    assert v.customer_id == world.alice_id and v.order_number == "KF-190001"
    assert v.method == "email"


@pytest.mark.parametrize("phone", ["+86 138 0013 8000", "13800138000", "8613800138000"])
def test_verify_with_phone_in_any_form(session_factory, world, phone):
    v = verify_order_owner(session_factory, "KF-290001", phone=phone, conversation_id="c1")
    assert v.customer_id == world.wang_id and v.method == "phone"


def test_verify_with_us_phone(session_factory, world):
    v = verify_order_owner(
        session_factory, "KF-190001", phone="(415) 555-0100", conversation_id="c"
    )
    assert v.customer_id == world.alice_id


def test_wrong_email_fails(session_factory, world):
    with pytest.raises(VerificationFailed) as e:
        verify_order_owner(
            session_factory, "KF-190001", email="wang.fang@example.cn", conversation_id="c"
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
        verify_order_owner(session_factory, "KF-190001", conversation_id="c")


@pytest.mark.parametrize(
    "number, email",
    [("KF-1' OR 1=1 --", "alice@example.com"), ("KF-190001", "' OR ''='"), ("", "a@b.co")],
)
def test_malformed_input_writes_nothing(session_factory, world, count_statements, number, email):
    with pytest.raises(InvalidInput):
        verify_order_owner(session_factory, number, email=email, conversation_id="c")
    assert count_statements == []


def test_rate_limit_per_conversation(session_factory, world):
    for _ in range(identity.MAX_FAILURES):
        with pytest.raises(VerificationFailed):
            verify_order_owner(
                session_factory, "KF-190001", email="x@example.com", conversation_id="bad"
            )
    with pytest.raises(TooManyAttempts) as e:
        # Even correct credentials are refused once the limit is hit.
        verify_order_owner(
            session_factory, "KF-190002", email=world.alice_email, conversation_id="bad"
        )
    assert e.value.code == "too_many_attempts" and 0 < e.value.retry_after_s <= 15 * 60
    # Another conversation with another order is not affected.
    assert verify_order_owner(
        session_factory, "KF-190002", email=world.alice_email, conversation_id="ok"
    )


def test_failures_on_an_order_number_do_not_lock_its_owner_out(session_factory, world):
    """Wrong emails from strangers on the victim's order cost the victim nothing."""
    for i in range(identity.MAX_FAILURES + 3):
        with pytest.raises(VerificationFailed):
            verify_order_owner(
                session_factory, "KF-190001", email=f"x{i}@example.com", conversation_id=f"c{i}"
            )
    v = verify_order_owner(
        session_factory, "KF-190001", email=world.alice_email, conversation_id="fresh"
    )
    assert v.customer_id == world.alice_id


def test_old_failures_leave_the_window(session_factory, world, monkeypatch):
    for _ in range(identity.MAX_FAILURES):
        with pytest.raises(VerificationFailed):
            verify_order_owner(
                session_factory, "KF-190001", email="x@example.com", conversation_id="c"
            )
    monkeypatch.setattr(identity, "FAILURE_WINDOW", timedelta(seconds=0))
    assert verify_order_owner(
        session_factory, "KF-190001", email=world.alice_email, conversation_id="c"
    )


def test_purge_verification_attempts(session_factory, world):
    verify_order_owner(session_factory, "KF-190001", email=world.alice_email, conversation_id="c")
    assert identity.purge_verification_attempts(session_factory, older_than=timedelta(0)) == 1


def test_token_round_trip(session_factory, world, token_secret):
    token = issue_customer_token(world.alice_id, ttl=60)
    v = customer_from_token(token, session_factory=session_factory)
    assert v.customer_id == world.alice_id and v.method == "token" and v.name == "Alice Smith"


def test_token_expired(token_secret):
    issued = datetime.now(timezone.utc) - timedelta(seconds=2)
    token = issue_customer_token(1, ttl=timedelta(seconds=1), now=issued)
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


# --- keyed hashes and signed identity claims ---------------------------------------------------


def test_client_key_is_a_keyed_hash(monkeypatch):
    monkeypatch.setenv("KEFU_HASH_SECRET", "one-secret")
    key = client_key("203.0.113.7")
    assert len(key) == 64 and "203" not in key
    assert client_key(" 203.0.113.7 ") == key
    assert client_key(None) is None and client_key("") is None
    monkeypatch.setenv("KEFU_HASH_SECRET", "another-secret")
    assert client_key("203.0.113.7") != key


def test_contact_key_separates_contacts_and_purposes():
    assert contact_key("alice@example.com") == contact_key("alice@example.com")
    assert contact_key("alice@example.com") != contact_key("bob@example.com")
    # Domain separation: the same text hashed as a client address gives another key.
    assert contact_key("alice@example.com") != client_key("alice@example.com")


def test_hash_secret_falls_back_to_token_secret_then_the_kept_one_then_dev_constant(
    monkeypatch, tmp_path
):
    kept = tmp_path / "hash-secret"
    monkeypatch.setenv("KEFU_HASH_SECRET_FILE", str(kept))
    monkeypatch.delenv("KEFU_HASH_SECRET", raising=False)
    monkeypatch.setenv("KEFU_CUSTOMER_TOKEN_SECRET", "tok")
    assert hash_secret() == "tok"
    monkeypatch.delenv("KEFU_CUSTOMER_TOKEN_SECRET")
    assert hash_secret() == DEV_HASH_SECRET
    # `make run` kept one (scripts/serve.py): tools run by hand hash as the running Kefu does.
    kept.write_text("kept-by-make-run\n", encoding="utf-8")
    assert hash_secret() == "kept-by-make-run"


def test_identity_claim_round_trip(token_secret):
    exp = int(time.time()) + 60
    claim = sign_identity_claim("web-abc", 7, exp)
    assert set(claim) == {"customer_id", "exp", "sid", "sig"} and claim["sid"] == "web-abc"
    assert check_identity_claim(claim, "web-abc") == (7, exp)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: {**c, "customer_id": 8},
        lambda c: {**c, "exp": c["exp"] + 3600},
        lambda c: {**c, "sid": "web-other"},
        lambda c: {**c, "sig": "0" * 64},
        lambda c: {**c, "customer_id": True},
        lambda c: {k: v for k, v in c.items() if k != "sig"},
        lambda c: "not a claim",
        lambda c: None,
    ],
    ids=["customer", "exp", "sid", "sig", "bool-id", "no-sig", "string", "none"],
)
def test_tampered_claims_are_refused(token_secret, tamper):
    claim = sign_identity_claim("web-abc", 7, int(time.time()) + 60)
    assert check_identity_claim(tamper(claim), "web-abc") is None


def test_claim_for_another_conversation_is_refused(token_secret):
    claim = sign_identity_claim("web-abc", 7, int(time.time()) + 60)
    assert check_identity_claim(claim, "web-xyz") is None


def test_expired_claim_is_refused(token_secret):
    claim = sign_identity_claim("s", 7, 1000)
    assert check_identity_claim(claim, "s", now=999.0) == (7, 1000)
    assert check_identity_claim(claim, "s", now=1000.0) is None


def test_claim_under_another_secret_is_refused(token_secret):
    claim = sign_identity_claim("s", 7, int(time.time()) + 60, secret="other-" + "z" * 32)
    assert check_identity_claim(claim, "s") is None


def test_claim_is_not_a_jwt_signature(token_secret):
    """Domain separation: the claim's HMAC is not an HS256 signature over the same text."""
    claim = sign_identity_claim("s", 7, int(time.time()) + 60)
    assert check_identity_claim(claim, "s", secret=token_secret) is not None
    assert check_identity_claim(claim, "s", secret=token_secret + "x") is None


def test_claims_need_a_secret(monkeypatch):
    monkeypatch.delenv("KEFU_CUSTOMER_TOKEN_SECRET", raising=False)
    with pytest.raises(ConfigurationError):
        sign_identity_claim("s", 7, int(time.time()) + 60)
    claim = sign_identity_claim("s", 7, int(time.time()) + 60, secret="x" * 32)
    assert check_identity_claim(claim, "s") is None


# --- phones: every seeded customer in every documented format ----------------------------------


def _formats(stored: str) -> list[str]:
    """The ways a customer types the phone stored as ``stored`` (digits with country code)."""
    if stored.startswith("1"):
        n = stored[1:]
        a, b, c = n[:3], n[3:6], n[6:]
        return [
            f"+1 {a} {b} {c}",
            n,
            f"{a}-{b}-{c}",
            f"({a}) {b}-{c}",
            f"+1 ({a}) {b}-{c}",
            f"1 {a} {b} {c}",
            f"001 {a} {b} {c}",
            "+" + stored,
            stored,
        ]
    n = stored[2:]
    a, b, c = n[:3], n[3:7], n[7:]
    return [
        f"+86 {a} {b} {c}",
        n,
        f"{a}-{b}-{c}",
        f"{a} {b} {c}",
        "0086" + n,
        f"0086 {a} {b} {c}",
        "+" + stored,
        stored,
    ]


@pytest.mark.parametrize(
    "raw", [f for _, _, phone, _, _ in CUSTOMERS for f in _formats(phone)] + ["+1 415 555 0101"]
)
def test_normalize_phone_is_idempotent_in_the_stored_form(raw):
    once = normalize_phone(raw)
    assert normalize_phone("+" + once) == once


def test_every_seeded_phone_verifies_in_every_documented_format(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'seeded.db'}")
    Base.metadata.create_all(engine)
    seed(engine)
    sf = make_session_factory(engine)
    with sf() as s:
        first_orders = dict(
            s.execute(
                select(Customer.phone, func.min(Order.number))
                .join(Order, Order.customer_id == Customer.id)
                .group_by(Customer.phone)
            ).all()
        )
    assert len(first_orders) >= 15
    tried = 0
    for name, _, stored, _, _ in CUSTOMERS:
        if stored not in first_orders:
            continue
        for i, typed in enumerate(_formats(stored)):
            v = verify_order_owner(
                sf, first_orders[stored], phone=typed, conversation_id=f"{stored}-{i}"
            )
            assert v.name == name and v.method == "phone", typed
            tried += 1
    assert tried >= 15 * 8
    engine.dispose()


def test_demo_phone_through_both_normalisations(session_factory, world):
    """What the chat does: normalise the typed phone, keep "+digits", then verify with that."""
    for typed in ("+1 415 555 0100", "4155550100", "415-555-0100", "(415) 555-0100"):
        kept = "+" + normalize_phone(typed)
        v = verify_order_owner(session_factory, "KF-190001", phone=kept, conversation_id="c")
        assert v.customer_id == world.alice_id


def test_other_customers_phone_does_not_verify(session_factory, world):
    with pytest.raises(VerificationFailed):
        verify_order_owner(session_factory, "KF-190001", phone="13800138000", conversation_id="c")


# --- limits on keys the attacker cannot choose -------------------------------------------------


def _orders_not_of(sf, customer_id: int) -> list[str]:
    with sf() as s:
        return (
            s.execute(
                select(Order.number).where(Order.customer_id != customer_id).order_by(Order.number)
            )
            .scalars()
            .all()
        )


def test_enumeration_with_a_known_email_stops_at_the_contact_cap(session_factory, world):
    """Fresh conversations and many order numbers: the email itself runs out of guesses."""
    others = _orders_not_of(session_factory, world.alice_id)
    numbers = [f"KF-{n}" for n in range(900001, 900001 + identity.CONTACT_MAX_FAILURES)]
    for i, number in enumerate((others + numbers)[: identity.CONTACT_MAX_FAILURES]):
        with pytest.raises(VerificationFailed):
            verify_order_owner(
                session_factory, number, email=world.alice_email, conversation_id=f"enum-{i}"
            )
    with pytest.raises(TooManyAttempts) as e:
        # Even the right order is refused: the attacker cannot tell a hit from the cap.
        verify_order_owner(
            session_factory, "KF-190001", email="ALICE@example.com", conversation_id="enum-last"
        )
    assert 0 < e.value.retry_after_s <= 24 * 3600
    # The cap is on the email tried, not on the order or on the customer's phone.
    v = verify_order_owner(
        session_factory, "KF-190001", phone="+1 415 555 0100", conversation_id="owner"
    )
    assert v.customer_id == world.alice_id


def test_per_client_cap_with_fresh_conversations_and_contacts(session_factory, world):
    client = "203.0.113.7"
    for i in range(identity.CLIENT_MAX_FAILURES):
        with pytest.raises(VerificationFailed):
            verify_order_owner(
                session_factory,
                "KF-190001",
                email=f"guess{i}@example.com",
                conversation_id=f"cl-{i}",
                client=client,
            )
    with pytest.raises(TooManyAttempts):
        verify_order_owner(
            session_factory,
            "KF-190001",
            email=world.alice_email,
            conversation_id="cl-new",
            client=client,
        )
    # Another address (the real customer at home) is not affected.
    assert verify_order_owner(
        session_factory,
        "KF-190001",
        email=world.alice_email,
        conversation_id="home",
        client="198.51.100.2",
    )


def test_attempts_store_keys_not_contacts(session_factory, world):
    with pytest.raises(VerificationFailed):
        verify_order_owner(
            session_factory,
            "KF-190001",
            email="x@example.com",
            conversation_id="c",
            client="203.0.113.7",
        )
    with session_factory() as s:
        row = s.execute(select(VerificationAttempt)).scalar_one()
    assert row.order_number == "KF-190001" and row.kind == "order" and not row.success
    assert row.contact_key == contact_key("x@example.com")
    assert row.client_key == client_key("203.0.113.7")
    assert "example" not in row.contact_key and "203" not in row.client_key


def test_success_records_the_conversation_identity(session_factory, world):
    verify_order_owner(session_factory, "KF-190001", email=world.alice_email, conversation_id="c")
    with session_factory() as s:
        row = s.execute(select(ConversationIdentity)).scalar_one()
    assert (row.conversation_id, row.customer_id, row.method) == ("c", world.alice_id, "email")
    assert row.order_number == "KF-190001" and row.verified_at is not None


def test_failure_rate_alarm_is_logged_once_per_window(session_factory, world, monkeypatch, caplog):
    monkeypatch.setattr(identity, "ALARM_FAILURES", 3)
    monkeypatch.setattr(identity, "_alarm_last", None)
    with caplog.at_level(logging.WARNING, logger="commerce.services.identity"):
        for i in range(6):
            with pytest.raises(VerificationFailed):
                verify_order_owner(
                    session_factory, "KF-190001", email=f"a{i}@example.com", conversation_id=f"{i}"
                )
    alarms = [r for r in caplog.records if "verification failure alarm" in r.getMessage()]
    assert len(alarms) == 1
    assert "3 failed verifications" in alarms[0].getMessage()
    assert "example.com" not in alarms[0].getMessage()


# --- one-time codes ----------------------------------------------------------------------------


@pytest.fixture
def outbox_log(tmp_path, monkeypatch):
    """Codes go to a LogSender file under tmp_path (never the repo's var/)."""
    path = tmp_path / "outbox.log"
    monkeypatch.setenv("KEFU_OUTBOX_LOG", str(path))
    monkeypatch.delenv("KEFU_SMTP_HOST", raising=False)
    monkeypatch.delenv("KEFU_SMS_SENDER", raising=False)
    return path


def _last_code(path) -> str:
    return re.findall(r"\b(\d{6})\b", path.read_text(encoding="utf-8"))[-1]


def test_send_code_by_email(session_factory, world, outbox_log):
    sent = send_verification_code(session_factory, world.alice_id, conversation_id="c")
    assert sent == CodeSent(channel="email", destination="a***@example.com", expires_in_s=600)
    log = outbox_log.read_text(encoding="utf-8")
    assert "to alice@example.com" in log and "Your Kefu verification code" in log
    code = _last_code(outbox_log)
    with session_factory() as s:
        stored = s.execute(select(VerificationCode)).scalar_one()
        message = s.execute(select(OutboxMessage)).scalar_one()
    assert code not in stored.code_hash and stored.expires_at > stored.created_at
    assert message.status == "sent" and code not in message.body


def test_send_code_in_chinese(session_factory, world, outbox_log):
    send_verification_code(session_factory, world.wang_id, conversation_id="c", language="zh")
    assert "您的 Kefu 验证码" in outbox_log.read_text(encoding="utf-8")


def test_send_code_by_sms(session_factory, world, outbox_log):
    sent = send_verification_code(
        session_factory, world.alice_id, conversation_id="c", channel="sms"
    )
    assert sent.channel == "sms" and sent.destination == "***0100"
    assert "sms to +14155550100" in outbox_log.read_text(encoding="utf-8")


def test_right_code_verifies_once(session_factory, world, outbox_log):
    send_verification_code(session_factory, world.alice_id, conversation_id="c")
    code = _last_code(outbox_log)
    v = check_verification_code(
        session_factory, world.alice_id, f" {code[:3]} {code[3:]} ", conversation_id="c"
    )
    assert v.customer_id == world.alice_id and v.method == "code" and v.name == "Alice Smith"
    with session_factory() as s:
        assert s.execute(select(ConversationIdentity.method)).scalar_one() == "code"
    with pytest.raises(CodeExpired) as e:
        check_verification_code(session_factory, world.alice_id, code, conversation_id="c")
    assert e.value.code == "code_expired"


def test_code_works_only_in_its_conversation(session_factory, world, outbox_log):
    send_verification_code(session_factory, world.alice_id, conversation_id="c")
    with pytest.raises(CodeExpired):
        check_verification_code(
            session_factory, world.alice_id, _last_code(outbox_log), conversation_id="other"
        )


def test_wrong_codes_use_up_the_tries(session_factory, world, outbox_log):
    send_verification_code(session_factory, world.alice_id, conversation_id="c")
    code = _last_code(outbox_log)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(identity.CODE_MAX_TRIES):
        with pytest.raises(VerificationFailed):
            check_verification_code(session_factory, world.alice_id, wrong, conversation_id="c")
    with pytest.raises(TooManyAttempts):
        check_verification_code(session_factory, world.alice_id, code, conversation_id="c")


def test_malformed_code_is_a_wrong_code(session_factory, world, outbox_log):
    send_verification_code(session_factory, world.alice_id, conversation_id="c")
    with pytest.raises(VerificationFailed):
        check_verification_code(session_factory, world.alice_id, "12ab", conversation_id="c")


def test_expired_code(session_factory, world, outbox_log, monkeypatch):
    monkeypatch.setattr(identity, "CODE_TTL", timedelta(seconds=0))
    send_verification_code(session_factory, world.alice_id, conversation_id="c")
    with pytest.raises(CodeExpired):
        check_verification_code(
            session_factory, world.alice_id, _last_code(outbox_log), conversation_id="c"
        )


def test_no_code_sent(session_factory, world):
    with pytest.raises(CodeExpired):
        check_verification_code(session_factory, world.alice_id, "123456", conversation_id="c")


def test_newer_code_replaces_older(session_factory, world, outbox_log):
    send_verification_code(session_factory, world.alice_id, conversation_id="c")
    first = _last_code(outbox_log)
    send_verification_code(session_factory, world.alice_id, conversation_id="c")
    second = _last_code(outbox_log)
    if first != second:
        with pytest.raises(VerificationFailed):
            check_verification_code(session_factory, world.alice_id, first, conversation_id="c")
    assert check_verification_code(session_factory, world.alice_id, second, conversation_id="c")


def test_codes_per_conversation_are_limited(session_factory, world, outbox_log):
    for _ in range(identity.CODES_PER_CONVERSATION):
        send_verification_code(session_factory, world.alice_id, conversation_id="c")
    with pytest.raises(TooManyAttempts) as e:
        send_verification_code(session_factory, world.alice_id, conversation_id="c")
    assert 0 < e.value.retry_after_s <= 15 * 60


def test_codes_per_customer_are_limited_across_conversations(session_factory, world, outbox_log):
    for i in range(identity.CODES_PER_CUSTOMER):
        send_verification_code(session_factory, world.alice_id, conversation_id=f"c{i}")
    with pytest.raises(TooManyAttempts):
        send_verification_code(session_factory, world.alice_id, conversation_id="fresh")
    # Another customer's mailbox is not affected.
    assert send_verification_code(session_factory, world.wang_id, conversation_id="fresh")


def test_send_code_checks_its_arguments(session_factory, world, outbox_log):
    with pytest.raises(CustomerNotFound):
        send_verification_code(session_factory, 9999, conversation_id="c")
    with pytest.raises(InvalidInput):
        send_verification_code(session_factory, world.alice_id, conversation_id="c", channel="fax")
    with pytest.raises(InvalidInput):
        send_verification_code(session_factory, world.alice_id, conversation_id="c", language="fr")


# --- token identities --------------------------------------------------------------------------


def test_bind_token_identity_records_once(session_factory, world):
    until = datetime.now(timezone.utc) + timedelta(hours=1)
    bind_token_identity(session_factory, "web-1", world.alice_id, until)
    bind_token_identity(session_factory, "web-1", world.alice_id, until)
    with session_factory() as s:
        rows = s.execute(select(ConversationIdentity)).scalars().all()
    assert len(rows) == 1 and rows[0].method == "token" and rows[0].order_number is None
    assert rows[0].expires_at == until.replace(tzinfo=None, microsecond=0)
    bind_token_identity(session_factory, "web-1", world.wang_id, until)
    with session_factory() as s:
        assert s.execute(select(func.count(ConversationIdentity.id))).scalar_one() == 2


def test_bind_token_identity_for_unknown_customer(session_factory, world):
    with pytest.raises(CustomerNotFound):
        bind_token_identity(session_factory, "web-1", 9999, datetime.now(timezone.utc))
