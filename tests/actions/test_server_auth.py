"""The action server refuses calls that do not carry Rasa's shared token."""

import pytest

from actions.__main__ import create_action_app

WEBHOOK_BODY = {"next_action": "action_does_not_exist", "sender_id": "s", "tracker": {}}


@pytest.fixture(scope="module")
def app():
    app = create_action_app("s3cret", "actions")
    app.config.TOUCHUP = False
    return app


def test_health_is_open(app):
    _, reply = app.test_client.get("/health")
    assert reply.status == 200


@pytest.mark.parametrize("query", ["", "?token=", "?token=wrong", "?token=s3cret2"])
def test_webhook_without_valid_token_is_refused(app, query):
    _, reply = app.test_client.post(f"/webhook{query}", json=WEBHOOK_BODY)
    assert reply.status == 401
    assert reply.json["error"] == "unauthorized"


def test_actions_listing_needs_token(app):
    _, refused = app.test_client.get("/actions")
    _, allowed = app.test_client.get("/actions?token=s3cret")
    assert refused.status == 401
    assert allowed.status == 200


def test_valid_token_reaches_rasa_sdk(app):
    # An unknown action proves the call got past authentication into rasa-sdk.
    _, reply = app.test_client.post("/webhook?token=s3cret", json=WEBHOOK_BODY)
    assert reply.status == 404
    assert "action_does_not_exist" in reply.json["error"]


def test_empty_token_is_not_allowed():
    with pytest.raises(ValueError):
        create_action_app("")
