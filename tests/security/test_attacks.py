"""Attacks on the running assistant, tried as an attacker would (docs/SECURITY.md).

One Kefu (scripts/serve.py: action server + Rasa) runs for the module with the stores a shop
deploys: the masking SQL tracker store and an SQL event broker, a seeded commerce database,
the outbox writing to a log (no SMTP server), a REST secret, and 127.0.0.1 as a trusted proxy so
each attacker here poses as its own client address with ``X-Forwarded-For``.

Needs a trained model (``make train``); the accounts are those of docs/SEED.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sqlite3
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from commerce.services import identity
from commerce.services.identity import issue_customer_token
from tests.helpers.kefu_server import running_kefu
from tests.helpers.webchat_client import ChatClient

pytestmark = pytest.mark.integration

TOKEN_SECRET = "security-suite-token-secret-long-enough-for-hs256"
REST_SECRET = "security-suite-rest-secret"
IDLE_S = 20
ALICE, BOB, CAROL = 1, 2, 3  # docs/SEED.md
#: Personal data the conversations below type; none of it may rest unmasked anywhere.
PII = (
    "henry@example.com",
    "zhang.wei@example.cn",
    "wang.fang@example.cn",
    "13800138001",
    "138 0013 8001",
    "世纪大道88号",
    "bob@example.com",
    "8613800138001",
)


@pytest.fixture(scope="module")
def outbox(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("outbox") / "outbox.log"


@pytest.fixture(scope="module")
def kefu(tmp_path_factory, commerce_db, outbox):
    folder = tmp_path_factory.mktemp("kefu-security")
    with running_kefu(
        folder,
        KEFU_DATABASE_URL=f"sqlite:///{commerce_db}",
        KEFU_CUSTOMER_TOKEN_SECRET=TOKEN_SECRET,
        KEFU_REST_SECRET=REST_SECRET,
        KEFU_TRUSTED_PROXIES="127.0.0.1",
        KEFU_OUTBOX_LOG=str(outbox),
        KEFU_SMTP_HOST="",
        KEFU_IDENTITY_IDLE_S=str(IDLE_S),
        KEFU_AGENT_TOKEN_FILE=str(folder / "agent-token"),
    ) as server:
        yield server


def sign(sender: str) -> str:
    return hmac.new(REST_SECRET.encode(), sender.encode(), hashlib.sha256).hexdigest()


def post(kefu, payload: dict | bytes, *, client: str, signature: str | None = "auto"):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-Forwarded-For": client}
    if signature == "auto" and isinstance(payload, dict):
        signature = sign(payload.get("sender", ""))
    if signature and signature != "auto":
        headers["X-Kefu-Signature"] = signature
    request = urllib.request.Request(kefu.url + "/webhooks/rest/webhook", body, headers)
    try:
        with urllib.request.urlopen(request, timeout=90) as reply:  # noqa: S310 - loopback
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def say(kefu, sender: str, text: str, *, client: str, token: str | None = None) -> str:
    payload = {"sender": sender, "message": text}
    if token:
        payload["metadata"] = {"customer_token": token}
    status, reply = post(kefu, payload, client=client)
    assert status == 200, reply
    return " ".join(m.get("text", "") for m in reply)


def latest_code(outbox: Path, recipient: str) -> str:
    """The 6-digit code of the newest message the outbox log holds for ``recipient``."""
    for block in reversed(outbox.read_text(encoding="utf-8").split("\n--- ")):
        header, _, body = block.partition("\n")
        if header.rstrip().endswith(f" to {recipient}"):
            return re.findall(r"(?<!\d)\d{6}(?!\d)", body)[0]
    raise AssertionError(f"no message to {recipient} in the outbox")


def query(db, sql: str, *params):
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def stored_text(kefu) -> str:
    """Everything the tracker store and the event broker hold, and both servers' logs."""
    parts = [data for (data,) in query(kefu.tracker_db, "SELECT data FROM events")]
    parts += [data for (data,) in query(kefu.broker_db, "SELECT data FROM events")]
    parts += [p.read_text(errors="replace") for p in Path(kefu.log_dir).glob("*.log")]
    return "\n".join(parts)


# --- who Kefu acts for ---------------------------------------------------------------------------


def test_enumeration_with_a_known_email_stops_at_the_contact_limit(kefu, commerce_db):
    """A botnet: a fresh sender and a fresh address for every guess at Henry's orders."""
    refused_at = None
    for i in range(identity.CONTACT_MAX_FAILURES + 2):
        sender, client = f"enum-{i}", f"198.51.100.{i + 1}"
        say(kefu, sender, "where is my order?", client=client)
        say(kefu, sender, f"KF-{300500 + i}", client=client)
        reply = say(kefu, sender, "henry@example.com", client=client)
        if "Too many" in reply:
            refused_at = i
            break
        assert "couldn't match" in reply, reply
    assert refused_at == identity.CONTACT_MAX_FAILURES
    failures = query(
        commerce_db,
        "SELECT COUNT(*) FROM verification_attempts WHERE contact_key = ? AND success = 0",
        identity.contact_key("henry@example.com"),
    )
    assert failures == [(identity.CONTACT_MAX_FAILURES,)]


def test_a_cancel_is_refused_without_the_code_sent_to_the_customer(kefu, commerce_db, outbox):
    sender, client = "zh-cancel-code", "198.51.100.60"
    say(kefu, sender, "取消订单", client=client)
    say(kefu, sender, "KF-200010", client=client)
    sent = say(kefu, sender, "zhang.wei@example.cn", client=client)
    assert "z***@example.cn" in sent, sent
    code = latest_code(outbox, "zhang.wei@example.cn")
    wrong = say(kefu, sender, "000000" if code != "000000" else "111111", client=client)
    assert "验证码" in wrong, wrong
    assert query(commerce_db, "SELECT status FROM orders WHERE number = 'KF-200010'") == [
        ("placed",)
    ]
    confirm = say(kefu, sender, code, client=client)
    assert "KF-200010" in confirm, confirm
    say(kefu, sender, "是的", client=client)
    assert query(commerce_db, "SELECT status FROM orders WHERE number = 'KF-200010'") == [
        ("cancelled",)
    ]


def test_a_reused_or_web_sender_acts_for_nobody(kefu):
    client = "198.51.100.70"
    say(kefu, "bob-session", "where is my order?", client=client)
    say(kefu, "bob-session", "KF-100010", client=client)
    assert "KF-100010" in say(kefu, "bob-session", "bob@example.com", client=client)
    # Someone else reuses the sender id: without the shop's signature the request is refused.
    payload = {"sender": "bob-session", "message": "cancel my order"}
    assert post(kefu, payload, client="203.0.113.5", signature=None)[0] == 401
    assert post(kefu, payload, client="203.0.113.5", signature="0" * 64)[0] == 401
    # The web chat's conversations cannot be addressed over REST, signed or not.
    status, reply = post(kefu, {"sender": "web-" + "a" * 32, "message": "hi"}, client=client)
    assert (status, reply["error"]) == (400, "reserved_sender")


def test_identity_expires_after_the_idle_time(kefu):
    client = "198.51.100.71"
    say(kefu, "idle-bob", "where is my order?", client=client)
    say(kefu, "idle-bob", "KF-100010", client=client)
    assert "KF-100010" in say(kefu, "idle-bob", "bob@example.com", client=client)
    time.sleep(IDLE_S + 2)
    say(kefu, "idle-bob", "where is my order?", client=client)
    again = say(kefu, "idle-bob", "KF-100010", client=client)
    assert "email address or phone number" in again, again


def test_an_expired_or_swapped_token_drops_the_identity(kefu):
    client = "198.51.100.72"
    carol = issue_customer_token(CAROL, secret=TOKEN_SECRET)
    say(kefu, "tok", "where is my order?", client=client, token=carol)
    assert "KF-100013" in say(kefu, "tok", "KF-100013", client=client, token=carol)
    # The channel now vouches for Bob: Carol's order is no longer this conversation's.
    bob = issue_customer_token(BOB, secret=TOKEN_SECRET)
    say(kefu, "tok", "where is my order?", client=client, token=bob)
    swapped = say(kefu, "tok", "KF-100013", client=client, token=bob)
    assert "couldn't find that order in your account" in swapped, swapped
    # An expired token is no proof: the assistant asks for the email or phone again.
    short = issue_customer_token(CAROL, ttl=1, secret=TOKEN_SECRET)
    time.sleep(2)
    say(kefu, "tok-expired", "where is my order?", client=client, token=short)
    again = say(kefu, "tok-expired", "KF-100013", client=client, token=short)
    assert "email address or phone number" in again, again


async def test_a_shared_browser_never_resumes_someone_elses_conversation(kefu):
    alice = ChatClient(kefu.url)
    first = await alice.open(token=issue_customer_token(ALICE, secret=TOKEN_SECRET))
    session_id = first["session_confirm"]
    await alice.say("where is my order?")
    assert "KF-100004" in " ".join(
        r.get("text", "") for r in await alice.say("KF-100004") if r["event"] == "bot_uttered"
    )
    await alice.close()
    for token in (issue_customer_token(BOB, secret=TOKEN_SECRET), None):
        other = ChatClient(kefu.url)
        got = await other.open(session_id=session_id, token=token)
        assert got["session_confirm"] != session_id
        assert got["history"]["messages"] == []
        await other.close()


def test_the_customer_token_is_never_stored_or_published(kefu):
    token = issue_customer_token(ALICE, secret=TOKEN_SECRET)
    say(kefu, "token-store", "where is my order?", client="198.51.100.73", token=token)
    say(kefu, "token-store", "KF-100004", client="198.51.100.73", token=token)
    stored = stored_text(kefu)
    assert token not in stored
    assert token.split(".")[2] not in stored  # not even the signature
    assert not re.search(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+", stored)


def test_no_personal_data_rests_unmasked_after_full_conversations(kefu, commerce_db, outbox):
    sender, client = "zh-address", "198.51.100.74"
    say(kefu, sender, "我想修改收货地址", client=client)
    say(kefu, sender, "KF-200001", client=client)
    sent = say(kefu, sender, "138 0013 8001", client=client)
    assert "8001" in sent, sent
    say(kefu, sender, latest_code(outbox, "+8613800138001"), client=client)
    changed = say(kefu, sender, "上海市浦东新区世纪大道88号, 上海, 200120", client=client)
    assert "KF-200001" in changed, changed
    assert query(
        commerce_db,
        "SELECT line1 FROM shipping_addresses sa JOIN orders o "
        "ON o.id = sa.order_id WHERE o.number = 'KF-200001'",
    )[0][0].startswith("上海市")
    # A handoff after giving an email: the ticket's transcript is masked too.
    say(kefu, "handoff-pii", "my email is bob@example.com", client="198.51.100.75")
    say(kefu, "handoff-pii", "I want to talk to a human", client="198.51.100.75")
    transcripts = " ".join(
        t for (t,) in query(commerce_db, "SELECT transcript FROM support_tickets")
    )
    stored = stored_text(kefu) + transcripts
    for value in PII:
        assert value not in stored, value


def test_the_console_takes_the_agent_name_from_the_account(kefu, commerce_db, tmp_path):
    from commerce.__main__ import main

    token_file = tmp_path / "mallory.token"
    url = f"sqlite:///{commerce_db}"
    assert main(["agent", "add", "Mallory", "--token-file", str(token_file), "--url", url]) == 0
    token = token_file.read_text().strip()

    def console(method: str, path: str):
        request = urllib.request.Request(
            f"{kefu.url}/webhooks/agent/api/{path}",
            data=b"{}" if method == "POST" else None,
            method=method,
            headers={
                "Authorization": f"Bearer {token}",
                "X-Kefu-Agent": "Anna",  # forged: must change nothing
                "Content-Type": "application/json",
                "X-Forwarded-For": "198.51.100.80",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310 - loopback
            return json.loads(reply.read())

    queue = console("GET", "queue")
    assert queue["agent"] == "Mallory"
    handoff = queue["waiting"][0]["handoff_id"]
    console("POST", f"handoffs/{handoff}/claim")
    assert query(commerce_db, "SELECT assigned_to FROM handoff_queue WHERE id = ?", handoff) == [
        ("Mallory",)
    ]
    audited = query(
        commerce_db,
        "SELECT agent_name FROM agent_audit_log WHERE action = 'claim' AND handoff_id = ?",
        handoff,
    )
    assert audited == [("Mallory",)]


# --- abuse limits ---------------------------------------------------------------------------------


def test_bodies_too_deep_or_too_large_get_json_errors(kefu):
    deep = (
        b'{"sender": "deep", "message": "hi", "metadata": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    )
    status, reply = post(kefu, deep, client="198.51.100.90", signature=sign("deep"))
    assert (status, reply["error"]) == (400, "invalid_json")
    big = json.dumps({"sender": "big", "message": "x" * 3_000_000}).encode()
    request = urllib.request.Request(
        kefu.url + "/webhooks/rest/webhook", big, {"Content-Type": "application/json"}
    )
    try:
        urllib.request.urlopen(request, timeout=30)  # noqa: S310 - loopback
        pytest.fail("a 3 MB body was accepted")
    except urllib.error.HTTPError as refused:
        assert refused.code == 413  # refused by Sanic's limit before the channel sees it
    except (BrokenPipeError, ConnectionResetError):
        pass  # Sanic answered 413 and closed the connection while the client still sent
    except urllib.error.URLError as closed:
        # The same, seen by urllib while it was still sending (it wraps the socket error).
        assert isinstance(closed.reason, (BrokenPipeError, ConnectionResetError)), closed
    assert say(kefu, "still-serving", "hi", client="198.51.100.91")


def test_a_message_flood_is_refused_with_a_bilingual_answer(kefu):
    client = "198.51.100.92"
    statuses = []
    for i in range(40):
        status, reply = post(kefu, {"sender": "flood", "message": f"hi {i}"}, client=client)
        statuses.append(status)
        if status == 429:
            assert reply["error"] == "rate_limited"
            assert re.search(r"[\u4e00-\u9fff]", reply["message"]), reply
            break
    assert statuses[-1] == 429 and statuses.count(200) >= 10


def test_handoffs_per_client_are_limited(kefu, commerce_db):
    client = "198.51.100.93"
    replies = [
        say(kefu, f"flood-handoff-{i}", "I want to talk to a human agent now", client=client)
        for i in range(5)
    ]
    assert replies[-1].startswith("I've already passed several requests for a person"), replies
    assert "didn't quite get that" not in replies[-1], replies  # the refusal ends the turn
    stored = query(
        commerce_db,
        "SELECT COUNT(*) FROM handoff_queue WHERE client_key = ?",
        identity.client_key(client),
    )
    assert stored[0][0] <= 3
