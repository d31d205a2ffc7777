from scripts.serve import GENERATED_SECRETS, _with_secrets, endpoints_for_port

ENDPOINTS = """action_endpoint:
  url: "http://localhost:5055/webhook"
  token: ${KEFU_ACTION_TOKEN}
tracker_store:
  type: SQL
  db: var/tracker.db
"""


def test_local_action_url_follows_the_actions_port(tmp_path):
    source = tmp_path / "endpoints.yml"
    source.write_text(ENDPOINTS)
    effective = endpoints_for_port(source, 6123, tmp_path)
    assert effective != source
    text = effective.read_text()
    assert 'url: "http://localhost:6123/webhook"' in text
    assert "token: ${KEFU_ACTION_TOKEN}" in text  # placeholders untouched
    assert "db: var/tracker.db" in text


def test_default_port_and_remote_urls_are_left_alone(tmp_path):
    source = tmp_path / "endpoints.yml"
    source.write_text(ENDPOINTS)
    assert endpoints_for_port(source, 5055, tmp_path) == source
    remote = tmp_path / "remote.yml"
    remote.write_text('action_endpoint:\n  url: "http://actions.internal:5055/webhook"\n')
    assert endpoints_for_port(remote, 6123, tmp_path) == remote


def test_unset_secrets_are_made_up_per_run_and_set_ones_are_kept():
    env, made_up = _with_secrets({"PATH": "/bin"})
    assert made_up == list(GENERATED_SECRETS)
    assert all(len(env[name]) >= 32 for name in GENERATED_SECRETS)
    assert _with_secrets({})[0]["KEFU_AGENT_TOKEN"] != env["KEFU_AGENT_TOKEN"]
    kept, made_up = _with_secrets({"KEFU_AGENT_TOKEN": "mine", "KEFU_CUSTOMER_TOKEN_SECRET": ""})
    assert kept["KEFU_AGENT_TOKEN"] == "mine" and made_up == ["KEFU_CUSTOMER_TOKEN_SECRET"]
