import json

import pytest

from channels.rest import RequestRejected, parse_rest_payload


def body(payload) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    "payload, expected",
    [
        ({"sender": "anna", "message": "hi"}, ("anna", "hi", {})),
        ({"sender": "u-1", "message": "  你好  "}, ("u-1", "你好", {})),
        (
            {
                "sender": "a.b@c:d_e-f",
                "message": "我的order KF-100023 到哪了",
                "metadata": {"k": 1},
            },
            ("a.b@c:d_e-f", "我的order KF-100023 到哪了", {"k": 1}),
        ),
        ({"sender": "x", "message": "😀 ok", "metadata": None}, ("x", "😀 ok", {})),
    ],
)
def test_valid_payloads(payload, expected):
    assert parse_rest_payload(body(payload)) == expected


@pytest.mark.parametrize(
    "raw, status, code",
    [
        (b"", 400, "invalid_json"),
        (b"not json", 400, "invalid_json"),
        (b"{'sender': 'single quotes'}", 400, "invalid_json"),
        (b'["a", "list"]', 400, "invalid_json"),
        (b"\xff\xfe\x00garbage", 400, "invalid_encoding"),
        ('{"sender": "a", "message": "caf\xe9"}'.encode("latin-1"), 400, "invalid_encoding"),
        (body({"message": "hi"}), 400, "invalid_sender"),
        (body({"sender": "", "message": "hi"}), 400, "invalid_sender"),
        (body({"sender": "a b", "message": "hi"}), 400, "invalid_sender"),
        (body({"sender": "x" * 129, "message": "hi"}), 400, "invalid_sender"),
        (body({"sender": "'; DROP TABLE events;--", "message": "hi"}), 400, "invalid_sender"),
        (body({"sender": 42, "message": "hi"}), 400, "invalid_sender"),
        (body({"sender": "a"}), 400, "invalid_message"),
        (body({"sender": "a", "message": {"text": "hi"}}), 400, "invalid_message"),
        (body({"sender": "a", "message": ""}), 400, "empty_message"),
        (body({"sender": "a", "message": " \n\t "}), 400, "empty_message"),
        (body({"sender": "a", "message": "\x00\x00"}), 400, "empty_message"),
        (body({"sender": "a", "message": "hi", "metadata": "x"}), 400, "invalid_metadata"),
        (body({"sender": "a", "message": "好" * 2001}), 413, "message_too_long"),
        (b'{"sender": "a", "message": "' + b"a" * 70_000 + b'"}', 413, "body_too_large"),
    ],
)
def test_malformed_payloads_are_rejected_with_a_code(raw, status, code):
    with pytest.raises(RequestRejected) as caught:
        parse_rest_payload(raw)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.message


def test_limits_are_configurable():
    assert parse_rest_payload(body({"sender": "a", "message": "abc"}), max_message_chars=3)
    with pytest.raises(RequestRejected):
        parse_rest_payload(body({"sender": "a", "message": "abcd"}), max_message_chars=3)


def test_rejection_renders_json_error():
    reply = RequestRejected(400, "invalid_json", "bad").as_response()
    assert reply.status == 400
    assert json.loads(reply.body) == {"error": "invalid_json", "message": "bad"}
