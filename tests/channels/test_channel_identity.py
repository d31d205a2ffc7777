"""What the channels establish about a message's sender: customer tokens checked against a seeded
database, the signed claim that replaces them, reserved metadata keys and client addresses."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest

from channels.identity import (
    NO_TOKEN,
    CustomerIdentity,
    channel_metadata,
    check_customer_token,
    client_address,
    parse_trusted_proxies,
    strip_reserved,
    trusted_proxies,
)
from commerce.config import TOKEN_SECRET_ENV
from commerce.services.identity import check_identity_claim, issue_customer_token
from tests.helpers.channels import SECRET

ALICE = 1  # docs/SEED.md


async def test_a_signed_token_names_the_customer_and_its_expiry(customers):
    token = issue_customer_token(ALICE, 600, secret=SECRET)
    identity = await check_customer_token(token)
    assert identity.verified and identity.customer_id == ALICE and identity.name
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert identity.exp == exp
    assert identity.as_event() == {"verified": True, "name": identity.name}  # no customer id


@pytest.mark.parametrize(
    "token, reason",
    [
        (None, "no_token"),
        ("", "no_token"),
        (12345, "invalid"),
        ("not.a.jwt", "invalid"),
        ("x" * 5000, "invalid"),
        # Signed with another secret: forged.
        (issue_customer_token(ALICE, secret="someone-else-with-their-own-long-secret"), "invalid"),
        # Unsigned ("alg": "none") tokens are never accepted.
        (jwt.encode({"sub": "1", "iss": "kefu", "aud": "kefu-customer"}, None, "none"), "invalid"),
        # A customer that does not exist.
        (issue_customer_token(99999, secret=SECRET), "invalid"),
    ],
)
async def test_bad_tokens_leave_the_customer_anonymous(customers, token, reason):
    identity = await check_customer_token(token)
    assert not identity.verified and identity.customer_id is None
    assert identity.as_event() == {"verified": False, "reason": reason}


async def test_an_expired_token_says_so(customers):
    token = issue_customer_token(ALICE, timedelta(seconds=1), secret=SECRET)
    payload = jwt.decode(token, SECRET, algorithms=["HS256"], audience="kefu-customer")
    expired = jwt.encode({**payload, "exp": payload["iat"] - 10}, SECRET, "HS256")
    assert (await check_customer_token(expired)).reason == "expired"


async def test_tokens_without_a_configured_secret(customers, monkeypatch):
    monkeypatch.delenv(TOKEN_SECRET_ENV)
    token = issue_customer_token(ALICE, secret=SECRET)
    assert (await check_customer_token(token)).reason == "not_configured"


def test_the_claim_replaces_the_token_and_expires_with_it(customers):
    exp = int(time.time()) + 600
    alice = CustomerIdentity("verified", ALICE, "Alice", exp)
    metadata = channel_metadata(
        {"language": "zh", "customer_token": "eyJ...", "kefu_identity": {"customer_id": 2}},
        sender_id="shop-42",
        identity=alice,
        client="203.0.113.7",
    )
    assert set(metadata) == {"language", "kefu_identity", "kefu_client"}
    assert metadata["kefu_client"] == "203.0.113.7"
    claim = metadata["kefu_identity"]
    assert claim["customer_id"] == ALICE and claim["exp"] == exp and claim["sid"] == "shop-42"
    assert check_identity_claim(claim, "shop-42") == (ALICE, exp)
    assert check_identity_claim(claim, "shop-43") is None  # bound to its conversation

    # Past the token's expiry the identity is gone: no claim.
    later = channel_metadata({}, sender_id="shop-42", identity=alice, client=None, now=exp + 1)
    assert later == {}
    assert alice.current(exp + 1) == CustomerIdentity("expired")
    assert alice.current(exp - 1) is alice


def test_anonymous_messages_carry_no_claim_and_client_keys_are_dropped():
    sent = {"kefu_identity": {"customer_id": 1, "sig": "f00"}, "kefu_client": "1.2.3.4", "a": 1}
    assert strip_reserved(sent) == {"a": 1}
    assert strip_reserved(None) == {}
    metadata = channel_metadata(sent, sender_id="x", identity=NO_TOKEN, client="198.51.100.9")
    assert metadata == {"a": 1, "kefu_client": "198.51.100.9"}


PROXIES = parse_trusted_proxies("127.0.0.1, 10.0.0.0/8, ::1")


@pytest.mark.parametrize(
    "peer, forwarded_for, expected",
    [
        ("203.0.113.7", None, "203.0.113.7"),
        # Not from a trusted proxy: the header is whatever the client wrote.
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),
        ("127.0.0.1", None, "127.0.0.1"),
        ("127.0.0.1", "198.51.100.1", "198.51.100.1"),
        # The proxy appends the address it saw; what the client wrote to its left is ignored.
        ("127.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),
        # A chain of trusted proxies is walked from the right.
        ("127.0.0.1", "198.51.100.1, 10.1.2.3", "198.51.100.1"),
        ("::1", "2001:db8::5", "2001:db8::5"),
        # Unreadable hops stop the walk at the last trusted address.
        ("127.0.0.1", "garbage", "127.0.0.1"),
        ("127.0.0.1", "198.51.100.1, nonsense, 10.0.0.2", "10.0.0.2"),
        (None, "198.51.100.1", None),
        ("", None, None),
    ],
)
def test_client_address(peer, forwarded_for, expected):
    assert client_address(peer, forwarded_for, PROXIES) == expected


def test_without_trusted_proxies_the_header_is_ignored():
    assert client_address("127.0.0.1", "198.51.100.1") == "127.0.0.1"
    assert trusted_proxies({}) == ()
    assert trusted_proxies({"KEFU_TRUSTED_PROXIES": "10.0.0.1"})[0].num_addresses == 1


def test_a_bad_proxy_setting_is_refused_by_name():
    with pytest.raises(ValueError, match="KEFU_TRUSTED_PROXIES.*'proxy.local'"):
        parse_trusted_proxies("127.0.0.1,proxy.local")
